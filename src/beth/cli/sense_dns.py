"""`beth sense dns`: run the DNS sensor and write BETH DNS rows."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from beth.cli.app import err
from beth.cli.sense import capture, duration_option, format_option, out_option, output_format, sense_app
from beth.data.write import EventWriter
from beth.schema import FileKind
from beth.sensors.dns import DnsSensor


@sense_app.command("dns")
def sense_dns(
    out: str = out_option(),
    fmt: str | None = format_option("BETH DNS files"),
    duration: float | None = duration_option(),
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
    fmt = output_format(out, fmt)
    sensor = DnsSensor(host_name, interface=interface, port=port, ring_bytes=ring_mb << 20)
    with sensor, EventWriter(out, FileKind.DNS, fmt) as writer:  # type: ignore[arg-type]
        capture(sensor, writer, duration, label="dns sensor", unit="rows")
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
