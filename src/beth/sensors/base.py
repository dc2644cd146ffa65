"""What every sensor offers, so the transport, collector and live detector treat them alike.

A sensor is a context manager: entering loads/attaches it (raising `SensorError` with the reason when
it cannot run here), leaving detaches it. While running it is read either by polling or by iterating;
`stop()` (from any thread or a signal handler) ends an iteration. `stats()` says how much it saw and
how much it lost: losing an event silently is never acceptable.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol, Self, runtime_checkable

from beth.events import DnsEvent, ProcessEvent

Event = ProcessEvent | DnsEvent


class WakePipe:
    """A non-blocking pipe whose read end ends a sensor's wait: `stop()` writes a byte to it, which
    is safe from any thread and from a signal handler."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # the pipe is full: a wake-up is pending anyway
            os.write(self.write_fd, b"x")

    def clear(self) -> None:
        """Take back pending wake-ups (the next wait blocks again)."""
        with contextlib.suppress(OSError):  # nothing pending
            os.read(self.read_fd, 64)

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


@dataclass(slots=True)
class SensorStats:
    """Counters of one sensor since it started."""

    sensor: str  # "process" or "dns"
    events: int = 0  # events emitted
    lost: int = 0  # events the kernel could not hand over (ring-buffer full, socket drops)
    lost_per_cpu: list[int] = field(default_factory=list)  # where the kernel side counts per CPU
    malformed: int = 0  # input the sensor saw but could not decode (counted, skipped)
    duplicates: int = 0  # input seen twice and emitted once (e.g. DNS packets on loopback)

    def to_record(self) -> dict[str, object]:
        return {
            "sensor": self.sensor,
            "events": self.events,
            "lost": self.lost,
            "lost_per_cpu": list(self.lost_per_cpu),
            "malformed": self.malformed,
            "duplicates": self.duplicates,
        }


@runtime_checkable
class Sensor(Protocol):
    """The interface shared by `ProcessSensor` and `DnsSensor`."""

    name: str

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    def poll(self, timeout: float) -> list[Event]:
        """Events that arrived, waiting at most `timeout` seconds for the first one."""
        ...

    def drain(self) -> list[Event]:
        """Everything already captured, without waiting (the last read before stopping)."""
        ...

    def __iter__(self) -> Iterator[Event]:
        """Events as they arrive, until `stop()` is called."""
        ...

    def stop(self) -> None:
        """Make a running iteration end soon; safe from other threads and signal handlers."""
        ...

    @property
    def stopped(self) -> bool:
        """Whether `stop()` was called."""
        ...

    def stats(self) -> SensorStats: ...
