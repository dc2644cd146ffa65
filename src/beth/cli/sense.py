"""`beth sense ...`: run one sensor and write what it sees. Sensor commands register on `sense_app`."""

from __future__ import annotations

import typer

from beth.cli.app import app

sense_app = typer.Typer(
    help="Run one sensor (process: eBPF; dns: AF_PACKET) and write BETH-format rows.",
    no_args_is_help=True,
)
app.add_typer(sense_app, name="sense")
