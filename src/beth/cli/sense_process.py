"""`beth sense process`: run the eBPF process sensor and write BETH process rows."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from beth.cli.app import err
from beth.cli.sense import capture, duration_option, format_option, out_option, output_format, sense_app
from beth.data.write import EventWriter
from beth.errors import UsageError
from beth.schema import FileKind
from beth.sensors.process import ProcessSensor
from beth.sensors.selection import DEFAULT_EVENTS, event_sets

_SETS = ", ".join(sorted(event_sets()))


@sense_app.command("process")
def sense_process(
    out: str = out_option(),
    fmt: str | None = format_option("BETH files"),
    duration: float | None = duration_option(),
    events: list[str] | None = typer.Option(
        None,
        "--events",
        "-e",
        help="Events to trace: Tracee v0.5 event names (openat, execve, cap_capable, ...) or sets, "
        f"comma-separated or repeated. Sets: {_SETS}. Default: {','.join(DEFAULT_EVENTS)}.",
    ),
    pid: list[int] = typer.Option(
        [],
        "--pid",
        help="Trace only this process (host pid) and the children it forks from now on (repeatable).",
    ),
    uid: list[int] = typer.Option([], "--uid", help="Trace only this user id (repeatable)."),
    comm: list[str] = typer.Option(
        [], "--comm", help="Trace only processes with this name (kernel comm, 15 characters; repeatable)."
    ),
    include_self: bool = typer.Option(False, "--include-self", help="Also trace the sensor's own process."),
    stack: bool = typer.Option(False, "--stack", help="Record user stack addresses (up to 20 frames)."),
    host_name: str | None = typer.Option(
        None, "--host-name", help="Value of the hostName column (default: this machine's host name)."
    ),
    ring_mb: int = typer.Option(
        64,
        "--ring-mb",
        min=1,
        help="Kernel ring-buffer size in MiB, a power of two (larger rides out bursts).",
    ),
    stats: Path | None = typer.Option(
        None,
        "--stats",
        help="Also write the final stats record (events, lost per CPU, ...) as JSON to this file.",
    ),
) -> None:
    """Trace kernel process events with eBPF (needs root) and write them as BETH process rows.

    Rows follow the BETH/Tracee v0.5 schema (eventId, args with decoded flags and sockaddrs, ...).
    Events the kernel could not hand over (ring buffer full) are counted per CPU and reported on
    stderr and in --stats; they are never dropped silently.
    """
    fmt = output_format(out, fmt)
    ring_bytes = ring_mb << 20
    if ring_mb & (ring_mb - 1):
        raise UsageError(f"--ring-mb {ring_mb} is not a power of two")
    sensor = ProcessSensor(
        events=events or None,
        host_name=host_name,
        pids=pid,
        uids=uid,
        comms=comm,
        exclude_self=not include_self,
        stack=stack,
        ring_bytes=ring_bytes,
    )
    if sensor.dropped:
        names = ", ".join(sensor.dropped)
        err.print(
            f"beth sense process: not traced (Tracee derives them from kprobes/LSM hooks): {names}",
            soft_wrap=True,
        )
    closed = False
    with sensor, EventWriter(out, FileKind.PROCESS, fmt) as writer:  # type: ignore[arg-type]
        until = f"for {duration:g} s" if duration is not None else "until Ctrl-C"
        err.print(f"beth sense process: tracing {len(sensor.selected)} event types {until}", soft_wrap=True)
        try:
            capture(sensor, writer, duration, label="process sensor", unit="events")
        except BrokenPipeError:  # `... --out - | head`: the reader is gone; stop like any pipeline stage
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            closed = True
        record = sensor.stats().to_record()
        record["kernel"] = sensor.kernel_counts()
        record["truncated"] = sensor.truncated
    if closed:
        err.print(f"beth sense process: the output was closed after {writer.rows:,} events", soft_wrap=True)
    _report(record, writer.rows, out, stats)


def _report(record: dict, rows: int, out: str, stats: Path | None) -> None:
    lost = int(record["lost"])
    where = "stdout" if out == "-" else out
    line = f"beth sense process: wrote {rows:,} events to {where}; lost {lost:,}"
    if lost:
        line += (
            f" (ring buffer full; per CPU {record['lost_per_cpu']}: try a larger --ring-mb or fewer --events)"
        )
    if record["truncated"]:
        line += f"; {record['truncated']:,} events had a string cut at the kernel's limits"
    err.print(line, style="yellow" if lost else None, soft_wrap=True)
    if stats is not None:
        stats.write_text(json.dumps(record, indent=2) + "\n")
