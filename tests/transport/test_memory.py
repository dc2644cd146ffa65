"""The in-process transport: fan-out, order, timeouts, bounded queues."""

from __future__ import annotations

import threading
import time

from beth.transport.envelope import Channel
from beth.transport.memory import MemoryBus
from sample_events import process_events


def test_every_subscriber_gets_every_envelope_in_order() -> None:
    bus = MemoryBus()
    a, b = bus.subscriber(), bus.subscriber()
    pub, ch = bus.publisher(), Channel("h", "process")
    for e in process_events("h", 50):
        pub.publish(ch.wrap(e))
    for sub in (a, b):
        got = sub.fetch(1000, 0.1)
        assert [x.seq for x in got] == list(range(1, 51))
        assert got[0].host == "h" and got[0].kind == "process" and got[0].event is not None
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
    while len(got) < 25:
        got += sub.fetch(4, 1.0)
    assert done.wait(2.0)
    assert [x.seq for x in got] == list(range(1, 26))
    pub.flush(1.0)
