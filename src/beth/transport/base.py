"""The transport interface: sensors publish envelopes, the collector fetches deliveries and acks them.

Two implementations share it: `memory` (one process, no server: the single-host default) and `nats`
(NATS JetStream between hosts). Both calls are synchronous and thread-safe, so a sensor thread can
publish while the collector's thread fetches; the NATS one runs its asyncio client on its own thread.

Acknowledgement is cumulative: `ack(d)` says "d and every delivery fetched before it are durably
handled" (written, or known duplicates, or rejected). The collector calls it only after fsync, so an
event the collector has not written is redelivered after a crash, never lost. A fetch returns its
events grouped by sensor stream (`Delivery`), with the acknowledgement token on its last delivery.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sized
from dataclasses import dataclass, field
from typing import Any, Self

from beth.data.write import CSV_LINE_END, csv_line
from beth.transport.envelope import Envelope, Event, encode

CRLF = CSV_LINE_END.encode()


def lines_block(records: list[bytes]) -> bytes:
    """Encoded records as lines of a CSV file: each followed by CRLF."""
    return CRLF.join(records) + CRLF


@dataclass(slots=True)
class Delivery:
    """Consecutive events of one sensor stream, as the collector receives them.

    They are sequence numbers `seq`, `seq + 1`, ... of (`host`, `kind`, `run`), where `host` is the
    host token of the subject they came on (who sent them, as far as the transport knows). The events
    are CSV records in `lines` (NATS: the payloads as received) or event objects in `events` (memory;
    stats records are dicts). Transports group what one fetch returns by stream, so that the
    collector's bookkeeping is per run of events, not per event; a lone message is a delivery of one.
    """

    host: str
    kind: str
    run: str
    seq: int
    lines: list[bytes] | None = None
    events: list[Event | dict[str, Any]] | None = None
    #: the transport's handle for acknowledging this delivery and every one fetched before it;
    #: None: a later delivery's token covers it (transports put one on the last delivery of a fetch)
    token: Any = None
    error: str | None = None  # why the message cannot be taken (bad subject, message id, encoding)
    done: bool = False  # set by the collector once written, found duplicate, or rejected
    parts: list[Delivery] | None = None  # set by `split`: then handled once every part is done

    @property
    def count(self) -> int:
        return len(self.lines) if self.lines is not None else len(self.events or ())

    @property
    def handled(self) -> bool:
        """Written, duplicate or rejected, all of it: safe to acknowledge."""
        if self.parts is not None:
            return all(p.done for p in self.parts)
        return self.done

    def split(self) -> list[Delivery]:
        """One delivery per event (kept in `parts`), for the rare paths that look at single events:
        reordering, duplicates, rejected rows."""
        if self.count == 1:
            return [self]
        if self.parts is None:
            h, k, r, s = self.host, self.kind, self.run, self.seq
            if self.lines is not None:
                self.parts = [Delivery(h, k, r, s + i, lines=[x]) for i, x in enumerate(self.lines)]
            else:
                self.parts = [Delivery(h, k, r, s + i, events=[x]) for i, x in enumerate(self.events or ())]
        return self.parts

    def records(self) -> list[bytes]:
        """The events as encoded records: CSV (a stats record: JSON), no line ends."""
        if self.lines is not None:
            return self.lines
        return list(map(encode, self.events or ()))

    def block(self) -> bytes:
        """The CSV records, each ended by CRLF, encoded: what the collector appends to a log."""
        if self.lines is not None:
            return lines_block(self.lines)
        return (CSV_LINE_END.join(map(csv_line, self.events or ())) + CSV_LINE_END).encode()  # type: ignore[arg-type]


@dataclass(slots=True)
class PublisherStats:
    published: int = 0  # envelopes handed to publish()
    acked: int = 0  # stored by the transport (for NATS: a JetStream PubAck)
    duplicates: int = 0  # acks that said "already stored" (a retry of a stored message)
    retried: int = 0  # messages sent again after a timeout or reconnect
    errors: list[str] = field(default_factory=list)  # distinct errors reported by the transport

    def to_record(self) -> dict[str, object]:
        return {
            "published": self.published,
            "acked": self.acked,
            "duplicates": self.duplicates,
            "retried": self.retried,
            "errors": list(self.errors),
        }


class Publisher(ABC):
    """Sensor side: hands envelopes to the transport, one message per event."""

    @abstractmethod
    def publish(self, envelope: Envelope) -> None:
        """Queue one envelope for sending; blocks (backpressure) when the transport is far behind."""

    @abstractmethod
    def flush(self, timeout: float) -> None:
        """Wait until everything published so far is stored; TransportError after `timeout` seconds."""

    @abstractmethod
    def close(self) -> None:
        """Stop sending; call `flush` first to not drop queued events."""

    @abstractmethod
    def stats(self) -> PublisherStats: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Arrivals:
    """Wakes a fetching thread once enough messages are queued, not at every message: one thread
    queues (a publisher, the NATS loop), one fetches."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.wanted = 0  # queue length the fetching thread waits for; 0: nobody waits

    def wait(self, queue: Sized, n: int, timeout: float) -> None:
        """Return once `queue` holds `n` messages, or after `timeout` seconds."""
        if len(queue) >= n:
            return
        self._event.clear()
        self.wanted = n
        if len(queue) < n:  # re-check: a message may have come before `wanted` was seen
            self._event.wait(timeout)
        self.wanted = 0

    def arrived(self, queued: int) -> None:
        """Called by the queueing thread when `wanted` is set, with the queue's length now."""
        if queued >= self.wanted:
            self._event.set()

    def wake(self) -> None:
        self._event.set()


class Subscriber(ABC):
    """Collector side: fetches deliveries in order and acknowledges them once handled."""

    @abstractmethod
    def fetch(self, max_messages: int, timeout: float, *, fill: bool = False) -> list[Delivery]:
        """Up to `max_messages` events, grouped by stream in the order each stream sent them; waits at
        most `timeout` seconds for the first one (with `fill`: for all `max_messages`)."""

    @abstractmethod
    def ack(self, delivery: Delivery) -> None:
        """Acknowledge `delivery` and every delivery fetched before it."""

    @abstractmethod
    def close(self) -> None: ...

    #: Whether deliveries come from other machines and must be checked (hosts, CSV structure).
    untrusted: bool = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
