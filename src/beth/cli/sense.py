"""`beth sense ...`: run one sensor and write what it sees. Sensor commands register on `sense_app`.

Both sensor commands share their output options, the output-format check and the capture loop below.
"""

from __future__ import annotations

import time
from typing import Any

import typer

from beth.cli.app import app, live_progress, until_signal
from beth.data.write import FORMATS, EventWriter, format_of
from beth.errors import UsageError
from beth.sensors.base import Sensor

sense_app = typer.Typer(
    help="Run one sensor (process: eBPF; dns: AF_PACKET) and write BETH-format rows.",
    no_args_is_help=True,
)
app.add_typer(sense_app, name="sense")


def out_option() -> Any:
    return typer.Option(..., "--out", "-o", help="Output file, or '-' for stdout.")


def format_option(layout: str) -> Any:
    """--format; `layout` names the Kaggle files the CSV output is laid out like."""
    return typer.Option(
        None,
        "--format",
        "-f",
        help=f"Output format: {', '.join(FORMATS)} (default: from the --out suffix; csv for '-'). "
        f"CSV is laid out like the Kaggle {layout}.",
    )


def duration_option() -> Any:
    return typer.Option(
        None, "--duration", "-d", min=0.0, help="Stop after S seconds (default: run until Ctrl-C or SIGTERM)."
    )


def output_format(out: str, fmt: str | None) -> str:
    """The output format named by --format, or by the --out suffix (csv for stdout)."""
    fmt = fmt or ("csv" if out == "-" else format_of(out))
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt == "parquet" and out == "-":
        raise UsageError("Parquet output needs a file name, not '-'")
    return fmt


def capture(sensor: Sensor, writer: EventWriter, duration: float | None, *, label: str, unit: str) -> None:
    """Write the sensor's events until `duration` is over or SIGINT/SIGTERM, then what it still holds;
    a progress line on stderr counts rows and lost events."""
    start = time.monotonic()
    deadline = None if duration is None else start + duration
    fields = f"{{task.fields[rows]:,}} {unit}  {{task.fields[lost]:,}} lost"
    with until_signal(sensor.stop), live_progress(label, duration, fields) as progress:
        task = progress.add_task("sense", total=duration, rows=0, lost=0)
        last = 0.0
        while not sensor.stopped:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            timeout = 0.25 if deadline is None else max(0.0, min(0.25, deadline - now))
            writer.write_all(sensor.poll(timeout))
            if now - last > 0.5:
                last = now
                progress.update(task, completed=now - start, rows=writer.rows, lost=sensor.stats().lost)
        writer.write_all(sensor.drain())
        progress.update(task, completed=duration or 0, rows=writer.rows, lost=sensor.stats().lost)
