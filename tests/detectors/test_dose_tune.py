"""The dose grid search (`beth tune dose`) and how `beth bench` uses its result, checkpoints and --resume."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch

from beth.detectors.dose import DoSE
from beth.detectors.dose_tune import PAPER_GRID, paper_grid, tune, tuned_params
from beth.detectors.vae import TrainConfig
from beth.errors import UsageError
from cli_runner import run_beth as beth

from .contract_data import benign

FAST = {"max_epochs": 3, "patience": 3, "batch_size": 64, "decoder_samples": 16}


def test_the_paper_grid_has_27_points() -> None:
    grid = paper_grid()
    assert len(grid) == 27 and len({tuple(p.values()) for p in grid}) == 27
    assert {p["hidden"] for p in grid} == set(PAPER_GRID["hidden"]) == {64, 128, 256}
    assert {p["lr"] for p in grid} == {3e-3, 3e-4, 3e-5}
    assert {p["weight_decay"] for p in grid} == {0.0, 0.01, 0.1}
    with pytest.raises(UsageError, match="lr must be a positive number"):
        paper_grid(lr=[-1.0])
    with pytest.raises(UsageError, match="grid is empty"):
        paper_grid(hidden=[])


def test_tune_trains_every_point_and_chooses_the_lowest_validation_loss() -> None:
    grid = paper_grid(hidden=[8, 16], lr=[1e-2, 1e-5], weight_decay=[0.0])
    seen = []
    result = tune(
        benign(1500, 0), benign(400, 1), grid, seed=1, base=FAST, device="cpu", on_trial=seen.append
    )
    assert [t.params for t in result.trials] == grid and seen == result.trials
    best = result.best
    assert best.val_loss == min(t.val_loss for t in result.trials)
    assert best.lr == 1e-2, "a learning rate 1,000x smaller cannot get as far in 3 epochs"
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["params"] == best.params and len(doc["trials"]) == 4 and doc["training"] == FAST
    assert DoSE(**tuned_params(doc)).get_params()["hidden"] == best.hidden
    with pytest.raises(UsageError, match="searched by the grid"):
        tune(benign(100), benign(50), grid, base={"lr": 1.0})


def test_tuned_params_refuse_other_documents() -> None:
    with pytest.raises(UsageError, match="not a dose tuning result"):
        tuned_params({"method": "svm", "params": {}})
    with pytest.raises(UsageError, match="params must set"):
        tuned_params({"method": "dose", "params": {"epochs": 3}})
    with pytest.raises(UsageError, match="hidden must be a positive integer"):
        tuned_params({"method": "dose", "params": {"hidden": -4}})


def test_cli_defaults_are_the_detector_defaults() -> None:
    from beth.cli.tune import tune_dose

    options = {name: p.default.default for name, p in inspect.signature(tune_dose).parameters.items()}
    cfg, det = TrainConfig(), DoSE()
    assert options["batch_size"] == cfg.batch_size == det.batch_size
    assert options["decoder_samples"] == cfg.decoder_samples == det.decoder_samples
    assert (options["max_epochs"], options["patience"]) == (cfg.max_epochs, cfg.patience)
    assert options["hidden"] == ",".join(map(str, PAPER_GRID["hidden"]))


@pytest.fixture(scope="module")
def tiny_splits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("splits")
    res = beth("synth", out, "--rows", "4000", "--seed", "2")
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.slow
def test_tune_then_bench_with_the_tuned_configuration_then_resume(tiny_splits: Path, tmp_path: Path) -> None:
    res = beth(
        "tune", "dose", "--data", tiny_splits, "--out", tmp_path, "--hidden", "8,16", "--lr", "1e-2",
        "--weight-decay", "0,0.1", "--max-epochs", "2", "--batch-size", "64", "--decoder-samples", "16",
        "--device", "cpu",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "tuned-dose.json").read_text())
    assert len(doc["trials"]) == 4 and doc["synthetic"] is True
    assert "chosen" in res.stdout and "SYNTHETIC" in res.stdout

    out = tmp_path / "bench"
    args = ("bench", "--data", tiny_splits, "--methods", "dose", "--seeds", "2", "--out", out)
    res = beth(*args, "--tuned", tmp_path / "tuned-dose.json")
    assert res.returncode == 0, res.stderr
    first = json.loads((out / "results.json").read_text())["results"]
    ckpts = sorted((out / "work" / "dose").glob("seed*-vae.pt"))
    assert [p.name.split("-")[0] for p in ckpts] == ["seed1", "seed2"]
    for ckpt in ckpts:  # the tuned width, not the paper's 64
        state = torch.load(ckpt, weights_only=True)["state"]
        assert state["decoder_hidden.weight"].shape == (doc["params"]["hidden"], 2)
    stamps = [p.stat().st_mtime_ns for p in ckpts]

    res = beth(*args, "--tuned", tmp_path / "tuned-dose.json", "--resume")
    assert res.returncode == 0, res.stderr
    assert [p.stat().st_mtime_ns for p in ckpts] == stamps, "resumed: checkpoints reused, not rewritten"
    assert json.loads((out / "results.json").read_text())["results"] == first

    res = beth(*args)  # the paper's configuration: other checkpoints, next to the tuned ones
    assert res.returncode == 0, res.stderr
    assert len(list((out / "work" / "dose").glob("seed*-vae.pt"))) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tune", "dose", "--data", "/nonexistent"], "/nonexistent: no such file or directory"),
        (["tune", "dose", "--data", "/tmp", "--lr", "fast"], "--lr: expected comma-separated numbers"),
        (["tune", "dose", "--data", "/tmp", "--hidden", "0"], "hidden must be a positive integer"),
        (
            ["bench", "--data", "/tmp", "--tuned", "/nonexistent.json"],
            "/nonexistent.json: no such tuning file",
        ),
    ],
)
def test_cli_errors_are_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from beth.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"beth: error: {message}"), lines


def test_bench_reports_all_four_methods_under_both_protocols(tiny_splits: Path, tmp_path: Path) -> None:
    """Issue 4's acceptance run (`--methods rcov,svm,ifor,dose`), on small splits with short training."""
    from beth.evaluation.bench import run_benchmark

    res = run_benchmark(tiny_splits, "rcov,svm,ifor,dose", 2, tmp_path, params={"dose": FAST})
    md = (tmp_path / "results.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Method | `paper` AUROC `sus`"))
    body = md.split(header)[1].splitlines()[2:6]
    titles = ["Robust covariance", "One-class SVM", "Isolation forest", "VAE + DoSE-SVM"]
    assert [row.split(" | ")[0] for row in body] == [f"| {t}" for t in titles]
    for method in ("rcov", "svm", "ifor", "dose"):
        for protocol in ("paper", "scores"):
            for label in ("sus", "evil"):
                assert 0.0 <= res.value(method, protocol, label) <= 1.0
