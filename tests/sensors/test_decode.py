"""Decoding of the process sensor's kernel records, without root.

Flags, sockaddrs, argv and return values; whole records built byte for byte in the kernel's layout;
argument lists checked against real BETH rows.
"""

from __future__ import annotations

import csv
import gc
import os
import socket
import struct
import threading

import pytest

from beth.data.literal import parse_args
from beth.events import ProcessEvent
from beth.sensors import decode as d
from beth.sensors import records as rec
from beth.sensors.records import RecordDecoder, RecordError, ring_frame

# --- flags --------------------------------------------------------------------------------------------


def _value(names: str, table: dict[str, int]) -> int:
    out = 0
    for name in names.split("|"):
        out |= table[name]
    return out


_O = {
    name: getattr(os, name)
    for name in dir(os)
    if name.startswith("O_") and isinstance(getattr(os, name), int)
}
_O["O_LARGEFILE"] = 0o100000  # x86_64 value; Python's os.O_LARGEFILE is 0 there


@pytest.mark.parametrize(
    "text",
    [
        "O_RDONLY|O_CLOEXEC",
        "O_RDONLY|O_LARGEFILE",
        "O_RDONLY|O_NONBLOCK|O_LARGEFILE|O_DIRECTORY",  # real BETH values: their order is Tracee's
        "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC",
        "O_RDWR|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC",
        "O_WRONLY|O_APPEND",
        "O_RDONLY|O_PATH",
    ],
)
def test_open_flags_round_trip_in_tracee_order(text: str) -> None:
    assert d.open_flags(_value(text, _O)) == text


def test_flag_decoders() -> None:
    assert d.open_flags(0) == "O_RDONLY"
    assert d.access_mode(0) == "F_OK"
    assert d.access_mode(os.R_OK) == "R_OK"
    assert d.access_mode(os.R_OK | os.W_OK | os.X_OK) == "R_OK|W_OK|X_OK"
    assert d.socket_domain(socket.AF_UNIX) == "AF_UNIX"
    assert d.socket_domain(socket.AF_INET6) == "AF_INET6"
    assert d.socket_domain(4242) == "4242"
    assert d.socket_type(socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) == "SOCK_DGRAM|SOCK_CLOEXEC"
    assert d.socket_type(socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC) == (
        "SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC"
    )
    # glibc's fork(): CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD (the exit signal is not a flag)
    assert d.clone_flags(0x01000000 | 0x00200000 | 17) == "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID"
    assert d.clone_flags(0x100 | 0x4000 | 17) == "CLONE_VM|CLONE_VFORK"
    assert d.clone_flags(17) == "0"
    assert d.capability(2) == "CAP_DAC_READ_SEARCH"
    assert d.capability(7) == "CAP_SETUID"
    assert d.capability(40) == "CAP_CHECKPOINT_RESTORE"
    assert d.capability(99) == "99"
    assert d.prctl_option(15) == "PR_SET_NAME"
    assert d.prctl_option(0x59616D61) == str(0x59616D61)
    assert d.mem_prot(0) == "PROT_NONE"
    assert d.mem_prot(5) == "PROT_READ|PROT_EXEC"
    assert d.exec_flags(0x1000) == "AT_EMPTY_PATH"
    assert d.exec_flags(0) == "0"
    assert d.ptrace_request(16) == "PTRACE_ATTACH"
    assert d.bpf_cmd(5) == "BPF_PROG_LOAD"
    assert d.inode_mode(0o100644) == "S_IFREG|S_IRUSR|S_IWUSR|S_IRGRP|S_IROTH"
    assert d.inode_mode(0o755) == "S_IRWXU|S_IRGRP|S_IXGRP|S_IROTH|S_IXOTH"
    assert d.inode_mode(0o140777) == "S_IFSOCK|S_IRWXU|S_IRWXG|S_IRWXO"


# --- integers and pointers ------------------------------------------------------------------------------


def test_register_values_by_c_type() -> None:
    assert d.raw_formatter("int")(0xFFFFFF9C) == -100  # AT_FDCWD as BETH shows dirfd
    assert d.raw_formatter("gid_t")(0xFFFFFFFF) == -1  # setregid(-1, ...) as in BETH
    assert d.raw_formatter("mode_t")((1 << 40) + 2848309080) == 2848309080  # upper register bits dropped
    assert d.raw_formatter("unsigned long")(1 << 63) == 1 << 63
    assert d.raw_formatter("long")((1 << 64) - 5) == -5
    assert d.raw_formatter("size_t")(32768) == 32768
    assert d.raw_formatter("struct stat*")(0x7FFCAA471A40) == "0x7FFCAA471A40"
    assert d.raw_formatter("void*")(0) == "0x0"
    assert d.raw_formatter("int*")(0x7FE431DDD0BF) == "0x7FE431DDD0BF"
    assert d.raw_formatter("some_new_t")(255) == "0xFF"  # unknown types print as pointers, as in Tracee


# --- memory values --------------------------------------------------------------------------------------


def _sockaddr_in(ip: str, port: int) -> bytes:
    return struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + socket.inet_aton(ip) + bytes(8)


def test_sockaddr_matches_beth_text() -> None:
    # verbatim from labelled_2021may-ip-10-100-1-4.csv (getsockname of sshd)
    assert (
        d.sockaddr(_sockaddr_in("10.100.1.4", 22))
        == "{'sa_family': 'AF_INET','sin_port': '22','sin_addr': '10.100.1.4'}"
    )
    six = (
        struct.pack("<H", socket.AF_INET6)
        + struct.pack(">HI", 443, 7)
        + socket.inet_pton(socket.AF_INET6, "::1")
    )
    six += struct.pack("<I", 3)
    assert d.sockaddr(six) == (
        "{'sa_family': 'AF_INET6','sin6_port': '443','sin6_flowinfo': '7','sin6_addr': '::1',"
        "'sin6_scope_id': '3'}"
    )
    unix = struct.pack("<H", socket.AF_UNIX) + b"/run/systemd/journal/socket".ljust(108, b"\0")
    assert d.sockaddr(unix) == "{'sa_family': 'AF_UNIX','sun_path': '/run/systemd/journal/socket'}"
    abstract = struct.pack("<H", socket.AF_UNIX) + b"\0beth-abstract\0"
    assert d.sockaddr(abstract) == "{'sa_family': 'AF_UNIX','sun_path': 'beth-abstract'}"
    assert d.sockaddr(struct.pack("<H", socket.AF_NETLINK)) == "{'sa_family': 'AF_NETLINK'}"
    assert d.sockaddr(b"") == "{}"


def test_argv_and_strings() -> None:
    assert d.argv(b"run-parts\0--report\0/etc/cron.hourly\0") == ["run-parts", "--report", "/etc/cron.hourly"]
    assert d.argv(b"a\0\0b\0\0") == ["a", "", "b", ""]  # empty arguments survive, trailing ones too
    assert d.argv(b"\0") == [""]
    assert d.argv(b"") == []
    assert d.argv(b"cut-sho") == ["cut-sho"]
    assert d.text(b"caf\xc3\xa9") == "café"
    assert d.text(b"bad\xff") == "bad\\xff"  # not UTF-8: kept visible, never dropped
    assert d.int_pair(struct.pack("<2i", 3, 4)) == [3, 4]
    assert d.join_path("/tmp/ssh-x", "agent.1") == "/tmp/ssh-x/agent.1"
    assert d.join_path("/", "etc") == "/etc"
    assert d.join_path("/home", "/abs/path") == "/abs/path"


# --- whole records --------------------------------------------------------------------------------------


def _entries(*items: bytes) -> bytes:
    return b"".join(struct.pack("<H", len(x)) + x for x in items)


def record(event_id: int, *, ret: int = 0, args=(0,) * 6, aux=(0, 0, 0), payload: bytes = b"", stack=(),
           pid: int = 7348, tid: int = 7348, ppid: int = 7347, uid: int = 0, mnt: int = 4026531840,
           comm: bytes = b"sh", ts: int = 1_894_151_534_321, flags: int = 0) -> bytes:  # fmt: skip
    """One record exactly as process.bpf.c writes it."""
    head = rec.HEADER.pack(ts, ret, *args, *aux, event_id, pid, tid, ppid, uid, mnt, comm.ljust(16, b"\0"),
                         len(stack), len(payload), flags)  # fmt: skip
    pad = payload + bytes((-len(payload)) % 8)
    return head + pad + struct.pack(f"<{len(stack)}Q", *stack)


def decode_one(rec: bytes, host: str = "ip-10-100-1-120") -> ProcessEvent:
    return RecordDecoder(host).decode(rec, 0, len(rec))


def test_execve_record() -> None:
    argv = b"run-parts\0--report\0/etc/cron.hourly\0"
    rec = record(59, args=(0x55, 0x66, 0x77, 0, 0, 0), payload=_entries(b"/bin/run-parts", argv),
                 stack=(139778262729467, 94072473734232, 0))  # fmt: skip
    ev = decode_one(rec)
    argv_value = ["run-parts", "--report", "/etc/cron.hourly"]
    assert ev == ProcessEvent(
        timestamp=1894.151534, processId=7348, threadId=7348, parentProcessId=7347, userId=0,
        mountNamespace=4026531840, processName="sh", hostName="ip-10-100-1-120", eventId=59,
        eventName="execve", stackAddresses=[139778262729467, 94072473734232], argsNum=2, returnValue=0,
        args=[{"name": "pathname", "type": "const char*", "value": "/bin/run-parts"},
              {"name": "argv", "type": "const char*const*", "value": argv_value}],
    )  # fmt: skip
    # the CSV text is BETH's: this is the real row's args field
    assert ev.csv_fields()[13] == (
        "[{'name': 'pathname', 'type': 'const char*', 'value': '/bin/run-parts'}, {'name': 'argv', "
        "'type': 'const char*const*', 'value': ['run-parts', '--report', '/etc/cron.hourly']}]"
    )


def test_openat_and_derived_records() -> None:
    flags = os.O_RDONLY | os.O_CLOEXEC
    ev = decode_one(
        record(257, ret=-2, args=(0xFFFFFF9C, 0x1234, flags, 0o644, 0, 0), payload=_entries(b"/etc/x"))
    )
    assert ev.returnValue == -2 and ev.argsNum == 4
    assert ev.args == [
        {"name": "dirfd", "type": "int", "value": -100},
        {"name": "pathname", "type": "const char*", "value": "/etc/x"},
        {"name": "flags", "type": "int", "value": "O_RDONLY|O_CLOEXEC"},
        {"name": "mode", "type": "mode_t", "value": 0o644},
    ]
    sfo = decode_one(record(1005, aux=(211812353, 62841, 0o100000), payload=_entries(b"/etc/ld.so.cache")))
    assert sfo.eventName == "security_file_open" and sfo.args == [
        {"name": "pathname", "type": "const char*", "value": "/etc/ld.so.cache"},
        {"name": "flags", "type": "int", "value": "O_RDONLY|O_LARGEFILE"},
        {"name": "dev", "type": "dev_t", "value": 211812353},
        {"name": "inode", "type": "unsigned long", "value": 62841},
    ]  # the real BETH row's values
    unlink = decode_one(record(1006, payload=_entries(b"agent.1407", b"/tmp/ssh-ITim7SZsmg")))
    assert unlink.args == [
        {"name": "pathname", "type": "const char*", "value": "/tmp/ssh-ITim7SZsmg/agent.1407"}
    ]
    cap = decode_one(record(1003, aux=(2, 0, 0), comm=b"sshd"))
    assert (cap.eventName, cap.argsNum, cap.args) == (
        "cap_capable", 1, [{"name": "cap", "type": "int", "value": "CAP_DAC_READ_SEARCH"}])  # fmt: skip
    ex = decode_one(record(1010))
    assert (ex.eventName, ex.argsNum, ex.args, ex.returnValue) == ("sched_process_exit", 0, [], 0)
    mount = decode_one(
        record(1019, args=(1, 2, 3, 0x8000, 0, 0), payload=_entries(b"tmpfs", b"/mnt", b"tmpfs"))
    )
    assert [a["value"] for a in mount.args] == ["tmpfs", "/mnt", "tmpfs", 0x8000]


def test_sockaddr_argument_falls_back_to_the_pointer() -> None:
    addr = _sockaddr_in("127.0.0.1", 8080)
    ok = decode_one(record(42, args=(3, 0xABC, 16, 0, 0, 0), payload=_entries(addr)))
    assert ok.args[1]["value"] == "{'sa_family': 'AF_INET','sin_port': '8080','sin_addr': '127.0.0.1'}"
    null = decode_one(
        record(43, ret=5, args=(3, 0, 0, 0, 0, 0), payload=_entries(b""))
    )  # accept(fd, NULL, NULL)
    assert [a["value"] for a in null.args] == [3, "0x0", "0x0"]


def test_malformed_records_are_errors_not_events() -> None:
    dec = RecordDecoder("h")
    good = record(3, args=(5, 0, 0, 0, 0, 0))
    bad_id = record(999)
    overrun = record(257, payload=_entries(b"/etc/x"))[:-8]  # payload says more than the record holds
    lying = bytearray(record(257, payload=_entries(b"abc")))
    lying[rec.REC_HDR] = 200  # an entry longer than the payload
    events, errors, consumed = dec.decode_ring(ring_frame(good, bad_id, overrun, bytes(lying)))
    assert [ev.args for ev in events] == [[{"name": "fd", "type": "int", "value": 5}]]
    assert len(errors) == 3 and all(isinstance(e, RecordError) for e in errors)
    assert consumed == len(ring_frame(good, bad_id, overrun, bytes(lying)))  # every record walked
    assert "unknown event id 999" in str(errors[0])
    with pytest.raises(RecordError):
        dec.decode(b"short", 0, 5)


def test_ring_walk_stops_at_a_record_still_being_written() -> None:
    dec = RecordDecoder("h")
    done, busy = record(3, args=(4, 0, 0, 0, 0, 0)), record(3, args=(5, 0, 0, 0, 0, 0))
    framed = ring_frame(done) + ring_frame(busy, busy=True) + ring_frame(done)
    events, errors, consumed = dec.decode_ring(framed)
    assert [ev.args[0]["value"] for ev in events] == [4] and not errors
    assert consumed == len(ring_frame(done))  # the busy record and what follows wait for the next read
    cut = ring_frame(done, done)[:-8]  # a read that ends inside a record
    assert len(dec.decode_ring(cut)[0]) == 1


def test_truncation_and_fault_flags_are_counted() -> None:
    dec = RecordDecoder("h")
    raw = record(59, payload=_entries(b"/bin/x", b"a\0"), flags=rec.REC_TRUNCATED | rec.REC_FAULT)
    dec.decode(raw, 0, len(raw))
    assert (dec.truncated, dec.faulted) == (1, 1)


# --- argument lists against the real BETH rows ----------------------------------------------------------


def test_argument_names_match_real_beth_rows(samples) -> None:
    """Every event in the real BETH sample rows gets the same argument names, in the same order."""
    plans = {p.name: p for p in rec.plans().values()}
    seen = {}
    for path in sorted(samples.glob("labelled_*.csv")):
        if "dns" in path.name:
            continue
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                names = [a["name"] for a in parse_args(row["args"])]
                assert len(names) == int(row["argsNum"])
                seen.setdefault(row["eventName"], set()).add(tuple(names))
    assert len(seen) >= 20
    for event, variants in seen.items():
        assert variants == {tuple(a.name for a in plans[event].args)}, event


def test_plan_kinds_tell_the_kernel_what_to_read() -> None:
    p = rec.plans()
    assert p[257].kinds == (rec.ARG_RAW, rec.ARG_STR, rec.ARG_RAW, rec.ARG_RAW, rec.ARG_RAW, rec.ARG_RAW)
    assert p[42].kinds[:3] == (rec.ARG_RAW, rec.ARG_SOCKADDR, rec.ARG_RAW)
    assert p[59].kinds[:3] == (
        rec.ARG_STR,
        rec.ARG_STRARR,
        rec.ARG_SKIP,
    )  # envp: not captured, as Tracee v0.5
    assert p[22].kinds[0] == rec.ARG_INT2  # pipe(int[2])
    assert all(k != rec.ARG_STRARR for i, plan in p.items() if i not in (59, 322) for k in plan.kinds)


def test_decoding_pauses_the_garbage_collector_and_restores_it() -> None:
    dec = RecordDecoder("h")
    framed = ring_frame(*[record(3, args=(i, 0, 0, 0, 0, 0)) for i in range(200)])
    assert gc.isenabled()
    seen = []
    real = dec._builders[3]
    dec._builders[3] = (real[0], lambda h, e: seen.append(gc.isenabled()) or real[1](h, e))
    threads = [threading.Thread(target=dec.decode_ring, args=(framed,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [False] * 800 and gc.isenabled()
    gc.disable()
    try:
        dec.decode_ring(framed)
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
