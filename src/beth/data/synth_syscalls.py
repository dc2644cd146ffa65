"""Recurring syscall sequences of the synthetic hosts, shaped like the real BETH rows.

What the real sample rows show (tests/data/beth-samples/): an open is `security_file_open` (the LSM
hook, with the resolved path, `O_LARGEFILE` added and `O_CLOEXEC` gone) then `openat` (the syscall
exit, with the requested path and Tracee's garbage `mode`), usually `fstat`, then `close`; a fresh
binary starts with the dynamic loader (`access /etc/ld.so.preload` = -2, then ld.so.cache and each
library); a fork is `clone` in the parent returning the child's pid, then `execve` and
`security_bprm_check` still under the parent's name.
"""

from __future__ import annotations

import zlib
from typing import Any

from beth.data.synth_template import Ev, Fmt, Pool, Value, Var, ev

ROOT_DEV = 211812353  # the root file system (nvme0n1p1) in every BETH sample row
PROC_DEV = 5
RUN_DEV = 25  # tmpfs /run
SYS_DEV = 21  # sysfs
MODE = Var("mode")  # openat's `mode` for opens without O_CREAT: a per-process garbage register value

#: Libraries: short name -> (path the program opens, path the kernel resolves, inode on the root fs).
LIBS: dict[str, tuple[str, str, int]] = {
    "c": ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc-2.31.so", 3429),
    "dl": ("/lib/x86_64-linux-gnu/libdl.so.2", "/usr/lib/x86_64-linux-gnu/libdl-2.31.so", 3434),
    "pthread": (
        "/lib/x86_64-linux-gnu/libpthread.so.0",
        "/usr/lib/x86_64-linux-gnu/libpthread-2.31.so",
        3467,
    ),
    "rt": ("/lib/x86_64-linux-gnu/librt.so.1", "/usr/lib/x86_64-linux-gnu/librt-2.31.so", 3475),
    "util": ("/lib/x86_64-linux-gnu/libutil.so.1", "/usr/lib/x86_64-linux-gnu/libutil-2.31.so", 3481),
    "resolv": ("/lib/x86_64-linux-gnu/libresolv.so.2", "/usr/lib/x86_64-linux-gnu/libresolv-2.31.so", 3472),
    "crypt": ("/lib/x86_64-linux-gnu/libcrypt.so.1", "/usr/lib/x86_64-linux-gnu/libcrypt.so.1.1.0", 2138),
    "procps": ("/lib/x86_64-linux-gnu/libprocps.so.8", "/usr/lib/x86_64-linux-gnu/libprocps.so.8.0.2", 2761),
    "systemd": (
        "/lib/x86_64-linux-gnu/libsystemd.so.0",
        "/usr/lib/x86_64-linux-gnu/libsystemd.so.0.28.0",
        3675,
    ),
    "lzma": ("/lib/x86_64-linux-gnu/liblzma.so.5", "/usr/lib/x86_64-linux-gnu/liblzma.so.5.2.4", 2412),
    "lz4": ("/lib/x86_64-linux-gnu/liblz4.so.1", "/usr/lib/x86_64-linux-gnu/liblz4.so.1.9.2", 2398),
    "gcrypt": (
        "/lib/x86_64-linux-gnu/libgcrypt.so.20",
        "/usr/lib/x86_64-linux-gnu/libgcrypt.so.20.2.5",
        2240,
    ),
    "gpg-error": (
        "/lib/x86_64-linux-gnu/libgpg-error.so.0",
        "/usr/lib/x86_64-linux-gnu/libgpg-error.so.0.28.0",
        2262,
    ),
    "selinux": ("/lib/x86_64-linux-gnu/libselinux.so.1", "/usr/lib/x86_64-linux-gnu/libselinux.so.1", 2905),
    "pcre": ("/lib/x86_64-linux-gnu/libpcre.so.3", "/usr/lib/x86_64-linux-gnu/libpcre.so.3.13.3", 2694),
    "pcre2": ("/lib/x86_64-linux-gnu/libpcre2-8.so.0", "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0.9.0", 2700),
    "crypto": ("/lib/x86_64-linux-gnu/libcrypto.so.1.1", "/usr/lib/x86_64-linux-gnu/libcrypto.so.1.1", 2150),
    "z": ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1.2.11", 3313),
    "wrap": ("/lib/x86_64-linux-gnu/libwrap.so.0", "/usr/lib/x86_64-linux-gnu/libwrap.so.0.7.6", 3291),
    "audit": ("/lib/x86_64-linux-gnu/libaudit.so.1", "/usr/lib/x86_64-linux-gnu/libaudit.so.1.0.0", 1985),
    "pam": ("/lib/x86_64-linux-gnu/libpam.so.0", "/usr/lib/x86_64-linux-gnu/libpam.so.0.84.2", 2734),
    "cap-ng": ("/lib/x86_64-linux-gnu/libcap-ng.so.0", "/usr/lib/x86_64-linux-gnu/libcap-ng.so.0.0.0", 2041),
    "gssapi": (
        "/lib/x86_64-linux-gnu/libgssapi_krb5.so.2",
        "/usr/lib/x86_64-linux-gnu/libgssapi_krb5.so.2.2",
        2248,
    ),
    "krb5": ("/lib/x86_64-linux-gnu/libkrb5.so.3", "/usr/lib/x86_64-linux-gnu/libkrb5.so.3.3", 2346),
    "k5crypto": (
        "/lib/x86_64-linux-gnu/libk5crypto.so.3",
        "/usr/lib/x86_64-linux-gnu/libk5crypto.so.3.1",
        2340,
    ),
    "com_err": ("/lib/x86_64-linux-gnu/libcom_err.so.2", "/usr/lib/x86_64-linux-gnu/libcom_err.so.2.1", 2104),
    "krb5support": (
        "/lib/x86_64-linux-gnu/libkrb5support.so.0",
        "/usr/lib/x86_64-linux-gnu/libkrb5support.so.0.1",
        2349,
    ),
    "keyutils": (
        "/lib/x86_64-linux-gnu/libkeyutils.so.1",
        "/usr/lib/x86_64-linux-gnu/libkeyutils.so.1.8",
        2334,
    ),
    "tinfo": ("/lib/x86_64-linux-gnu/libtinfo.so.6", "/usr/lib/x86_64-linux-gnu/libtinfo.so.6.2", 3153),
    "acl": ("/lib/x86_64-linux-gnu/libacl.so.1", "/usr/lib/x86_64-linux-gnu/libacl.so.1.1.2253", 1969),
    "attr": ("/lib/x86_64-linux-gnu/libattr.so.1", "/usr/lib/x86_64-linux-gnu/libattr.so.1.1.2448", 1989),
    "cap": ("/lib/x86_64-linux-gnu/libcap.so.2", "/usr/lib/x86_64-linux-gnu/libcap.so.2.32", 2036),
    "nss_files": (
        "/lib/x86_64-linux-gnu/libnss_files.so.2",
        "/usr/lib/x86_64-linux-gnu/libnss_files-2.31.so",
        3456,
    ),
    "stdc++": ("/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.28", 3101),
    "m": ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm-2.31.so", 3448),
    "gcc_s": ("/lib/x86_64-linux-gnu/libgcc_s.so.1", "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1", 2217),
}

_FLAG_ORDER = (
    "O_RDONLY",
    "O_WRONLY",
    "O_RDWR",
    "O_CREAT",
    "O_EXCL",
    "O_NOCTTY",
    "O_TRUNC",
    "O_APPEND",
    "O_NONBLOCK",
    "O_DSYNC",
    "O_DIRECT",
    "O_LARGEFILE",
    "O_DIRECTORY",
    "O_NOFOLLOW",
    "O_NOATIME",
    "O_CLOEXEC",
    "O_PATH",
)


def sfo_flags(flags: str) -> str:
    """The flags `security_file_open` shows for an `openat` with `flags`: +O_LARGEFILE, -O_CLOEXEC/O_CREAT."""
    parts = {
        f for f in flags.split("|") if f not in ("O_CLOEXEC", "O_CREAT", "O_EXCL", "O_TRUNC", "O_NOCTTY")
    }
    parts.add("O_LARGEFILE")
    return "|".join(f for f in _FLAG_ORDER if f in parts)


def inode_of(path: str) -> int:
    """A stable inode number for a file on the root file system."""
    return 1000 + zlib.crc32(path.encode()) % 900_000


def ptr(k: int = 0) -> Pool:
    """A user-space stack pointer of the process (k-th of its own)."""
    return Pool("ptr", k)


def fopen(
    path: str,
    fd: int | Var,
    *,
    flags: str = "O_RDONLY|O_CLOEXEC",
    real: str | None = None,
    dev: int = ROOT_DEV,
    inode: int | Var | None = None,
    fstat: int = 1,
    close: bool = True,
    proc: int = 0,
    comm: str | None = None,
    thread: int | Var = 0,
    dt: float = 6e-5,
    p: float = 1.0,
    path_value: Value | None = None,
) -> list[Ev]:
    """sfo + openat (+ fstat...) (+ close) of one file; `real` is the resolved path the LSM hook sees."""
    kw = {"proc": proc, "comm": comm, "thread": thread, "p": p}
    shown: Value = path if path_value is None else path_value
    seen: Value = real or shown
    ino = (
        inode
        if inode is not None
        else (inode_of(real or path) if dev == ROOT_DEV else Var("rand", 2000, 60000))
    )
    rows = [
        ev("security_file_open", pathname=seen, flags=sfo_flags(flags), dev=dev, inode=ino, dt=dt, **kw),
        ev("openat", fd, dirfd=-100, pathname=shown, flags=flags, mode=MODE, dt=dt / 2, **kw),
    ]
    rows += [ev("fstat", fd=fd, statbuf=ptr(k), dt=dt / 2, **kw) for k in range(fstat)]
    if close:
        rows.append(ev("close", fd=fd, dt=dt, **kw))
    return rows


def fopen_path(
    path: str | Fmt, fd: int, *, proc: int = 0, comm: str | None = None, p: float = 1.0, fstat: bool = True
) -> list[Ev]:
    """An O_PATH open (systemd's chase_symlinks, udev's sd-device): no LSM open hook, fstat, close."""
    kw = {"proc": proc, "comm": comm, "p": p}
    rows = [
        ev(
            "openat",
            fd,
            dirfd=-100,
            pathname=path,
            flags="O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_PATH",
            mode=MODE,
            **kw,
        )
    ]
    if fstat:
        rows.append(ev("fstat", fd=fd, statbuf=ptr(3), **kw))
    rows.append(ev("close", fd=fd, **kw))
    return rows


def missing(
    path: str | Fmt,
    *,
    proc: int = 0,
    comm: str | None = None,
    how: str = "openat",
    p: float = 1.0,
    flags: str = "O_RDONLY|O_CLOEXEC",
) -> Ev:
    """A lookup of a file that does not exist: -2 (ENOENT), no LSM hook."""
    kw = {"proc": proc, "comm": comm, "p": p}
    if how == "openat":
        return ev("openat", -2, dirfd=-100, pathname=path, flags=flags, mode=MODE, **kw)
    if how == "access":
        return ev("access", -2, pathname=path, mode="F_OK", **kw)
    return ev(how, -2, pathname=path, statbuf=ptr(1), **kw)


def ld_so(libs: list[str], *, proc: int = 0, comm: str | None = None) -> list[Ev]:
    """The dynamic loader of a freshly exec'd binary: preload check, ld.so.cache, one open per library."""
    kw = {"proc": proc, "comm": comm}
    rows = [ev("access", -2, pathname="/etc/ld.so.preload", mode="R_OK", dt=4e-4, **kw)]
    rows += fopen("/etc/ld.so.cache", 3, inode=62841, **kw)
    for lib in libs:
        path, real, ino = LIBS[lib]
        rows += fopen(path, 3, real=real, inode=ino, **kw)
    return rows


def fork(
    child: int, *, proc: int = 0, flags: str = "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID", **kw: Any
) -> Ev:
    """glibc's fork(): a clone in process slot `proc` returning the pid of slot `child`."""
    return ev(
        "clone",
        Var("pid", child),
        proc=proc,
        flags=flags,
        stack="0x0",
        parent_tid="0x0",
        child_tid=Fmt("0x7F{}BF", (Var("inst", 0x10000000, 0xEFFFFFFF),)),
        tls=0,
        **kw,
    )


def spawn(
    parent: int,
    child: int,
    pathname: str,
    argv: list[str],
    *,
    parent_comm: str | None = None,
    flags: str = "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID",
    thread: int | Var = 0,
    pre_exec: list[Ev] | None = None,
    inode: int | None = None,
    dt: float = 3e-4,
    exec_label: tuple[int, int] | None = None,
) -> list[Ev]:
    """Fork and exec: clone in the parent (returns the child pid), then execve and the bprm check,
    both still under the parent's name, with whatever the child does before exec in between.
    `exec_label` labels those two rows apart from the child's slot (BETH labels a cron job's rows from
    its own name on: the execve row still named `cron` is not sus)."""
    rows = [
        fork(child, proc=parent, thread=thread, dt=dt, flags=flags),
    ]
    rows += pre_exec or []
    real = {"/bin/sh": "/usr/bin/dash"}.get(pathname, pathname)
    if real.startswith(("/bin/", "/sbin/", "/lib/")):
        real = "/usr" + real  # /bin, /sbin and /lib are symlinks into /usr on Ubuntu 20.04
    rows += [
        ev("execve", proc=child, comm=parent_comm, pathname=pathname, argv=argv, label=exec_label),
        ev(
            "security_bprm_check",
            proc=child,
            comm=parent_comm,
            pathname=real,
            dev=ROOT_DEV,
            inode=inode or inode_of(real),
            label=exec_label,
        ),
    ]
    return rows


def proc_file(
    pid: Var, name: str, fd: int, *, proc: int = 0, fstat: int = 0, p: float = 1.0, comm: str | None = None
) -> list[Ev]:
    """Read one /proc/<pid>/<name> file (sfo + openat (+ fstat) + close)."""
    return fopen(
        f"/proc/{{}}/{name}",
        fd,
        dev=PROC_DEV,
        fstat=fstat,
        proc=proc,
        p=p,
        comm=comm,
        path_value=Fmt(f"/proc/{{}}/{name}", (pid,)),
    )


def exit_(proc: int = 0, comm: str | None = None, thread: int | Var = 0) -> Ev:
    """The scheduler's process-exit event: no arguments."""
    return ev("sched_process_exit", proc=proc, comm=comm, thread=thread)
