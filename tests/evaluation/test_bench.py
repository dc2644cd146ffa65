"""The harness end to end on small split files: result files, Table-5 layout, provenance, errors."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console
from rich.progress import Progress

from beth.detectors import registry
from beth.detectors.classic import WhitenedIsolationForest
from beth.errors import DataError, UsageError
from beth.evaluation.bench import BenchResult, run_benchmark

from .splits import write_splits


class RowDependentForest(WhitenedIsolationForest):
    """The isolation forest, declared row-dependent: the harness must then score every row."""

    row_independent = False


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_splits(tmp_path_factory.mktemp("splits"))


@pytest.fixture(scope="module")
def result(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[BenchResult, Path]:
    out = tmp_path_factory.mktemp("results")
    return run_benchmark(data, "rcov,svm,ifor", seeds=3, out_dir=out), out


def test_writes_the_three_result_files_naming_protocol_and_label(result: tuple[BenchResult, Path]) -> None:
    res, out = result
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    measured = [r for r in rows if r["data"] == "synthetic"]
    # 3 methods x 2 labels x (paper auroc + scores auroc + scores auprc) x (ensemble + 3 seeds + mean + std)
    assert len(measured) == 3 * 2 * 3 * 6
    assert all(r["protocol"] in ("paper", "scores") and r["label"] in ("sus", "evil") for r in measured)
    published = [r for r in rows if r["data"].startswith("published")]
    assert [(r["method"], r["value"]) for r in published] == [
        ("rcov", "0.519"),
        ("svm", "0.605"),
        ("ifor", "0.85"),
    ]
    ens = next(
        r
        for r in measured
        if (r["method"], r["protocol"], r["label"], r["aggregate"]) == ("ifor", "paper", "sus", "ensemble")
    )
    assert float(ens["value"]) == res.value("ifor", "paper", "sus")


def test_json_records_seeds_versions_hashes_timings_and_protocols(
    result: tuple[BenchResult, Path], data: Path
) -> None:
    _, out = result
    doc = json.loads((out / "results.json").read_text())
    assert doc["seeds"] == [1, 2, 3]
    assert set(doc["protocols"]) == {"paper", "scores"} and doc["labels"] == ["sus", "evil"]
    assert doc["data"]["synthetic"] is True
    for split, info in doc["data"]["splits"].items():
        path = data / f"labelled_{split}_data.synthetic.csv"
        assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert doc["data"]["splits"]["testing"]["positives"] == {"sus": 450, "evil": 400}
    assert {"scikit-learn", "numpy", "polars", "beth", "python"} <= set(doc["versions"])
    stages = doc["timings_seconds"]["stages"]
    assert {
        "hash",
        "load training",
        "load testing",
        "encode",
        "fold",
        "fit rcov",
        "score ifor",
        "total",
    } <= set(stages)
    assert len(doc["timings_seconds"]["per_seed"]["ifor"]["fit"]) == 3
    assert [m["name"] for m in doc["methods"]] == ["rcov", "svm", "ifor"]
    assert all(r["protocol"] and r["label"] for r in doc["results"])


def test_markdown_is_table5_shaped_with_both_protocols_labels_and_seed_spread(
    result: tuple[BenchResult, Path],
) -> None:
    res, out = result
    md = (out / "results.md").read_text()
    assert md.startswith("# Anomaly-detection benchmark on SYNTHETIC data, not the BETH dataset")
    assert "## AUROC on test label `sus` (the paper's Table 5)" in md
    assert "## AUROC on test label `evil`" in md and "## AUPRC (`scores` protocol)" in md
    header = next(line for line in md.splitlines() if line.startswith("| Method | `paper` AUROC `sus`"))
    assert header.count("`paper`") == 3 and header.count("`scores`") == 2 and "Published" in header
    body = md.split(header)[1].splitlines()[2:5]
    assert [row.split(" | ")[0] for row in body] == [
        "| Robust covariance",
        "| One-class SVM",
        "| Isolation forest",
    ]
    mean, std = res.seed_stats("ifor", "scores", "sus")
    iforest = body[2].split(" | ")
    assert (
        iforest[1] == f"{res.value('ifor', 'paper', 'sus'):.3f}" and iforest[4] == f"{mean:.3f} ± {std:.3f}"
    )
    assert iforest[5] == "0.850 |"
    assert "for reference only" in md


def test_terminal_table_names_protocols_and_says_synthetic(result: tuple[BenchResult, Path]) -> None:
    res, _ = result
    console = Console(file=io.StringIO(), width=200)
    console.print(res.table())
    text = console.file.getvalue()
    assert "SYNTHETIC data, not the BETH dataset" in text
    assert "paper: ensemble" in text and "scores: 3 seeds" in text and "AUROC, test label evil" in text


def test_detector_trained_on_benign_rows_ranks_attack_rows_first(result: tuple[BenchResult, Path]) -> None:
    res, _ = result
    assert res.value("ifor", "scores", "evil") > 0.9
    assert res.value("ifor", "scores", "sus") > 0.9


def test_row_dependent_detectors_are_scored_on_every_row_with_the_same_numbers(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = registry.Method("rows", "Forest, every row", f"{__name__}:RowDependentForest")
    monkeypatch.setitem(registry.METHODS, "rows", rows)
    a = run_benchmark(data, "ifor", seeds=2)
    b = run_benchmark(data, "rows", seeds=2)
    assert [v.value for v in a.values] == [v.value for v in b.values]


def test_progress_bar_reaches_its_total(data: Path) -> None:
    with Progress(console=Console(file=io.StringIO())) as progress:
        run_benchmark(data, "svm", seeds=2, progress=progress)
    (task,) = progress.tasks
    assert task.total == task.completed == 2 + 2 * 2 + 1


def test_missing_split_file_is_named(tmp_path: Path) -> None:
    write_splits(tmp_path, skip=("validation",))
    with pytest.raises(DataError, match=r"missing split file\(s\): labelled_validation_data.csv"):
        run_benchmark(tmp_path, "ifor", seeds=1)


@pytest.mark.parametrize(("label", "kind"), [("evil", "positive"), ("sus", "negative")])
def test_test_split_without_both_classes_is_named_before_fitting(
    tmp_path: Path, label: str, kind: str
) -> None:
    write_splits(tmp_path)
    path = tmp_path / "labelled_testing_data.synthetic.csv"
    df = pl.read_csv(path, schema_overrides={"stackAddresses": pl.String, "args": pl.String})
    df.with_columns(pl.lit(0 if kind == "positive" else 1, dtype=pl.Int8).alias(label)).write_csv(path)
    with pytest.raises(DataError, match=f"{path}: no {kind} rows for label '{label}'.*undefined"):
        run_benchmark(tmp_path, "rcov", seeds=1)


def test_bad_arguments_fail_before_loading(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown method 'iforest'"):
        run_benchmark(tmp_path, "iforest")
    with pytest.raises(UsageError, match="seeds must be distinct"):
        run_benchmark(tmp_path, "ifor", seeds=[1, 1])
    with pytest.raises(UsageError, match="jobs must be"):
        run_benchmark(tmp_path, "ifor", n_jobs=0)
    with pytest.raises(UsageError, match="parameters given for methods not run: svm"):
        run_benchmark(tmp_path, "ifor", params={"svm": {"nu": 0.1}})


def test_real_data_is_not_titled_synthetic(tmp_path: Path) -> None:
    write_splits(tmp_path, synthetic=False)
    res = run_benchmark(tmp_path, "svm", seeds=1)
    assert not res.synthetic
    assert res.data_title == "BETH-format split files (not the published BETH splits: row counts differ)"
    np.testing.assert_equal(res.splits["testing"].rows, 1000)
