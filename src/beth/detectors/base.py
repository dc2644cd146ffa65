"""The contract every beth anomaly detector follows, and the seed ensemble all methods share.

A detector is a scikit-learn style estimator (`sklearn.base.BaseEstimator`):

- `__init__` only stores its parameters, one of which is `random_state: int` (the seed), so
  `get_params`, `set_params` and `sklearn.base.clone` work;
- `fit(X, y=None, *, X_val=None)` learns from the training matrix (labels are never used; `X_val`
  is the validation split's matrix for methods that use it, ignored by the others) and returns self;
  fitted attributes end in `_`, among them `n_features_in_` and `threshold_`;
- `score_samples(X)` returns one float per row, HIGHER = MORE ANOMALOUS;
- `predict(X)` returns 0/1 ints, 1 = anomaly, and equals `score_samples(X) > threshold_`, so the
  two evaluation protocols (hard votes and continuous scores) come from one scoring pass.

Subclasses implement `_fit(X, X_val)` (which sets `threshold_`) and `_score(X)`; the input checks
(`check_matrix`) happen here, once, for every detector.

A detector whose score of a row depends on that row alone (`row_independent = True`, the default;
the shared contract test checks it) may be scored on the distinct rows of a matrix and broadcast
back: exact, and a thousand times less work on BETH's few distinct encoded rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from beth.errors import DataError, UsageError
from beth.features import DistinctRows, distinct_rows

#: The paper's ensemble: five models per method, seeds 1..5.
PAPER_SEEDS: tuple[int, ...] = (1, 2, 3, 4, 5)


def seeds_for(n: int, first: int = 1) -> tuple[int, ...]:
    """`n` consecutive seeds starting at `first` (the paper's `seeds_for(5)` is 1..5)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"the number of seeds must be a positive integer, not {n!r}")
    return tuple(range(first, first + n))


class NotFittedDetector(UsageError, NotFittedError):
    """A detector used before `fit` (a UsageError for beth, a NotFittedError for scikit-learn)."""


def check_matrix(X: Any, *, n_features: int | None = None, what: str = "X") -> np.ndarray:
    """The one input check of every detector: a finite 2-D float64 matrix of the expected width.

    Raises UsageError for a wrong shape or width (a programming or configuration mistake) and
    DataError for values no detector can score (NaN, infinity, not a number, no rows).
    """
    try:
        M = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} is not a numeric matrix ({exc})") from None
    if M.ndim != 2:
        raise UsageError(f"{what} must be a 2-D matrix (rows x features), got {M.ndim} dimension(s)")
    if n_features is not None and M.shape[1] != n_features:
        raise UsageError(f"{what} has {M.shape[1]} feature column(s), but the detector expects {n_features}")
    if M.shape[0] == 0:
        raise DataError(f"{what} has no rows")
    finite = np.isfinite(M)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        count = int(M.size - np.count_nonzero(finite))
        raise DataError(
            f"{what} holds {count} NaN or infinite value(s); the first at row {row}, column {col} "
            f"(value {M[row, col]})"
        )
    return M


class Detector(BaseEstimator):
    """Base class of beth detectors: shared input checks, `predict` from `score_samples`."""

    #: Whether the score of a row depends on that row alone (then distinct-row folding is exact).
    row_independent: ClassVar[bool] = True

    # -- what subclasses implement ------------------------------------------------------------
    def _fit(self, X: np.ndarray, X_val: np.ndarray | None) -> None:
        """Learn from checked matrices; must set `threshold_` and any other fitted attribute."""
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores (higher = more anomalous) of a checked matrix."""
        raise NotImplementedError

    # -- the contract ---------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, *, X_val: Any = None) -> Self:
        """Fit on the training matrix (`y` is ignored: training is unsupervised); return self."""
        X = check_matrix(X, what="training matrix")
        if X_val is not None:
            X_val = check_matrix(X_val, n_features=X.shape[1], what="validation matrix")
        self._fit(X, X_val)
        self.n_features_in_ = X.shape[1]
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        """One anomaly score per row: HIGHER = MORE ANOMALOUS."""
        X = self._check_input(X)
        return np.asarray(self._score(X), dtype=np.float64).reshape(-1)

    def predict(self, X: Any) -> np.ndarray:
        """1 for rows the detector calls anomalous, 0 otherwise (`score_samples(X) > threshold_`)."""
        return self.predict_from_scores(self.score_samples(X))

    def predict_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """The 0/1 predictions that `score_samples` values imply, without scoring again."""
        self._check_fitted()
        return (np.asarray(scores) > self.threshold_).astype(np.int64)

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedDetector(f"{type(self).__name__} is not fitted yet: call fit(X) first")

    def _check_input(self, X: Any) -> np.ndarray:
        self._check_fitted()
        return check_matrix(X, n_features=self.n_features_in_, what="input matrix")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_features_in_")


# --- the seed ensemble ----------------------------------------------------------------------------


def standardize(scores: np.ndarray, reference: tuple[float, float]) -> np.ndarray:
    """`scores` in units of the training scores' spread: (s - mean) / std, `reference=(mean, std)`.

    Different seeds' raw scores need not share a scale (a one-class SVM's weight norm varies with
    its SGD path), so the `scores` protocol averages standardized scores. The map is increasing, so
    each seed's ranking is kept (rounding may tie two scores a few ulps apart, which is why the per-seed
    metrics are computed on these values too). A constant training score leaves the scale at 1.
    """
    mean, std = reference
    return (scores - mean) / (std if std > 0 else 1.0)


def score_reference(train_scores: np.ndarray) -> tuple[float, float]:
    """(mean, std) of a member's scores on every training row: the `standardize` reference."""
    return float(np.mean(train_scores)), float(np.std(train_scores))


@dataclass(frozen=True)
class MemberOutputs:
    """Every seed's raw scores, 0/1 votes and standardized scores: arrays (n_seeds, n_rows).

    The rows are either every row of a matrix or its distinct rows (`SeedEnsemble.outputs` with
    `distinct=True`); `expand(fold)` turns the second into the first.
    """

    seeds: tuple[int, ...]
    scores: np.ndarray
    votes: np.ndarray
    standardized: np.ndarray

    def mean_vote(self) -> np.ndarray:
        """The `paper` protocol's ensemble output: the mean of the seeds' hard 0/1 predictions."""
        return self.votes.mean(axis=0)

    def mean_score(self) -> np.ndarray:
        """The `scores` protocol's ensemble output: the mean of the seeds' standardized scores."""
        return self.standardized.mean(axis=0)

    def expand(self, fold: DistinctRows) -> MemberOutputs:
        """Outputs on distinct rows broadcast back to every row of the folded matrix."""
        inv = fold.inverse
        return MemberOutputs(self.seeds, self.scores[:, inv], self.votes[:, inv], self.standardized[:, inv])


#: Progress callback: (stage, seed, seconds) after each member's "fit", "calibrate" and "score" step.
OnMember = Callable[[str, int, float], None]


def check_jobs(n_jobs: int | None, name: str = "n_jobs") -> None:
    """Refuse a worker count other than None, a positive integer or -1 (one per CPU)."""
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1
    ):
        raise UsageError(f"{name} must be a positive integer or -1 (one per CPU), not {n_jobs!r}")


class SeedEnsemble:
    """One detector per seed of a registered method (the paper: five, seeds 1..5).

    The single place where every method's ensemble is built. `fit` trains the members (one after
    another, or `n_jobs` at a time in worker processes: the seeds are independent) and records, per
    member, the mean and spread of its scores on the training rows (the reference of the `scores`
    protocol's standardization). `outputs` gives their raw scores, votes and standardized scores.
    Pass `fold=distinct_rows(X)` when you have it: row-independent members then score each
    distinct row once and broadcast, exactly.
    """

    def __init__(
        self,
        method: str,
        seeds: Sequence[int] = PAPER_SEEDS,
        params: Mapping[str, Any] | None = None,
        n_jobs: int | None = None,
    ) -> None:
        from beth.detectors import registry

        self.spec = registry.get(method)
        self.seeds = tuple(seeds)
        if not self.seeds:
            raise UsageError("a seed ensemble needs at least one seed")
        self.params = dict(params or {})
        check_jobs(n_jobs)
        self.n_jobs = n_jobs

    @property
    def row_independent(self) -> bool:
        """Whether every fitted member may be scored on distinct rows."""
        return all(m.row_independent for m in getattr(self, "members_", ()))

    def fit(
        self,
        X: np.ndarray,
        *,
        X_val: np.ndarray | None = None,
        fold: DistinctRows | None = None,
        on_member: OnMember | None = None,
    ) -> Self:
        """Fit one member per seed on `X` (`X_val` only reaches methods that use validation)."""
        X = check_matrix(X, what="training matrix")
        fold = fold if fold is not None else distinct_rows(X)
        X_val = X_val if self.spec.uses_validation else None
        if self.n_jobs in (None, 1) or len(self.seeds) == 1:
            fitted = (_fit_member(self.spec, seed, self.params, X, X_val) for seed in self.seeds)
        else:
            from joblib import Parallel, delayed

            fitted = Parallel(n_jobs=min(self._jobs(), len(self.seeds)), return_as="generator")(
                delayed(_fit_member)(self.spec, seed, self.params, X, X_val) for seed in self.seeds
            )
        self.members_: list[Detector] = []
        self.references_: list[tuple[float, float]] = []
        self.fit_seconds_: list[float] = []
        for seed, (member, seconds) in zip(self.seeds, fitted, strict=True):
            self.fit_seconds_.append(seconds)
            if on_member:
                on_member("fit", seed, seconds)
            t0 = time.perf_counter()
            self.references_.append(score_reference(_every_row_scores(member, X, fold)))
            self.members_.append(member)
            if on_member:
                on_member("calibrate", seed, time.perf_counter() - t0)
        return self

    def _jobs(self) -> int:
        import os

        if self.n_jobs == -1:
            return os.cpu_count() or 1
        return int(self.n_jobs or 1)

    def outputs(
        self,
        X: np.ndarray,
        *,
        fold: DistinctRows | None = None,
        distinct: bool = False,
        on_member: OnMember | None = None,
    ) -> MemberOutputs:
        """Members' scores, votes and standardized scores on every row of `X`.

        With `distinct=True` (row-independent members only) the outputs are on `fold.rows`
        instead, one column per distinct row, for callers that keep working folded.
        """
        if not hasattr(self, "members_"):
            raise NotFittedDetector("the seed ensemble is not fitted yet: call fit(X) first")
        X = check_matrix(X, n_features=self.members_[0].n_features_in_, what="input matrix")
        if distinct and not self.row_independent:
            raise UsageError(
                f"{self.spec.name} scores depend on more than the row: cannot score distinct rows"
            )
        if distinct or (fold is not None and self.row_independent):
            fold = fold if fold is not None else distinct_rows(X)
            rows = fold.rows
        else:
            rows = X
        raw = []
        for seed, member in zip(self.seeds, self.members_, strict=True):
            t0 = time.perf_counter()
            raw.append(member.score_samples(rows))
            if on_member:
                on_member("score", seed, time.perf_counter() - t0)
        scores = np.stack(raw)
        votes = np.stack([m.predict_from_scores(s) for m, s in zip(self.members_, scores, strict=True)])
        std = np.stack([standardize(s, r) for s, r in zip(scores, self.references_, strict=True)])
        out = MemberOutputs(self.seeds, scores, votes, std)
        return out if distinct or rows is X else out.expand(fold)


def _fit_member(
    spec: Any, seed: int, params: Mapping[str, Any], X: np.ndarray, X_val: np.ndarray | None
) -> tuple[Detector, float]:
    """One seeded member, fitted, and its fit time (module level: runs in worker processes too)."""
    t0 = time.perf_counter()
    member = spec.make(seed, **params).fit(X, X_val=X_val)
    return member, time.perf_counter() - t0


def _every_row_scores(member: Detector, X: np.ndarray, fold: DistinctRows) -> np.ndarray:
    """A member's scores on every row of X, via the distinct rows where that is exact."""
    if member.row_independent:
        return fold.expand(member.score_samples(fold.rows))
    return member.score_samples(X)
