"""The `beth` command line: the only place that prints, parses flags and exits.

Each topic lives in its own module and registers its commands on `app` when imported.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from beth.cli.app import app, err, out, reflow_help
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
from beth.cli import tune as _tune  # noqa: F401  isort: skip

reflow_help(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app; every error a user can cause becomes one line on
    stderr and a non-zero exit code (BethError: its code; a bad flag or value: 2; Ctrl-C: 130)."""
    try:
        code = app(args=argv, prog_name="beth", standalone_mode=False)
    except BethError as exc:
        err.print(f"[bold red]beth: error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        err.print("beth: interrupted")
        sys.exit(130)
    except typer.TyperException as exc:  # click's usage errors: bad flag, bad value, missing argument
        if type(exc).__name__ == "NoArgsIsHelpError":  # `beth sense` alone: show the help
            out.print(exc.format_message(), markup=False, highlight=False)  # type: ignore[attr-defined]
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = escape(exc.format_message())  # type: ignore[attr-defined]
        err.print(f"[bold red]beth: error:[/] {message}{escape(hint)}", soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
