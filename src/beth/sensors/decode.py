"""Argument values as Tracee v0.5 printed them, from raw register values and user memory.

Pure functions (no I/O), used by `beth.sensors.records` to build the `args` of each event: integers
by C type (signed/unsigned, width), pointers as `'0x7FFF...'`, flags as `O_RDONLY|O_CLOEXEC`,
`AF_INET`, `CLONE_VM|...`, capabilities as `CAP_SETUID`, sockaddrs as
`{'sa_family': 'AF_INET','sin_port': '22','sin_addr': '10.100.1.4'}`, argv as a list of strings.
Flag names and their order follow Tracee v0.5.2's helpers, which is what BETH's rows hold.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

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
