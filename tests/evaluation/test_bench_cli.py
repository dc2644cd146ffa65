"""`beth bench` as a user runs it: real process, exit codes, one-line errors, files written."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cli_runner import run_beth as beth

from .splits import write_splits


def one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    (line,) = [line for line in res.stderr.splitlines() if line.strip()]
    return line


def test_bench_runs_end_to_end_and_writes_results(tmp_path: Path) -> None:
    data = write_splits(tmp_path / "data")
    res = beth("bench", "--data", data, "--methods", "svm,ifor", "--seeds", "2", "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "results.csv",
        "results.json",
        "results.md",
    ]
    assert "SYNTHETIC data, not the BETH dataset" in res.stdout
    assert "Isolation forest" in res.stdout and "Robust covariance" not in res.stdout
    assert "paper: ensemble" in res.stdout and "AUROC, test label evil" in res.stdout
    assert f"wrote {tmp_path / 'out' / 'results.md'}" in res.stderr


def test_missing_split_is_one_line_naming_the_file(tmp_path: Path) -> None:
    write_splits(tmp_path, skip=("testing",))
    line = one_line_error(beth("bench", "--data", tmp_path, "--out", tmp_path / "out"))
    assert line == f"beth: error: {tmp_path}: missing split file(s): labelled_testing_data.csv"
    assert not (tmp_path / "out").exists()


def test_unknown_method_is_one_line_listing_known_methods(tmp_path: Path) -> None:
    line = one_line_error(beth("bench", "--data", tmp_path, "--methods", "rcov,lof"))
    assert line == "beth: error: unknown method 'lof'; known methods: rcov, svm, ifor, dose"


def test_test_split_without_positives_is_one_line(tmp_path: Path) -> None:
    write_splits(tmp_path, test_attack=0, sus_only=0)
    line = one_line_error(beth("bench", "--data", tmp_path, "--methods", "svm", "--seeds", "1"))
    assert line.startswith(
        f"beth: error: {tmp_path / 'labelled_testing_data.synthetic.csv'}: no positive rows"
    )
    assert "label 'sus'" in line and "AUROC and AUPRC are undefined" in line


def test_help_explains_every_option() -> None:
    res = beth("bench", "--help")
    assert res.returncode == 0
    for option in ("--data", "--methods", "--seeds", "--out", "--jobs"):
        assert option in res.stdout
    assert "paper" in res.stdout and "scores" in res.stdout and "rcov (Robust covariance)" in res.stdout
