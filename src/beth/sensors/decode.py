"""Turn the kernel's binary records into BETH process events, Tracee v0.5-style.

Pure code (no I/O): flag and address decoders that print arguments the way Tracee v0.5.2 did
(`O_RDONLY|O_CLOEXEC`, `AF_INET`, `'0x7FFF...'` pointers, sockaddrs as
`{'sa_family': 'AF_INET','sin_port': '22','sin_addr': '10.100.1.4'}`), the per-event argument
plans built from `beth.schema.events()`, and `RecordDecoder`, which decodes the records of one
ring-buffer read in a tight loop. The record layout is that of `bpf/process.h`.
"""

from __future__ import annotations

import gc
import ipaddress
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from beth.events import ProcessEvent
from beth.schema import EventDef, events

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

# --- value formatting -------------------------------------------------------------------------------


def s32(v: int) -> int:
    return ((v & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


def u32(v: int) -> int:
    return v & 0xFFFFFFFF


def s64(v: int) -> int:
    return ((v & 0xFFFFFFFFFFFFFFFF) ^ 0x8000000000000000) - 0x8000000000000000


def u64(v: int) -> int:
    return v & 0xFFFFFFFFFFFFFFFF


def pointer(v: int) -> str:
    """A pointer as Tracee prints it: '0x' + upper-case hex ('0x0' for NULL)."""
    return f"0x{v & 0xFFFFFFFFFFFFFFFF:X}"


#: C type -> how Tracee v0.5 read a register of that type (its getParamType): signed/unsigned ints
#: of a width, or a pointer printed in hex (the default for every other type).
_INT_TYPES: dict[str, Callable[[int], int]] = {
    **dict.fromkeys(
        ("int", "pid_t", "uid_t", "gid_t", "mqd_t", "clockid_t", "const clockid_t", "key_t", "key_serial_t",
         "timer_t"),
        s32,
    ),
    **dict.fromkeys(("unsigned int", "u32", "mode_t", "dev_t"), u32),
    **dict.fromkeys(("long", "off_t"), s64),
    **dict.fromkeys(("unsigned long", "u64", "size_t"), u64),
}  # fmt: skip


def raw_formatter(ctype: str) -> Callable[[int], Any]:
    """How a register argument of C type `ctype` becomes a BETH value."""
    return _INT_TYPES.get(ctype, pointer)


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


# --- flags, printed like Tracee v0.5.2's helpers ----------------------------------------------------


def _names(words: str) -> list[str]:
    return words.split()


def _bits(value: int, table: Iterable[tuple[int, str]]) -> list[str]:
    return [name for bit, name in table if value & bit == bit]


_OPEN_BITS = (
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"), (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"), (0o4010000, "O_SYNC"), (0o20000, "O_ASYNC"), (0o100000, "O_LARGEFILE"),
    (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"), (0o2000000, "O_CLOEXEC"), (0o40000, "O_DIRECT"),
    (0o1000000, "O_NOATIME"), (0o10000000, "O_PATH"), (0o20000000, "O_TMPFILE"),
)  # fmt: skip


@lru_cache(maxsize=1024)
def open_flags(flags: int) -> str:
    """`open(2)` flags: the access mode, then the other flags in Tracee's order."""
    flags &= 0xFFFFFFFF
    access = "O_WRONLY" if flags & 1 else "O_RDWR" if flags & 2 else "O_RDONLY"
    return "|".join([access, *_bits(flags, _OPEN_BITS)])


@lru_cache(maxsize=64)
def access_mode(mode: int) -> str:
    """`access(2)` mode: F_OK, or R_OK|W_OK|X_OK."""
    mode &= 0xFFFFFFFF
    if mode == 0:
        return "F_OK"
    return "|".join(_bits(mode, ((4, "R_OK"), (2, "W_OK"), (1, "X_OK"))))


_AF = _names(
    "AF_UNSPEC AF_UNIX AF_INET AF_AX25 AF_IPX AF_APPLETALK AF_NETROM AF_BRIDGE AF_ATMPVC AF_X25 AF_INET6 "
    "AF_ROSE AF_DECnet AF_NETBEUI AF_SECURITY AF_KEY AF_NETLINK AF_PACKET AF_ASH AF_ECONET AF_ATMSVC AF_RDS "
    "AF_SNA AF_IRDA AF_PPPOX AF_WANPIPE AF_LLC AF_IB AF_MPLS AF_CAN AF_TIPC AF_BLUETOOTH AF_IUCV AF_RXRPC "
    "AF_ISDN AF_PHONET AF_IEEE802154 AF_CAIF AF_ALG AF_NFC AF_VSOCK AF_KCM AF_QIPCRTR AF_SMC AF_XDP"
)


def socket_domain(domain: int) -> str:
    """`socket(2)` domain: AF_* name, or the number as text."""
    domain &= 0xFFFFFFFF
    return _AF[domain] if domain < len(_AF) else str(domain)


_SOCK_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM", 5: "SOCK_SEQPACKET",
               6: "SOCK_DCCP", 10: "SOCK_PACKET"}  # fmt: skip


@lru_cache(maxsize=64)
def socket_type(kind: int) -> str:
    """`socket(2)` type: SOCK_* name plus SOCK_NONBLOCK/SOCK_CLOEXEC."""
    kind &= 0xFFFFFFFF
    parts = [_SOCK_TYPES.get(kind & 0xF, str(kind))]
    return "|".join(parts + _bits(kind, ((0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC"))))


_CLONE_BITS = tuple(
    (1 << (8 + i), name)
    for i, name in enumerate(
        _names(
            "CLONE_VM CLONE_FS CLONE_FILES CLONE_SIGHAND CLONE_PIDFD CLONE_PTRACE CLONE_VFORK CLONE_PARENT "
            "CLONE_THREAD CLONE_NEWNS CLONE_SYSVSEM CLONE_SETTLS CLONE_PARENT_SETTID CLONE_CHILD_CLEARTID "
            "CLONE_DETACHED CLONE_UNTRACED CLONE_CHILD_SETTID CLONE_NEWCGROUP CLONE_NEWUTS CLONE_NEWIPC "
            "CLONE_NEWUSER CLONE_NEWPID CLONE_NEWNET CLONE_IO"
        )
    )
)


@lru_cache(maxsize=256)
def clone_flags(flags: int) -> str:
    """`clone(2)` flags without the exit signal in the low byte; '0' when none is set."""
    return "|".join(_bits(flags, _CLONE_BITS)) or "0"


@lru_cache(maxsize=64)
def exec_flags(flags: int) -> str:
    """`execveat(2)` flags; '0' when none is set."""
    return "|".join(_bits(flags, ((0x1000, "AT_EMPTY_PATH"), (0x100, "AT_SYMLINK_NOFOLLOW")))) or "0"


@lru_cache(maxsize=64)
def mem_prot(prot: int) -> str:
    """`mmap(2)` prot: PROT_NONE or PROT_READ|PROT_WRITE|PROT_EXEC."""
    prot &= 0xFFFFFFFF
    if prot == 0:
        return "PROT_NONE"
    return "|".join(_bits(prot, ((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"))))


_FILE_TYPES = ((0o140000, "S_IFSOCK"), (0o120000, "S_IFLNK"), (0o100000, "S_IFREG"), (0o60000, "S_IFBLK"),
               (0o40000, "S_IFDIR"), (0o20000, "S_IFCHR"), (0o10000, "S_IFIFO"))  # fmt: skip


@lru_cache(maxsize=256)
def inode_mode(mode: int) -> str:
    """`mknod(2)`/`chmod(2)` mode: the file type (if any), then per class RWX or its single bits."""
    mode &= 0xFFFFFFFF
    parts = [name for bits, name in _FILE_TYPES if mode & bits == bits][:1]
    for shift, who, letter in ((6, "U", "USR"), (3, "G", "GRP"), (0, "O", "OTH")):
        perm = (mode >> shift) & 7
        if perm == 7:
            parts.append(f"S_IRWX{who}")
        else:
            parts += [f"S_I{r}{letter}" for bit, r in ((4, "R"), (2, "W"), (1, "X")) if perm & bit]
    return "|".join(parts)


_CAPS = _names(
    "CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER CAP_FSETID CAP_KILL CAP_SETGID CAP_SETUID "
    "CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE CAP_NET_BROADCAST CAP_NET_ADMIN CAP_NET_RAW "
    "CAP_IPC_LOCK CAP_IPC_OWNER CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_CHROOT CAP_SYS_PTRACE CAP_SYS_PACCT "
    "CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD "
    "CAP_LEASE CAP_AUDIT_WRITE CAP_AUDIT_CONTROL CAP_SETFCAP CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG "
    "CAP_WAKE_ALARM CAP_BLOCK_SUSPEND CAP_AUDIT_READ CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE"
)


def capability(cap: int) -> str:
    """A capability number as its CAP_* name (the number as text when unknown)."""
    cap = s32(cap)
    return _CAPS[cap] if 0 <= cap < len(_CAPS) else str(cap)


_PRCTL = {
    1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE",
    5: "PR_GET_UNALIGN", 6: "PR_SET_UNALIGN", 7: "PR_GET_KEEPCAPS", 8: "PR_SET_KEEPCAPS", 9: "PR_GET_FPEMU",
    10: "PR_SET_FPEMU", 11: "PR_GET_FPEXC", 12: "PR_SET_FPEXC", 13: "PR_GET_TIMING", 14: "PR_SET_TIMING",
    15: "PR_SET_NAME", 16: "PR_GET_NAME", 19: "PR_GET_ENDIAN", 20: "PR_SET_ENDIAN", 21: "PR_GET_SECCOMP",
    22: "PR_SET_SECCOMP", 23: "PR_CAPBSET_READ", 24: "PR_CAPBSET_DROP", 25: "PR_GET_TSC", 26: "PR_SET_TSC",
    27: "PR_GET_SECUREBITS", 28: "PR_SET_SECUREBITS", 29: "PR_SET_TIMERSLACK", 30: "PR_GET_TIMERSLACK",
    31: "PR_TASK_PERF_EVENTS_DISABLE", 32: "PR_TASK_PERF_EVENTS_ENABLE", 33: "PR_MCE_KILL",
    34: "PR_MCE_KILL_GET", 35: "PR_SET_MM", 36: "PR_SET_CHILD_SUBREAPER", 37: "PR_GET_CHILD_SUBREAPER",
    38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS", 40: "PR_GET_TID_ADDRESS", 41: "PR_SET_THP_DISABLE",
    42: "PR_GET_THP_DISABLE", 43: "PR_MPX_ENABLE_MANAGEMENT", 44: "PR_MPX_DISABLE_MANAGEMENT",
    45: "PR_SET_FP_MODE", 46: "PR_GET_FP_MODE", 47: "PR_CAP_AMBIENT", 50: "PR_SVE_SET_VL",
    51: "PR_SVE_GET_VL",
    52: "PR_GET_SPECULATION_CTRL", 53: "PR_SET_SPECULATION_CTRL", 54: "PR_PAC_RESET_KEYS",
    55: "PR_SET_TAGGED_ADDR_CTRL", 56: "PR_GET_TAGGED_ADDR_CTRL",
}  # fmt: skip


def prctl_option(option: int) -> str:
    option = s32(option)
    return _PRCTL.get(option, str(option))


_PTRACE = {
    0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSER",
    4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSER", 7: "PTRACE_CONT", 8: "PTRACE_KILL",
    9: "PTRACE_SINGLESTEP", 12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS", 14: "PTRACE_GETFPREGS",
    15: "PTRACE_SETFPREGS", 16: "PTRACE_ATTACH", 17: "PTRACE_DETACH", 18: "PTRACE_GETFPXREGS",
    19: "PTRACE_SETFPXREGS", 24: "PTRACE_SYSCALL", 0x4200: "PTRACE_SETOPTIONS", 0x4201: "PTRACE_GETEVENTMSG",
    0x4202: "PTRACE_GETSIGINFO", 0x4203: "PTRACE_SETSIGINFO", 0x4204: "PTRACE_GETREGSET",
    0x4205: "PTRACE_SETREGSET", 0x4206: "PTRACE_SEIZE", 0x4207: "PTRACE_INTERRUPT", 0x4208: "PTRACE_LISTEN",
    0x4209: "PTRACE_PEEKSIGINFO", 0x420A: "PTRACE_GETSIGMASK", 0x420B: "PTRACE_SETSIGMASK",
    0x420C: "PTRACE_SECCOMP_GET_FILTER", 0x420D: "PTRACE_SECCOMP_GET_METADATA",
}  # fmt: skip


def ptrace_request(request: int) -> str:
    request = s64(request)
    return _PTRACE.get(request, str(request))


_BPF_CMDS = _names(
    "BPF_MAP_CREATE BPF_MAP_LOOKUP_ELEM BPF_MAP_UPDATE_ELEM BPF_MAP_DELETE_ELEM BPF_MAP_GET_NEXT_KEY "
    "BPF_PROG_LOAD BPF_OBJ_PIN BPF_OBJ_GET BPF_PROG_ATTACH BPF_PROG_DETACH BPF_PROG_TEST_RUN "
    "BPF_PROG_GET_NEXT_ID BPF_MAP_GET_NEXT_ID BPF_PROG_GET_FD_BY_ID BPF_MAP_GET_FD_BY_ID "
    "BPF_OBJ_GET_INFO_BY_FD BPF_PROG_QUERY BPF_RAW_TRACEPOINT_OPEN BPF_BTF_LOAD BPF_BTF_GET_FD_BY_ID "
    "BPF_TASK_FD_QUERY BPF_MAP_LOOKUP_AND_DELETE_ELEM BPF_MAP_FREEZE BPF_BTF_GET_NEXT_ID "
    "BPF_MAP_LOOKUP_BATCH BPF_MAP_LOOKUP_AND_DELETE_BATCH BPF_MAP_UPDATE_BATCH BPF_MAP_DELETE_BATCH "
    "BPF_LINK_CREATE "
    "BPF_LINK_UPDATE BPF_LINK_GET_FD_BY_ID BPF_LINK_GET_NEXT_ID BPF_ENABLE_STATS BPF_ITER_CREATE "
    "BPF_LINK_DETACH BPF_PROG_BIND_MAP BPF_TOKEN_CREATE"
)


def bpf_cmd(cmd: int) -> str:
    cmd = s32(cmd)
    return _BPF_CMDS[cmd] if 0 <= cmd < len(_BPF_CMDS) else str(cmd)


#: (event name, argument name) -> decoder of the register value, as Tracee v0.5.2 printed them.
FLAG_ARGS: dict[tuple[str, str], Callable[[int], str]] = {
    ("open", "flags"): open_flags,
    ("openat", "flags"): open_flags,
    ("security_file_open", "flags"): open_flags,
    ("access", "mode"): access_mode,
    ("faccessat", "mode"): access_mode,
    ("faccessat2", "mode"): access_mode,
    ("socket", "domain"): socket_domain,
    ("socket", "type"): socket_type,
    ("clone", "flags"): clone_flags,
    ("prctl", "option"): prctl_option,
    ("mmap", "prot"): mem_prot,
    ("mprotect", "prot"): mem_prot,
    ("pkey_mprotect", "prot"): mem_prot,
    ("ptrace", "request"): ptrace_request,
    ("execveat", "flags"): exec_flags,
    ("mknod", "mode"): inode_mode,
    ("mknodat", "mode"): inode_mode,
    ("chmod", "mode"): inode_mode,
    ("fchmod", "mode"): inode_mode,
    ("fchmodat", "mode"): inode_mode,
    ("bpf", "cmd"): bpf_cmd,
    ("cap_capable", "cap"): capability,
}

# --- memory values ------------------------------------------------------------------------------------


def text(raw: bytes) -> str:
    """Kernel/user bytes as text; bytes that are not UTF-8 are kept visible as \\xNN escapes."""
    return raw.decode("utf-8", "backslashreplace")


def argv(raw: bytes) -> list[str]:
    """argv captured as NUL-terminated strings back to back (the last one unterminated if cut short)."""
    if not raw:
        return []
    if raw.endswith(b"\0"):
        raw = raw[:-1]
    return [text(s) for s in raw.split(b"\0")]


def int_pair(raw: bytes) -> list[int]:
    """An `int[2]` (pipe/socketpair fds)."""
    return list(struct.unpack("<2i", raw)) if len(raw) == 8 else []


def sockaddr(raw: bytes) -> str:
    """A struct sockaddr as Tracee v0.5 printed it: a Python-dict-like string, no space after commas."""
    if len(raw) < 2:
        return "{}"
    family = struct.unpack_from("<H", raw)[0]
    fields = [("sa_family", socket_domain(family))]
    if family == 2 and len(raw) >= 8:  # AF_INET
        port = struct.unpack_from(">H", raw, 2)[0]
        fields += [("sin_port", str(port)), ("sin_addr", str(ipaddress.IPv4Address(raw[4:8])))]
    elif family == 10 and len(raw) >= 28:  # AF_INET6
        port, flowinfo = struct.unpack_from(">HI", raw, 2)
        scope = struct.unpack_from("<I", raw, 24)[0]
        addr = str(ipaddress.IPv6Address(raw[8:24]))
        fields += [
            ("sin6_port", str(port)),
            ("sin6_flowinfo", str(flowinfo)),
            ("sin6_addr", addr),
            ("sin6_scope_id", str(scope)),
        ]
    elif family == 1:  # AF_UNIX; abstract names lose their leading NUL, as in Tracee
        path = raw[2:].lstrip(b"\0").split(b"\0", 1)[0]
        fields.append(("sun_path", text(path)))
    return "{" + ",".join(f"'{k}': '{v}'" for k, v in fields) + "}"


def join_path(directory: str, name: str) -> str:
    """`name` resolved against `directory` ('' when `name` is already absolute)."""
    if not directory or name.startswith("/"):
        return name
    return directory.rstrip("/") + "/" + name


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
