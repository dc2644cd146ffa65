"""`beth demo` end to end (small size): every stage runs and every table says the data is synthetic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "beth", "demo", "--rows", "6000", "--seeds", "2", "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={"COLUMNS": "200", "PATH": ""},
    )
    assert res.returncode == 0, res.stderr
    text = res.stdout
    for stage in ("1. synthetic BETH-like data: 6,000 rows", "2. features", "3. the paper's benchmark"):
        assert stage in text
    assert "SYNTHETIC DATA" in text and "on SYNTHETIC data, not the BETH dataset" in text
    assert "Isolation forest" in text and "AUROC, test label sus" in text
    assert {p.name for p in (tmp_path / "results").iterdir()} >= {"results.md", "results.csv", "results.json"}
