"""`beth bench`: the paper's Table 5 on a directory of split files, both protocols, both labels."""

from __future__ import annotations

from pathlib import Path

import typer

from beth.cli.app import app, err, out, step_progress
from beth.detectors.registry import CLASSICAL, METHODS


def _methods_help() -> str:
    listed = [
        f"{m.name} ({m.title}{', uses the validation split' if m.uses_validation else ''})"
        for m in METHODS.values()
    ]
    return f"Comma-separated methods to run: {', '.join(listed)}."


@app.command()
def bench(
    data: Path = typer.Option(
        ...,
        "--data",
        help="Directory holding labelled_training_data.csv, labelled_validation_data.csv and "
        "labelled_testing_data.csv (the Kaggle names; '.synthetic' or '.parquet' variants too).",
    ),
    methods: str = typer.Option(",".join(CLASSICAL), "--methods", help=_methods_help()),
    seeds: int = typer.Option(
        5, "--seeds", min=1, help="Models per method, seeded 1..N (the paper: 5). The ensemble combines them."
    ),
    out_dir: Path = typer.Option(
        Path("results"), "--out", help="Directory for results.md, results.csv and results.json (created)."
    ),
    jobs: int = typer.Option(
        1,
        "--jobs",
        help="Seeds fitted at once in worker processes (-1: one per CPU). Results do not depend on it.",
    ),
    tuned: list[Path] = typer.Option(
        [],
        "--tuned",
        help="A tuning result (OUT/tuned-dose.json from `beth tune dose`): its method runs with the tuned "
        "parameters instead of the paper's configuration. Repeatable.",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Reuse the checkpoints and statistics a previous run with the same data, seeds and "
        "parameters left in OUT/work/ (dose's VAEs), instead of training again.",
    ),
) -> None:
    """Train each method's seed ensemble on the training split, score the test split, and report AUROC
    (and AUPRC) under both protocols: `paper` (mean of the seeds' 0/1 predictions, the authors'
    procedure) and `scores` (mean of the seeds' standardized scores), for labels `sus` and `evil`."""
    from beth.cli.tune import read_tuned
    from beth.evaluation.bench import run_benchmark  # scikit-learn: imported only when a benchmark runs

    params = dict(read_tuned(path) for path in tuned)
    with step_progress() as progress:
        result = run_benchmark(
            data,
            methods,
            seeds,
            out_dir,
            progress=progress,
            n_jobs=None if jobs == 1 else jobs,
            params=params,
            resume=resume,
        )
    out.print(result.table())
    for name in ("results.md", "results.csv", "results.json"):
        err.print(f"wrote {out_dir / name}", markup=False, highlight=False)
    warned = sorted({w for ws in result.fit_warnings.values() for w in ws})
    if warned:
        err.print(f"[yellow]{len(warned)} distinct warning(s) while fitting; listed in results.md[/]")
