"""The in-process transport: fan-out, order, timeouts, bounded queues."""

from __future__ import annotations

import threading
import time

from beth.transport.base import Delivery
from beth.transport.envelope import Channel
from beth.transport.memory import MemoryBus
from sample_events import dns_events, process_events


def numbers(got: list[Delivery]) -> list[int]:
    """The sequence numbers of the events in `got` (each delivery holds a run of them)."""
    return [d.seq + i for d in got for i in range(d.count)]


def test_every_subscriber_gets_every_envelope_in_order() -> None:
    bus = MemoryBus()
    a, b = bus.subscriber(), bus.subscriber()
    pub, ch = bus.publisher(), Channel("h", "process")
    for e in process_events("h", 50):
        pub.publish(ch.wrap(e))
    for sub in (a, b):
        (got,) = sub.fetch(1000, 0.1)  # one stream: one delivery of all 50
        assert (got.host, got.kind, got.run, got.seq, got.count) == ("h", "process", ch.run, 1, 50)
        assert got.events == list(process_events("h", 50))
        assert not sub.untrusted
    assert pub.stats().published == 50


def test_fetch_waits_at_most_its_timeout_and_wakes_on_publish() -> None:
    bus = MemoryBus()
    sub, pub = bus.subscriber(), bus.publisher()
    t = time.monotonic()
    assert sub.fetch(10, 0.05) == []
    assert time.monotonic() - t >= 0.04
    (event,) = process_events("h", 1)
    threading.Timer(0.05, pub.publish, [Channel("h", "process").wrap(event)]).start()
    t = time.monotonic()
    assert len(sub.fetch(10, 5.0)) == 1
    assert time.monotonic() - t < 2.0


def test_a_full_queue_blocks_the_publisher_until_the_subscriber_catches_up() -> None:
    bus = MemoryBus(capacity=10)
    sub, pub, ch = bus.subscriber(), bus.publisher(), Channel("h", "process")
    events = list(process_events("h", 25))
    done = threading.Event()

    def produce() -> None:
        for e in events:
            pub.publish(ch.wrap(e))
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    time.sleep(0.1)
    assert not done.is_set()  # stuck at the capacity
    assert len(sub._queue) == 10
    got = []
    while len(numbers(got)) < 25:
        got += sub.fetch(4, 1.0)
    assert done.wait(2.0)
    assert numbers(got) == list(range(1, 26))
    pub.flush(1.0)


def test_a_fetch_groups_interleaved_streams_into_one_delivery_each_in_order() -> None:
    bus = MemoryBus()
    sub, pub = bus.subscriber(), bus.publisher()
    a_proc, a_dns, b_proc = (
        Channel("a.example", "process"),
        Channel("a.example", "dns"),
        Channel("b", "process"),
    )
    a_events, dns, b_events = list(process_events("a.example", 30)), list(dns_events("a.example", 3)), []
    for i, e in enumerate(a_events):
        pub.publish(a_proc.wrap(e))
        if i % 10 == 0:
            pub.publish(a_dns.wrap(dns[i // 10]))
        b_events.append(e)
        pub.publish(b_proc.wrap(e))
    got = sub.fetch(1000, 0.1)
    assert [(d.host, d.kind, d.seq, d.count) for d in got] == [
        ("a%2Eexample", "process", 1, 30),
        ("a%2Eexample", "dns", 1, 3),
        ("b", "process", 1, 30),
    ]
    assert got[0].events == a_events and got[1].events == dns and got[2].events == b_events
    # A stream whose numbers jump (a restarted channel, events published out of order) is cut there.
    ch = Channel("c", "process")
    envs = [ch.wrap(e) for e in process_events("c", 5)]
    for env in (envs[0], envs[1], envs[3], envs[2], envs[4]):
        pub.publish(env)
    assert [(d.seq, d.count) for d in sub.fetch(1000, 0.1)] == [(1, 2), (4, 1), (3, 1), (5, 1)]
