"""Run the `beth` command line as a user does: a real process, real exit codes, real output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: `beth` through the interpreter running the tests (the console script needs no PATH then).
BETH = [sys.executable, "-m", "beth"]


def run_beth(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`beth ARGS...` with a wide terminal (no wrapped tables) and an empty PATH; output captured."""
    return subprocess.run(
        [*BETH, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"COLUMNS": "200", "PATH": ""},
    )
