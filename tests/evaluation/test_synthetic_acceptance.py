"""Acceptance on beth's synthetic dataset: a detector trained on the benign splits finds the attack."""

from __future__ import annotations

from pathlib import Path

import pytest

from beth.data.synth import write_synthetic
from beth.evaluation.bench import run_benchmark
from cli_runner import run_beth as beth


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_synthetic(out, rows=40_000, seed=3)
    return out


def test_isolation_forest_ranks_the_attack_rows_above_benign_ones(synthetic: Path) -> None:
    res = run_benchmark(synthetic, "ifor", seeds=5)
    assert res.synthetic and res.data_title.startswith("SYNTHETIC")
    assert res.splits["testing"].positives["evil"] > 0.8 * res.splits["testing"].rows  # the tsm storm
    assert res.value("ifor", "scores", "evil", "auroc") > 0.9
    assert res.value("ifor", "scores", "sus", "auroc") > 0.9
    # AUPRC well above the positive fraction (which alone would give ~0.84 / ~0.91)
    assert res.value("ifor", "scores", "evil", "auprc") > 0.95


@pytest.mark.slow  # two CLI processes (~10 s)
def test_beth_synth_then_beth_bench_from_the_command_line(tmp_path: Path) -> None:
    made = beth("synth", tmp_path / "data", "--rows", "20000", "--seed", "1")
    assert made.returncode == 0, made.stderr
    res = beth("bench", "--data", tmp_path / "data", "--seeds", "2", "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert "SYNTHETIC data, not the BETH dataset" in res.stdout
    md = (tmp_path / "out" / "results.md").read_text()
    assert "labelled_testing_data.synthetic.csv" in md and "| Isolation forest |" in md
