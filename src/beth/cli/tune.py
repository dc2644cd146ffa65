"""`beth tune dose`: the paper's grid search for the VAE, on validation loss; writes tuned-dose.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from beth.cli.app import app, err, out, step_progress
from beth.errors import DataError, UsageError

tune_app = typer.Typer(
    help="Search a method's hyper-parameters on the validation split (for `beth bench --tuned`).",
    no_args_is_help=True,
)
app.add_typer(tune_app, name="tune")

TUNED_NAME = "tuned-dose.json"


def _numbers(text: str, kind: type, option: str) -> list[Any]:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{option}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise UsageError(f"{option}: give at least one value")
    return values


def read_tuned(path: Path) -> tuple[str, dict[str, Any]]:
    """(method, params) of a tuning result file written by `beth tune` (for `beth bench --tuned`)."""
    from beth.detectors.dose_tune import tuned_params

    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError("no such tuning file", path=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not a JSON tuning result ({exc})", path=path) from None
    if not isinstance(document, dict):
        raise DataError("not a tuning result (expected a JSON object)", path=path)
    return "dose", tuned_params(document, str(path))


@tune_app.command("dose")
def tune_dose(
    data: Path = typer.Option(
        ...,
        "--data",
        help="Directory holding the training and validation split files (Kaggle names; '.synthetic' "
        "or '.parquet' variants too). Labels are not used.",
    ),
    out_dir: Path = typer.Option(Path("results"), "--out", help=f"Directory for {TUNED_NAME} (created)."),
    hidden: str = typer.Option("64,128,256", "--hidden", help="Hidden units to try (comma-separated)."),
    lr: str = typer.Option(
        "3e-3,3e-4,3e-5", "--lr", help="Learning rates to try, at the paper's batch of 128 rows."
    ),
    weight_decay: str = typer.Option("0,0.01,0.1", "--weight-decay", help="AdamW weight decays to try."),
    seed: int = typer.Option(1, "--seed", help="Seed of every trial (weights, batches, draws)."),
    max_epochs: int = typer.Option(20, "--max-epochs", min=1, help="Epochs per trial at most."),
    patience: int = typer.Option(3, "--patience", min=1, help="Epochs without a better validation loss."),
    batch_size: int = typer.Option(
        1024, "--batch-size", min=1, help="Rows per minibatch (lr and weight decay are scaled from 128)."
    ),
    decoder_samples: int = typer.Option(
        256,
        "--decoder-samples",
        min=0,
        help="Decoder evaluations per minibatch; 0: one per row (the paper's estimator, slower).",
    ),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
    jobs: int = typer.Option(1, "--jobs", help="Trials run at once in worker processes (-1: one per CPU)."),
) -> None:
    """Train the `dose` VAE for every hidden x lr x weight-decay combination (the paper's 27 by default)
    with early stopping on the validation split, and write the one with the lowest validation loss to
    OUT/tuned-dose.json; `beth bench --methods dose --tuned OUT/tuned-dose.json` then uses it."""
    from beth.data.load import find_splits, load
    from beth.detectors.base import check_jobs
    from beth.detectors.dose_tune import paper_grid, tune
    from beth.features import FEATURES, encode, to_matrix

    check_jobs(jobs, "--jobs")
    grid = paper_grid(
        _numbers(hidden, int, "--hidden"),
        _numbers(lr, float, "--lr"),
        _numbers(weight_decay, float, "--weight-decay"),
    )
    base = {
        "max_epochs": max_epochs,
        "patience": patience,
        "batch_size": batch_size,
        "decoder_samples": decoder_samples or None,
    }
    files = find_splits(data)
    with step_progress() as progress:
        task = progress.add_task("loading the training and validation splits", total=len(grid))
        X_train, X_val = (
            to_matrix(encode(load(files[s].path, columns=list(FEATURES)))) for s in ("training", "validation")
        )
        progress.update(task, description=f"training {len(grid)} VAEs")

        def on_trial(t) -> None:
            progress.update(
                task, advance=1, description=f"hidden {t.hidden}, lr {t.lr:g}, wd {t.weight_decay:g}"
            )

        result = tune(
            X_train,
            X_val,
            grid,
            seed=seed,
            base=base,
            device=device,
            n_jobs=None if jobs == 1 else jobs,
            on_trial=on_trial,
        )
    document = result.to_dict()
    document["data"] = {s: str(files[s].path) for s in ("training", "validation")}
    document["synthetic"] = any(files[s].synthetic for s in ("training", "validation"))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / TUNED_NAME
    path.write_text(json.dumps(document, indent=2) + "\n")

    best = result.best
    title = "dose grid search: validation loss (nats per row)"
    if document["synthetic"]:
        title += " — SYNTHETIC data, not the BETH dataset"
    table = Table(title=title)
    for name in ("hidden", "lr", "weight decay", "val loss", "best epoch", "epochs", "seconds", ""):
        table.add_column(name, justify="right")
    for t in sorted(result.trials, key=lambda t: t.val_loss):
        table.add_row(
            str(t.hidden),
            f"{t.lr:g}",
            f"{t.weight_decay:g}",
            f"{t.val_loss:.4f}",
            str(t.best_epoch),
            str(t.epochs),
            f"{t.seconds:.1f}",
            "chosen" if t is best else "",
        )
    out.print(table)
    err.print(f"wrote {path}", markup=False, highlight=False)
