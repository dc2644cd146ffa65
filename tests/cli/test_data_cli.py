"""`beth info` and `beth convert` as a user runs them: real process, real exit codes, real output."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from beth.data.load import discover, load
from cli_runner import run_beth as beth


def test_info_prints_the_label_table(samples: Path) -> None:
    res = beth(
        "info", samples / "labelled_testing_data.head100.csv", samples / "labelled_training_data.head100.csv"
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    training = next(line for line in lines if line.startswith("│ training"))
    testing = next(line for line in lines if line.startswith("│ testing"))
    assert lines.index(training) < lines.index(testing)  # splits in the paper's order
    assert "87 (87.0%)" in testing and "9 (9.0%)" in testing and "4 (4.0%)" in testing
    assert "100 (100.0%)" in training
    assert "ip-10-100-1-217" in res.stdout
    assert "SYNTHETIC" not in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "/nonexistent/x.csv"], "/nonexistent/x.csv: no such file or directory"),
        (["convert", "/nonexistent", "--out", "/tmp/x"], "/nonexistent: no such file or directory"),
        (["info", "--on-bad-rows", "maybe", "x.csv"], "Invalid value for '--on-bad-rows'"),
        (["synth", "/tmp/x", "--rows", "many"], "Invalid value for '--rows'"),
        (["bench"], "Missing option '--data'. (see 'beth bench --help')"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_errors_are_one_line(args: list[str], message: str) -> None:
    res = beth(*args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"beth: error: {message}"), res.stderr
    assert "Traceback" not in res.stderr


def test_bad_row_error_and_skip(samples: Path, tmp_path: Path) -> None:
    lines = (samples / "labelled_validation_data.head100.csv").read_text().splitlines(keepends=True)
    lines[4] = lines[4].replace(",", ",oops", 1)
    bad = tmp_path / "labelled_validation_data.csv"
    bad.write_text("".join(lines))
    res = beth("info", bad)
    assert res.returncode == 2
    message = res.stderr.strip()
    assert message.startswith(f"beth: error: {bad}, line 5, column 2 (processId): not an integer: 'oops")
    assert len(message.splitlines()) == 1
    res = beth("info", bad, "--on-bad-rows", "skip")
    assert res.returncode == 0
    assert "skipped 1 malformed row(s):" in res.stderr and "line 5" in res.stderr
    validation = next(line for line in res.stdout.splitlines() if line.startswith("│ validation"))
    assert validation.rstrip(" │").endswith("99")  # 100 rows, one skipped


def test_convert_round_trips_and_keeps_the_synthetic_mark(samples: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(samples / "labelled_testing_data.head100.csv", src / "labelled_testing_data.synthetic.csv")
    shutil.copy(samples / "labelled_2021may-dns.head100.csv", src)
    res = beth("convert", src, "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    converted = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in converted] == [
        "labelled_2021may-dns.head100.parquet",
        "labelled_testing_data.synthetic.parquet",
    ]
    for original, parquet in zip(sorted(src.iterdir()), converted, strict=True):
        assert load(parquet).equals(load(original))
    assert discover(converted[1])[0].synthetic
    res = beth("info", converted[1])
    assert "SYNTHETIC DATA" in res.stdout


def test_convert_checks_literals(samples: Path, tmp_path: Path) -> None:
    lines = (samples / "labelled_training_data.head100.csv").read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace("{'name'", "{'name", 1)
    bad = tmp_path / "x.csv"
    bad.write_text("".join(lines))
    res = beth("convert", bad, "--out", tmp_path / "out")
    assert res.returncode == 2
    assert "line 3, column 14 (args): malformed args" in res.stderr
    res = beth("convert", bad, "--out", tmp_path / "out", "--on-bad-rows", "skip")
    assert res.returncode == 0
    assert load(tmp_path / "out" / "x.parquet").height == 99
    assert "skipped 1 malformed row(s)" in res.stderr
