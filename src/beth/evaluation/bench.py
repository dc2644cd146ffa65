"""The benchmark harness: methods x seeds on the three split files -> the paper's Table 5, both protocols.

`run_benchmark(data_dir, methods, seeds, out_dir)` trains every method's seed ensemble on the
training split (the validation split reaches only methods that use it), scores the test split and
computes AUROC/AUPRC under both protocols (`paper`, `scores`) for both labels (`sus`, `evil`), per
seed and for the ensemble. It writes results.md / results.csv / results.json (see `report.py`).

Why it is fast: the splits are loaded once with only the needed columns; the encoded test split is
folded to its distinct rows once (a few hundred on BETH) and every row-independent member scores only
those; the metrics run on the folded rows with per-row label counts. All of it is exact: the
numbers equal those of scoring every row (tests and benchmarks/bench_classic.py hold them equal).
"""

from __future__ import annotations

import hashlib
import inspect
import platform
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from beth.data.load import BethFile, find_splits, load
from beth.detectors.base import SeedEnsemble, check_jobs, seeds_for
from beth.detectors.registry import CLASSICAL, Method, parse_methods
from beth.errors import UsageError
from beth.evaluation.metrics import LABELS, MetricValue, Targets, evaluate, seed_summary
from beth.features import FEATURES, DistinctRows, distinct_rows, encode, to_matrix

if TYPE_CHECKING:
    from rich.progress import Progress

#: Row counts of the published Kaggle split files (paper-protocol.md).
KAGGLE_ROWS = {"training": 763_144, "validation": 188_967, "testing": 188_967}


@dataclass(frozen=True)
class SplitInfo:
    """One split file as the benchmark used it."""

    split: str
    path: str
    sha256: str
    rows: int
    synthetic: bool
    distinct_rows: int | None = None  # of the encoded matrix (None: not loaded)
    positives: dict[str, int] = field(default_factory=dict)  # label -> rows labelled 1 (test only)


@dataclass
class Prepared:
    """The encoded splits a benchmark runs on, folded, with the test labels as per-row counts."""

    splits: dict[str, SplitInfo]
    X_train: np.ndarray
    X_val: np.ndarray | None
    X_test: np.ndarray
    train_fold: DistinctRows
    test_fold: DistinctRows
    targets: list[Targets]  # per distinct test row
    test_labels: dict[str, np.ndarray]  # label -> 0/1 per test row


@dataclass
class BenchResult:
    """Everything a benchmark run produced: numbers, provenance, timings."""

    data_dir: str
    splits: dict[str, SplitInfo]
    methods: list[Method]
    seeds: tuple[int, ...]
    labels: tuple[str, ...]
    values: list[MetricValue]
    timings: dict[str, float]  # stage -> seconds (wall)
    member_timings: dict[str, dict[str, list[float]]]  # method -> fit/calibrate/score -> per seed
    fit_warnings: dict[str, list[str]]  # method -> distinct warnings raised while fitting
    versions: dict[str, str]
    params: dict[str, dict[str, Any]]
    n_jobs: int | None = None

    @property
    def synthetic(self) -> bool:
        """True when any split file is marked synthetic (never report those numbers as BETH)."""
        return any(s.synthetic for s in self.splits.values())

    @property
    def is_kaggle_sized(self) -> bool:
        """Whether the split files have the published BETH row counts."""
        return all(self.splits[s].rows == n for s, n in KAGGLE_ROWS.items() if s in self.splits)

    @property
    def data_title(self) -> str:
        """What the data is, as every heading must say it."""
        if self.synthetic:
            return "SYNTHETIC data, not the BETH dataset"
        if self.is_kaggle_sized:
            return "the BETH dataset (split files with the published Kaggle row counts)"
        return "BETH-format split files (not the published BETH splits: row counts differ)"

    def table(self) -> Any:
        """The results as rich renderables for the terminal (`console.print(result.table())`)."""
        from beth.evaluation.report import terminal

        return terminal(self)

    def value(
        self,
        method: str,
        protocol: str,
        label: str,
        metric: str = "auroc",
        aggregate: str = "ensemble",
        seed: int | None = None,
    ) -> float:
        """One number, e.g. `value("ifor", "paper", "sus")` (the ensemble AUROC on test sus)."""
        for v in self.values:
            key = (v.method, v.protocol, v.label, v.metric, v.aggregate, v.seed)
            if key == (method, protocol, label, metric, aggregate, seed):
                return v.value
        raise UsageError(f"no {metric} for method {method!r}, protocol {protocol!r}, label {label!r}")

    def seed_stats(
        self, method: str, protocol: str, label: str, metric: str = "auroc"
    ) -> tuple[float, float]:
        """Mean and sample std over the seeds of one metric."""
        return seed_summary(
            [
                v
                for v in self.values
                if (v.method, v.protocol, v.label, v.metric) == (method, protocol, label, metric)
            ]
        )


def sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (recorded so a result names exactly the data it came from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    """Versions of what produced a result."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("beth", "numpy", "scipy", "scikit-learn", "polars", "joblib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


class _Steps:
    """Advance one rich progress task (or nothing) and time named stages."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.task = progress.add_task("benchmark", total=total) if progress is not None else None
        self.timings: dict[str, float] = {}

    def say(self, text: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=text)

    def advance(self, n: int = 1) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, n)

    @contextmanager
    def stage(self, name: str, text: str | None = None, steps: int = 0):
        self.say(text or name)
        t0 = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
        self.advance(steps)


def prepare(
    files: Mapping[str, BethFile],
    *,
    need_validation: bool,
    labels: Sequence[str] = LABELS,
    steps: _Steps | None = None,
) -> Prepared:
    """Load, hash, encode and fold the split files; check the test labels before any fitting."""
    steps = steps or _Steps(None, 0)
    with steps.stage("hash", "hashing the split files"):
        digests = {s: sha256(f.path) for s, f in files.items()}
    matrices: dict[str, np.ndarray] = {}
    label_columns: dict[str, np.ndarray] = {}
    rows: dict[str, int] = {}
    for split, bf in files.items():
        if split == "validation" and not need_validation:
            rows[split] = -1
            continue
        extra = list(labels) if split == "testing" else []
        with steps.stage(f"load {split}", f"loading {bf.path.name}", steps=1):
            df = load(bf.path, columns=[*FEATURES, *extra])
        with steps.stage("encode", f"encoding {split}"):
            matrices[split] = to_matrix(encode(df))
            for label in extra:
                label_columns[label] = df.get_column(label).to_numpy()
        rows[split] = df.height
    with steps.stage("fold", "folding to distinct rows"):
        train_fold = distinct_rows(matrices["training"])
        test_fold = distinct_rows(matrices["testing"])
    test_path = files["testing"].path
    targets = []
    for label in labels:
        t = Targets.from_labels(label, label_columns[label], test_fold)
        t.check(test_path)
        targets.append(t)
    distinct = {"training": len(train_fold.rows), "testing": len(test_fold.rows)}
    if "validation" in matrices:
        distinct["validation"] = len(distinct_rows(matrices["validation"]).rows)
    splits = {
        s: SplitInfo(
            split=s,
            path=str(f.path),
            sha256=digests[s],
            rows=rows[s] if rows[s] >= 0 else _count_rows(f),
            synthetic=f.synthetic,
            distinct_rows=distinct.get(s),
            positives={t.label: t.positives for t in targets} if s == "testing" else {},
        )
        for s, f in files.items()
    }
    return Prepared(
        splits,
        matrices["training"],
        matrices.get("validation"),
        matrices["testing"],
        train_fold,
        test_fold,
        targets,
        label_columns,
    )


def _count_rows(bf: BethFile) -> int:
    """Rows of a split that was not loaded (read one narrow column)."""
    return load(bf.path, columns=["eventId"]).height


def run_benchmark(
    data_dir: str | Path,
    methods: str | Sequence[str] = CLASSICAL,
    seeds: int | Sequence[int] = 5,
    out_dir: str | Path | None = None,
    *,
    progress: Progress | None = None,
    n_jobs: int | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    labels: Sequence[str] = LABELS,
    resume: bool = False,
) -> BenchResult:
    """Run the benchmark on the split files in `data_dir`; write results there if `out_dir` is given.

    `methods`: registered names ("rcov,svm,ifor" or a list); `seeds`: a count (1..n, the paper's 5)
    or explicit seeds; `n_jobs`: members fitted in parallel processes (None: one after another);
    `params`: per-method detector parameters; `progress`: a rich Progress to advance.
    Methods that keep files (a `work_dir` parameter: dose's checkpoints and statistics) keep them in
    `out_dir/work/<method>`; `resume=True` lets them reuse what a run with the same inputs left there.
    Raises UsageError (unknown method, bad seeds) or DataError (missing split file, a test label
    without positives or negatives) before any model is fitted.
    """
    chosen = parse_methods(methods)
    seed_list = seeds_for(seeds) if isinstance(seeds, int) else tuple(seeds)
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise UsageError(f"seeds must be distinct and at least one, not {list(seed_list)}")
    unknown = set(params or {}) - {m.name for m in chosen}
    if unknown:
        raise UsageError(f"parameters given for methods not run: {', '.join(sorted(unknown))}")
    params = {m.name: dict((params or {}).get(m.name, {})) for m in chosen}
    if resume and out_dir is None:
        raise UsageError("resume needs an output directory: it reuses the files a run left there")
    for m in chosen:
        if out_dir is not None and "work_dir" in inspect.signature(m.factory()).parameters:
            params[m.name].setdefault("work_dir", str(Path(out_dir) / "work" / m.name))
            params[m.name].setdefault("resume", resume)
    check_jobs(n_jobs, "jobs")
    files = find_splits(data_dir)
    need_val = any(m.uses_validation for m in chosen)
    n_loads = 2 + int(need_val)
    steps = _Steps(progress, n_loads + 2 * len(chosen) * len(seed_list) + 1)
    t_start = time.perf_counter()
    data = prepare(files, need_validation=need_val, labels=labels, steps=steps)

    values: list[MetricValue] = []
    member_timings: dict[str, dict[str, list[float]]] = {}
    fit_warnings: dict[str, list[str]] = {}
    for method in chosen:
        times: dict[str, list[float]] = {"fit": [], "calibrate": [], "score": []}
        member_timings[method.name] = times

        def on_member(stage: str, seed: int, seconds: float, method: Method = method, times=times) -> None:
            times[stage].append(seconds)
            if stage != "calibrate":
                steps.advance()
            nxt = {"fit": "fitting", "calibrate": "fitting", "score": "scoring"}[stage]
            steps.say(f"{method.title}: {nxt} (seed {seed} done)")

        ens = SeedEnsemble(method.name, seed_list, params[method.name], n_jobs=n_jobs)
        with steps.stage(f"fit {method.name}", f"{method.title}: fitting {len(seed_list)} seeds"):
            ens.fit(data.X_train, X_val=data.X_val, fold=data.train_fold, on_member=on_member)
        with steps.stage(f"score {method.name}", f"{method.title}: scoring the test split"):
            distinct = ens.row_independent
            outputs = ens.outputs(data.X_test, fold=data.test_fold, distinct=distinct, on_member=on_member)
            targets = data.targets if distinct else _row_targets(data)
        with steps.stage(f"metrics {method.name}", f"{method.title}: metrics"):
            values.extend(evaluate(method.name, outputs, targets))
        fit_warnings[method.name] = sorted({w for m in ens.members_ for w in getattr(m, "fit_warnings_", [])})

    steps.timings["total"] = time.perf_counter() - t_start
    result = BenchResult(
        data_dir=str(data_dir),
        splits=data.splits,
        methods=chosen,
        seeds=seed_list,
        labels=tuple(labels),
        values=values,
        timings=steps.timings,
        member_timings=member_timings,
        fit_warnings=fit_warnings,
        versions=versions(),
        params=params,
        n_jobs=n_jobs,
    )
    if out_dir is not None:
        from beth.evaluation.report import write_results

        with steps.stage("write", "writing results", steps=1):
            write_results(result, out_dir)
    else:
        steps.advance()
    return result


def _row_targets(data: Prepared) -> list[Targets]:
    """Per-row targets, for methods whose scores cannot be folded."""
    return [Targets.from_labels(label, y) for label, y in data.test_labels.items()]
