"""The Typer application and the two consoles every command prints through.

Command modules (`beth.cli.<topic>`) register on `app`; results go to `out` (stdout), progress and
logs to `err` (stderr), so `beth ... > file` captures only results.
"""

from __future__ import annotations

import inspect

import typer
from rich.console import Console

import beth

app = typer.Typer(
    name="beth",
    help=(
        "beth: BPF-extended tracking honeypot.\n\n"
        "Batch path: load BETH files, encode features, benchmark anomaly detectors.\n"
        "Live path: eBPF/DNS sensors -> transport -> collector / live detector."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def _version(value: bool) -> None:
    if value:
        out.print(f"beth {beth.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", callback=_version, is_eager=True
    ),
) -> None:
    """beth: BPF-extended tracking honeypot."""


def reflow(doc: str) -> str:
    """`doc` with each prose paragraph on one line, so the terminal wraps it (Typer's rich help keeps
    a docstring's line breaks); paragraphs with indented lines (examples) stay as written."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(
        p if any(line[:1].isspace() for line in p.splitlines()) else p.replace("\n", " ") for p in paragraphs
    )


def reflow_help(typer_app: typer.Typer) -> None:
    """Give every command of `typer_app` (and of its sub-apps) its docstring, reflowed, as help."""
    for command in typer_app.registered_commands:
        doc = command.help or inspect.getdoc(command.callback)
        if doc:
            command.help = reflow(doc)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            reflow_help(group.typer_instance)
