"""Benign activity of the synthetic hosts: the daemons and jobs of Ubuntu 20.04 EC2 honeypots.

Each function returns one `Template`, modelled on the real BETH rows (tests/data/beth-samples/) and
sized so that the training split reproduces the published marginals (beth-data-facts.md): `ps` run
by the SSM agent dominates the EC2 hosts (53% of training rows), systemd-udevd the `ubuntu` VM, and
internet SSH brute-forcing keeps sshd busy. Templates that also carry labelled rows (cron's hourly
job, an operator's ssh session, systemd-networkd's `close` thread) say so in their slots' labels.
"""

from __future__ import annotations

from functools import cache

from beth.data.synth_hosts import LOGIND_MNT, NETWORKD_MNT, UDEVD_MNT
from beth.data.synth_syscalls import (
    LIBS,
    PROC_DEV,
    ROOT_DEV,
    RUN_DEV,
    SYS_DEV,
    exit_,
    fopen,
    fopen_path,
    fork,
    ld_so,
    missing,
    proc_file,
    ptr,
    spawn,
)
from beth.data.synth_template import Ev, Fmt, Pool, Proc, Template, Var, ev, rep, template

SUS = (1, 0)
SCAN = Var("scan")
GO_THREAD = Var("thread", 14, 1)  # a Go runtime thread of the daemon: tid = pid + 1..14
SSH_SOCKET_FD = Var("rand", 44, 47)


def inet(port: int | str | Var, addr: Pool | str) -> Fmt:
    """Tracee's text of an IPv4 `struct sockaddr*`."""
    parts: list[Var | Pool] = []
    p = "{}" if isinstance(port, Var) else str(port)
    if isinstance(port, Var):
        parts.append(port)
    a = "{}" if isinstance(addr, Pool) else addr
    if isinstance(addr, Pool):
        parts.append(addr)
    return Fmt(f"{{'sa_family': 'AF_INET','sin_port': '{p}','sin_addr': '{a}'}}", tuple(parts))


def unix(path: str) -> Fmt:
    """Tracee's text of an AF_UNIX `struct sockaddr*`."""
    return Fmt(f"{{'sa_family': 'AF_UNIX','sun_path': '{path}'}}", ())


def lib(name: str, *, proc: int = 0) -> list[Ev]:
    """dlopen of one library (fd 3), e.g. an NSS module."""
    path, real, ino = LIBS[name]
    return fopen(path, 3, real=real, inode=ino, proc=proc)


def syslog(proc: int, fd: int = 4, *, comm: str | None = None, p: float = 1.0) -> list[Ev]:
    """openlog/syslog through /dev/log: a datagram socket, connect, (send), close."""
    kw = {"proc": proc, "comm": comm, "p": p}
    return [
        ev("socket", fd, domain="AF_UNIX", type="SOCK_DGRAM|SOCK_CLOEXEC", protocol=0, **kw),
        ev("connect", 0, sockfd=fd, addr=unix("/dev/log"), addrlen=110, **kw),
        ev("close", fd=fd, **kw),
    ]


# --- ps polling by the SSM agent (EC2 hosts) -------------------------------------------------------


@cache
def ps_poll() -> Template:
    """amazon-ssm-agent runs `ps`, which reads stat/status/cmdline of every process in /proc."""
    ssm, ps = 0, 1
    pre_exec = [
        ev("dup2", fd, proc=ps, comm="amazon-ssm-agen", oldfd=9 + 2 * fd, newfd=fd) for fd in range(3)
    ]
    start = spawn(
        ssm,
        ps,
        "/usr/bin/ps",
        ["ps", "-eo", "pid,ppid,user,stat,etime,args"],
        parent_comm="amazon-ssm-agen",
        flags="CLONE_VM|CLONE_VFORK",
        thread=GO_THREAD,
        pre_exec=pre_exec,
    )
    start += ld_so(
        ["procps", "c", "systemd", "dl", "pthread", "rt", "lzma", "lz4", "gcrypt", "gpg-error"], proc=ps
    )
    start += fopen("/sys/devices/system/cpu/online", 3, dev=SYS_DEV, fstat=1, proc=ps)
    for path in ("/proc/sys/kernel/osrelease", "/proc/self/stat", "/proc/uptime", "/proc/meminfo"):
        start += fopen(path, 3, dev=PROC_DEV, fstat=0, proc=ps)
    start += fopen(
        "/proc",
        5,
        flags="O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC",
        dev=PROC_DEV,
        inode=1,
        close=False,
        proc=ps,
    )
    start.append(ev("getdents64", Var("rand", 2800, 4200), proc=ps, fd=5, dirp=Pool("heap"), count=32768))
    per_pid = [ev("stat", proc=ps, pathname=Fmt("/proc/{}", (SCAN,)), statbuf=ptr(2), dt=3e-5)]
    for name in ("stat", "status", "cmdline"):
        per_pid += proc_file(SCAN, name, 9, proc=ps)
    per_pid += [
        ev("cap_capable", proc=ps, cap="CAP_SYS_PTRACE", p=0.16),
        ev("getdents64", Var("rand", 2800, 4200), proc=ps, fd=5, dirp=Pool("heap"), count=32768, p=0.012),
    ]
    end = [ev("getdents64", 0, proc=ps, fd=5, dirp=Pool("heap"), count=32768), ev("close", proc=ps, fd=5)]
    end += fopen("/etc/nsswitch.conf", 3, proc=ps)
    end += lib("nss_files", proc=ps)
    end += fopen("/etc/passwd", 3, proc=ps)
    end += fopen("/proc/tty/drivers", 3, dev=PROC_DEV, fstat=0, proc=ps)
    end += [ev("close", proc=ps, fd=1), ev("close", proc=ps, fd=2), exit_(ps)]
    procs = [Proc("amazon-ssm-agen", pid="ssm"), Proc("ps", ppid=0)]
    return template("ps", procs, start, rep(per_pid, 86, 104), end)


# --- systemd-udevd (the ubuntu VM) ------------------------------------------------------------------


@cache
def udev_worker() -> Template:
    """udevd forks a worker that handles a run of uevents, then kills it when it goes idle."""
    main, worker = 0, 1
    dev = Fmt("/sys/devices/virtual/{}/{}", (Pool("token", 1), Var("rep")))
    uevent = Fmt("/sys/devices/virtual/{}/{}/uevent", (Pool("token", 1), Var("rep")))
    data = Fmt("/run/udev/data/c{}:{}", (Var("rand", 1, 254), Var("rep")))
    start = [
        fork(worker, proc=main),
        ev(
            "socket",
            3,
            proc=worker,
            domain="AF_NETLINK",
            type="SOCK_RAW|SOCK_CLOEXEC|SOCK_NONBLOCK",
            protocol=15,
        ),
        ev("bind", proc=worker, sockfd=3, addr=Fmt("{'sa_family': 'AF_NETLINK'}", ()), addrlen=12),
        ev("getsockname", proc=worker, sockfd=3, addr=Fmt("{'sa_family': 'AF_NETLINK'}", ()), addrlen=ptr(4)),
    ]
    per_event = [
        *fopen_path(dev, 15, proc=worker),
        *fopen(uevent.text, 6, dev=SYS_DEV, fstat=1, proc=worker, path_value=uevent, p=0.7),
        missing(data, proc=worker, p=0.6),
        *fopen_path(
            Fmt("/sys/devices/virtual/{}/{}/subsystem", (Pool("token", 1), Var("rep"))),
            6,
            proc=worker,
            fstat=False,
            p=0.6,
        ),
        ev(
            "lstat",
            proc=worker,
            pathname=Fmt("/sys/devices/virtual/{}/{}/subsystem", (Pool("token", 1), Var("rep"))),
            statbuf=ptr(2),
            p=0.35,
        ),
        ev(
            "access",
            Var("rand", -2, 0),
            proc=worker,
            pathname=Fmt("/sys/devices/virtual/{}/{}/dev", (Pool("token", 1), Var("rep"))),
            mode="F_OK",
            p=0.7,
        ),
        ev("stat", proc=worker, pathname="/run/udev/rules.d", statbuf=ptr(1), p=0.15),
        *fopen_path(
            Fmt("/run/udev/data/c{}:{}", (Var("rand", 1, 254), Var("rep"))),
            8,
            proc=worker,
            p=0.25,
            fstat=False,
        ),
        *fopen(
            Fmt("/sys/devices/virtual/{}/{}", (Pool("token", 1), Var("rep"))).text,
            15,
            dev=SYS_DEV,
            fstat=0,
            flags="O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC",
            proc=worker,
            close=False,
            p=0.12,
            path_value=Fmt("/sys/devices/virtual/{}/{}", (Pool("token", 1), Var("rep"))),
        ),
        ev("getdents64", Var("rand", 32, 600), proc=worker, fd=15, dirp=Pool("heap"), count=32768, p=0.12),
        ev("getdents64", 0, proc=worker, fd=15, dirp=Pool("heap"), count=32768, p=0.12),
        ev("close", proc=worker, fd=15, p=0.12),
        ev("cap_capable", proc=worker, cap="CAP_SYS_ADMIN", p=0.02),
        # sd-device broadcasting the processed event to libudev monitors over netlink
        ev("socket", 12, proc=worker, domain="AF_NETLINK", type="SOCK_RAW|SOCK_CLOEXEC", protocol=15, p=0.04),
        ev("bind", proc=worker, sockfd=12, addr=Fmt("{'sa_family': 'AF_NETLINK'}", ()), addrlen=12, p=0.04),
        ev(
            "getsockname",
            proc=worker,
            sockfd=12,
            addr=Fmt("{'sa_family': 'AF_NETLINK'}", ()),
            addrlen=ptr(4),
            p=0.04,
        ),
        ev("close", proc=worker, fd=12, p=0.04),
        ev("kill", proc=main, pid=Var("pid", worker), sig=0, p=0.006),
    ]
    end = [
        ev("kill", proc=main, pid=Var("pid", worker), sig=15, dt=0.5, sleep=3.0),
        ev("kill", proc=main, pid=Var("pid", worker), sig=15, p=0.5),
        *[ev("close", proc=worker, fd=fd) for fd in (12, 8, 7, 5, 3)],
        ev("prctl", proc=main, option="PR_SET_PDEATHSIG", arg2=15, arg3=0, arg4=0, arg5=0, p=0.3),
        exit_(worker),
    ]
    procs = [Proc("systemd-udevd", mnt=UDEVD_MNT, pid="udevd"), Proc("systemd-udevd", mnt=UDEVD_MNT, ppid=0)]
    return template("udev-worker", procs, start, rep(per_event, 120, 300), end)


# --- sshd: internet brute-forcing (every EC2 host) --------------------------------------------------

SSHD_LIBS = [
    "wrap",
    "audit",
    "crypto",
    "util",
    "z",
    "crypt",
    "selinux",
    "gssapi",
    "krb5",
    "com_err",
    "c",
    "cap-ng",
    "resolv",
    "pcre2",
    "dl",
    "pthread",
    "k5crypto",
    "krb5support",
    "keyutils",
]
PAM_MODULES = [
    "pam_unix",
    "pam_deny",
    "pam_permit",
    "pam_cap",
    "pam_env",
    "pam_loginuid",
    "pam_limits",
    "pam_motd",
    "pam_mail",
    "pam_systemd",
    "pam_keyinit",
    "pam_umask",
    "pam_nologin",
    "pam_lastlog",
]


def pam_stack(proc: int, label_comm: str | None = None) -> list[Ev]:
    """libpam reading the sshd stack and dlopen-ing its modules."""
    rows: list[Ev] = []
    for conf in ("sshd", "common-auth", "common-account", "common-session", "common-password", "other"):
        rows += fopen(f"/etc/pam.d/{conf}", 4, proc=proc, comm=label_comm)
    for mod in PAM_MODULES:
        path = f"/lib/x86_64-linux-gnu/security/{mod}.so"
        rows += fopen(path, 4, real="/usr" + path, proc=proc, comm=label_comm)
    rows += fopen("/etc/security/pam_env.conf", 4, proc=proc, comm=label_comm)
    rows += fopen("/etc/environment", 4, proc=proc, comm=label_comm)
    rows += fopen("/etc/security/limits.conf", 4, proc=proc, comm=label_comm)
    return rows


def sshd_start(mon: int) -> list[Ev]:
    """A freshly exec'd `sshd -i`: loader, config, host keys, users."""
    rows = ld_so(SSHD_LIBS, proc=mon)
    rows += fopen("/etc/ssh/sshd_config", 3, proc=mon)
    rows.append(ev("stat", proc=mon, pathname="/etc/ssh/sshd_config.d", statbuf=ptr(1)))
    rows += fopen(
        "/etc/ssh/sshd_config.d", 4, flags="O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC", close=False, proc=mon
    )
    rows += [
        ev("getdents64", 48, proc=mon, fd=4, dirp=Pool("heap"), count=32768),
        ev("getdents64", 0, proc=mon, fd=4, dirp=Pool("heap"), count=32768),
        ev("close", proc=mon, fd=4),
    ]
    for key in ("rsa", "ecdsa", "ed25519"):
        rows += fopen(f"/etc/ssh/ssh_host_{key}_key", 3, proc=mon)
        rows += fopen(f"/etc/ssh/ssh_host_{key}_key.pub", 3, proc=mon)
    rows += fopen("/etc/gai.conf", 3, proc=mon)
    rows += fopen("/etc/nsswitch.conf", 3, proc=mon)
    rows += lib("nss_files", proc=mon)
    rows += fopen("/etc/passwd", 3, proc=mon)
    rows += syslog(mon)
    rows += [ev("dup2", fd, proc=mon, oldfd=Var("rand", 5, 6), newfd=fd) for fd in (0, 1)]
    rows.append(ev("getsockname", proc=mon, sockfd=0, addr=inet(22, "0.0.0.0"), addrlen=ptr(3)))
    return rows


def privsep_child(mon: int, child: int) -> list[Ev]:
    """The unprivileged pre-auth child: chroot to /run/sshd, drop to the `sshd` user (uid 109)."""
    return [
        fork(child, proc=mon),
        ev("cap_capable", proc=child, cap="CAP_SYS_CHROOT"),
        ev("setgid", proc=child, gid=65534),
        ev("setuid", proc=child, uid=109),
        ev("close", proc=child, fd=5),
        ev("prctl", proc=child, option="PR_SET_NO_NEW_PRIVS", arg2=1, arg3=0, arg4=0, arg5=0),
        ev("prctl", proc=child, option="PR_SET_SECCOMP", arg2=2, arg3=Pool("heap", 5), arg4=0, arg5=0),
        ev("close", proc=child, fd=Var("rand", 6, 8), times=(0, 2)),
    ]


def password_attempt(mon: int) -> list[Ev]:
    """One failed password: pam_unix reads passwd/shadow, waits, logs, records it in btmp."""
    rows = fopen("/etc/nsswitch.conf", 5, proc=mon, dt=2e-3)
    rows += fopen("/etc/passwd", 6, proc=mon)
    rows += fopen("/etc/group", 6, proc=mon, p=0.5)
    rows += fopen("/etc/shadow", 8, proc=mon)
    rows.append(ev("access", -2, proc=mon, pathname="/etc/security/opasswd", mode="F_OK", p=0.5))
    rows += fopen("/etc/security/faillock.conf", 6, proc=mon, p=0.5)
    rows += [missing("/etc/nologin", proc=mon, how="stat", p=0.5)]
    rows += fopen("/etc/login.defs", 5, proc=mon, p=0.5)
    rows += syslog(mon, 5)
    rows += fopen("/var/log/btmp", 5, flags="O_WRONLY|O_APPEND|O_CLOEXEC", proc=mon, fstat=0)
    rows.append(ev("cap_capable", proc=mon, cap="CAP_DAC_OVERRIDE", p=0.5, sleep=2.0))
    return rows


@cache
def sshd_bruteforce() -> Template:
    """One internet SSH connection: systemd accepts and spawns `sshd -i`, which fails some passwords."""
    sysd, mon, child = 0, 1, 2
    start = [
        ev(
            "accept4",
            Var("rand", 40, 60),
            proc=sysd,
            sockfd=SSH_SOCKET_FD,
            addr=inet(0, "0.0.0.0"),
            addrlen=ptr(4),
            flags=526336,
        )
    ]
    start += spawn(
        sysd,
        mon,
        "/usr/sbin/sshd",
        ["/usr/sbin/sshd", "-i"],
        parent_comm="(sshd)",
        pre_exec=[ev("dup2", fd, proc=mon, comm="(sshd)", oldfd=3, newfd=fd) for fd in (0, 1, 2)],
    )
    start += sshd_start(mon)
    start += privsep_child(mon, child)
    start += pam_stack(mon)
    end = [
        *syslog(mon, 4),
        ev("kill", proc=mon, pid=Var("pid", child), sig=9),
        exit_(child),
        *[ev("close", proc=mon, fd=fd) for fd in (3, 5, 0, 1)],
        exit_(mon),
    ]
    procs = [Proc("systemd", pid="systemd"), Proc("sshd", ppid="systemd"), Proc("sshd", uid=109, ppid=1)]
    return template("sshd-bruteforce", procs, start, rep(password_attempt(mon), 3, 9), end)


# --- systemd and its services -----------------------------------------------------------------------


@cache
def journald_burst() -> Template:
    """journald meets a new log source: reads its /proc entries, checking ptrace access."""
    rows: list[Ev] = []
    for name in ("comm", "cmdline", "status", "attr/current", "sessionid", "loginuid", "cgroup"):
        rows += proc_file(SCAN, name, 32, fstat=1 if name != "attr/current" else 0, p=0.9)
        if name == "comm":
            rows += [ev("cap_capable", cap="CAP_SYS_PTRACE", times=(3, 3))]
    rows += [ev("fstat", fd=Var("rand", 20, 40), statbuf=ptr(6), p=0.3)]
    procs = [Proc("systemd-journal", pid="journald")]
    return template("journald", procs, rep(rows, 1, 3))


@cache
def systemd_poll() -> Template:
    """PID 1 reading /proc/<pid>/cgroup of its services and answering on its sockets."""
    rows = proc_file(SCAN, "cgroup", 17, fstat=1)
    rows += [
        ev(
            "accept4",
            Var("rand", 20, 60),
            sockfd=Var("rand", 10, 40),
            addr=unix("/run/systemd/private"),
            addrlen=ptr(1),
            flags=526336,
            p=0.15,
        ),
        ev(
            "getsockname",
            sockfd=Var("rand", 20, 60),
            addr=unix("/run/systemd/private"),
            addrlen=ptr(2),
            p=0.1,
        ),
        ev("close", fd=Var("rand", 20, 60), p=0.2),
        ev("kill", pid=Var("scan", 40), sig=0, p=0.2),
        ev(
            "socket",
            Var("rand", 20, 60),
            domain="AF_UNIX",
            type="SOCK_DGRAM|SOCK_CLOEXEC",
            protocol=0,
            p=0.15,
        ),
        ev("getdents64", Var("rand", 0, 700), fd=Var("rand", 20, 60), dirp=Pool("heap"), count=32768, p=0.15),
        ev(
            "stat",
            pathname=Fmt("/sys/fs/cgroup/unified/system.slice/{}.service", (Pool("token", 3),)),
            statbuf=ptr(1),
            p=0.1,
        ),
        ev("dup", 19, oldfd=Var("rand", 3, 20), p=0.03),
        ev("access", -2, pathname="/run/systemd/notify", mode="F_OK", p=0.05),
    ]
    return template("systemd", [Proc("systemd", pid="systemd")], rep(rows, 2, 6))


@cache
def tmpfiles_run() -> Template:
    """systemd starts systemd-tmpfiles (--clean): it walks /tmp, /var/tmp, /run and removes old files."""
    sysd, pre, tmp = 0, 1, 1
    pre_exec = [
        ev("prctl", proc=pre, comm="(tmpfiles)", option="PR_SET_PDEATHSIG", arg2=15, arg3=0, arg4=0, arg5=0),
        *[ev("close", proc=pre, comm="(tmpfiles)", fd=fd) for fd in range(3, 15)],
        *[ev("dup2", fd, proc=pre, comm="(tmpfiles)", oldfd=3, newfd=fd) for fd in (0, 1, 2)],
        ev("setgid", proc=pre, comm="(tmpfiles)", gid=0, p=0.5),
        *fopen(
            "/proc/self/oom_score_adj",
            3,
            dev=PROC_DEV,
            fstat=0,
            proc=pre,
            comm="(tmpfiles)",
            flags="O_WRONLY|O_NOCTTY|O_CLOEXEC",
        ),
        ev(
            "socket",
            3,
            proc=pre,
            comm="(tmpfiles)",
            domain="AF_UNIX",
            type="SOCK_STREAM|SOCK_CLOEXEC",
            protocol=0,
        ),
        ev(
            "connect",
            0,
            proc=pre,
            comm="(tmpfiles)",
            sockfd=3,
            addr=unix("/run/systemd/journal/stdout"),
            addrlen=30,
        ),
        *[ev("dup2", fd, proc=pre, comm="(tmpfiles)", oldfd=3, newfd=fd) for fd in (1, 2)],
        ev("close", proc=pre, comm="(tmpfiles)", fd=3),
    ]
    start = spawn(
        sysd,
        pre,
        "/bin/systemd-tmpfiles",
        ["systemd-tmpfiles", "--clean"],
        parent_comm="(tmpfiles)",
        pre_exec=pre_exec,
    )
    start += ld_so(
        ["systemd", "acl", "c", "lzma", "lz4", "gcrypt", "pthread", "rt", "dl", "gpg-error"], proc=tmp
    )
    for conf in ("/etc/tmpfiles.d", "/run/tmpfiles.d", "/usr/lib/tmpfiles.d"):
        start += fopen(
            conf,
            3,
            flags="O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC",
            dev=RUN_DEV if "/run" in conf else ROOT_DEV,
            close=False,
            proc=tmp,
        )
        start += [
            ev("getdents64", Var("rand", 300, 1400), proc=tmp, fd=3, dirp=Pool("heap"), count=32768),
            ev("getdents64", 0, proc=tmp, fd=3, dirp=Pool("heap"), count=32768),
            ev("close", proc=tmp, fd=3),
        ]
    walk = [
        ev(
            "openat",
            4,
            proc=tmp,
            dirfd=-100,
            pathname=Fmt("/tmp/{}", (Pool("token", 5),)),
            flags="O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_PATH",
            mode=Var("mode"),
        ),
        ev("fstat", proc=tmp, fd=4, statbuf=ptr(2)),
        ev("lstat", proc=tmp, pathname=Fmt("/var/tmp/{}", (Pool("token", 6),)), statbuf=ptr(3), p=0.5),
        *fopen(
            "/tmp",
            5,
            flags="O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC",
            close=False,
            proc=tmp,
            p=0.6,
        ),
        ev("getdents64", Var("rand", 0, 900), proc=tmp, fd=5, dirp=Pool("heap"), count=32768, p=0.5),
        ev("fstat", proc=tmp, fd=5, statbuf=ptr(1), p=0.4),
        ev("close", proc=tmp, fd=5, p=0.6),
        ev("close", proc=tmp, fd=4),
        ev(
            "unlinkat",
            Var("rand", -2, 0),
            proc=tmp,
            dirfd=5,
            pathname=Fmt("systemd-private-{}", (Pool("token", 7),)),
            flags=0,
            p=0.06,
        ),
        ev("fchmod", proc=tmp, fd=4, mode=1023, p=0.01),
        ev("access", -2, proc=tmp, pathname=Fmt("/run/{}", (Pool("token", 8),)), mode="F_OK", p=0.1),
    ]
    end = [ev("close", proc=tmp, fd=1), ev("close", proc=tmp, fd=2), exit_(tmp)]
    procs = [Proc("systemd", pid="systemd"), Proc("systemd-tmpfile", ppid="systemd")]
    return template("tmpfiles", procs, start, rep(walk, 22, 46), end)


@cache
def resolved_poll() -> Template:
    """systemd-resolved re-reading a link's state file after a netlink notification."""
    rows = [
        ev("socket", 15, domain="AF_UNIX", type="SOCK_DGRAM|SOCK_CLOEXEC", protocol=0),
        ev("close", fd=15),
    ]
    loop = fopen("/run/systemd/netif/links/5", 15, dev=RUN_DEV, inode=Var("inst", 519, 8), fstat=2)
    return template(
        "resolved", [Proc("systemd-resolve", uid=101, mnt=4026532232, pid="resolved")], rows, rep(loop, 6, 14)
    )


@cache
def networkd_poll() -> Template:
    """systemd-networkd saving link state (and sd_notify)."""
    rows = [
        ev("socket", 15, domain="AF_UNIX", type="SOCK_DGRAM|SOCK_CLOEXEC", protocol=0),
        ev("close", fd=15),
    ]
    loop = fopen("/run/systemd/netif/links/.#5", 15, dev=RUN_DEV, flags="O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC")
    loop += [
        ev("fchmod", fd=15, mode=420, p=0.05),
        ev("getsockname", sockfd=3, addr=Fmt("{'sa_family': 'AF_NETLINK'}", ()), addrlen=ptr(4), p=0.2),
    ]
    procs = [Proc("systemd-network", uid=100, mnt=NETWORKD_MNT, pid="networkd")]
    return template("networkd", procs, rows, rep(loop, 3, 8))


@cache
def timesyncd_sync() -> Template:
    """systemd-timesyncd polls an NTP server and saves the clock file."""
    rows = [
        ev("socket", 12, domain="AF_INET", type="SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC", protocol=0),
        ev("bind", sockfd=12, addr=inet(0, "0.0.0.0"), addrlen=16),
        ev("connect", 0, sockfd=12, addr=inet(123, "169.254.169.123"), addrlen=16),
        ev("getsockname", sockfd=12, addr=inet(0, "0.0.0.0"), addrlen=ptr(1), p=0.5),
        *fopen("/var/lib/systemd/timesync/clock", 13, flags="O_RDWR|O_CREAT|O_NOCTTY|O_CLOEXEC"),
        ev("close", fd=12),
        *fopen("/run/systemd/timesync/synchronized", 13, dev=RUN_DEV, p=0.5),
    ]
    return template(
        "timesyncd", [Proc("systemd-timesyn", uid=102, mnt=4026532229, pid="timesyncd")], rep(rows, 1, 3)
    )


@cache
def timesyncd_start() -> Template:
    """systemd starting systemd-timesyncd: the `(time-dir)` child prepares its state directory."""
    sysd, pre = 0, 1
    rows = [
        fork(pre, proc=sysd),
        *[ev("close", proc=pre, fd=fd) for fd in range(3, 40)],
        *fopen_path("/var/lib/systemd/timesync", 3, proc=pre),
        *fopen_path("/var/lib/private/systemd/timesync", 4, proc=pre),
        ev(
            "symlink",
            proc=pre,
            target="private/systemd/timesync",
            linkpath="/var/lib/systemd/timesync",
            p=0.2,
        ),
        ev("lstat", proc=pre, pathname="/var/lib/systemd/timesync", statbuf=ptr(1), times=(2, 4)),
        ev("fchmod", proc=pre, fd=3, mode=493, p=0.5),
        ev("prctl", proc=pre, option="PR_SET_SECUREBITS", arg2=0, arg3=0, arg4=0, arg5=0),
        exit_(pre),
    ]
    return template(
        "time-dir", [Proc("systemd", pid="systemd"), Proc("(time-dir)", ppid="systemd")], rep(rows, 1, 2)
    )


@cache
def logind_poll() -> Template:
    """systemd-logind keeping session and seat state files."""
    session = Fmt("/run/systemd/sessions/{}", (Var("rand", 1, 9),))
    rows = [
        *fopen(
            session.text,
            14,
            dev=RUN_DEV,
            path_value=session,
            flags="O_WRONLY|O_CREAT|O_EXCL|O_NOCTTY|O_CLOEXEC",
        ),
        ev("fchmod", fd=14, mode=420, p=0.3),
        missing("/run/systemd/seats/seat0", how="stat", p=0.3),
        ev("unlink", -2, pathname="/run/systemd/users/.#1000", p=0.3),
    ]
    return template("logind", [Proc("systemd-logind", mnt=LOGIND_MNT, pid="logind")], rep(rows, 1, 4))


@cache
def user_runtime_dir() -> Template:
    """systemd-user-runtime-dir start|stop 1000: mounts or unmounts /run/user/1000 around a login."""
    sysd, ur = 0, 1
    rows = spawn(
        sysd,
        ur,
        "/lib/systemd/systemd-user-runtime-dir",
        ["/lib/systemd/systemd-user-runtime-dir", "stop", "1000"],
        parent_comm="systemd",
    )
    rows += ld_so(
        ["systemd", "c", "lzma", "lz4", "gcrypt", "pthread", "rt", "dl", "gpg-error", "selinux", "pcre2"],
        proc=ur,
    )
    walk = [
        *fopen_path(Fmt("/run/user/1000/{}", (Pool("token", 2),)), 4, proc=ur),
        ev("unlinkat", 0, proc=ur, dirfd=3, pathname=Fmt("{}", (Pool("token", 3),)), flags=0, p=0.5),
        ev("getdents64", Var("rand", 0, 500), proc=ur, fd=3, dirp=Pool("heap"), count=32768, p=0.4),
        ev("lstat", proc=ur, pathname=Fmt("/run/user/1000/{}", (Pool("token", 4),)), statbuf=ptr(1), p=0.5),
    ]
    end = [ev("umount", proc=ur, target="/run/user/1000", flags=8, p=0.5), exit_(ur)]
    return template(
        "user-runtime-dir",
        [Proc("systemd", pid="systemd"), Proc("systemd-user-ru", ppid="systemd")],
        rows,
        rep(walk, 60, 120),
        end,
    )


# --- Go daemons: the SSM agent, its worker, snapd ---------------------------------------------------


def go_connect(port: int, proc: int = 0, *, p: float = 1.0, dns: bool = True) -> list[Ev]:
    """A Go dial: DNS over the stub resolver, then a non-blocking TCP connect (-115 EINPROGRESS)."""
    kw = {"proc": proc, "thread": GO_THREAD, "p": p}
    rows: list[Ev] = []
    if dns:
        rows += [
            ev("socket", 8, domain="AF_INET", type="SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC", protocol=0, **kw),
            ev("connect", 0, sockfd=8, addr=inet(53, "127.0.0.53"), addrlen=16, **kw),
            ev("getsockname", sockfd=8, addr=inet(0, "0.0.0.0"), addrlen=ptr(1), **kw),
            ev("close", fd=8, **kw),
        ]
    rows += [
        ev("socket", 9, domain="AF_INET", type="SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC", protocol=0, **kw),
        ev("connect", -115, sockfd=9, addr=inet(port, Pool("ip", 2)), addrlen=16, **kw),
        ev("getsockname", sockfd=9, addr=inet(0, "0.0.0.0"), addrlen=ptr(2), **kw),
    ]
    return rows


@cache
def ssm_agent() -> Template:
    """amazon-ssm-agent: polls the SSM endpoints and the instance metadata, tidies its IPC files."""
    kw = {"thread": GO_THREAD}
    rows = [
        *go_connect(443),
        ev("close", fd=Var("rand", 7, 12), **kw, p=0.7),
        *fopen("/etc/amazon/ssm/amazon-ssm-agent.json", 10, thread=GO_THREAD, p=0.2),
        missing("/etc/amazon/ssm/seelog.xml", p=0.2),
        ev("unlink", -2, pathname=Fmt("/var/lib/amazon/ssm/ipc/{}", (Pool("token", 1),)), times=(3, 8), **kw),
        ev(
            "security_inode_unlink",
            pathname=Fmt("/var/lib/amazon/ssm/{}/{}.tmp", (Pool("token", 2), Pool("token", 3))),
            p=0.3,
            **kw,
        ),
        ev(
            "unlink",
            pathname=Fmt("/var/lib/amazon/ssm/{}/{}.tmp", (Pool("token", 2), Pool("token", 3))),
            p=0.3,
            **kw,
        ),
        ev("stat", pathname="/var/lib/amazon/ssm", statbuf=ptr(1), p=0.3, **kw),
        ev("lstat", pathname="/var/lib/amazon/ssm/ipc", statbuf=ptr(2), p=0.2, **kw),
    ]
    return template("ssm-agent", [Proc("amazon-ssm-agen", pid="ssm")], rep(rows, 1, 3))


@cache
def ssm_worker() -> Template:
    """ssm-agent-worker: message polling over TLS and health pings."""
    kw = {"thread": GO_THREAD}
    rows = [
        *go_connect(443, dns=True),
        ev("close", fd=9, **kw),
        *fopen("/var/lib/amazon/ssm/ipc/health", 11, thread=GO_THREAD, flags="O_RDWR|O_CLOEXEC", p=0.3),
        ev("unlink", -2, pathname="/var/lib/amazon/ssm/ipc/termination", p=0.5, **kw),
    ]
    return template("ssm-worker", [Proc("ssm-agent-worke", pid="ssmworker")], rep(rows, 1, 2))


@cache
def snapd_poll() -> Template:
    """snapd answering on /run/snapd.socket and checking its state."""
    kw = {"thread": GO_THREAD}
    rows = [
        ev(
            "accept4",
            Var("rand", 9, 12),
            sockfd=7,
            addr=unix("/run/snapd.socket"),
            addrlen=ptr(1),
            flags=526336,
            p=0.5,
            **kw,
        ),
        ev(
            "getsockname",
            sockfd=Var("rand", 9, 12),
            addr=unix("/run/snapd.socket"),
            addrlen=ptr(2),
            p=0.3,
            **kw,
        ),
        *fopen("/var/lib/snapd/state.json", 10, thread=GO_THREAD, fstat=2),
        ev("stat", pathname=Fmt("/snap/{}/current", (Pool("token", 1),)), statbuf=ptr(3), times=(1, 3), **kw),
        ev("lstat", pathname="/var/lib/snapd/snaps", statbuf=ptr(4), p=0.5, **kw),
        *fopen(
            "/var/lib/snapd/snaps",
            11,
            flags="O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC",
            thread=GO_THREAD,
            close=False,
            p=0.4,
        ),
        ev("getdents64", Var("rand", 0, 400), fd=11, dirp=Pool("heap"), count=8192, p=0.4, **kw),
        ev("close", fd=11, p=0.4, **kw),
        ev("close", fd=Var("rand", 9, 12), p=0.5, **kw),
        ev("dup3", 12, oldfd=Var("rand", 9, 11), newfd=12, flags=524288, p=0.01, **kw),
    ]
    return template("snapd", [Proc("snapd", pid="snapd")], rep(rows, 1, 3))


# --- cron, atd, misc daemons ------------------------------------------------------------------------


@cache
def cron_minute() -> Template:
    """cron's once-a-minute look at its tables."""
    rows = [
        ev("stat", pathname="/var/spool/cron/crontabs", statbuf=ptr(1)),
        ev("stat", pathname="/etc/cron.d", statbuf=ptr(1)),
        ev("stat", pathname="/etc/crontab", statbuf=ptr(2)),
        *fopen("/etc/cron.d", 4, flags="O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC", close=False, p=0.3),
        ev("getdents64", Var("rand", 0, 200), fd=4, dirp=Pool("heap"), count=32768, p=0.3),
        ev("close", fd=4, p=0.3),
        ev("stat", pathname=Fmt("/etc/cron.d/{}", (Pool("token", 1),)), statbuf=ptr(3), times=(1, 3)),
        ev("fstat", fd=4, statbuf=ptr(4), p=0.2),
    ]
    return template("cron", [Proc("cron", pid="cron")], rows)


@cache
def cron_hourly(label: tuple[int, int] = SUS) -> Template:
    """cron runs /etc/cron.hourly: a cron child execs `sh -c`, which runs `run-parts` (rows as in BETH)."""
    cron, child, sh, rp = 0, 1, 2, 3
    rows = [
        fork(child, proc=cron),
        ev("setgid", proc=child, gid=0),
        ev("setuid", proc=child, uid=0),
        *fopen("/etc/pam.d/cron", 3, proc=child),
        *fopen("/etc/login.defs", 3, proc=child, p=0.5),
    ]
    rows += spawn(
        child,
        sh,
        "/bin/sh",
        ["/bin/sh", "-c", "   cd / && run-parts --report /etc/cron.hourly"],
        parent_comm="cron",
        exec_label=(0, 0),
    )
    rows += ld_so(["c"], proc=sh)
    rows += [
        ev("stat", -2 if d != "/bin" else 0, proc=sh, pathname=f"{d}/run-parts", statbuf=ptr(5))
        for d in ("/usr/local/sbin", "/usr/local/bin", "/sbin", "/bin")
    ]
    rows += spawn(
        sh, rp, "/bin/run-parts", ["run-parts", "--report", "/etc/cron.hourly"], parent_comm="sh", inode=1585
    )
    rows += ld_so(["c"], proc=rp)
    rows += fopen(
        "/etc/cron.hourly",
        3,
        flags="O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC",
        inode=1194,
        close=False,
        proc=rp,
    )
    rows += [
        ev("getdents64", 80, proc=rp, fd=3, dirp=Pool("heap"), count=32768),
        ev("getdents64", 0, proc=rp, fd=3, dirp=Pool("heap"), count=32768),
        ev("close", proc=rp, fd=3),
        exit_(rp),
        exit_(sh),
        exit_(child),
    ]
    procs = [
        Proc("cron", pid="cron"),
        Proc("cron", ppid=0),
        Proc("sh", ppid=1, label=label),
        Proc("run-parts", ppid=2, label=label),
    ]
    return template(f"cron-hourly{label}", procs, rows)


@cache
def close_thread() -> Template:
    """systemd-networkd's asynchronous close: a short-lived thread named `close` (sus in BETH)."""
    tid = Var("inst", 6300, 1100)  # the thread's id: fixed for the instance, far above the daemon's pid
    rows = [
        ev(
            "prctl",
            thread=tid,
            option="PR_SET_NAME",
            arg2=94819493392601,
            arg3=94819493392601,
            arg4=140662171848350,
            arg5=140662156379904,
        ),
        ev("close", thread=tid, fd=Var("rand", 15, 19)),
        exit_(thread=tid),
    ]
    return template(
        "close-thread", [Proc("close", uid=100, mnt=NETWORKD_MNT, pid="networkd", label=SUS)], rows
    )


@cache
def atd_check() -> Template:
    """atd waking up to look at its spool (sus in BETH's training split)."""
    rows = [
        ev("stat", pathname=".", statbuf=ptr(1)),
        ev("stat", pathname="/var/spool/cron/atjobs", statbuf=ptr(1), p=0.5),
    ]
    return template("atd", [Proc("atd", pid="atd", label=SUS)], rows)


#: Small daemons that show up a few times per host: (key, comm, uid).
MISC_DAEMONS = (
    ("dbus", "dbus-daemon", 103),
    ("accounts", "accounts-daemon", 0),
    ("polkitd", "polkitd", 0),
    ("dispatcher", "networkd-dispat", 0),
    ("irqbalance", "irqbalance", 0),
    ("multipathd", "multipathd", 0),
    ("upgrades", "unattended-upgr", 0),
    ("atd", "atd", 0),
)


@cache
def misc_daemon(key: str, comm: str, uid: int) -> Template:
    """A small daemon's occasional wake-up: a stat, a proc or config file read."""
    rows = [
        ev("stat", pathname=Fmt("/etc/{}", (Pool("token", 1),)), statbuf=ptr(1), p=0.5),
        *fopen(
            "/proc/interrupts" if key == "irqbalance" else "/proc/self/mountinfo", 6, dev=PROC_DEV, fstat=1
        ),
        ev("cap_capable", cap="CAP_SYS_NICE", p=0.1),
    ]
    return template(f"misc-{key}", [Proc(comm, uid=uid, pid=key)], rows)


@cache
def poweroff() -> Template:
    """The end of a host: `poweroff` asks systemd to stop, which signals everything and syncs."""
    sysd, po, sync = 0, 1, 2
    rows = spawn(sysd, po, "/sbin/poweroff", ["poweroff"], parent_comm="systemd")
    rows += ld_so(
        ["systemd", "c", "lzma", "lz4", "gcrypt", "pthread", "rt", "dl", "gpg-error", "selinux"], proc=po
    )
    rows += [
        ev("socket", 3, proc=po, domain="AF_UNIX", type="SOCK_STREAM|SOCK_CLOEXEC", protocol=0),
        ev("connect", 0, proc=po, sockfd=3, addr=unix("/run/systemd/private"), addrlen=24),
        *fopen(
            "/run/systemd/system", 4, dev=RUN_DEV, flags="O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC", proc=po
        ),
        *[
            ev(
                "stat",
                proc=po,
                pathname=Fmt("/run/systemd/transient/{}.service", (Pool("token", k),)),
                statbuf=ptr(1),
            )
            for k in range(4)
        ],
    ]
    units = [
        ev(
            "stat",
            proc=po,
            pathname=Fmt("/etc/systemd/system/{}.service", (Pool("token", 5, by="rep"),)),
            statbuf=ptr(1),
        ),
        ev(
            "access",
            -2,
            proc=po,
            pathname=Fmt("/run/systemd/system/{}.service", (Pool("token", 5, by="rep"),)),
            mode="F_OK",
        ),
    ]
    kills = [ev("kill", proc=sysd, pid=Var("scan", 10), sig=15, dt=2e-4)]
    end = [
        fork(sync, proc=sysd),
        *[ev("close", proc=sync, fd=fd) for fd in range(3, 63)],
        *[ev("dup2", fd, proc=sync, oldfd=3, newfd=fd) for fd in (0, 1, 2)],
        exit_(sync),
        ev("umount", -16, proc=po, target="/run/user/1000", flags=0, p=0.5),
        exit_(po),
    ]
    procs = [
        Proc("systemd", pid="systemd"),
        Proc("poweroff", ppid="systemd"),
        Proc("(sd-sync)", ppid="systemd"),
    ]
    return template("poweroff", procs, rows, rep(units, 16, 26), rep(kills, 60, 140), end)


# --- an operator's ssh session (sus in training/validation; the attacker's in test) -------------------


def session_teardown(
    user: int, mon: int, uid: int, *, journal: int | None = None, restore_ids: bool = True
) -> list[Ev]:
    """End of an interactive ssh session with agent forwarding, as in BETH's first evil rows: the user's
    sshd unlinks its agent socket and exits; the root monitor restores its ids (setregid/setreuid, not
    among the training split's 32 published events, so optional) and closes PAM."""
    agent = Fmt("/tmp/ssh-{}/agent.{}", (Pool("token", 9), Var("pid", user)))
    rows = [
        ev("close", proc=user, fd=10, dt=0.1),
        ev("security_inode_unlink", proc=user, pathname=agent),
        ev("unlink", proc=user, pathname=agent),
        ev("close", proc=user, fd=4),
        exit_(user),
    ]
    if restore_ids:
        rows += [
            ev("cap_capable", proc=mon, cap="CAP_SETGID", dt=2e-3),
            ev("setregid", proc=mon, rgid=-1, egid=uid),
            ev("cap_capable", proc=mon, cap="CAP_SETUID"),
            ev("setreuid", proc=mon, ruid=-1, euid=0),
            ev("setregid", proc=mon, rgid=-1, egid=0),
        ]
    rows += [
        *fopen("/etc/login.defs", 5, inode=584, proc=mon),
        *fopen("/var/log/wtmp", 5, flags="O_WRONLY|O_APPEND|O_CLOEXEC", fstat=0, proc=mon),
        *fopen("/var/run/utmp", 5, dev=RUN_DEV, flags="O_RDWR|O_CLOEXEC", fstat=0, proc=mon),
        *syslog(mon, 5),
    ]
    if journal is not None:
        for name in ("comm", "cmdline", "status"):
            rows += proc_file(Var("pid", mon), name, 38, proc=journal, fstat=1)
            if name == "comm":
                rows.append(ev("cap_capable", proc=journal, cap="CAP_SYS_PTRACE", times=(3, 3)))
    rows += [ev("close", proc=mon, fd=fd) for fd in (3, 4, 6, 7)]
    rows.append(exit_(mon))
    return rows


def user_sshd_activity(user: int, uid: int) -> list[Ev]:
    """The user's sshd (after privilege drop) forwarding a session: agent socket, channels, env files."""
    agent_dir = Fmt("/tmp/ssh-{}", (Pool("token", 9),))
    return [
        ev("socket", 4, proc=user, domain="AF_UNIX", type="SOCK_STREAM|SOCK_CLOEXEC", protocol=0, dt=0.05),
        ev(
            "bind",
            proc=user,
            sockfd=4,
            addr=Fmt(
                "{'sa_family': 'AF_UNIX','sun_path': '/tmp/ssh-{}/agent.{}'}",
                (Pool("token", 9), Var("pid", user)),
            ),
            addrlen=110,
        ),
        ev("stat", proc=user, pathname=agent_dir, statbuf=ptr(1)),
        ev("getsockname", proc=user, sockfd=3, addr=inet(22, "10.100.1.217"), addrlen=ptr(2)),
        *fopen(f"/home/{'ubuntu' if uid == 1000 else 'dota'}/.ssh/authorized_keys", 5, proc=user, p=0.5),
        ev("dup", 11, proc=user, oldfd=Var("rand", 5, 9), p=0.5),
        ev("close", proc=user, fd=Var("rand", 5, 11), times=(1, 3)),
        ev("accept", 10, proc=user, sockfd=4, addr=unix(""), addrlen=ptr(3), p=0.3),
        ev("fstat", proc=user, fd=Var("rand", 5, 11), statbuf=ptr(4), p=0.5),
    ]


@cache
def operator_session(
    uid: int = 1000, user_label: tuple[int, int] = SUS, restore_ids: bool = False
) -> Template:
    """An operator (terraform over ssh as `ubuntu`): the user's sshd works the session, then it ends.

    Only the uid-1000 rows carry `user_label` (BETH's 996 training rows of userId 1000 are all sus);
    the root monitor and journald rows stay benign.
    """
    mon, user, journal = 0, 1, 2
    start = [
        fork(user, proc=mon),
        ev("setgid", proc=user, gid=uid),
        ev("setuid", proc=user, uid=uid),
    ]
    procs = [
        Proc("sshd", ppid="systemd"),
        Proc("sshd", uid=uid, ppid=0, label=user_label),
        Proc("systemd-journal", pid="journald"),
    ]
    middle = rep(user_sshd_activity(user, uid), 8, 24)
    return template(
        f"operator-session-{uid}{'-ids' if restore_ids else ''}",
        procs,
        start,
        middle,
        session_teardown(user, mon, uid, journal=journal, restore_ids=restore_ids),
    )
