"""The transport interface: sensors publish envelopes, the collector fetches deliveries and acks them.

Two implementations share it: `memory` (one process, no server: the single-host default) and `nats`
(NATS JetStream between hosts). Both calls are synchronous and thread-safe, so a sensor thread can
publish while the collector's thread fetches; the NATS one runs its asyncio client on its own thread.

Acknowledgement is cumulative: `ack(d)` says "d and every delivery fetched before it are durably
handled" (written, or known duplicates, or rejected). The collector calls it only after fsync, so an
event the collector has not written is redelivered after a crash, never lost.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Self

from beth.data.write import csv_line
from beth.transport.envelope import Envelope, Event


@dataclass(slots=True)
class Delivery:
    """One message as the collector receives it.

    `host` is the host token of the subject it came on (who sent it, as far as the transport knows),
    `line` the CSV record (NATS) or `event` the event object (memory); `text()` gives the record.
    """

    host: str
    kind: str
    run: str
    seq: int
    line: str | None = None
    event: Event | dict[str, Any] | None = None
    token: Any = None  # the transport's handle for acknowledging it
    error: str | None = None  # why the message cannot be taken (bad subject, message id, encoding)
    done: bool = False  # set by the collector once written, found duplicate, or rejected

    def text(self) -> str:
        """The BETH CSV record (no line end)."""
        if self.line is None:
            assert self.event is not None and not isinstance(self.event, dict)
            self.line = csv_line(self.event)
        return self.line


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


class Subscriber(ABC):
    """Collector side: fetches deliveries in order and acknowledges them once handled."""

    @abstractmethod
    def fetch(self, max_messages: int, timeout: float) -> list[Delivery]:
        """Up to `max_messages` deliveries; waits at most `timeout` seconds for the first one."""

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
