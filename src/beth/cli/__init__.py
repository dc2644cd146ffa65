"""The `beth` command line: the only place that prints, parses flags and exits.

Each topic lives in its own module and registers its commands on `app` when imported.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from beth.cli.app import app, err
from beth.errors import BethError

# Importing a topic module registers its commands.
from beth.cli import data as _data  # noqa: F401  isort: skip
from beth.cli import bench as _bench  # noqa: F401  isort: skip
from beth.cli import sense as _sense  # noqa: F401  isort: skip
from beth.cli import sense_dns as _sense_dns  # noqa: F401  isort: skip
from beth.cli import pipeline as _pipeline  # noqa: F401  isort: skip
from beth.cli import synth as _synth  # noqa: F401  isort: skip
from beth.cli import sense_process as _sense_process  # noqa: F401  isort: skip
from beth.cli import demo as _demo  # noqa: F401  isort: skip


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turn BethErrors into one line and an exit code."""
    try:
        app(args=argv, prog_name="beth")
    except BethError as exc:
        err.print(f"[bold red]beth: error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("beth: interrupted")
        sys.exit(130)
