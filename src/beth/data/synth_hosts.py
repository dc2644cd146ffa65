"""The hosts of the synthetic BETH splits: names, sizes, daemons with their pids, per-host pools.

Host names and row counts are the paper's (beth-data-facts.md). Every host gets the daemons of an
Ubuntu 20.04 EC2 instance at plausible pids, the mount namespaces BETH shows for the sandboxed
systemd services, a process table that `ps` scans, and pools of strings (stack pointers, tokens, IP
addresses) that template arguments draw from — all drawn from the host's own seeded generator.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

from beth.data.synth_template import HOST_MNT, N_TYPE_VARIANTS

# Mount namespaces of the sandboxed services, with the training split's counts (beth-data-facts.md).
UDEVD_MNT = 4026532217  # systemd-udevd        189,292 rows
RESOLVED_MNT = 4026532232  # systemd-resolved   3,398
TIMESYNCD_MNT = 4026532229  # systemd-timesyncd 1,208
NETWORKD_MNT = 4026532231  # systemd-networkd   1,148
LOGIND_MNT = 4026532288  # systemd-logind       602

#: Rows per host in the paper's three split files (beth-data-facts.md, "Splits, hosts, labels").
SPLIT_HOSTS: dict[str, dict[str, int]] = {
    "training": {
        "ubuntu": 190_500,
        "ip-10-100-1-57": 162_378,
        "ip-10-100-1-120": 95_747,
        "ip-10-100-1-28": 75_648,
        "ip-10-100-1-55": 75_208,
        "ip-10-100-1-173": 74_593,
        "ip-10-100-1-34": 73_295,
        "ip-10-100-1-79": 15_775,
    },
    "validation": {
        "ubuntu": 143_296,
        "ip-10-100-1-165": 16_010,
        "ip-10-100-1-129": 15_026,
        "ip-10-100-1-169": 14_635,
    },
    "testing": {"ip-10-100-1-217": 188_967},
}


@dataclass(frozen=True)
class Daemon:
    """A long-running process every host has: its name, user, mount namespace and parent."""

    comm: str
    uid: int = 0
    mnt: int = HOST_MNT
    parent: str | None = "systemd"


#: Host daemons in the order their pids are handed out at boot (systemd 1, kthreadd 2, then upwards).
DAEMONS: dict[str, Daemon] = {
    "systemd": Daemon("systemd", parent=None),
    "kthreadd": Daemon("kthreadd", parent=None),
    "journald": Daemon("systemd-journal"),
    "udevd": Daemon("systemd-udevd", mnt=UDEVD_MNT),
    "multipathd": Daemon("multipathd"),
    "timesyncd": Daemon("systemd-timesyn", uid=102, mnt=TIMESYNCD_MNT),
    "networkd": Daemon("systemd-network", uid=100, mnt=NETWORKD_MNT),
    "resolved": Daemon("systemd-resolve", uid=101, mnt=RESOLVED_MNT),
    "accounts": Daemon("accounts-daemon"),
    "atd": Daemon("atd"),
    "cron": Daemon("cron"),
    "dbus": Daemon("dbus-daemon", uid=103),
    "dispatcher": Daemon("networkd-dispat"),
    "irqbalance": Daemon("irqbalance"),
    "polkitd": Daemon("polkitd"),
    "snapd": Daemon("snapd"),
    "logind": Daemon("systemd-logind", mnt=LOGIND_MNT),
    "ssm": Daemon("amazon-ssm-agen"),
    "upgrades": Daemon("unattended-upgr"),
    "ssmworker": Daemon("ssm-agent-worke", parent="ssm"),
}

#: The files of the attacker's dota3.tar.gz on the test host (a crypto-mining / SSH-scanning kit: miner
#: in a/, scanner in c/), the pool that `tar` extracts in order.
KIT_FILES = (
    ".configrc/a/a",
    ".configrc/a/init0",
    ".configrc/a/kswapd0",
    ".configrc/a/run",
    ".configrc/a/stop",
    ".configrc/a/upd",
    ".configrc/a/.procs",
    ".configrc/b/a",
    ".configrc/b/run",
    ".configrc/b/stop",
    ".configrc/b/sync",
    ".configrc/c/a",
    ".configrc/c/go",
    ".configrc/c/golan",
    ".configrc/c/run",
    ".configrc/c/start",
    ".configrc/c/stop",
    ".configrc/c/tsm",
    ".configrc/c/tsm32",
    ".configrc/c/tsm64",
    ".configrc/c/pass",
    ".configrc/c/ip",
    ".configrc/cron.d",
    ".configrc/dir2.dir",
)

POOL_SIZE = 1024
_ALNUM = np.array(list(string.ascii_letters + string.digits))
_FIRST_OCTETS = [3, 13, 18, 34, 35, 45, 52, 54, 61, 77, 89, 103, 118, 124, 139, 159, 185, 192, 211]


@dataclass
class Host:
    """One synthetic host: its name, boot-relative log window and everything drawn for it."""

    name: str
    index: int
    rows: int
    t0: float  # first logged second since boot
    t1: float  # last logged second since boot
    pids: dict[str, int]  # daemon key -> pid
    parents: dict[str, int]  # daemon key -> parent pid
    scan: np.ndarray  # pids that `ps` finds in /proc, ascending
    variant: int  # which of TYPE_VARIANTS' argument types this host's Tracee wrote
    first_pid: int  # first pid handed to a process started while logging
    pid_rate: float  # pids consumed per second by processes that do not show up in the log
    pools: dict[str, list[str]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """'ubuntu' (the udev-heavy desktop VM) or 'ip' (the EC2 honeypot hosts)."""
        return "ubuntu" if self.name == "ubuntu" else "ip"


def make_host(
    name: str,
    index: int,
    rows: int,
    t0: float,
    t1: float,
    rng: np.random.Generator,
    *,
    late_start: bool = False,
) -> Host:
    """Draw a host's daemon pids, process table, type variant and string pools."""
    pids = {"systemd": 1, "kthreadd": 2}
    nxt = {"journald": 150, "udevd": 185, "multipathd": 300, "timesyncd": 370}
    pid = 0
    for key in list(DAEMONS)[2:]:
        pid = max(pid + int(rng.integers(1, 9)), nxt.get(key, 0) + int(rng.integers(0, 12)))
        pids[key] = pid
    parents = {k: (0 if d.parent is None else pids[d.parent]) for k, d in DAEMONS.items()}
    kthreads = np.flatnonzero(rng.random(170) < 0.62)
    kthreads = kthreads[kthreads > 2]
    scan = np.unique(np.concatenate([[1, 2], kthreads, list(pids.values()), rng.integers(1200, 1300, 6)]))
    # BETH's pids: ~1,300-1,400 on hosts logged from boot (validation/test samples), ~7,300 on the
    # training hosts (cloud-init had used thousands before the capture's sus rows); then slow growth.
    first_pid = int(rng.integers(7180, 7320) if late_start else rng.integers(1290, 1420))
    host = Host(
        name=name,
        index=index,
        rows=rows,
        t0=t0,
        t1=t1,
        pids=pids,
        parents=parents,
        scan=scan.astype(np.int64),
        variant=int(rng.integers(0, N_TYPE_VARIANTS)),
        first_pid=first_pid,
        pid_rate=float(rng.uniform(0.0, 0.04)),
    )
    host.pools = _pools(rng)
    return host


def _hex(values: np.ndarray, width: int, prefix: str) -> list[str]:
    return [f"{prefix}{v:0{width}X}" for v in values.tolist()]


def _pools(rng: np.random.Generator) -> dict[str, list[str]]:
    """Per-host strings: user-space stack pointers, heap pointers, random tokens, public IPv4s."""
    n = POOL_SIZE
    stack = rng.integers(0xC0000000, 0xFFFFFFFF, n) << 4  # 0x7FF + 9 hex digits, 16-byte aligned
    heap = rng.integers(0x55000000000, 0x56FFFFFFFFF, n) << 4  # 0x55.. / 0x56.., 12 hex digits
    tokens = ["".join(t) for t in rng.choice(_ALNUM, size=(n, 10)).tolist()]
    octets = rng.integers(1, 255, size=(n, 4))
    octets[:, 0] = rng.choice(_FIRST_OCTETS, n)
    ips = [".".join(map(str, o)) for o in octets.tolist()]
    return {
        "kit": [KIT_FILES[k % len(KIT_FILES)] for k in range(n)],
        "ptr": _hex(stack, 9, "0x7FF"),
        "heap": _hex(heap, 12, "0x"),
        "token": tokens,
        "ip": ips,
    }
