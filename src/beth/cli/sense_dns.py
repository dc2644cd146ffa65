"""`beth sense dns`: run the DNS sensor and write BETH DNS rows."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import FrameType

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from beth.cli.app import err
from beth.cli.sense import sense_app
from beth.data.write import FORMATS, EventWriter, format_of
from beth.errors import UsageError
from beth.schema import FileKind
from beth.sensors.dns import DnsSensor


@sense_app.command("dns")
def sense_dns(
    out: str = typer.Option(..., "--out", "-o", help="Output file, or '-' for stdout."),
    fmt: str | None = typer.Option(
        None,
        "--format",
        "-f",
        help=f"Output format: {', '.join(FORMATS)} (default: from the --out suffix; csv for '-'). "
        "CSV is laid out like the Kaggle BETH DNS files.",
    ),
    duration: float | None = typer.Option(
        None, "--duration", "-d", min=0.0, help="Stop after S seconds (default: run until Ctrl-C or SIGTERM)."
    ),
    interface: str | None = typer.Option(
        None, "--interface", "-i", help="Capture on this interface only (default: every interface, lo too)."
    ),
    port: int = typer.Option(53, "--port", help="The DNS port to watch (UDP and TCP)."),
    host_name: str | None = typer.Option(
        None, "--host-name", help="Value of the SensorId column (default: this machine's host name)."
    ),
    ring_mb: int = typer.Option(
        32, "--ring-mb", min=1, help="Kernel receive ring in MiB (larger rides out bursts without drops)."
    ),
    stats: Path | None = typer.Option(
        None, "--stats", help="Also write the final stats record (events, lost, malformed, ...) as JSON here."
    ),
) -> None:
    """Log DNS queries and answers of every process (containers included) as BETH DNS rows (needs root).

    Passive: a raw packet socket with a kernel filter for UDP/TCP port 53 reads copies of the packets
    and never sends one. Each query and each response is a row. Port-53 packets that are not DNS are
    counted as malformed and skipped; packets the kernel dropped (socket buffer full) are counted as
    lost; both are reported on stderr and in --stats.
    """
    fmt = fmt or ("csv" if out == "-" else format_of(out))
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt == "parquet" and out == "-":
        raise UsageError("Parquet output needs a file name, not '-'")
    sensor = DnsSensor(host_name, interface=interface, port=port, ring_bytes=ring_mb << 20)
    with sensor, EventWriter(out, FileKind.DNS, fmt) as writer:  # type: ignore[arg-type]
        _run(sensor, writer, duration)
        record = sensor.stats().to_record()
    where = "stdout" if out == "-" else out
    line = (
        f"beth sense dns: wrote {writer.rows:,} rows to {where}; lost {record['lost']:,}, "
        f"malformed {record['malformed']:,}, duplicates {record['duplicates']:,}"
    )
    if record["lost"]:
        line += " (receive ring full: try a larger --ring-mb)"
    err.print(line, style="yellow" if record["lost"] else None, soft_wrap=True)
    if stats is not None:
        stats.write_text(json.dumps(record, indent=2) + "\n")


def _run(sensor: DnsSensor, writer: EventWriter, duration: float | None) -> None:
    """Write rows until the duration is over or SIGINT/SIGTERM, then what was already captured."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        sensor.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    start = time.monotonic()
    deadline = None if duration is None else start + duration
    columns = [SpinnerColumn(), TextColumn("[bold]dns sensor")]
    if duration is not None:
        columns.append(BarColumn())
    columns += [TimeElapsedColumn(), TextColumn("{task.fields[rows]:,} rows  {task.fields[lost]:,} lost")]
    try:
        with Progress(*columns, console=err) as progress:
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
            writer.write_all(sensor.poll(0))
            progress.update(task, completed=duration or 0, rows=writer.rows, lost=sensor.stats().lost)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
