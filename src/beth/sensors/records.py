"""The kernel's binary records, and how they become BETH process events.

The record layout is that of `bpf/process.h` (constants below, checked against the C header by
tests/sensors/test_decode_abi.py). `plans()` says, for every event this sensor produces, which
argument comes from which register, aux value or payload entry, and how it is printed
(`beth.sensors.decode`); `RecordDecoder.decode_ring` walks a copy of ring-buffer data and turns its
records into `ProcessEvent`s in one tight loop, with per-event argument builders generated once.
"""

from __future__ import annotations

import gc
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from beth.events import ProcessEvent
from beth.schema import EventDef, events
from beth.sensors.decode import (
    FLAG_ARGS,
    argv,
    capability,
    int_pair,
    join_path,
    open_flags,
    pointer,
    raw_formatter,
    s32,
    s64,
    sockaddr,
    text,
    u32,
    u64,
)

# --- constants shared with bpf/process.h (checked by tests/sensors/test_decode_abi.py) -------------

BETH_ABI = 1
MAX_SYSCALL = 512
N_ARGS = 6
MAX_STACK = 20
REC_HDR = 136
REC_MAX = 16384
PAYLOAD_MAX = REC_MAX - REC_HDR - 8 * MAX_STACK - 8
MAX_STR = 4096
MAX_ARGV = 64
MAX_NOAUDIT = 8
CAP_FRAMES = 8
ARG_RAW, ARG_STR, ARG_SOCKADDR, ARG_STRARR, ARG_INT2, ARG_SKIP = range(6)
REC_TRUNCATED, REC_FAULT = 0x1, 0x2
SC_EMIT, SC_FILE_OPEN, SC_UNLINK, SC_SB_MOUNT, SC_SKIP_CHILD, SC_AT_ENTER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
FILTER_PIDS, FILTER_UIDS, FILTER_COMMS = 0x1, 0x2, 0x4
EVB_CAP_CAPABLE, EVB_BPRM_CHECK, EVB_PROCESS_EXIT = 0x1, 0x2, 0x4
CNT_LOST, CNT_SENT, CNT_TRUNCATED, CNT_KEYS = 0, 1, 2, 3
EV_CAP_CAPABLE, EV_BPRM_CHECK, EV_FILE_OPEN, EV_INODE_UNLINK = 1003, 1004, 1005, 1006
EV_PROCESS_EXIT, EV_SB_MOUNT = 1010, 1019

#: struct rec header: ts, ret, args[6], aux[3], event_id, pid, tid, ppid, uid, mnt_ns, comm, stack_n,
#: payload_len, flags.
HEADER = struct.Struct("<Qq6Q3Q6I16sHHI")
assert HEADER.size == REC_HDR
#: struct config (the object's .rodata): self_tgid, filters, stack, wakeup_bytes, events, noaudit_n.
CONFIG = struct.Struct("<6I")
#: struct text_range: start, end (kernel text addresses).
TEXT_RANGE = struct.Struct("<QQ")
#: BPF ring buffer framing (kernel include/uapi/linux/bpf.h): a u32 length whose top bits say "still
#: being written" / "discarded", a u32 page offset, then the record, padded to 8 bytes.
RING_HDR = 8
RING_BUSY, RING_DISCARD = 1 << 31, 1 << 30
RING_LEN_MASK = ~(RING_BUSY | RING_DISCARD) & 0xFFFFFFFF
RING_HEAD = struct.Struct("<I")
#: struct sc_cfg: flags, kinds[6], pad.
SC_CFG = struct.Struct("<B6BB")


def arg_kind(ctype: str) -> int:
    """How the kernel side captures an argument of C type `ctype` (ARG_*)."""
    if ctype in ("const char*", "char*"):
        return ARG_STR
    if ctype in ("struct sockaddr*", "const struct sockaddr*"):
        return ARG_SOCKADDR
    if ctype in ("const char*const*", "const char**", "char**"):
        return ARG_STRARR
    if ctype == "int[2]":
        return ARG_INT2
    return ARG_RAW


# --- argument plans --------------------------------------------------------------------------------

#: Where an argument's value comes from in a record.
SRC_REG, SRC_AUX, SRC_ENTRY = 0, 1, 2


@dataclass(frozen=True, slots=True)
class ArgPlan:
    """One argument of an event: its name and type, and how to get its value from a record."""

    name: str
    type: str
    source: int  # SRC_*
    index: int  # register, aux slot or payload entry number
    fmt: Callable[..., Any]  # value formatter: int -> value (REG/AUX) or (bytes, register) -> value
    reg: int = 0  # ENTRY: the register holding the pointer (shown when the memory could not be read)


@dataclass(frozen=True, slots=True)
class EventPlan:
    event_id: int
    name: str
    args: tuple[ArgPlan, ...]
    kinds: tuple[int, ...]  # ARG_* per register argument (syscalls), for the kernel's syscall_cfg


#: Arguments Tracee v0.5 left out by default (envp) or only filled with a non-default option.
_DROPPED = {("execve", "envp"), ("execveat", "envp"), ("cap_capable", "syscall")}


def _text_entry(raw: bytes, reg: int) -> str:
    return text(raw)


_TEXT = _text_entry
unpack_stack = struct.unpack_from


def _entry_formatter(kind: int, ctype: str) -> Callable[[bytes, int], Any]:
    if kind == ARG_STR:
        return _TEXT
    if kind == ARG_STRARR:
        return lambda raw, reg: argv(raw)
    if kind == ARG_INT2:
        return lambda raw, reg: int_pair(raw) if raw else pointer(reg)
    return lambda raw, reg: sockaddr(raw) if raw else pointer(reg)


def syscall_plan(ev: EventDef) -> EventPlan:
    """The plan of a syscall event: registers in order, memory arguments as payload entries."""
    args: list[ArgPlan] = []
    kinds: list[int] = []
    entry = 0
    for i, (ctype, name) in enumerate(ev.params[:N_ARGS]):
        kind = ARG_SKIP if (ev.name, name) in _DROPPED else arg_kind(ctype)
        if kind == ARG_STRARR and ev.name not in ("execve", "execveat"):
            kind = ARG_RAW  # only exec captures string arrays (at sys_enter)
        kinds.append(kind)
        if kind == ARG_SKIP:
            continue
        if kind == ARG_RAW:
            fmt = FLAG_ARGS.get((ev.name, name)) or raw_formatter(ctype)
            args.append(ArgPlan(name, ctype, SRC_REG, i, fmt))
        else:
            args.append(ArgPlan(name, ctype, SRC_ENTRY, entry, _entry_formatter(kind, ctype), i))
            entry += 1
    kinds += [ARG_RAW] * (N_ARGS - len(kinds))
    return EventPlan(ev.id, ev.name, tuple(args), tuple(kinds))


def _param_type(ev: EventDef, name: str) -> str:
    return dict((n, t) for t, n in ev.params)[name]


def derived_plan(ev: EventDef) -> EventPlan:
    """Plans of the events derived from tracepoints; argument names and types from the Tracee table."""
    t = lambda name: _param_type(ev, name)  # noqa: E731
    if ev.id == EV_FILE_OPEN:
        args = (ArgPlan("pathname", t("pathname"), SRC_ENTRY, 0, _TEXT),
                ArgPlan("flags", t("flags"), SRC_AUX, 2, open_flags),
                ArgPlan("dev", t("dev"), SRC_AUX, 0, u32),
                ArgPlan("inode", t("inode"), SRC_AUX, 1, u64))  # fmt: skip
    elif ev.id == EV_BPRM_CHECK:
        args = (ArgPlan("pathname", t("pathname"), SRC_ENTRY, 0, _TEXT),
                ArgPlan("dev", t("dev"), SRC_AUX, 0, u32),
                ArgPlan("inode", t("inode"), SRC_AUX, 1, u64))  # fmt: skip
    elif ev.id == EV_INODE_UNLINK:  # entries: the name as given, then its directory
        args = (ArgPlan("pathname", t("pathname"), SRC_ENTRY, 0, _TEXT),)
    elif ev.id == EV_CAP_CAPABLE:  # Tracee v0.5 printed only `cap` unless asked for the syscall
        args = (ArgPlan("cap", t("cap"), SRC_AUX, 0, capability),)
    elif ev.id == EV_SB_MOUNT:  # the mount syscall's record: source, target, type entries, flags in arg 3
        args = (ArgPlan("dev_name", t("dev_name"), SRC_ENTRY, 0, _TEXT),
                ArgPlan("path", t("path"), SRC_ENTRY, 1, _TEXT),
                ArgPlan("type", t("type"), SRC_ENTRY, 2, _TEXT),
                ArgPlan("flags", t("flags"), SRC_REG, 3, u64))  # fmt: skip
    elif ev.id == EV_PROCESS_EXIT:
        args = ()
    else:
        raise KeyError(ev.id)
    return EventPlan(ev.id, ev.name, args, (ARG_RAW,) * N_ARGS)


#: Tracee v0.5 events this sensor derives from tracepoints (the others need kprobes/LSM hooks).
DERIVED_IDS = frozenset({EV_CAP_CAPABLE, EV_BPRM_CHECK, EV_FILE_OPEN, EV_INODE_UNLINK, EV_PROCESS_EXIT,
                         EV_SB_MOUNT})  # fmt: skip


@lru_cache(maxsize=1)
def plans() -> dict[int, EventPlan]:
    """Event id -> plan, for every event this sensor can produce."""
    out: dict[int, EventPlan] = {}
    for ev in events().values():
        if ev.kind == "syscall" and ev.id < MAX_SYSCALL:
            out[ev.id] = syscall_plan(ev)
        elif ev.id in DERIVED_IDS:
            out[ev.id] = derived_plan(ev)
    return out


# --- records ------------------------------------------------------------------------------------------


class _GcPause:
    """Pause the cyclic garbage collector while decoding; nestable and safe across threads (two sensors
    decoding at once never leave it off, nor turn it on while the other still decodes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._was_on = False

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._was_on = gc.isenabled()
                gc.disable()
            self._depth += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._was_on:
                gc.enable()


_gc_paused = _GcPause()


class RecordError(ValueError):
    """A record that cannot be decoded (unknown event, inconsistent lengths)."""


#: Formatters the generated argument builders inline as expressions instead of calling.
_INLINE = {
    s32: "(({v} & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000",
    u32: "{v} & 0xFFFFFFFF",
    s64: "(({v} & 0xFFFFFFFFFFFFFFFF) ^ 0x8000000000000000) - 0x8000000000000000",
    u64: "{v} & 0xFFFFFFFFFFFFFFFF",
    pointer: "'0x%X' % ({v} & 0xFFFFFFFFFFFFFFFF)",
}


def _builder(plan: EventPlan) -> Callable[[tuple[Any, ...], list[bytes]], list[dict]]:
    """A function (record header fields, payload entries) -> args list, generated for one plan so
    that decoding an event runs one straight-line expression instead of a loop over its arguments.
    The header tuple is HEADER's fields: registers at [2:8], aux values at [8:11]."""
    namespace: dict[str, Any] = {"join_path": join_path, "text": text}
    items = []
    for n, a in enumerate(plan.args):
        if a.source == SRC_ENTRY:
            if a.fmt is _TEXT:
                value = f"e[{a.index}].decode('utf-8', 'backslashreplace')"
            else:
                namespace[f"f{n}"] = a.fmt
                value = f"f{n}(e[{a.index}], h[{a.reg + 2}])"
        else:
            v = f"h[{a.index + (2 if a.source == SRC_REG else 8)}]"
            if a.fmt in _INLINE:
                value = _INLINE[a.fmt].format(v=v)
            else:
                namespace[f"f{n}"] = a.fmt
                value = f"f{n}({v})"
        items.append(f"{{'name': {a.name!r}, 'type': {a.type!r}, 'value': {value}}}")
    body = f"[{', '.join(items)}]"
    if plan.event_id == EV_INODE_UNLINK:  # entries: the name as given, then the directory it is relative to
        ctype = plan.args[0].type
        body = f"[{{'name': 'pathname', 'type': {ctype!r}, 'value': join_path(text(e[1]), text(e[0]))}}]"
    exec(f"def build(h, e):\n    return {body}\n", namespace)
    return namespace["build"]


class RecordDecoder:
    """Decodes kernel records into ProcessEvents; holds the caches that make that cheap."""

    def __init__(self, host_name: str) -> None:
        self.host_name = host_name
        self.plans = plans()
        self._builders = {i: (p.name, _builder(p)) for i, p in self.plans.items()}
        self._comms: dict[bytes, str] = {}
        self.truncated = 0  # records whose strings, argv or path were cut at the kernel's limits
        self.faulted = 0  # records with a user-memory argument the kernel could not read

    def comm(self, raw: bytes) -> str:
        name = self._comms.get(raw)
        if name is None:
            name = self._comms[raw] = text(raw.split(b"\0", 1)[0])
        return name

    def decode(self, buf: bytes, off: int, length: int) -> ProcessEvent:
        """The event in `buf[off:off+length]` (one record as the kernel wrote it)."""
        events, errors, _ = self.decode_ring(ring_frame(buf[off : off + length]))
        if errors:
            raise errors[0]
        return events[0]

    def decode_ring(self, buf: bytes) -> tuple[list[ProcessEvent], list[RecordError], int]:
        """Decode the committed records at the start of `buf`, a copy of ring-buffer data (each record
        behind an 8-byte ring header); returns the events, an error per record skipped, and how many
        bytes were consumed (up to the first record the kernel is still writing).

        One loop walks the ring headers and decodes, and the cyclic garbage collector is paused while
        the batch's objects are built: none of them can form a cycle, and without the pause its
        collections cost more than the decoding itself.
        """
        out: list[ProcessEvent] = []
        errors: list[RecordError] = []
        append = out.append
        ring_head = RING_HEAD.unpack_from
        unpack = HEADER.unpack_from
        builders = self._builders
        comms = self._comms
        host = self.host_name
        event_cls = ProcessEvent
        size = len(buf)
        nxt = 0
        with _gc_paused:
            while nxt + RING_HDR <= size:
                head = ring_head(buf, nxt)[0]
                if head & RING_BUSY:
                    break  # still being written: read it next time
                length = head & RING_LEN_MASK
                off = nxt + RING_HDR
                total = (length + RING_HDR + 7) & ~7
                if nxt + total > size:
                    break  # cut off by the read size
                nxt += total
                if head & RING_DISCARD:
                    continue
                if length < REC_HDR:
                    errors.append(RecordError(f"record of {length} bytes is shorter than its header"))
                    continue
                h = unpack(buf, off)
                (ts, ret, _, _, _, _, _, _, _, _, _, event_id, pid, tid, ppid, uid, mnt_ns, comm, stack_n,
                 payload_len, flags) = h  # fmt: skip
                builder = builders.get(event_id)
                pad = (payload_len + 7) & ~7
                if builder is None or REC_HDR + pad + 8 * stack_n > length or stack_n > MAX_STACK:
                    errors.append(RecordError(
                        f"unknown event id {event_id}" if builder is None
                        else f"record of {length} bytes cannot hold its payload and stack"
                    ))  # fmt: skip
                    continue
                entries: list[bytes] = []
                if payload_len:
                    pos = off + REC_HDR
                    end = pos + payload_len
                    while pos < end:
                        n = buf[pos] | (buf[pos + 1] << 8)
                        entries.append(buf[pos + 2 : pos + 2 + n])
                        pos += 2 + n
                    if pos != end:
                        errors.append(RecordError("payload entries overrun the payload"))
                        continue
                name, build = builder
                try:
                    args = build(h, entries)
                except IndexError:
                    errors.append(RecordError(f"{name}: an argument is missing from the payload"))
                    continue
                if flags:
                    self.truncated += flags & REC_TRUNCATED
                    self.faulted += (flags & REC_FAULT) >> 1
                stack = []
                if stack_n:
                    stack = list(unpack_stack(f"<{stack_n}Q", buf, off + REC_HDR + pad))
                    while stack and not stack[-1]:  # the unwinder ends a short chain with a 0 frame
                        stack.pop()
                processName = comms.get(comm)
                if processName is None:
                    processName = self.comm(comm)
                append(event_cls(
                    (ts // 1000) / 1e6, pid, tid, ppid, uid, mnt_ns, processName, host, event_id, name, stack,
                    len(args), ret, args,
                ))  # fmt: skip
        return out, errors, nxt


def ring_frame(*records: bytes, busy: bool = False) -> bytes:
    """Records framed as in a BPF ring buffer (8-byte header, 8-byte alignment); for tests and `decode`."""
    out = bytearray()
    for rec in records:
        out += RING_HEAD.pack(len(rec) | (RING_BUSY if busy else 0)) + bytes(4) + rec
        out += bytes(-len(out) % 8)
    return bytes(out)
