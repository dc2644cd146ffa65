"""The embedded transport: sensors, collector and live detector in one process, no server.

A `MemoryBus` fans every published envelope out to each subscriber's queue (the collector and, when
running, the live detector each see every event). Queues are bounded: a publisher blocks when a
subscriber is `capacity` events behind, so a slow disk slows the sensors (whose kernel-side counters
then report what was dropped) instead of growing memory without limit; 250,000 events (a few hundred
MB) by default. Nothing is serialised: the event objects themselves travel, and a fetch hands them
over as one list per sensor stream (`Delivery`), not one object per event.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from beth.errors import TransportError
from beth.transport.base import Arrivals, Delivery, Publisher, PublisherStats, Subscriber
from beth.transport.envelope import Envelope, host_token


class MemoryBus:
    """In-process fan-out of envelopes to subscribers."""

    def __init__(self, capacity: int = 250_000) -> None:
        self.capacity = capacity
        self._subs: list[MemorySubscriber] = []
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self.closed = False

    def publisher(self) -> MemoryPublisher:
        return MemoryPublisher(self)

    def subscriber(self) -> MemorySubscriber:
        """A new subscriber that receives every envelope published from now on."""
        sub = MemorySubscriber(self)
        with self._lock:
            self._subs.append(sub)
        return sub

    def _offer(self, envelope: Envelope) -> None:
        for sub in self._subs:
            queue = sub._queue
            if len(queue) >= self.capacity:
                self._wait_for_space(sub)
            queue.append(envelope)
            if sub._arrivals.wanted:
                sub._arrivals.arrived(len(queue))

    def _wait_for_space(self, sub: MemorySubscriber) -> None:
        """Backpressure: block while `sub` is `capacity` events behind."""
        with self._space:
            while len(sub._queue) >= self.capacity and not sub.closed and not self.closed:
                self._space.wait(0.1)

    def _unsubscribe(self, sub: MemorySubscriber) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            self._space.notify_all()

    def _made_space(self) -> None:
        with self._space:
            self._space.notify_all()

    def close(self) -> None:
        self.closed = True
        self._made_space()
        for sub in list(self._subs):
            sub._arrivals.wake()


class MemoryPublisher(Publisher):
    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus
        self._stats = PublisherStats()

    def publish(self, envelope: Envelope) -> None:
        if self._bus.closed:
            raise TransportError("the in-process transport is closed")
        self._bus._offer(envelope)
        self._stats.published += 1
        self._stats.acked += 1

    def flush(self, timeout: float) -> None:
        """Wait until every subscriber has fetched what was published."""
        deadline = time.monotonic() + timeout
        while any(sub._queue for sub in self._bus._subs):
            if time.monotonic() > deadline:
                raise TransportError(f"the collector did not take the queued events within {timeout:g} s")
            time.sleep(0.005)

    def close(self) -> None:
        pass

    def stats(self) -> PublisherStats:
        return self._stats


def group(queue: deque[Envelope], n: int) -> list[Delivery]:
    """The first `n` envelopes of `queue`, taken off it, as one delivery per run of consecutive
    sequence numbers of a stream (normally: one per stream)."""
    out: list[Delivery] = []
    last: dict[tuple[str, str, str], Delivery] = {}  # each stream's latest delivery
    popleft = queue.popleft
    for _ in range(n):
        env = popleft()
        key = (env.host, env.kind, env.run)
        d = last.get(key)
        if d is not None and env.seq == d.seq + len(d.events):  # type: ignore[arg-type]
            d.events.append(env.event)  # type: ignore[union-attr]
        else:
            d = last[key] = Delivery(host_token(env.host), env.kind, env.run, env.seq, events=[env.event])
            out.append(d)
    return out


class MemorySubscriber(Subscriber):
    untrusted = False  # the envelopes come from sensors in this very process

    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus
        self._queue: deque[Envelope] = deque()
        self._arrivals = Arrivals()
        self.closed = False

    def fetch(self, max_messages: int, timeout: float, *, fill: bool = False) -> list[Delivery]:
        queue = self._queue
        self._arrivals.wait(queue, min(max_messages, self._bus.capacity) if fill else 1, timeout)
        out = group(queue, min(max_messages, len(queue)))
        if out and len(queue) < self._bus.capacity:
            self._bus._made_space()
        return out

    def ack(self, delivery: Delivery) -> None:
        """Nothing to do: an in-process event cannot be redelivered."""

    def close(self) -> None:
        self.closed = True
        self._bus._unsubscribe(self)
