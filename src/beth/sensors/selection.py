"""Which events the process sensor traces, and what that tells its kernel side to do.

Event names, ids and sets are Tracee v0.5's (`beth.schema.events()`), plus the sets `beth` (the
events BETH's rows hold) and `all`. `syscall_config` turns a selection into the per-syscall entries
of the kernel's `syscall_cfg` map: emit the syscall, derive a security_* event from a successful
call, skip a fork's child return, capture exec at sys_enter.
"""

from __future__ import annotations

from collections.abc import Iterable

from beth.errors import UsageError
from beth.schema import events as event_table
from beth.sensors.records import (
    EV_FILE_OPEN,
    EV_INODE_UNLINK,
    EV_SB_MOUNT,
    MAX_SYSCALL,
    SC_AT_ENTER,
    SC_CFG,
    SC_EMIT,
    SC_FILE_OPEN,
    SC_SB_MOUNT,
    SC_SKIP_CHILD,
    SC_UNLINK,
    plans,
)

#: Without `events`: Tracee's `default` set (what BETH was recorded with) plus the signal syscalls.
DEFAULT_EVENTS: tuple[str, ...] = ("default", "tkill", "tgkill")

OPENS = frozenset({"open", "openat", "openat2", "creat"})  # successful ones emit security_file_open
UNLINKS = frozenset({"unlink", "unlinkat"})  # security_inode_unlink
FORKS = frozenset({"clone", "clone3", "fork", "vfork"})  # the child's return (0) is not an event
AT_ENTER = frozenset({"execve", "execveat", "exit", "exit_group"})  # captured at sys_enter


def event_sets() -> dict[str, frozenset[int]]:
    """Event-set name -> event ids: Tracee v0.5's sets, plus `beth` (events seen in BETH) and `all`."""
    sets: dict[str, set[int]] = {"beth": set(), "all": set()}
    for ev in event_table().values():
        for name in ev.sets:
            sets.setdefault(name, set()).add(ev.id)
        if ev.in_beth:
            sets["beth"].add(ev.id)
        sets["all"].add(ev.id)
    return {name: frozenset(ids) for name, ids in sets.items()}


def resolve_events(spec: Iterable[str] | str | None) -> tuple[frozenset[int], tuple[str, ...]]:
    """Selected event ids from names, ids and set names; also the set members this sensor cannot
    produce (Tracee derived them from kprobes/LSM hooks), which are left out and reported."""
    table = event_table()
    by_name = {ev.name: ev.id for ev in table.values()}
    supported = plans()
    sets = event_sets()
    items = DEFAULT_EVENTS if spec is None else [spec] if isinstance(spec, str) else list(spec)
    names = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    chosen: set[int] = set()
    dropped: set[str] = set()
    for name in names:
        event_id = by_name.get(name, int(name) if name.isdigit() and int(name) in table else None)
        if event_id is not None:
            if event_id not in supported:
                raise UsageError(
                    f"event {table[event_id].name!r} cannot be traced by the process sensor: Tracee derives "
                    "it from a kprobe or LSM hook, and this sensor attaches to tracepoints only"
                )
            chosen.add(event_id)
        elif name in sets:
            chosen |= sets[name] & supported.keys()
            dropped |= {table[i].name for i in sets[name] - supported.keys()}
        else:
            raise UsageError(
                f"unknown event or event set {name!r}: use Tracee v0.5 event names (openat, execve, "
                f"cap_capable, ...) or sets ({', '.join(sorted(sets))})"
            )
    if not chosen:
        raise UsageError("no events selected: name at least one event or event set")
    return frozenset(chosen), tuple(sorted(dropped))


def syscall_config(selected: frozenset[int]) -> dict[int, bytes]:
    """The kernel's syscall_cfg entries (syscall number -> packed sc_cfg) for a selection."""
    table = plans()
    derived = {
        EV_FILE_OPEN: (OPENS, SC_FILE_OPEN),
        EV_INODE_UNLINK: (UNLINKS, SC_UNLINK),
        EV_SB_MOUNT: ({"mount"}, SC_SB_MOUNT),
    }
    flags: dict[int, int] = {}
    for event_id in selected:
        if event_id < MAX_SYSCALL:
            flags[event_id] = flags.get(event_id, 0) | SC_EMIT
    for event_id, (sources, bit) in derived.items():
        if event_id in selected:
            for plan in table.values():
                if plan.name in sources:
                    flags[plan.event_id] = flags.get(plan.event_id, 0) | bit
    out = {}
    for nr, bits in flags.items():
        name = table[nr].name
        if name in FORKS:
            bits |= SC_SKIP_CHILD
        if name in AT_ENTER:
            bits |= SC_AT_ENTER
        out[nr] = SC_CFG.pack(bits, *table[nr].kinds, 0)
    return out
