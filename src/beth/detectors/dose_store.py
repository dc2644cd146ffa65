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


def _first_line(exc: Exception) -> str:
    """An exception as one short line (torch's load errors run to a dozen lines)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


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
            f"unreadable VAE checkpoint ({_first_line(exc)}); delete it or run without --resume", path=path
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
            f"unreadable statistics file ({_first_line(exc)}); delete it or run without --resume", path=path
        ) from None
    return None


#: What a fitted whitened one-class SVM needs to score: PCA and SGDOneClassSVM fitted attributes.
_PCA_ATTRS = ("components_", "mean_", "explained_variance_", "explained_variance_ratio_", "singular_values_")
_SVM_ATTRS = ("coef_", "offset_")


def save_svm(path: Path, svm: Any) -> None:
    """A fitted `WhitenedOneClassSVM` as plain arrays (no pickle: safe to load from any directory)."""
    arrays = {f"pca.{a}": np.asarray(getattr(svm.whitener_, a)) for a in _PCA_ATTRS}
    arrays |= {f"svm.{a}": np.asarray(getattr(svm.estimator_, a)) for a in _SVM_ATTRS}
    arrays["svm.n_iter_"] = np.asarray(svm.estimator_.n_iter_)
    arrays["warnings"] = np.asarray(svm.fit_warnings_, dtype=str)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    _atomic(path, write)


def load_svm(path: Path, make: Any) -> Any | None:
    """The `WhitenedOneClassSVM` saved by `save_svm` (rebuilt from `make()`, unfitted), or None."""
    if not path.exists():
        return None
    from sklearn.decomposition import PCA

    try:
        with np.load(path) as saved:
            svm = make()
            pca = PCA(whiten=True)
            for a in _PCA_ATTRS:
                setattr(pca, a, saved[f"pca.{a}"])
            pca.n_components_ = pca.components_.shape[0]
            pca.n_features_in_ = pca.components_.shape[1]
            pca.n_samples_ = None
            est = svm.new_estimator()
            for a in _SVM_ATTRS:
                setattr(est, a, saved[f"svm.{a}"])
            est.n_features_in_ = pca.n_components_
            est.n_iter_ = int(saved["svm.n_iter_"])
            svm.whitener_, svm.estimator_ = pca, est
            svm.fit_warnings_ = [str(w) for w in saved["warnings"]]
    except Exception as exc:
        raise DataError(
            f"unreadable SVM file ({_first_line(exc)}); delete it or run without --resume", path=path
        ) from None
    svm.threshold_ = 0.0
    svm.n_features_in_ = pca.n_features_in_
    return svm
