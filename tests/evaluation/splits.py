"""Small labelled split files in the Kaggle 16-column layout, written to a directory for harness tests.

Benign rows come from `tests/detectors/contract_data.benign` (decoded back to raw values); the test
split adds attack rows unlike any benign row (a non-system user, unseen eventIds, error returns).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from beth.data.write import write_table
from beth.schema import FileKind
from detectors.contract_data import benign  # tests/ is on sys.path (rootdir packages)


def raw_frame(X: np.ndarray, sus: np.ndarray, evil: np.ndarray) -> pl.DataFrame:
    """Raw BETH process rows whose Appendix-A encoding is `X` (7 columns)."""
    n = len(X)
    pid = np.where(X[:, 0] == 1, 4000 + np.arange(n) % 50, 1)
    ret_code = X[:, 6].astype(int)
    return pl.DataFrame(
        {
            "timestamp": np.arange(n, dtype=np.float64) * 0.001 + 120.0,
            "processId": pid,
            "threadId": pid,
            "parentProcessId": np.where(X[:, 1] == 1, 3000, 1),
            "userId": np.where(X[:, 2] == 1, 1001, 0),
            "mountNamespace": np.where(X[:, 3] == 1, 4026532217, 4026531840),
            "processName": ["sshd"] * n,
            "hostName": ["ip-10-100-1-217"] * n,
            "eventId": X[:, 4].astype(np.int64),
            "eventName": ["close"] * n,
            "stackAddresses": ["[]"] * n,
            "argsNum": X[:, 5].astype(np.int64),
            "returnValue": np.select([ret_code == 1, ret_code == 2], [5, -2], 0),
            "args": ["[]"] * n,
            "sus": sus.astype(np.int8),
            "evil": evil.astype(np.int8),
        }
    ).cast({c: t for c, t in FileKind.PROCESS.dtypes.items() if c in FileKind.PROCESS.columns})


def attack(n: int, seed: int) -> np.ndarray:
    """Rows of the scripted attack: user >= 1000, own mount namespace, connect storms that fail."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            np.ones(n),
            np.ones(n),
            np.ones(n),
            np.ones(n),
            rng.choice([42, 59, 56, 1004, 292], n),
            rng.choice([3, 5, 6], n),
            rng.choice([2, 2, 0], n),
        ]
    ).astype(np.float64)


def write_splits(
    out: Path,
    *,
    train: int = 3000,
    test_benign: int = 600,
    test_attack: int = 400,
    sus_only: int = 50,
    synthetic: bool = True,
    skip: tuple[str, ...] = (),
) -> Path:
    """Three split files in `out`: benign training/validation, a test split with labelled attacks."""
    out.mkdir(parents=True, exist_ok=True)
    suffix = ".synthetic.csv" if synthetic else ".csv"
    zeros = np.zeros
    frames = {
        "training": raw_frame(benign(train, seed=31), zeros(train), zeros(train)),
        "validation": raw_frame(benign(train // 4, seed=32), zeros(train // 4), zeros(train // 4)),
    }
    X_test = np.vstack([benign(test_benign, seed=33), attack(test_attack, seed=34)])
    sus = np.r_[zeros(test_benign - sus_only), np.ones(sus_only + test_attack)]
    evil = np.r_[zeros(test_benign), np.ones(test_attack)]
    frames["testing"] = raw_frame(X_test, sus, evil)
    for split, df in frames.items():
        if split not in skip:
            write_table(df, out / f"labelled_{split}_data{suffix}", FileKind.PROCESS, synthetic=synthetic)
    return out
