"""Files of the `dose` detector: VAE checkpoints and DoSE statistics, reusable with `resume`.

Every file is named by what produced it (the seed and a fingerprint of the training configuration
and the training/validation rows), so a resumed run only ever reuses files that a run with the same
inputs wrote; anything else is recomputed and overwritten. Files are written atomically (to a
temporary name, then renamed), so an interrupted run never leaves a half-written checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from beth.errors import DataError


def fingerprint(*parts: Any) -> str:
    """A short hex digest of arrays and JSON-able values (what a checkpoint depends on)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            arr = np.ascontiguousarray(part)
            digest.update(f"{arr.dtype}{arr.shape}".encode())
            digest.update(arr.tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """Write a checkpoint (tensors, lists, numbers, strings) for `torch.load(weights_only=True)`."""
    _atomic(path, lambda tmp: torch.save(dict(payload), tmp))


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """A checkpoint written by `save_checkpoint`, or None when there is none."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which
        raise DataError(
            f"unreadable VAE checkpoint ({exc}); delete it or run without --resume", path=path
        ) from None


def save_statistics(path: Path, codes: np.ndarray, counts: np.ndarray | None, stats: np.ndarray) -> None:
    """Statistics per distinct row, with the rows' category codes (and counts, when known)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            arrays = {"codes": codes, "statistics": stats}
            if counts is not None:
                arrays["counts"] = counts
            np.savez(fh, **arrays)

    _atomic(path, write)


def load_statistics(path: Path, codes: np.ndarray) -> np.ndarray | None:
    """Saved statistics for exactly these distinct rows, or None (no file, or other rows)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as saved:
            if saved["codes"].shape == codes.shape and np.array_equal(saved["codes"], codes):
                return saved["statistics"]
    except Exception as exc:
        raise DataError(
            f"unreadable statistics file ({exc}); delete it or run without --resume", path=path
        ) from None
    return None
