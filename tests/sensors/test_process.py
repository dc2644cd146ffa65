"""The eBPF process sensor for real (root): a workload with known ground truth, filters, loss accounting.

Every check compares kernel events with what the workload (tests/sensors/workloads/ground_truth.py)
reports it did: pids, parent pids, uid, argv, paths, addresses, return values and errors, with exact
counts. Nothing is mocked: the programs are loaded into this kernel and read from its ring buffer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from beth.errors import SensorError, UsageError
from beth.events import ProcessEvent
from beth.schema import PROCESS_COLUMNS
from beth.schema import events as event_table
from beth.sensors.base import Sensor
from beth.sensors.process import ProcessSensor

pytestmark = pytest.mark.root
WORKLOADS = Path(__file__).parent / "workloads"
UID, GID = 4242, 4242
N_CHILDREN, N_OPENS, N_MISSING = 5, 7, 3


def possible_cpus() -> int:
    """CPUs the kernel keeps per-CPU counters for (/sys/devices/system/cpu/possible, e.g. "0-1")."""
    total = 0
    for part in Path("/sys/devices/system/cpu/possible").read_text().strip().split(","):
        lo, _, hi = part.partition("-")
        total += int(hi or lo) - int(lo) + 1
    return total


def _args(ev: ProcessEvent) -> dict:
    return {a["name"]: a["value"] for a in ev.args}


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory the workload's uid can use (pytest's own tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="beth-sensor-test-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _start_workload(tmp_path: Path, *, uid: int | None = UID) -> subprocess.Popen[str]:
    counts = ["--children", str(N_CHILDREN), "--opens", str(N_OPENS), "--missing-opens", str(N_MISSING)]
    cmd = [sys.executable, str(WORKLOADS / "ground_truth.py"), "--dir", str(tmp_path), *counts]
    if uid is not None:
        cmd += ["--uid", str(uid)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _finish_workload(proc: subprocess.Popen[str]) -> dict:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    truth = json.loads(proc.stdout.readline())
    assert proc.wait(timeout=30) == 0
    return truth


def _collect(sensor: ProcessSensor, until: float = 1.0) -> list[ProcessEvent]:
    """Everything the sensor delivers until it has been quiet for `until` seconds."""
    events: list[ProcessEvent] = []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < until:
        batch = sensor.poll(0.1)
        if batch:
            events += batch
            quiet_since = time.monotonic()
    return events


@pytest.fixture(scope="module")
def ground_truth() -> Iterator[tuple[dict, list[ProcessEvent], dict]]:
    """Run the workload once under the sensor (default events, pid filter, stacks): truth, events, stats."""
    tmp = Path(tempfile.mkdtemp(prefix="beth-sensor-test-"))
    tmp.chmod(0o777)
    proc = _start_workload(tmp)
    boot_before = time.clock_gettime(time.CLOCK_BOOTTIME)
    with ProcessSensor(pids=[proc.pid], stack=True, host_name="beth-test-host") as sensor:
        truth = _finish_workload(proc)
        events = _collect(sensor)
        stats = sensor.stats().to_record()
        stats["kernel"] = sensor.kernel_counts()
    truth["boot_before"], truth["boot_after"] = boot_before, time.clock_gettime(time.CLOCK_BOOTTIME)
    shutil.rmtree(tmp, ignore_errors=True)
    yield truth, events, stats


def test_sensor_implements_the_shared_interface() -> None:
    assert isinstance(ProcessSensor(events=["openat"]), Sensor)


def test_nothing_lost_and_every_record_decoded(ground_truth) -> None:
    _, events, stats = ground_truth
    assert stats["lost"] == 0 and stats["malformed"] == 0
    assert stats["lost_per_cpu"] == [0] * possible_cpus()
    assert stats["events"] == len(events) == stats["kernel"]["sent"]


def test_common_fields_of_every_event(ground_truth) -> None:
    truth, events, _ = ground_truth
    family = {truth["pid"], truth["failed_exec"], truth["sleeper"]} | {c["pid"] for c in truth["children"]}
    assert events
    for ev in events:
        assert ev.processId in family and ev.threadId == ev.processId
        assert ev.userId == UID
        assert ev.mountNamespace == truth["mnt_ns"]
        assert ev.hostName == "beth-test-host"
        assert ev.argsNum == len(ev.args)
        assert truth["boot_before"] <= ev.timestamp <= truth["boot_after"]
        assert ev.timestamp == round(ev.timestamp, 6)
        assert ev.parentProcessId == (truth["ppid"] if ev.processId == truth["pid"] else truth["pid"])
        assert ev.sus == ev.evil == 0
        assert len(ev.stackAddresses) <= 20
        assert all(0 <= a < 1 << 64 for a in ev.stackAddresses)
        # the innermost frame is a user-space return address; outer ones are whatever the frame-pointer
        # walk finds (code without frame pointers yields junk, in BETH as here)
        assert not ev.stackAddresses or 0 < ev.stackAddresses[0] < 1 << 47
    assert any(ev.stackAddresses for ev in events)
    stamps = [ev.timestamp for ev in events if ev.processId == truth["pid"]]
    assert stamps == sorted(stamps)  # one task's events arrive in order


def test_children_forked_exec_and_exit(ground_truth) -> None:
    truth, events, _ = ground_truth
    children = {c["pid"]: c["argv"] for c in truth["children"]}
    forks = [ev for ev in events if ev.eventName == "clone" and ev.processId == truth["pid"]]
    assert sorted(ev.returnValue for ev in forks) == sorted(
        [*children, truth["failed_exec"], truth["sleeper"]]
    )
    assert all(_args(ev)["flags"] == "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID" for ev in forks)

    execs = [ev for ev in events if ev.eventName == "execve"]
    ok = [ev for ev in execs if ev.returnValue == 0]
    assert {ev.processId: _args(ev)["argv"] for ev in ok} == children
    assert len(ok) == N_CHILDREN
    for ev in ok:
        assert _args(ev)["pathname"] == "/bin/true"
        assert [a["name"] for a in ev.args] == ["pathname", "argv"]
        assert ev.processName.startswith("python")  # the name before the exec, as in BETH
    failed = [ev for ev in execs if ev.returnValue != 0]
    assert len(failed) == 1 and failed[0].returnValue == -2  # ENOENT
    assert failed[0].processId == truth["failed_exec"]
    assert _args(failed[0]) == {"pathname": "/nonexistent/beth-missing-program", "argv": [
        "/nonexistent/beth-missing-program", "beth-gt-missing"]}  # fmt: skip

    checks = [ev for ev in events if ev.eventName == "security_bprm_check"]
    assert sorted(ev.processId for ev in checks) == sorted(children)
    assert all(_args(ev)["pathname"] == truth["true_real"] and _args(ev)["inode"] > 0 for ev in checks)
    assert all(ev.eventId == 1004 for ev in checks)

    exits = Counter(ev.processId for ev in events if ev.eventName == "sched_process_exit")
    assert exits == Counter([*children, truth["failed_exec"], truth["sleeper"], truth["pid"]])
    after = [ev for ev in events if ev.processId in children and ev.eventName == "sched_process_exit"]
    assert all(ev.processName == "true" and ev.argsNum == 0 for ev in after)


def test_opens_closes_and_missing_files(ground_truth) -> None:
    truth, events, _ = ground_truth
    opened = [ev for ev in events if ev.eventName == "openat" and _args(ev)["pathname"] == truth["named"]]
    assert len(opened) == N_OPENS
    assert [ev.returnValue for ev in opened] == truth["fds"]
    assert all(_args(ev)["flags"] == "O_RDONLY|O_CLOEXEC" and _args(ev)["dirfd"] == -100 for ev in opened)
    assert [a["name"] for a in opened[0].args] == ["dirfd", "pathname", "flags", "mode"]

    file_opens = [ev for ev in events if ev.eventName == "security_file_open"
                  and _args(ev)["pathname"] == truth["named_real"]]  # fmt: skip
    assert len(file_opens) == N_OPENS
    inode = os.stat(truth["named"]).st_ino if os.path.exists(truth["named"]) else None
    for ev in file_opens:
        a = _args(ev)
        assert a["flags"] == "O_RDONLY|O_LARGEFILE" and ev.returnValue == 0
        assert inode is None or a["inode"] == inode
    # the derived event comes first, as in BETH (the hook runs inside the syscall)
    assert all(f.timestamp <= o.timestamp for f, o in zip(file_opens, opened, strict=True))

    closes = [ev for ev in events if ev.eventName == "close" and ev.processId == truth["pid"]]
    assert Counter(_args(ev)["fd"] for ev in closes)[truth["fds"][0]] >= N_OPENS

    missing = [ev for ev in events if ev.eventName == "openat" and _args(ev)["pathname"] == truth["missing"]]
    assert [ev.returnValue for ev in missing] == [-2] * N_MISSING
    assert not [
        ev for ev in events if ev.eventName == "security_file_open" and "missing" in _args(ev)["pathname"]
    ]


def test_signal_network_unlink_and_ids(ground_truth) -> None:
    truth, events, _ = ground_truth
    kills = [ev for ev in events if ev.eventName == "kill"]
    assert [(_args(ev), ev.returnValue) for ev in kills] == [({"pid": truth["sleeper"], "sig": 15}, 0)]

    loopback = f"{{'sa_family': 'AF_INET','sin_port': '{truth['port']}','sin_addr': '127.0.0.1'}}"
    connects = [ev for ev in events if ev.eventName == "connect"]
    assert [(_args(ev)["addr"], _args(ev)["addrlen"], ev.returnValue) for ev in connects] == [
        (loopback, 16, 0)
    ]
    binds = [ev for ev in events if ev.eventName == "bind"]
    assert [_args(ev)["addr"] for ev in binds] == [
        "{'sa_family': 'AF_INET','sin_port': '0','sin_addr': '127.0.0.1'}"
    ]
    sockets = [_args(ev) for ev in events if ev.eventName == "socket"]
    assert sockets == [{"domain": "AF_INET", "type": "SOCK_STREAM|SOCK_CLOEXEC", "protocol": 0}] * 2
    (accepted,) = [ev for ev in events if ev.eventName == "accept4"]
    assert accepted.returnValue > 2 and "'sin_addr': '127.0.0.1'" in _args(accepted)["addr"]
    assert [ev.returnValue for ev in events if ev.eventName == "listen"] == [0]

    names = ("unlink", "unlinkat", "security_inode_unlink")
    unlinks = [
        (ev.eventName, _args(ev)["pathname"], ev.returnValue) for ev in events if ev.eventName in names
    ]
    assert unlinks == [("security_inode_unlink", truth["victim"], 0), ("unlink", "victim", 0)]

    ids = [
        (ev.eventName, _args(ev), ev.returnValue) for ev in events if ev.eventName in ("setreuid", "setregid")
    ]
    assert ids == [
        ("setreuid", {"ruid": -1, "euid": UID}, 0),
        ("setregid", {"rgid": -1, "egid": GID}, 0),
        ("setreuid", {"ruid": 0, "euid": 0}, -1),  # EPERM
    ]
    assert truth["setreuid_refused"]
    # the refused setreuid is the workload's one audited capability check (checks made without
    # auditing, such as the CAP_SYS_ADMIN one of every writable mmap, are left out as Tracee did)
    caps = [(ev.processId, _args(ev), ev.returnValue) for ev in events if ev.eventName == "cap_capable"]
    assert caps == [(truth["pid"], {"cap": "CAP_SETUID"}, -1)]


def test_rows_are_beth_rows(ground_truth) -> None:
    _, events, _ = ground_truth
    for ev in events[:200]:
        row = ev.csv_fields()
        assert len(row) == len(PROCESS_COLUMNS)
        assert ProcessEvent.from_record(json.loads(json.dumps(ev.to_record()))) == ev


def test_kernel_filters_uid_comm_and_self(open_dir: Path) -> None:
    me = os.getpid()
    with ProcessSensor(events=["openat", "getpid"], uids=[UID], exclude_self=False) as by_uid:
        os.close(os.open("/etc/hostname", os.O_RDONLY))  # uid 0: filtered out
        proc = _start_workload(open_dir)
        _finish_workload(proc)
        uid_events = _collect(by_uid, 0.5)
    assert (
        uid_events
        and {ev.userId for ev in uid_events} == {UID}
        and me not in {ev.processId for ev in uid_events}
    )

    with ProcessSensor(events=["getppid"], comms=["beth-comm-test"], exclude_self=False) as by_comm:
        code = "import ctypes, os; ctypes.CDLL(None).prctl(15, b'beth-comm-test')\n"
        code += "for _ in range(9): os.getppid()"
        subprocess.run([sys.executable, "-c", code], check=True)
        os.getppid()  # this process's name is not beth-comm-test
        comm_events = _collect(by_comm, 0.5)
    assert [ev.processName for ev in comm_events] == ["beth-comm-test"] * 9

    with ProcessSensor(events=["getppid"], pids=[me]) as excluded:  # exclude_self wins over the pid filter
        os.getppid()
        assert _collect(excluded, 0.3) == []
    with ProcessSensor(events=["getppid"], pids=[me], exclude_self=False) as included:
        for _ in range(3):
            os.getppid()
        got = _collect(included, 0.3)
    assert [(ev.processId, ev.eventName, ev.returnValue) for ev in got] == [(me, "getppid", os.getppid())] * 3


def test_event_selection_by_set(open_dir: Path) -> None:
    proc = _start_workload(open_dir)
    with ProcessSensor(events=["net"], pids=[proc.pid]) as sensor:
        _finish_workload(proc)
        events = _collect(sensor, 0.5)
    counts = Counter(ev.eventName for ev in events)
    net = {ev.name for ev in event_table().values() if "net" in ev.sets}
    assert set(counts) <= net and counts["getsockname"] >= 1  # Python asks once more inside accept()
    assert {k: counts[k] for k in ("socket", "bind", "listen", "connect", "accept4")} == {
        "socket": 2, "bind": 1, "listen": 1, "connect": 1, "accept4": 1}  # fmt: skip


def test_lost_events_are_counted_per_cpu_never_silent() -> None:
    """A 64 KiB ring that nobody reads during a burst of 20,000 syscalls: what does not fit is lost,
    and sent + lost accounts for every single syscall."""
    n = 20_000
    code = f"import os, sys; sys.stdin.readline(); [os.getppid() for _ in range({n})]"
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
    with ProcessSensor(
        events=["getppid"], pids=[proc.pid], ring_bytes=1 << 16, wakeup_bytes=1 << 14
    ) as sensor:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        counts = sensor.kernel_counts()
        events = sensor.drain()
        stats = sensor.stats()
    assert counts["sent"] + counts["lost"] == n
    assert counts["lost"] > 0 and stats.lost == counts["lost"] == sum(stats.lost_per_cpu)
    assert len(stats.lost_per_cpu) == possible_cpus()
    assert len(events) == counts["sent"] == stats.events


def test_stop_ends_iteration_and_poll_times_out() -> None:
    with ProcessSensor(events=["getppid"], pids=[os.getpid()], exclude_self=False) as sensor:
        t = time.monotonic()
        assert sensor.poll(0.2) == []
        assert 0.15 < time.monotonic() - t < 2
        os.getppid()
        sensor.stop()
        assert [ev.eventName for ev in sensor] == ["getppid"]  # what was buffered, then the end


def test_errors_say_what_is_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="kprobe"):
        ProcessSensor(events=["vfs_write"])
    monkeypatch.setenv("BETH_BPF_OBJECT", "/nonexistent/process.bpf.o")
    with pytest.raises(SensorError, match="make bpf"), ProcessSensor(events=["openat"]):
        pass
    sensor = ProcessSensor(events=["openat"])
    with pytest.raises(SensorError, match="not running"):
        sensor.poll(0)


def test_ids_as_seen_inside_a_pid_namespace() -> None:
    """A process in its own pid (and mount) namespace: it is pid 1 there with parent 0 (outside), as
    getpid()/getppid() say inside; its child is pid 2 with parent 1. mountNamespace is its own."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is part of every Debian system"
    code = (
        "import ctypes, json, os, sys\n"
        "ctypes.CDLL(None).prctl(15, b'beth-pidns')\n"
        "print(json.dumps([os.getpid(), os.stat('/proc/self/ns/mnt').st_ino]), flush=True)\n"
        "sys.stdin.readline(); os.getppid()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n    os.getppid(); os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    cmd = [unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-c", code]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    inner_pid, inner_mnt = json.loads(proc.stdout.readline())
    assert inner_pid == 1
    with ProcessSensor(events=["getppid"], comms=["beth-pidns"]) as sensor:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0
        events = _collect(sensor, 0.5)
    got = [
        (ev.processId, ev.threadId, ev.parentProcessId, ev.returnValue, ev.mountNamespace) for ev in events
    ]
    assert got == [(1, 1, 0, 0, inner_mnt), (2, 2, 1, 1, inner_mnt)]
    assert inner_mnt != os.stat("/proc/self/ns/mnt").st_ino
