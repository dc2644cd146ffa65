"""Errors beth raises on purpose.

Every error a user can cause (bad file, bad flag, missing privilege, unreachable broker) is a
`BethError` that says what went wrong and where. The CLI is the only place that turns them into
one line on stderr and a non-zero exit code; library callers catch them like any exception.
"""

from __future__ import annotations

from os import PathLike


class BethError(Exception):
    """Base class: a message plus an optional location (file, line, column)."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | PathLike[str] | None = None,
        line: int | None = None,
        column: int | str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        self.column = column

    @property
    def location(self) -> str:
        """`file:line: column N (name)` as far as it is known, or ''."""
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.column is not None:
            parts.append(f"column {self.column}")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.location
        return f"{where}: {self.message}" if where else self.message


class DataError(BethError):
    """Input data that is not what beth expects (malformed row, unknown header, empty file)."""


class UsageError(BethError):
    """A bad argument, option or configuration value."""


class SensorError(BethError):
    """A sensor cannot run here: no root, no BPF support, missing object file."""

    exit_code = 3


class TransportError(BethError):
    """The message transport failed: broker unreachable, refused credentials, denied subject."""

    exit_code = 4
