"""The scripted attack on the synthetic test host, modelled on the one in BETH (ip-10-100-1-217).

As the paper and beth-data-facts.md describe it: the attacker's earlier ssh session as `ubuntu`
(uid 1000) ends at ~132 s (sshd unlinks its /tmp/ssh-*/agent.<pid> socket: BETH's first evil rows);
the attacker logs in as a new user (uid 1001), sleeps at random intervals, runs `whoami`, `ls`,
`cat /proc/cpuinfo`, fetches `dota3.tar.gz` over SFTP, unpacks it ~7.5 minutes later and starts a
binary `tsm` whose >100 threads storm non-blocking connects to port 22 of many servers (returnValue
-115 EINPROGRESS once per attempt, then -114 EALREADY while it polls).

Labels follow BETH's test split: the attacker's own processes are evil (sus=1, evil=1); the
privileged sshd monitor of its logins and the pre-exec sshd children running as uid 1001 are
sus but not evil (they look like any privileged login); journald's and systemd's reactions stay benign.
"""

from __future__ import annotations

from functools import cache

from beth.data.synth_benign import (
    inet,
    lib,
    pam_stack,
    privsep_child,
    session_teardown,
    sshd_start,
    syslog,
    user_sshd_activity,
)
from beth.data.synth_hosts import KIT_FILES
from beth.data.synth_syscalls import PROC_DEV, exit_, fopen, fork, ld_so, missing, proc_file, ptr, spawn
from beth.data.synth_template import Block, Ev, Fmt, Pool, Proc, Template, Var, ev, rep, template

EVIL = (1, 1)
SUS = (1, 0)
UID = 1001
HOME = "/home/user1"
ARCHIVE = f"{HOME}/dota3.tar.gz"


@cache
def teardown() -> Template:
    """The end of the attacker's earlier session as `ubuntu` (first evil rows, ~132 s after boot)."""
    mon, user, journal = 0, 1, 2
    procs = [
        Proc("sshd", ppid="systemd", label=SUS),
        Proc("sshd", uid=1000, ppid=0, label=EVIL),
        Proc("systemd-journal", pid="journald"),
    ]
    return template("attack-teardown", procs, session_teardown(user, mon, 1000, journal=journal))


def _session(sysd: int, mon: int, child: int, user: int, journal: int) -> list[Ev]:
    """systemd accepts, sshd authenticates the new user, opens the session and drops to the user."""
    rows = [
        ev(
            "accept4",
            Var("rand", 40, 60),
            proc=sysd,
            sockfd=Var("rand", 44, 47),
            addr=inet(0, "0.0.0.0"),
            addrlen=ptr(4),
            flags=526336,
        )
    ]
    rows += spawn(sysd, mon, "/usr/sbin/sshd", ["/usr/sbin/sshd", "-i"], parent_comm="(sshd)")
    rows += sshd_start(mon)
    rows += privsep_child(mon, child)
    rows += pam_stack(mon)
    rows += fopen("/etc/passwd", 5, proc=mon, dt=0.5)
    rows += fopen("/etc/shadow", 5, proc=mon)
    rows += [exit_(child)]
    rows += fopen("/proc/self/loginuid", 5, dev=PROC_DEV, flags="O_WRONLY|O_CLOEXEC", fstat=0, proc=mon)
    rows += fopen("/var/log/lastlog", 5, flags="O_RDWR|O_CLOEXEC", proc=mon)
    rows += fopen("/var/log/wtmp", 5, flags="O_WRONLY|O_APPEND|O_CLOEXEC", fstat=0, proc=mon)
    rows += syslog(mon, 5)
    rows += [ev("cap_capable", proc=journal, cap="CAP_SYS_PTRACE", times=(3, 3))]
    rows += [
        fork(user, proc=mon),
        ev("cap_capable", proc=mon, cap="CAP_SETGID"),
        ev("setgid", proc=user, gid=UID),
        ev("cap_capable", proc=mon, cap="CAP_SETUID"),
        ev("setuid", proc=user, uid=UID),
    ]
    return rows


#: Repetitions of the user's sshd work per session at full size: BETH's test split has 3,708 uid-1001
#: rows that are not evil; smaller splits scale this down (`activity` argument of the session templates).
ACTIVITY = (100, 150)


def _activity(user: int, reps: tuple[int, int]) -> Block:
    """The user's sshd serving the session (uid 1001 rows that BETH labels sus, not evil)."""
    return rep(user_sshd_activity(user, UID), *reps)


def _shell(user: int, pre: int, shell: int) -> list[Ev]:
    """The user's sshd forks the login shell: the child's pre-exec work as sshd, then bash starting."""
    pre_exec = [
        *[ev("close", proc=pre, fd=fd) for fd in (3, 4, 5, 6, 7)],
        *[ev("dup2", fd, proc=pre, oldfd=8, newfd=fd) for fd in (0, 1, 2)],
        *fopen("/etc/motd", 3, proc=pre),
        *fopen("/run/motd.dynamic", 3, dev=25, proc=pre),
        missing(f"{HOME}/.hushlogin", proc=pre, how="stat"),
        missing("/etc/nologin", proc=pre, how="stat"),
        *fopen("/etc/environment", 3, proc=pre),
    ]
    rows = spawn(user, pre, "/bin/bash", ["-bash"], pre_exec=pre_exec, parent_comm="sshd")
    rows += ld_so(["tinfo", "dl", "c"], proc=shell)
    for path in (
        "/etc/profile",
        "/etc/bash.bashrc",
        "/etc/profile.d/01-locale-fix.sh",
        "/etc/profile.d/bash_completion.sh",
        f"{HOME}/.profile",
        f"{HOME}/.bashrc",
    ):
        rows += fopen(path, 3, proc=shell)
    rows += [
        missing(f"{HOME}/.bash_profile", proc=shell),
        missing(f"{HOME}/.bash_login", proc=shell),
        ev("stat", proc=shell, pathname=f"{HOME}/.bash_history", statbuf=ptr(1)),
        ev("access", -2, proc=shell, pathname=f"{HOME}/.sudo_as_admin_successful", mode="F_OK"),
    ]
    return rows


def session_procs(shell: bool = True) -> list[Proc]:
    """Slots 0-4 of a login (systemd, monitor, pre-auth child, user's sshd, journald); 5-6 its shell."""
    procs = [
        Proc("systemd", pid="systemd"),
        Proc("sshd", ppid="systemd", label=SUS),
        Proc("sshd", uid=109, ppid=1, label=SUS),
        Proc("sshd", uid=UID, ppid=1, label=SUS),
        Proc("systemd-journal", pid="journald"),
    ]
    if shell:
        procs += [
            Proc("sshd", uid=UID, pid="slot:6", ppid=3, label=SUS),
            Proc("bash", uid=UID, ppid=3, label=EVIL, register="shell"),
        ]
    return procs


def command(
    shell: int, cmd: int, path: str, argv: list[str], libs: list[str], work: list[Ev], *, think: float = 20.0
) -> list[Ev]:
    """The shell runs one command after the attacker's think time: fork, exec, loader, work, exit."""
    rows = [ev("stat", proc=shell, pathname=path, statbuf=ptr(2), sleep=think)]
    rows += spawn(shell, cmd, path, argv, parent_comm="bash")
    rows += ld_so(libs, proc=cmd)
    rows += fopen("/usr/lib/locale/locale-archive", 3, proc=cmd)
    rows += work
    rows += [ev("close", proc=cmd, fd=1), ev("close", proc=cmd, fd=2), exit_(cmd)]
    return rows


@cache
def login_and_look(activity: tuple[int, int] = ACTIVITY) -> Template:
    """Log in as the new user, then `whoami`, `ls -la`, `cat /proc/cpuinfo`, with random pauses."""
    sysd, mon, child, user, journal, pre, shell, cmd1, cmd2, cmd3 = range(10)
    head = _session(sysd, mon, child, user, journal)
    rows = _shell(user, pre, shell)
    rows += command(
        shell,
        cmd1,
        "/usr/bin/whoami",
        ["whoami"],
        ["c"],
        [
            *fopen("/etc/nsswitch.conf", 3, proc=cmd1),
            *lib("nss_files", proc=cmd1),
            *fopen("/etc/passwd", 3, proc=cmd1),
        ],
    )
    ls_work = [
        *fopen("/proc/filesystems", 3, dev=PROC_DEV, fstat=0, proc=cmd2),
        ev("stat", proc=cmd2, pathname=".", statbuf=ptr(3)),
        *fopen(HOME, 3, flags="O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC", close=False, proc=cmd2),
        ev("getdents64", 512, proc=cmd2, fd=3, dirp=Pool("heap"), count=32768),
        ev("getdents64", 0, proc=cmd2, fd=3, dirp=Pool("heap"), count=32768),
        ev("close", proc=cmd2, fd=3),
        ev(
            "lstat",
            proc=cmd2,
            pathname=Fmt(HOME + "/.{}", (Pool("token", 2, by="rep"),)),
            statbuf=ptr(4),
            times=(6, 9),
        ),
        *fopen("/etc/passwd", 3, proc=cmd2),
        *fopen("/etc/group", 3, proc=cmd2),
    ]
    rows += command(
        shell, cmd2, "/usr/bin/ls", ["ls", "-la"], ["selinux", "c", "pcre2", "dl", "pthread"], ls_work
    )
    cat_work = fopen("/proc/cpuinfo", 3, dev=PROC_DEV, proc=cmd3)
    rows += command(shell, cmd3, "/usr/bin/cat", ["cat", "/proc/cpuinfo"], ["c"], cat_work)
    procs = [*session_procs(), *[Proc(n, uid=UID, ppid=shell, label=EVIL) for n in ("whoami", "ls", "cat")]]
    return template("attack-login", procs, head, _activity(user, activity), rows)


@cache
def sftp_fetch(activity: tuple[int, int] = ACTIVITY) -> Template:
    """A second connection runs the SFTP subsystem, which writes dota3.tar.gz into the user's home."""
    sysd, mon, child, user, journal, sftp = range(6)
    head = _session(sysd, mon, child, user, journal)
    rows = spawn(
        user, sftp, "/usr/lib/openssh/sftp-server", ["/usr/lib/openssh/sftp-server"], parent_comm="sshd"
    )
    rows += ld_so(["c"], proc=sftp)
    rows += [
        ev("stat", proc=sftp, pathname=".", statbuf=ptr(1), dt=0.3),
        ev("lstat", proc=sftp, pathname=HOME, statbuf=ptr(2)),
        *fopen(ARCHIVE, 3, flags="O_WRONLY|O_CREAT|O_TRUNC", fstat=1, close=False, proc=sftp),
        ev("fstat", proc=sftp, fd=3, statbuf=ptr(3), dt=2.0, times=(2, 5)),
        ev("close", proc=sftp, fd=3),
        ev("stat", proc=sftp, pathname=ARCHIVE, statbuf=ptr(4)),
        exit_(sftp),
    ]
    procs = [*session_procs(shell=False), Proc("sftp-server", uid=UID, ppid=user, label=EVIL)]
    return template("attack-sftp", procs, head, _activity(user, activity), rows)


@cache
def unpack(activity: tuple[int, int] = ACTIVITY) -> Template:
    """Back in a shell ~7.5 minutes later: `tar xzf dota3.tar.gz` (tar forks gzip), then a look around."""
    sysd, mon, child, user, journal, pre, shell, tar, gz, ls = range(10)
    head = _session(sysd, mon, child, user, journal)
    rows = _shell(user, pre, shell)
    rows += [ev("stat", proc=shell, pathname="/usr/bin/tar", statbuf=ptr(2), sleep=15.0)]
    rows += spawn(shell, tar, "/usr/bin/tar", ["tar", "xzf", "dota3.tar.gz"], parent_comm="bash")
    rows += ld_so(["acl", "selinux", "c", "pcre2", "dl", "pthread"], proc=tar)
    rows += fopen(ARCHIVE, 3, proc=tar, close=False)
    rows += spawn(
        tar,
        gz,
        "/bin/gzip",
        ["gzip", "-d"],
        parent_comm="tar",
        pre_exec=[ev("dup2", fd, proc=gz, comm="tar", oldfd=3 + fd, newfd=fd) for fd in (0, 1)],
    )
    rows += ld_so(["c"], proc=gz)
    entry = Fmt(HOME + "/{}", (Pool("kit", 0, by="seq"),))
    per_file = [
        ev(
            "security_file_open",
            proc=tar,
            pathname=entry,
            flags="O_WRONLY|O_NONBLOCK|O_LARGEFILE",
            dev=211812353,
            inode=Var("rand", 260000, 262000),
        ),
        ev(
            "openat",
            4,
            proc=tar,
            dirfd=-100,
            pathname=Fmt("{}", (Pool("kit", 0, by="seq"),)),
            flags="O_WRONLY|O_CREAT|O_EXCL|O_NOCTTY|O_NONBLOCK|O_CLOEXEC",
            mode=493,
        ),
        ev("fchmod", proc=tar, fd=4, mode=493, p=0.3),
        ev("close", proc=tar, fd=4),
        ev("lstat", proc=tar, pathname=Fmt("{}", (Pool("kit", 0, by="seq"),)), statbuf=ptr(5), p=0.3),
    ]
    end = [exit_(gz), ev("close", proc=tar, fd=3), exit_(tar)]
    end += command(
        shell,
        ls,
        "/usr/bin/ls",
        ["ls", "-la", ".configrc"],
        ["selinux", "c", "pcre2", "dl", "pthread"],
        [
            ev(
                "lstat",
                proc=ls,
                pathname=Fmt(HOME + "/{}", (Pool("kit", 0, by="seq"),)),
                statbuf=ptr(4),
                times=(8, 12),
            )
        ],
        think=8.0,
    )
    procs = [
        *session_procs(),
        Proc("tar", uid=UID, ppid=shell, label=EVIL),
        Proc("gzip", uid=UID, ppid=tar, label=EVIL),
        Proc("ls", uid=UID, ppid=shell, label=EVIL),
    ]
    return template(
        "attack-unpack", procs, head, _activity(user, activity), rows, rep(per_file, len(KIT_FILES)), end
    )


#: tsm's command line in the kit's start script: threads, timeouts, port, target list.
TSM_ARGV = ["./tsm", "-t", "150", "-f", "1", "-s", "12", "-S", "10", "-p", "0", "-d", "1", "p", "ip"]


@cache
def tsm_start() -> Template:
    """The shell starts `tsm`, which reads its target list and spawns its scanning threads."""
    shell, tsm = 0, 1
    rows = [ev("stat", proc=shell, pathname="./tsm", statbuf=ptr(2), sleep=30.0)]
    rows += spawn(shell, tsm, f"{HOME}/.configrc/c/tsm", TSM_ARGV, parent_comm="bash")
    rows += [
        *fopen("/proc/self/exe", 3, dev=PROC_DEV, fstat=0, proc=tsm, flags="O_RDONLY"),
        *fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", 3, dev=21, fstat=0, proc=tsm),
        *fopen(f"{HOME}/.configrc/c/ip", 3, proc=tsm, flags="O_RDONLY"),
        *fopen(f"{HOME}/.configrc/c/pass", 3, proc=tsm, flags="O_RDONLY"),
        ev("socket", 3, proc=tsm, domain="AF_INET", type="SOCK_DGRAM|SOCK_CLOEXEC", protocol=0),
        ev("connect", 0, proc=tsm, sockfd=3, addr=inet(53, "8.8.8.8"), addrlen=16),
        ev("getsockname", proc=tsm, sockfd=3, addr=inet(0, "0.0.0.0"), addrlen=ptr(1)),
        ev("close", proc=tsm, fd=3),
    ]
    spawn_thread = [
        ev(
            "clone",
            Var("pidrep", tsm, 1),
            proc=tsm,
            flags="CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|"
            "CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID",
            stack=Pool("heap", 3),
            parent_tid=Pool("heap", 4),
            child_tid=Pool("heap", 4),
            tls=Var("inst", 139800000000000, 4000000000),
            dt=2e-4,
        )
    ]
    procs = [
        Proc("bash", uid=UID, pid="shell", label=EVIL),
        Proc("tsm", uid=UID, ppid=0, threads=160, label=EVIL, register="tsm"),
    ]
    return template("attack-tsm", procs, rows, rep(spawn_thread, 120, 140))


@cache
def tsm_thread() -> Template:
    """One scanning thread of tsm: for each target, a non-blocking socket, connect (-115), then
    connect polled until it gives up (-114 EALREADY each time), close."""
    t = Var("local", 1)
    fd = Var("repval", 3, 138)  # the attempt's socket, shared by its rows
    target = inet(22, Pool("ip", 0, by="rep"))
    attempt = [
        ev("socket", fd, thread=t, domain="AF_INET", type="SOCK_STREAM|SOCK_NONBLOCK", protocol=0, dt=0.05),
        ev("connect", -115, thread=t, sockfd=fd, addr=target, addrlen=16, dt=0.002),
        ev("connect", -114, thread=t, sockfd=fd, addr=target, addrlen=16, dt=0.12, times=(50, 68)),
        ev("close", thread=t, fd=fd),
    ]
    return template(
        "attack-tsm-thread", [Proc("tsm", uid=UID, pid="tsm", ppid="shell", label=EVIL)], rep(attempt, 16, 24)
    )


# --- the kit's scripts at work (BETH: 260 process names across the splits; ~9,300 evil rows not tsm) ---

#: Commands the kit's shell scripts run: name -> (path, argv, libraries, weight in evil rows).
KIT_COMMANDS: dict[str, tuple[str, list[str], list[str], float]] = {
    "nproc": ("/usr/bin/nproc", ["nproc"], ["c"], 1.0),
    "uname": ("/usr/bin/uname", ["uname", "-m"], ["c"], 1.0),
    "grep": (
        "/usr/bin/grep",
        ["grep", "-c", "^processor", "/proc/cpuinfo"],
        ["pcre", "dl", "c", "pthread"],
        1.5,
    ),
    "cat": ("/usr/bin/cat", ["cat", "/proc/cpuinfo"], ["c"], 1.0),
    "rm": ("/usr/bin/rm", ["rm", "-rf", "/tmp/.X25-unix/.rsync"], ["c"], 1.5),
    "mkdir": (
        "/usr/bin/mkdir",
        ["mkdir", "-p", ".configrc"],
        ["selinux", "c", "pcre2", "dl", "pthread"],
        0.8,
    ),
    "chmod": ("/usr/bin/chmod", ["chmod", "+x", "tsm"], ["c"], 0.8),
    "crontab": ("/usr/bin/crontab", ["crontab", "-l"], ["c"], 1.0),
    "sleep": ("/usr/bin/sleep", ["sleep", "30"], ["c"], 1.5),
    "sed": (
        "/usr/bin/sed",
        ["sed", "-i", "/^$/d", "cron.d"],
        ["acl", "selinux", "c", "pcre2", "dl", "pthread"],
        1.0,
    ),
    "awk": ("/usr/bin/mawk", ["awk", "{print $1}"], ["m", "c"], 1.0),
    "dirname": ("/usr/bin/dirname", ["dirname", ".configrc/c/run"], ["c"], 0.6),
    "pkill": (
        "/usr/bin/pkill",
        ["pkill", "-9", "-f", "xmrig"],
        ["procps", "c", "systemd", "dl", "pthread", "rt", "lzma", "lz4", "gcrypt", "gpg-error"],
        4.0,
    ),
    "killall": (
        "/usr/bin/killall",
        ["killall", "-9", "kswapd0"],
        ["selinux", "c", "pcre2", "dl", "pthread"],
        3.0,
    ),
}
#: Evil rows of the kit's commands at full size: BETH's non-tsm evil rows less our scripted ones.
KIT_EVIL_ROWS = 8_000


@cache
def kit_command(name: str) -> Template:
    """One command run by the kit's scripts (pkill/killall scan /proc like ps does)."""
    path, argv, libs, _ = KIT_COMMANDS[name]
    shell, cmd = 0, 1
    work: list[Ev] = []
    blocks: list[Block] = []
    if name in ("pkill", "killall"):
        work = fopen(
            "/proc",
            3,
            flags="O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC",
            dev=PROC_DEV,
            inode=1,
            close=False,
            proc=cmd,
        )
        per_pid = [
            ev("stat", proc=cmd, pathname=Fmt("/proc/{}", (Var("scan"),)), statbuf=ptr(2), dt=3e-5),
            *proc_file(Var("scan"), "stat", 4, proc=cmd),
            *proc_file(Var("scan"), "cmdline", 4, proc=cmd),
        ]
        blocks.append(rep(per_pid, 90, 110))
    elif name in ("cat", "grep"):
        work = fopen("/proc/cpuinfo", 3, dev=PROC_DEV, proc=cmd)
    elif name == "rm":
        work = [
            ev("lstat", proc=cmd, pathname="/tmp/.X25-unix/.rsync", statbuf=ptr(1)),
            ev(
                "unlinkat",
                Var("rand", -2, 0),
                proc=cmd,
                dirfd=-100,
                pathname=Fmt("/tmp/.X25-unix/.rsync/{}", (Pool("kit", 0, by="seq"),)),
                flags=0,
                times=(2, 6),
            ),
        ]
    elif name == "crontab":
        work = [
            *fopen("/var/spool/cron/crontabs/user1", 3, proc=cmd, p=0.5),
            missing("/etc/cron.allow", proc=cmd),
            *fopen("/etc/cron.deny", 3, proc=cmd),
        ]
    head = [ev("stat", proc=shell, pathname=path, statbuf=ptr(2), sleep=1.0)]
    head += spawn(shell, cmd, path, argv, parent_comm="bash")
    head += ld_so(libs, proc=cmd)
    head += fopen("/usr/lib/locale/locale-archive", 3, proc=cmd)
    head += work
    end = [ev("close", proc=cmd, fd=1), ev("close", proc=cmd, fd=2), exit_(cmd)]
    procs = [Proc("bash", uid=UID, pid="shell", label=EVIL), Proc(name, uid=UID, ppid=0, label=EVIL)]
    return template(f"kit-{name}", procs, head, *blocks, end)
