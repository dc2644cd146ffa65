"""`beth synth` as a user runs it: a real process, real files, real exit codes."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from beth.data.load import find_splits
from beth.data.synth import split_sizes
from cli_runner import run_beth as beth


def test_synth_writes_three_marked_splits(tmp_path: Path) -> None:
    res = beth("synth", tmp_path / "out", "--rows", "900", "--seed", "4", "--format", "parquet")
    assert res.returncode == 0, res.stderr
    assert "SYNTHETIC" in res.stdout and "Traceback" not in res.stderr
    splits = find_splits(tmp_path / "out")
    for split, n in split_sizes(900).items():
        assert f"{n:,}" in res.stdout
        meta = pq.read_metadata(splits[split].path)
        assert meta.num_rows == n and meta.metadata[b"beth.synthetic"] == b"1"


def test_synth_csv_is_the_same_as_the_library_writes(tmp_path: Path) -> None:
    from beth.data.synth import write_synthetic

    res = beth("synth", tmp_path / "cli", "-n", "600", "-s", "2")
    assert res.returncode == 0, res.stderr
    for lib in write_synthetic(tmp_path / "lib", rows=600, seed=2):
        assert (tmp_path / "cli" / lib.name).read_bytes() == lib.read_bytes()


def test_synth_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for args, message in (
        (["--rows", "10"], "--rows must be at least 100"),
        (["--seed", "-3"], "--seed must be a non-negative integer"),
    ):
        res = beth("synth", tmp_path / "o", *args)
        assert res.returncode == 2
        (line,) = res.stderr.strip().splitlines()
        assert line.startswith(f"beth: error: {message}")
    res = beth("synth", tmp_path / "file", "--rows", "300")
    assert (
        res.returncode == 2
        and res.stderr.strip() == f"beth: error: {tmp_path / 'file'} exists and is not a directory"
    )


def test_synth_help_explains_every_option() -> None:
    res = beth("synth", "--help")
    assert res.returncode == 0
    for option in ("--rows", "--seed", "--format", "763,144", "byte-identical", "SYNTHETIC"):
        assert option in res.stdout
