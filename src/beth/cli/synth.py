"""`beth synth`: write a seeded synthetic BETH-like dataset (three split files) for tests and demos."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from beth.cli.app import app, err, out
from beth.data.synth import PAPER_ROWS, split_sizes, write_synthetic


class SynthFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


@app.command()
def synth(
    out_dir: Path = typer.Argument(
        ...,
        help="Directory for the files labelled_<split>_data.synthetic.<format> (created if needed).",
    ),
    rows: int = typer.Option(
        PAPER_ROWS,
        "--rows",
        "-n",
        help="Rows over all three splits, divided as in the paper (the default gives exactly its "
        "763,144 / 188,967 / 188,967); at least 100.",
    ),
    seed: int = typer.Option(
        0, "--seed", "-s", help="Random seed (>= 0): the same seed gives byte-identical files."
    ),
    fmt: SynthFormat = typer.Option(
        SynthFormat.csv,
        "--format",
        "-f",
        help="csv: the Kaggle layout, marked synthetic by its file name; parquet: by its metadata too.",
    ),
) -> None:
    """Generate synthetic BETH-like hosts with the paper's scripted attack on the test host.

    Benign hosts replay process templates modelled on real BETH rows, calibrated to its published marginals.

    The test host adds the attack: a new user's ssh login, whoami/ls/cat, dota3.tar.gz, tsm's connect storm.

    SYNTHETIC: never report results on this data as results on BETH.
    """
    sizes = split_sizes(rows)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err, transient=True
    ) as bar:
        task = bar.add_task("synthesising", total=1)

        def progress(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        paths = write_synthetic(out_dir, rows=rows, seed=seed, fmt=fmt.value, progress=progress)
    table = Table(title=f"SYNTHETIC BETH-like data (seed {seed})", title_justify="left")
    for col, justify in (("file", "left"), ("rows", "right"), ("bytes", "right")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for path, n in zip(paths, sizes.values(), strict=True):
        table.add_row(str(path), f"{n:,}", f"{path.stat().st_size:,}")
    out.print(table)
