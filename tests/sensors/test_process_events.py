"""Which events the process sensor traces and what it tells the kernel, without root."""

from __future__ import annotations

from pathlib import Path

import pytest

from beth.errors import UsageError
from beth.schema import event_ids
from beth.sensors import records as d
from beth.sensors.kernel import has_tracepoint, noaudit_ranges
from beth.sensors.process import ProcessSensor
from beth.sensors.selection import event_sets, resolve_events, syscall_config

#: eventName values of the BETH training split (beth-data-facts.md) and the extra ones issue 5 asks for.
BETH_TRAINING = [
    "close",
    "openat",
    "security_file_open",
    "fstat",
    "stat",
    "access",
    "cap_capable",
    "lstat",
    "getdents64",
    "socket",
    "connect",
    "kill",
    "dup2",
    "getsockname",
    "unlink",
    "sched_process_exit",
    "prctl",
    "clone",
    "bind",
    "accept4",
    "security_bprm_check",
    "execve",
    "unlinkat",
    "dup",
    "security_inode_unlink",
    "accept",
    "setuid",
    "setgid",
    "fchmod",
    "dup3",
    "symlink",
    "umount",
]
REQUIRED = [
    "execve",
    "execveat",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "kill",
    "tkill",
    "tgkill",
    "setreuid",
    "setregid",
]


def test_every_beth_event_and_the_required_ones_are_traced_by_default() -> None:
    assert len(BETH_TRAINING) == 32
    selected, dropped = resolve_events(None)
    ids = event_ids()
    for name in (*BETH_TRAINING, *REQUIRED):
        assert ids[name] in selected, name
    assert "security_sb_mount" in {d.plans()[i].name for i in selected}
    assert dropped == ()  # Tracee's default set has nothing this sensor cannot produce


def test_names_ids_and_sets() -> None:
    assert resolve_events(["openat", "59"])[0] == {257, 59}
    assert resolve_events("proc,openat")[0] >= {56, 57, 58, 59, 1010, 257}
    net, dropped = resolve_events(["net"])
    assert {d.plans()[i].name for i in net} >= {"socket", "connect", "bind", "accept4", "getsockname"}
    assert all(i < 512 for i in net) and not dropped
    proc, dropped = resolve_events(["proc"])
    assert "do_exit" in dropped and 1002 not in proc  # Tracee's kprobe, left out and reported
    assert set(event_sets()) >= {"default", "proc", "fs", "net", "beth", "all"}
    assert resolve_events(["beth"])[0] == {i for i in d.plans() if d.plans()[i].name in BETH_TRAINING} | {
        event_ids()[n] for n in ("listen", "setreuid", "setregid")
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["nope"], "unknown event or event set 'nope'"),
        (["vfs_write"], "kprobe"),
        (["commit_creds"], "kprobe"),
        ([","], "no events selected"),
    ],
)
def test_bad_selections_say_what_is_wrong(spec: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve_events(spec)


def _flags(config: dict[int, bytes], nr: int) -> tuple[int, tuple[int, ...]]:
    flags, *kinds, _ = d.SC_CFG.unpack(config[nr])
    return flags, tuple(kinds)


def test_syscall_config_for_the_kernel() -> None:
    both = syscall_config(frozenset({257, 1005}))
    assert _flags(both, 257) == (d.SC_EMIT | d.SC_FILE_OPEN, d.plans()[257].kinds)
    assert _flags(both, 2)[0] == d.SC_FILE_OPEN  # open(2) only feeds security_file_open
    assert set(both) == {2, 85, 257, 437}  # open, creat, openat, openat2
    only_derived = syscall_config(frozenset({1006}))
    assert {nr: _flags(only_derived, nr)[0] for nr in only_derived} == {87: d.SC_UNLINK, 263: d.SC_UNLINK}
    forks = syscall_config(frozenset({56, 57, 58, 435}))
    assert all(_flags(forks, nr)[0] == d.SC_EMIT | d.SC_SKIP_CHILD for nr in forks)
    execs = syscall_config(frozenset({59, 322, 231}))
    assert all(_flags(execs, nr)[0] == d.SC_EMIT | d.SC_AT_ENTER for nr in execs)
    assert _flags(syscall_config(frozenset({165, 1019})), 165)[0] == d.SC_EMIT | d.SC_SB_MOUNT


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(UsageError, match="power of two"):
        ProcessSensor(events=["openat"], ring_bytes=3 << 20)
    with pytest.raises(UsageError, match="pid 0 is out of range"):
        ProcessSensor(events=["openat"], pids=[0])
    with pytest.raises(UsageError, match="not a number"):
        ProcessSensor(events=["openat"], uids=["root"])  # type: ignore[list-item]
    with pytest.raises(UsageError, match="empty"):
        ProcessSensor(events=["openat"], comms=[""])
    sensor = ProcessSensor(events=["openat"], comms=["a-very-long-process-name"])
    assert sensor.comms == (b"a-very-long-pro\0",)  # what the kernel keeps of a comm


def test_noaudit_ranges_from_kallsyms(tmp_path: Path) -> None:
    syms = tmp_path / "kallsyms"
    syms.write_text(
        "ffffffff81207b3e t ns_capable_noaudit.cold\n"
        "ffffffff81207b4c t some_other_cold\n"
        "ffffffff8136ff00 T has_capability_noaudit\n"
        "ffffffff8136ff00 T alias_at_same_address\n"
        "ffffffff8136ff50 T next_function\n"
        "ffffffff81ac6440 T security_vm_enough_memory_mm\n"
        "ffffffff81ac64c0 T after\n"
        "ffffffffc0001000 t ns_capable_noaudit\t[some_module]\n"
    )
    assert noaudit_ranges(str(syms)) == [
        (0xFFFFFFFF81207B3E, 0xFFFFFFFF81207B4C),
        (0xFFFFFFFF8136FF00, 0xFFFFFFFF8136FF50),
        (0xFFFFFFFF81AC6440, 0xFFFFFFFF81AC64C0),
    ]
    hidden = tmp_path / "hidden"
    hidden.write_text("0000000000000000 T has_capability_noaudit\n0000000000000000 T next\n")
    assert noaudit_ranges(str(hidden)) == []
    assert noaudit_ranges(str(tmp_path / "missing")) == []


def test_has_tracepoint_reads_kernel_btf_names(tmp_path: Path) -> None:
    btf = tmp_path / "vmlinux"
    btf.write_bytes(b"\x9f\xeb\x01\0...\0btf_trace_sys_exit\0btf_trace_cap_capable_x\0")
    assert has_tracepoint("sys_exit", str(btf))
    assert not has_tracepoint("cap_capable", str(btf))  # only a longer name
    assert not has_tracepoint("sys_exit", str(tmp_path / "none"))
    if Path("/sys/kernel/btf/vmlinux").exists():
        assert has_tracepoint("sys_exit") and has_tracepoint("sched_process_exec")
