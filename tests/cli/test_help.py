"""`beth ... --help`: every command explains itself, its prose wrapped by the terminal, not by the source."""

from __future__ import annotations

import pytest

from beth.cli.app import reflow
from cli_runner import run_beth as beth


def test_reflow_joins_prose_lines_and_keeps_examples() -> None:
    doc = """First line.

    Prose that the source
    wrapped at 100 columns.

    Example:
        beth info DIR
        beth bench --data DIR
    """
    assert reflow(doc) == (
        "First line.\n\nProse that the source wrapped at 100 columns.\n\n"
        "Example:\n    beth info DIR\n    beth bench --data DIR"
    )


@pytest.mark.parametrize(
    ("command", "sentence"),
    [
        (["sense", "dns"], "reads copies of the packets and never sends one."),
        (["collect"], "(redeliveries are recognised by sequence number), fsynced"),
        (["convert"], "the literal columns stay text, exactly as in the CSV,"),
    ],
)
def test_help_paragraphs_are_not_broken_at_the_source_lines(command: list[str], sentence: str) -> None:
    res = beth(*command, "--help")
    assert res.returncode == 0, res.stderr
    assert sentence in res.stdout, res.stdout
