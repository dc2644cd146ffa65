"""The paper's grid search for the VAE of `dose`: hidden x learning rate x weight decay, on validation loss.

Every configuration trains one VAE (same seed, same batches) on the training split with early
stopping on the validation split; the chosen one has the lowest best validation loss (mean negative
ELBO per validation row, nats). Training uses no labels, so neither does tuning. `beth tune dose`
writes the result; `beth bench --tuned FILE` then runs `dose` with the chosen `params`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import product
from typing import Any

import numpy as np

from beth.detectors.base import check_jobs, check_matrix
from beth.detectors.vae import TrainConfig, Vocabulary, fit_vae, resolve_device, torch_threads
from beth.errors import UsageError
from beth.features import distinct_rows

#: The paper's grid (paper-protocol.md).
PAPER_GRID: dict[str, tuple[float, ...]] = {
    "hidden": (64, 128, 256),
    "lr": (3e-3, 3e-4, 3e-5),
    "weight_decay": (0.0, 0.01, 0.1),
}
#: The `DoSE` parameters a tuning result sets.
TUNED = ("hidden", "lr", "weight_decay")


@dataclass(frozen=True)
class Trial:
    """One configuration's outcome (val_loss is +inf for a run that diverged before any epoch)."""

    hidden: int
    lr: float
    weight_decay: float
    val_loss: float
    best_epoch: int
    epochs: int
    seconds: float

    @property
    def params(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "lr": self.lr, "weight_decay": self.weight_decay}


@dataclass(frozen=True)
class TuneResult:
    trials: list[Trial]
    seed: int
    base: dict[str, Any]

    @property
    def best(self) -> Trial:
        """The lowest validation loss (the first such in grid order on a tie)."""
        return min(self.trials, key=lambda t: t.val_loss)  # min keeps the first of equals

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: `method`, the chosen `params`, how they were chosen, every trial."""
        return {
            "method": "dose",
            "params": self.best.params,
            "selected_by": "lowest validation loss (mean negative ELBO per validation row, nats)",
            "seed": self.seed,
            "training": self.base,
            "trials": [{**asdict(t), "val_loss": _json_float(t.val_loss)} for t in self.trials],
        }


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


def paper_grid(
    hidden: Iterable[int] = PAPER_GRID["hidden"],
    lr: Iterable[float] = PAPER_GRID["lr"],
    weight_decay: Iterable[float] = PAPER_GRID["weight_decay"],
) -> list[dict[str, Any]]:
    """Every (hidden, lr, weight_decay) combination, validated, in a fixed order."""
    grid = [
        {"hidden": int(h), "lr": float(r), "weight_decay": float(w)}
        for h, r, w in product(hidden, lr, weight_decay)
    ]
    if not grid:
        raise UsageError("the grid is empty: give at least one value of hidden, lr and weight decay")
    for point in grid:
        TrainConfig(**point)  # refuses bad values with a UsageError
    return grid


def _trial(
    point: Mapping[str, Any],
    base: Mapping[str, Any],
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    sizes: Sequence[int],
    seed: int,
    device: str,
    threads: int | None,
) -> Trial:
    t0 = time.perf_counter()
    with torch_threads(threads):
        r = fit_vae(train, val, sizes, TrainConfig(**point, **base), seed=seed, device=resolve_device(device))
    return Trial(
        point["hidden"],
        point["lr"],
        point["weight_decay"],
        r.best_val_loss,
        r.best_epoch,
        len(r.val_loss) - 1,
        time.perf_counter() - t0,
    )


def tune(
    X_train: np.ndarray,
    X_val: np.ndarray,
    grid: Sequence[Mapping[str, Any]] | None = None,
    *,
    seed: int = 1,
    base: Mapping[str, Any] | None = None,
    device: str = "auto",
    threads: int | None = None,
    n_jobs: int | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> TuneResult:
    """Train one VAE per grid point (`base`: the other `TrainConfig` fields) and rank them.

    `n_jobs`: trials run at once in worker processes (None: one after another); results do not
    depend on it.
    """
    grid = list(grid) if grid is not None else paper_grid()
    base = dict(base or {})
    clash = set(base) & set(TUNED)
    if clash:
        raise UsageError(f"{', '.join(sorted(clash))} is searched by the grid; do not fix it in base")
    TrainConfig(**base)  # validate once, before any training
    check_jobs(n_jobs)
    X_train = check_matrix(X_train, what="training matrix")
    X_val = check_matrix(X_val, n_features=X_train.shape[1], what="validation matrix")
    vocab = Vocabulary.fit(X_train)
    ft, fv = distinct_rows(vocab.codes(X_train)), distinct_rows(vocab.codes(X_val))
    args = ((ft.rows, ft.counts), (fv.rows, fv.counts), vocab.sizes, seed, device, threads)
    if n_jobs in (None, 1):
        runs: Iterable[Trial] = (_trial(p, base, *args) for p in grid)
    else:
        from joblib import Parallel, delayed

        runs = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_trial)(p, base, *args) for p in grid)
    trials = []
    for trial in runs:
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
    return TuneResult(trials, seed, base)


def tuned_params(document: Mapping[str, Any], source: str = "tuning file") -> dict[str, Any]:
    """The `dose` parameters in a `TuneResult.to_dict()` document (as read back from JSON)."""
    if document.get("method") != "dose" or not isinstance(document.get("params"), Mapping):
        raise UsageError(f"{source}: not a dose tuning result (expected method 'dose' and params)")
    params = dict(document["params"])
    unknown = set(params) - set(TUNED)
    if unknown or not params:
        raise UsageError(f"{source}: params must set {', '.join(TUNED)}, got {sorted(params)}")
    TrainConfig(**params)
    return params
