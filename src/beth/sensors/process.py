"""The eBPF process sensor: kernel events in the BETH process-log schema (Tracee v0.5 ids and args).

`ProcessSensor` loads the CO-RE object built from `bpf/process.bpf.c` (`make bpf`) through libbpf,
configures it (which events, which processes), attaches it to tracepoints and reads its ring buffer.
Filtering happens in the kernel; decoding (`beth.sensors.records`) in batches here. Events the ring
buffer had no room for are counted per CPU by the kernel and reported by `stats()` and as a logged
warning, never dropped silently.

    with ProcessSensor(events=["proc", "openat"]) as sensor:
        for event in sensor:          # until sensor.stop()
            ...
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Self

from beth.errors import SensorError, UsageError
from beth.events import ProcessEvent
from beth.sensors.base import SensorStats, WakePipe
from beth.sensors.kernel import (
    check_kernel,
    check_object,
    check_privileges,
    has_tracepoint,
    noaudit_ranges,
    object_path,
)
from beth.sensors.libbpf import BpfObject, map_lookup, map_update, num_possible_cpus
from beth.sensors.records import (
    CNT_LOST,
    CNT_SENT,
    CNT_TRUNCATED,
    CONFIG,
    EV_BPRM_CHECK,
    EV_CAP_CAPABLE,
    EV_FILE_OPEN,
    EV_INODE_UNLINK,
    EV_PROCESS_EXIT,
    EV_SB_MOUNT,
    EVB_BPRM_CHECK,
    EVB_CAP_CAPABLE,
    EVB_PROCESS_EXIT,
    FILTER_COMMS,
    FILTER_PIDS,
    FILTER_UIDS,
    MAX_SYSCALL,
    TEXT_RANGE,
    RecordDecoder,
    plans,
)
from beth.sensors.ringbuf import RingReader
from beth.sensors.selection import AT_ENTER, resolve_events, syscall_config

log = logging.getLogger(__name__)

DEFAULT_RING_BYTES = 64 << 20
DEFAULT_WAKEUP_BYTES = 256 << 10
#: Longest a poll sleeps before looking at the ring again (records below the wake-up threshold).
POLL_TICK = 0.02
#: Most ring-buffer bytes decoded per read (~1,500 records): one poll returns in bounded time, and
#: small batches decode faster (their objects stay in cache and in the young GC generation).
READ_BYTES = 256 << 10

_PROGRAMS = ("on_sys_exit", "on_sys_enter", "on_exec", "on_exit", "on_fork", "on_cap_capable")


class ProcessSensor:
    """Kernel process events (syscalls, security_* derivatives, scheduler) as `ProcessEvent`s.

    events: event names, ids or Tracee sets (`proc`, `fs`, `net`, `default`, ... plus `beth` and `all`);
        None means Tracee's `default` set plus tkill/tgkill.
    host_name: the hostName column (default: this machine's host name).
    pids: trace only these processes (host pids) and the children they fork from now on.
    uids / comms: trace only these user ids / process names (comm, at most 15 characters).
    exclude_self: leave out the sensor's own process.
    stack: record user stack addresses (up to 20 frames).
    ring_bytes / wakeup_bytes: ring-buffer size (a power of two) and how much data wakes the reader.
    """

    name = "process"

    def __init__(
        self,
        events: Iterable[str] | str | None = None,
        host_name: str | None = None,
        pids: Iterable[int] | None = None,
        uids: Iterable[int] | None = None,
        comms: Iterable[str] | None = None,
        exclude_self: bool = True,
        stack: bool = False,
        *,
        ring_bytes: int = DEFAULT_RING_BYTES,
        wakeup_bytes: int = DEFAULT_WAKEUP_BYTES,
    ) -> None:
        self.selected, self.dropped = resolve_events(events)
        self.pids = _ids(pids, "pid", minimum=1)
        self.uids = _ids(uids, "uid", minimum=0)
        self.comms = _comms(comms)
        self.exclude_self = exclude_self
        self.stack = stack
        if ring_bytes < 1 << 16 or ring_bytes & (ring_bytes - 1):
            raise UsageError(f"ring buffer size {ring_bytes} must be a power of two of at least 64 KiB")
        if not 0 <= wakeup_bytes < ring_bytes:
            raise UsageError(f"wake-up threshold {wakeup_bytes} must be between 0 and the ring size")
        self.ring_bytes, self.wakeup_bytes = ring_bytes, wakeup_bytes
        self._decoder = RecordDecoder(host_name or socket.gethostname())
        self._obj: BpfObject | None = None
        self._reader: RingReader | None = None
        self._counters_fd = -1
        self._ncpus = 0
        self._wake: WakePipe | None = None
        self._stopped = False
        self._events = 0
        self._malformed = 0
        self._lost_seen = 0
        self._lost_checked = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _programs(self) -> set[str]:
        names = {plans()[i].name for i in self.selected}
        progs = set()
        if any(i < MAX_SYSCALL for i in self.selected) or self.selected & {EV_FILE_OPEN, EV_INODE_UNLINK,
                                                                            EV_SB_MOUNT}:  # fmt: skip
            progs.add("on_sys_exit")
        if names & AT_ENTER:
            progs.add("on_sys_enter")
        if EV_BPRM_CHECK in self.selected:
            progs.add("on_exec")
        if EV_PROCESS_EXIT in self.selected or self.pids:
            progs.add("on_exit")
        if self.pids:
            progs.add("on_fork")
        if EV_CAP_CAPABLE in self.selected:
            progs.add("on_cap_capable")
        return progs

    def start(self) -> None:
        """Load, configure and attach the kernel side; SensorError saying why when it cannot run."""
        if self._obj is not None:
            return
        check_privileges()
        check_kernel()
        path = object_path()
        check_object(path)
        if EV_CAP_CAPABLE in self.selected and not has_tracepoint("cap_capable"):
            # the capability tracepoint is recent (Linux 6.14); everything else works without it
            self.selected = self.selected - {EV_CAP_CAPABLE}
            self.dropped = tuple(sorted({*self.dropped, "cap_capable"}))
            log.warning("this kernel has no capability:cap_capable tracepoint: cap_capable is not traced")
            if not self.selected:
                raise SensorError(
                    "this kernel has no capability:cap_capable tracepoint (Linux 6.14 and later)"
                )
        filters = (FILTER_PIDS if self.pids else 0) | (FILTER_UIDS if self.uids else 0)
        filters |= FILTER_COMMS if self.comms else 0
        evbits = (EVB_CAP_CAPABLE if EV_CAP_CAPABLE in self.selected else 0) | (
            EVB_BPRM_CHECK if EV_BPRM_CHECK in self.selected else 0
        )
        evbits |= EVB_PROCESS_EXIT if EV_PROCESS_EXIT in self.selected else 0
        self_tgid = os.getpid() if self.exclude_self else 0
        ranges = noaudit_ranges() if EV_CAP_CAPABLE in self.selected else []
        if EV_CAP_CAPABLE in self.selected and not ranges:
            log.warning("kernel addresses are hidden: cap_capable includes checks made without auditing")
        config = CONFIG.pack(self_tgid, filters, int(self.stack), self.wakeup_bytes, evbits, len(ranges))
        obj = BpfObject(path)
        try:
            obj.set_rodata(config)
            obj.set_max_entries("events", self.ring_bytes)
            programs = self._programs()
            for prog in _PROGRAMS:
                obj.set_autoload(prog, prog in programs)
            obj.load()
            cfg_fd = obj.map_fd("syscall_cfg")
            for nr, value in syscall_config(self.selected).items():
                map_update(cfg_fd, nr.to_bytes(4, "little"), value)
            one = b"\x01"
            for pid in self.pids:
                map_update(obj.map_fd("pid_filter"), pid.to_bytes(4, "little"), one)
            for uid in self.uids:
                map_update(obj.map_fd("uid_filter"), uid.to_bytes(4, "little"), one)
            for comm in self.comms:
                map_update(obj.map_fd("comm_filter"), comm, one)
            for i, (start, end) in enumerate(ranges):
                map_update(obj.map_fd("noaudit_ranges"), i.to_bytes(4, "little"), TEXT_RANGE.pack(start, end))
            self._counters_fd = obj.map_fd("counters")
            self._ncpus = num_possible_cpus()
            self._wake = WakePipe()
            self._reader = RingReader(obj.map_fd("events"), self.ring_bytes, wake_fd=self._wake.read_fd)
            # children first, so that nothing forked while the rest attaches escapes the pid filter
            for prog in sorted(programs, key=lambda p: p != "on_fork"):
                obj.attach(prog)
        except BaseException:
            obj.close()
            self._close_pipe()
            raise
        self._obj = obj
        self._stopped = False

    def close(self) -> None:
        """Detach from the kernel and free everything (idempotent). Unread events are discarded."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._obj is not None:
            self._obj.close()
            self._obj = None
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self._wake is not None:
            self._wake.close()
            self._wake = None

    def stop(self) -> None:
        """End a running iteration soon (after what is already buffered); signal- and thread-safe."""
        self._stopped = True
        if self._wake is not None:
            self._wake.wake()

    @property
    def stopped(self) -> bool:
        """Whether `stop()` was called."""
        return self._stopped

    @property
    def truncated(self) -> int:
        """Events so far with a string, argv or path cut at the kernel's limits (4 KiB, 64 args)."""
        return self._decoder.truncated

    # -- reading ---------------------------------------------------------------------------------

    def _running(self) -> RingReader:
        if self._reader is None:
            raise SensorError("the process sensor is not running: use it as a context manager (with ...)")
        return self._reader

    def _drain(self) -> list[ProcessEvent]:
        reader = self._running()
        buf = reader.read(READ_BYTES)
        out: list[ProcessEvent] = []
        if buf:
            out, errors, consumed = self._decoder.decode_ring(buf)
            reader.release(consumed)
            for exc in errors:
                self._malformed += 1
                log.warning("process sensor: skipped a malformed record (%s)", exc)
            self._events += len(out)
        now = time.monotonic()
        if now - self._lost_checked > 1.0:
            self._lost_checked = now
            lost = sum(self._counter(CNT_LOST))
            if lost > self._lost_seen:
                log.warning("process sensor: %d events lost (ring buffer full)", lost - self._lost_seen)
                self._lost_seen = lost
        return out

    def poll(self, timeout: float = 0.1) -> list[ProcessEvent]:
        """Events that arrived, waiting at most `timeout` seconds for the first one."""
        reader = self._running()
        events = self._drain()
        if events or timeout <= 0:
            return events
        deadline = time.monotonic() + timeout
        while not self._stopped:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            reader.wait(min(remaining, POLL_TICK))
            events = self._drain()
            if events:
                return events
        return self._drain()

    def drain(self) -> list[ProcessEvent]:
        """Every event already in the ring buffer now (not those that arrive while it reads)."""
        reader = self._running()
        target = reader.producer()
        out: list[ProcessEvent] = []
        while reader.pos < target:
            out += self._drain()
        return out

    def __iter__(self) -> Iterator[ProcessEvent]:
        """Events as they arrive, until `stop()`; then what the ring buffer held at that moment."""
        while not self._stopped:
            yield from self.poll(0.25)
        yield from self.drain()

    # -- accounting ------------------------------------------------------------------------------

    def _counter(self, key: int) -> list[int]:
        if self._counters_fd < 0 or self._obj is None:
            return []
        raw = map_lookup(self._counters_fd, key.to_bytes(4, "little"), 8 * self._ncpus)
        if raw is None:
            return [0] * self._ncpus
        return [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]

    def kernel_counts(self) -> dict[str, int]:
        """What the kernel side did: records sent, lost (ring full) and truncated, summed over CPUs."""
        return {
            "sent": sum(self._counter(CNT_SENT)),
            "lost": sum(self._counter(CNT_LOST)),
            "truncated": sum(self._counter(CNT_TRUNCATED)),
        }

    def stats(self) -> SensorStats:
        lost = self._counter(CNT_LOST)
        return SensorStats(
            sensor=self.name,
            events=self._events,
            lost=sum(lost),
            lost_per_cpu=lost,
            malformed=self._malformed,
        )


def _ids(values: Iterable[int] | None, what: str, *, minimum: int) -> tuple[int, ...]:
    out = []
    for value in values or ():
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise UsageError(f"{what} {value!r} is not a number") from None
        if not minimum <= number < 1 << 32:
            raise UsageError(f"{what} {number} is out of range")
        out.append(number)
    return tuple(out)


def _comms(values: Iterable[str] | None) -> tuple[bytes, ...]:
    out = []
    for value in values or ():
        raw = str(value).encode()
        if not raw or b"\0" in raw:
            raise UsageError(f"process name {value!r} is empty or holds a NUL byte")
        out.append(raw[:15].ljust(16, b"\0"))  # the kernel keeps 15 bytes of a comm
    return tuple(out)
