"""The Typer application and the two consoles every command prints through.

Command modules (`beth.cli.<topic>`) register on `app`; results go to `out` (stdout), progress and
logs to `err` (stderr), so `beth ... > file` captures only results.
"""

from __future__ import annotations

import inspect
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

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


def step_progress() -> Progress:
    """A transient bar of counted steps (seeds, trials, stages) with its description, on stderr."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=err, transient=True)


def live_progress(label: str, duration: float | None, fields: str) -> Progress:
    """The status line of a long-running command (sensors, run, collect): a spinner, a bar when it
    runs for a known `duration`, the time elapsed and `fields` (task fields), on stderr."""
    columns: list[Any] = [SpinnerColumn(), TextColumn(f"[bold]{label}")]
    if duration is not None:
        columns.append(BarColumn())
    columns += [TimeElapsedColumn(), TextColumn(fields)]
    return Progress(*columns, console=err)


@contextmanager
def until_signal(stop: Callable[[], None]) -> Iterator[None]:
    """Call `stop` on SIGINT/SIGTERM while the block runs; the previous handlers come back after."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
