"""Seeded synthetic BETH-like hosts: three splits with a scripted attack, always marked synthetic.

`generate(rows, seed)` returns the three splits as polars frames with BETH's 16 raw columns and types;
`write_synthetic(out_dir, rows, seed, fmt)` writes them as `labelled_<split>_data.synthetic.<csv|parquet>`
through `beth.data.write.write_table` (Parquet metadata says synthetic; for CSV, the file name does).

What is reproduced (published figures in beth-data-facts.md, checked by tests/data/test_synth_calibration.py):
split and host sizes (scaled by `rows`, exact at the default), the test split's (sus, evil) breakdown
and the training/validation sus counts (exact up to rounding), and the training marginals of process
names, users, mount namespaces, events, argsNum, return values and stack depths (within stated
tolerances). How: every host runs templates of real process behaviour (`synth_benign`, `synth_attack`)
as streams with row budgets; budgets of the background ("filler") templates are solved once by
non-negative least squares so that their expected process-name counts match the published ones.
Everything random comes from `numpy.random.Generator`s seeded by (seed, split, host, stream), so one
seed gives byte-identical files.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl

from beth.data import synth_attack as atk
from beth.data import synth_benign as ben
from beth.data.load import SPLITS
from beth.data.synth_hosts import SPLIT_HOSTS, Host, make_host
from beth.data.synth_render import Stream, label_counts, render
from beth.data.synth_template import Template, composition
from beth.data.write import Format, write_table
from beth.errors import UsageError
from beth.schema import PROCESS_COLUMNS, FileKind

SPLIT_ROWS: dict[str, int] = {s: sum(h.values()) for s, h in SPLIT_HOSTS.items()}  # 763,144 / 188,967 x2
PAPER_ROWS = sum(SPLIT_ROWS.values())  # 1,141,078

#: The test split's rows per (sus, evil) (paper-protocol.md).
TEST_LABELS: dict[tuple[int, int], int] = {(0, 0): 17_508, (1, 0): 13_027, (1, 1): 158_432}
#: sus rows of the benign-only splits (paper-protocol.md).
SUS_ROWS = {"training": 1_269, "validation": 786}
#: Where BETH's 1,269 training sus rows come from, read off the published counts: processNames sh 119
#: + run-parts 112 (cron.hourly), `close` 36 (userId-100 rows beyond systemd-network's 1,112), userId
#: 1000 996 (an operator's ssh sessions), atd 6 (the rest; atd appears among the sample's sus rows).
SUS_SOURCES = {"cron": 231, "close": 36, "atd": 6, "operator": 996}

#: Published training-split processName counts (beth-data-facts.md: 21 of 36 names, 762,865 rows) and
#: our guess at the 279 rows of the other 15 (small daemons seen a few times per host).
PROCESS_TARGETS: dict[str, int] = {
    "ps": 406_313,
    "systemd-udevd": 189_292,
    "sshd": 91_762,
    "systemd-journal": 20_421,
    "systemd": 17_310,
    "systemd-tmpfile": 13_014,
    "amazon-ssm-agen": 4_850,
    "snapd": 4_187,
    "cron": 4_080,
    "systemd-resolve": 3_398,
    "systemd-user-ru": 1_276,
    "systemd-timesyn": 1_208,
    "systemd-network": 1_112,
    "(tmpfiles)": 1_008,
    "ssm-agent-worke": 822,
    "poweroff": 754,
    "(time-dir)": 702,
    "systemd-logind": 602,
    "(sd-sync)": 523,
    "sh": 119,
    "run-parts": 112,
    "dbus-daemon": 11,
    "accounts-daemon": 30,
    "polkitd": 30,
    "networkd-dispat": 30,
    "irqbalance": 40,
    "multipathd": 40,
    "unattended-upgr": 20,
    "atd": 20,
    "close": 36,
}

#: Background templates of the EC2 honeypots and of the `ubuntu` VM (udev-heavy, no SSM agent).
IP_FILLERS: tuple[Callable[[], Template], ...] = (
    ben.ps_poll,
    ben.sshd_bruteforce,
    ben.journald_burst,
    ben.systemd_poll,
    ben.tmpfiles_run,
    ben.resolved_poll,
    ben.networkd_poll,
    ben.timesyncd_sync,
    ben.logind_poll,
    ben.user_runtime_dir,
    ben.ssm_agent,
    ben.ssm_worker,
    ben.snapd_poll,
    ben.cron_minute,
    *[(lambda d=d: ben.misc_daemon(*d)) for d in ben.MISC_DAEMONS],
)
UBUNTU_ONLY: tuple[Callable[[], Template], ...] = (ben.udev_worker,)
#: Templates that also run on the ubuntu VM (its few rows besides udev).
SHARED = {"journald", "systemd", "resolved", "networkd", "timesyncd", "logind", "cron"}
#: Daemons busy when logging starts at boot (the validation and test files open with their rows).
BOOT_ACTIVE = {"resolved", "networkd", "systemd", "udev-worker"}

Progress = Callable[[str, int, int], None]  # (what, done, total)
MIN_ROWS = 100


def _check_seed(seed: int) -> None:
    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")


def split_sizes(rows: int = PAPER_ROWS) -> dict[str, int]:
    """Rows per split for `rows` in total, in the paper's proportions (exactly the paper's at the default)."""
    if rows < MIN_ROWS:
        raise UsageError(
            f"--rows must be at least {MIN_ROWS:,} (enough for every split's hosts), got {rows:,}"
        )
    return dict(zip(SPLITS, apportion(rows, [SPLIT_ROWS[s] for s in SPLITS]), strict=True))


def apportion(total: int, weights: list[float] | list[int]) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest remainder, ties to the first)."""
    w = np.asarray(weights, dtype=np.float64)
    if total <= 0 or w.sum() <= 0:
        return [0] * len(w)
    exact = total * w / w.sum()
    out = np.floor(exact).astype(np.int64)
    rest = total - int(out.sum())
    order = np.lexsort((np.arange(len(w)), -(exact - out)))
    out[order[:rest]] += 1
    return out.tolist()


def generate(
    rows: int = PAPER_ROWS, seed: int = 0, progress: Progress | None = None
) -> dict[str, pl.DataFrame]:
    """The three synthetic splits ("training", "validation", "testing") with `rows` rows in total."""
    sizes = split_sizes(rows)
    _check_seed(seed)
    out: dict[str, pl.DataFrame] = {}
    for k, split in enumerate(SPLITS):
        if progress:
            progress(f"generating {split}", k, len(SPLITS))
        out[split] = _split(split, sizes[split], seed)
    if progress:
        progress("generated", len(SPLITS), len(SPLITS))
    return out


def generate_split(split: str, rows: int, seed: int = 0) -> pl.DataFrame:
    """One synthetic split with `rows` rows (hosts and labels scaled from the paper's as in `generate`)."""
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    if rows < len(SPLIT_HOSTS[split]) * 8:
        raise UsageError(f"a synthetic {split} split needs at least {len(SPLIT_HOSTS[split]) * 8} rows")
    _check_seed(seed)
    return _split(split, rows, seed)


def synthetic_note(rows: int, seed: int) -> str:
    return (
        f"SYNTHETIC data from `beth synth --rows {rows} --seed {seed}` (BETH-like hosts and attack, "
        "calibrated to published marginals); not the BETH dataset"
    )


def write_synthetic(
    out_dir: str | Path,
    rows: int = PAPER_ROWS,
    seed: int = 0,
    fmt: Format = "csv",
    progress: Progress | None = None,
) -> list[Path]:
    """Generate and write `labelled_{training,validation,testing}_data.synthetic.<fmt>` into `out_dir`."""
    if fmt not in ("csv", "parquet"):
        raise UsageError(f"synthetic data is written as csv or parquet, not {fmt!r}")
    sizes = split_sizes(rows)
    _check_seed(seed)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output directory {out}: {exc.strerror}") from exc
    paths = []
    for k, split in enumerate(SPLITS):
        if progress:
            progress(f"generating {split}", 2 * k, 2 * len(SPLITS))
        df = _split(split, sizes[split], seed)
        if progress:
            progress(f"writing {split}", 2 * k + 1, 2 * len(SPLITS))
        path = out / f"labelled_{split}_data.synthetic.{fmt}"
        try:
            write_table(df, path, FileKind.PROCESS, fmt=fmt, synthetic=True, note=synthetic_note(rows, seed))
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
        paths.append(path)
    if progress:
        progress("done", 2 * len(SPLITS), 2 * len(SPLITS))
    return paths


# --- one split ---------------------------------------------------------------------------------------


def _seed(*keys: int) -> int:
    return int(np.random.SeedSequence([abs(int(k)) for k in keys]).generate_state(1, np.uint64)[0] >> 1)


def _spread(n: int, t0: float, t1: float, rng: np.random.Generator) -> np.ndarray:
    """n instance starts spread evenly over [t0, t1), each jittered within its slot."""
    if n <= 0:
        return np.zeros(0)
    return t0 + (t1 - t0) * (np.arange(n) + rng.random(n)) / n


def _split(split: str, n: int, seed: int) -> pl.DataFrame:
    s_idx = SPLITS.index(split)
    host_rows = apportion(n, list(SPLIT_HOSTS[split].values()))
    hosts: list[Host] = []
    for i, (name, rows) in enumerate(zip(SPLIT_HOSTS[split], host_rows, strict=True)):
        rng = np.random.default_rng(_seed(seed, s_idx, i, 1))
        t0 = float(rng.uniform(123.5, 131.5))
        t1 = t0 + (float(rng.uniform(1900, 2000)) if split == "testing" else float(rng.uniform(3470, 3560)))
        hosts.append(make_host(name, i, rows, t0, t1, rng, late_start=split == "training"))
    scale = n / SPLIT_ROWS[split]
    label_budget = _label_budgets(split, n, hosts)
    streams: list[Stream] = []
    for host in hosts:
        if host.rows:
            streams += _plan_host(split, host, scale, label_budget[host.index], seed, s_idx)
    df = render(streams, hosts, np.random.default_rng(_seed(seed, s_idx, 999)))
    return _order(df, split)


def _label_budgets(split: str, n: int, hosts: list[Host]) -> list[dict[tuple[int, int], int]]:
    """Rows per (sus, evil) per host: the published label counts scaled to the split's size."""
    if split == "testing":
        counts = apportion(n, list(TEST_LABELS.values()))
        return [dict(zip(TEST_LABELS, counts, strict=True))]
    sus = round(n * SUS_ROWS[split] / SPLIT_ROWS[split])
    per_host = apportion(sus, [1.0 if h.rows else 0.0 for h in hosts])
    per_host = [min(s, h.rows // 2) for s, h in zip(per_host, hosts, strict=True)]
    return [{(1, 0): s, (0, 0): h.rows - s} for s, h in zip(per_host, hosts, strict=True)]


def _plan_host(split: str, host: Host, scale: float, labels: dict, seed: int, s_idx: int) -> list[Stream]:
    """Streams of one host: scripted/labelled ones first, then background fillers to its exact size."""
    rng = np.random.default_rng(_seed(seed, s_idx, host.index, 2))
    n_stream = iter(range(10_000))

    def stream(
        t: Template,
        starts: np.ndarray | list[float],
        budget: int | None = None,
        count: str = "all",
        label: tuple[int, int] | None = None,
    ) -> Stream:
        return Stream(
            t,
            host,
            np.asarray(starts, float),
            budget,
            count,
            label,
            _seed(seed, s_idx, host.index, 3, next(n_stream)),
        )

    def script(t: Template, start: float, factor: float) -> Stream:
        """One run of t from `start`, cut to `factor` of its expected length when factor < 1."""
        budget = None if factor >= 1 else max(1, math.ceil(t.mean_rows * factor))
        return stream(t, [start], budget)

    fixed: list[Stream] = []
    if split == "testing":
        fillers_by_label, fixed = _plan_test(host, labels, scale, rng, stream, script)
    else:
        sus = labels[(1, 0)]
        for (t, per_inst), budget in zip(
            _sus_templates(split), apportion(sus, list(SUS_SOURCES.values())), strict=True
        ):
            if budget:
                n = max(1, math.ceil(budget / per_inst))
                fixed.append(stream(t, _spread(n, host.t0 + 60, host.t1 - 60, rng), budget, "sus"))
        # Boot and shutdown work (BETH's training hosts were powered off at the end of the capture).
        # Scaled down, a host runs it whole with probability `scale` (never cut after its first fork).
        boot_and_end = [(ben.timesyncd_start(), host.t0 + float(rng.uniform(0.5, 4)))]
        if split == "training":
            boot_and_end.append((ben.poweroff(), host.t1 + 20))
        for t, start in boot_and_end:
            if rng.random() < scale and t.mean_rows <= 0.05 * host.rows:
                fixed.append(script(t, start, 1.0))
        used = sum(sum(label_counts(s).values()) for s in fixed)
        fillers_by_label = {(0, 0): max(host.rows - used, 0)}
    out = list(fixed)
    templates, weights = _profile("test" if split == "testing" else host.kind)
    for t, budget in zip(templates, apportion(fillers_by_label[(0, 0)], weights), strict=True):
        if budget:
            n = max(1, round(budget / t.mean_rows))
            starts = _spread(n, host.t0, host.t1, rng)
            if t.name in BOOT_ACTIVE:  # logging starts at boot, amid these daemons' start-up work
                starts[0] = host.t0 + float(rng.uniform(0, 0.05))
            out.append(stream(t, starts, budget))
    return out


def _sus_templates(split: str = "training") -> list[tuple[Template, float]]:
    """The labelled templates of the benign splits, in SUS_SOURCES order, with sus rows per instance.

    Validation's sessions end with the monitor's setregid/setreuid (its sample rows show them);
    BETH's training split has neither event.
    """
    session = ben.operator_session(restore_ids=split != "training")
    out = []
    for t in (ben.cron_hourly(), ben.close_thread(), ben.atd_check(), session):
        per = sum(v for (_, label), v in composition(t).items() if label[0] == 1)
        out.append((t, per))
    return out


def _plan_test(
    host: Host, labels: dict, scale: float, rng: np.random.Generator, stream: Callable, script: Callable
) -> tuple[dict, list[Stream]]:
    """The attack timeline of the test host, then fillers that make each label's count exact."""
    # The whole attack script when the label budgets have room for it, else cut down until they do.
    lo, hi = atk.ACTIVITY
    activity = (max(2, round(lo * min(scale, 1))), max(3, round(hi * min(scale, 1))))
    shrink = 1.0
    for _ in range(40):
        t = max(host.t0 + 0.5, float(rng.uniform(131.5, 133.0)))  # BETH: first evil rows ~132 s after boot
        login = t + float(rng.uniform(15, 40))
        sftp = login + float(rng.uniform(150, 240))
        unpack = sftp + float(rng.uniform(420, 480))  # "unpacks the archive ~7.5 minutes later"
        tsm = unpack + float(rng.uniform(60, 100))
        fixed = [
            script(atk.teardown(), t, shrink),
            script(atk.login_and_look(activity), login, shrink),
            script(atk.sftp_fetch(activity), sftp, shrink),
            script(atk.unpack(activity), unpack, shrink),
            script(atk.tsm_start(), tsm, shrink),
        ]
        cron_t = host.t0 + float(rng.uniform(300, host.t1 - host.t0 - 100))
        fixed.append(script(ben.cron_hourly(), cron_t, shrink))
        kit = [atk.kit_command(name) for name in atk.KIT_COMMANDS]
        weights = [w for *_, w in atk.KIT_COMMANDS.values()]
        for t_kit, budget in zip(kit, apportion(round(atk.KIT_EVIL_ROWS * scale), weights), strict=True):
            if budget:
                n = max(1, round(budget / t_kit.mean_rows))
                fixed.append(stream(t_kit, _spread(n, unpack + 60, host.t1, rng), budget))
        got: dict[tuple[int, int], int] = {}
        for s in fixed:
            for k, v in label_counts(s).items():
                got[k] = got.get(k, 0) + v
        left = {k: labels[k] - got.get(k, 0) for k in TEST_LABELS}
        if min(left.values()) >= 0:
            break
        shrink /= 2
    else:  # a test split of a few dozen rows: no room for the script, only tsm's threads
        fixed, left = [], dict(labels)
    evil = left[(1, 1)]
    if evil:
        n_threads = int(np.clip(round(evil / atk.tsm_thread().mean_rows), 1, 128))
        starts = tsm + 0.01 + 0.0004 * np.arange(n_threads) + rng.uniform(0, 0.2)
        fixed.append(stream(atk.tsm_thread(), starts, evil))
    if left[(1, 0)]:
        t = ben.sshd_bruteforce()
        n = max(1, round(left[(1, 0)] / t.mean_rows))
        fixed.append(stream(t, _spread(n, host.t0 + 10, host.t1, rng), left[(1, 0)], "all", (1, 0)))
    return {(0, 0): left[(0, 0)]}, fixed


# --- calibration of the background templates ----------------------------------------------------------


@cache
def _calibration() -> dict[str, dict[str, float]]:
    """Training rows per background template, solved by NNLS against PROCESS_TARGETS, split by host kind.

    The labelled and scripted templates' expected rows (sus sources, poweroff, time-dir) are taken off
    the targets first; what is left is matched by the fillers' expected process-name mix.
    """
    from scipy.optimize import nnls  # here, not at the top: `beth --help` should not pay for scipy

    fillers = [f() for f in (*IP_FILLERS, *UBUNTU_ONLY)]
    names = list(PROCESS_TARGETS)
    target = np.array([PROCESS_TARGETS[k] for k in names], dtype=np.float64)
    n_train_hosts = len(SPLIT_HOSTS["training"])
    fixed: list[tuple[Template, float]] = [
        (ben.poweroff(), n_train_hosts),
        (ben.timesyncd_start(), n_train_hosts),
    ]
    for (t, per), rows in zip(_sus_templates(), SUS_SOURCES.values(), strict=True):
        fixed.append((t, rows / per))
    for t, n in fixed:
        for (comm, _), v in composition(t).items():
            if comm in names:
                target[names.index(comm)] -= n * v
    a = np.zeros((len(names), len(fillers)))
    for j, t in enumerate(fillers):
        for (comm, _), v in composition(t).items():
            if comm in names:
                a[names.index(comm), j] += v
    # Weigh relative errors, so that small processes count as much as ps.
    w = 1.0 / np.sqrt(np.maximum(target, 30.0))
    inst, _ = nnls(a * w[:, None], np.maximum(target, 0.0) * w)
    rows = {t.name: float(k * t.mean_rows) for t, k in zip(fillers, inst, strict=True)}
    # The ubuntu VM: all udev workers plus a slice of the shared daemons; the EC2 hosts: the rest.
    ubuntu_rows = SPLIT_HOSTS["training"]["ubuntu"]
    udev = rows[ben.udev_worker().name]
    shared = {k: v for k, v in rows.items() if k in SHARED}
    spare = max(ubuntu_rows - udev - SUS_ROWS["training"] / n_train_hosts - 300, 0.0)
    share = spare / max(sum(shared.values()), 1.0)
    ubuntu = {ben.udev_worker().name: udev, **{k: v * share for k, v in shared.items()}}
    ip = {k: v - ubuntu.get(k, 0.0) for k, v in rows.items() if k != ben.udev_worker().name}
    test = {k: v for k, v in ip.items() if k != ben.sshd_bruteforce().name}
    return {"ubuntu": ubuntu, "ip": ip, "test": test}


def _profile(kind: str) -> tuple[list[Template], list[float]]:
    by_name = {t.name: t for t in (f() for f in (*IP_FILLERS, *UBUNTU_ONLY))}
    rows = _calibration()[kind]
    names = [k for k, v in rows.items() if v > 0]
    return [by_name[k] for k in names], [rows[k] for k in names]


def _order(df: pl.DataFrame, split: str) -> pl.DataFrame:
    """BETH's row order: per host from boot; the training file lists its sus rows first, by host."""
    keys = [pl.col("_host"), pl.col("timestamp"), pl.col("_seq")]
    if split == "training":
        keys = [pl.col("sus") == 0, *keys]
    return df.sort(keys, maintain_order=True).select(PROCESS_COLUMNS)
