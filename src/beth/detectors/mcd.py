"""FastMCD exactly as scikit-learn runs it for `EllipticEnvelope`, bit for bit, at a fraction of the cost.

Why: `EllipticEnvelope.fit` on BETH's 763k training rows runs ~50,000 concentration steps ("c-steps"):
10 per 300-row subset (2,543 subsets), then one per candidate (25,430) on a 1,500-row sample, then 10
on all rows. Each step on a 7x7 covariance is a few microseconds of arithmetic wrapped in ~0.5 ms of
scipy and scikit-learn call overhead (pinvh's batch and validation layers, fast_logdet's array-API
dispatch, np.allclose, empirical_covariance's checks): 20-40 s per fit, 5 fits per benchmark.

How: the same algorithm (scikit-learn 1.9's `fast_mcd`, `select_candidates`, `_c_step`), the same
random draws in the same order, and the same floating-point operations in the same order, called
directly: LAPACK `dsyev` as `scipy.linalg.pinvh` calls it, `numpy.linalg.slogdet` as `fast_logdet`
does, `np.cov(bias=1)` as `empirical_covariance` does. On the 1,500-row sample and on the full
matrix, the distances of every c-step are computed once per distinct row and broadcast (a row's
distance depends on that row alone; on BETH-like data those hold ~60 and ~120 distinct rows).
Tests hold every fitted attribute bitwise equal to `sklearn.covariance.EllipticEnvelope` on the
installed versions; if an upgrade changes scikit-learn's or scipy's arithmetic, they fail.
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
from scipy import linalg
from scipy.linalg.lapack import _compute_lwork, get_lapack_funcs
from sklearn.covariance import EllipticEnvelope
from sklearn.covariance._robust_covariance import fast_mcd as sklearn_fast_mcd
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data

from beth.features import DistinctRows, distinct_rows

_SYEV, _SYEV_LWORK = get_lapack_funcs(("syev", "syev_lwork"), (np.zeros((2, 2)),))
_EPS = np.finfo("d").eps


def covariance(X: np.ndarray, *, assume_centered: bool = False) -> np.ndarray:
    """scikit-learn's `empirical_covariance`, same arithmetic, without its per-call input validation."""
    if X.ndim == 1:
        X = X.reshape(1, -1)
    if X.shape[0] == 1:
        warnings.warn("Only one sample available. You may want to reshape your data array", stacklevel=2)
    if assume_centered:
        return np.dot(X.T, X) / X.shape[0]
    if X.dtype != np.float64 or X.shape[1] < 2:
        cov = np.cov(X.T, bias=1)
        return np.array([[cov]]) if cov.ndim == 0 else cov
    # np.cov(X.T, bias=1), step by step: a C-ordered copy of X.T, centred rows, A @ conj(A).T / n.
    # (The conj() copy matters: A @ A.T on one buffer would take BLAS syrk, not gemm.)
    A = np.array(X.T, ndmin=2, dtype=np.float64)
    A -= mean(A, axis=1)[:, None]
    c = np.dot(A, A.T.conj())
    c *= np.true_divide(1, A.shape[1])
    return c


def mean(X: np.ndarray, axis: int) -> np.ndarray:
    """`X.mean(axis)` of a float64 matrix: numpy's own sum along `axis`, divided by the count."""
    total = np.add.reduce(X, axis=axis)
    return np.true_divide(total, X.shape[axis], out=total, casting="unsafe")


@cache
def _lwork(n: int) -> int:
    return _compute_lwork(_SYEV_LWORK, n=n, lower=True)


def pinvh(a: np.ndarray) -> np.ndarray:
    """`scipy.linalg.pinvh(a)` of a symmetric float64 matrix: the same LAPACK call and cut-off."""
    s, u, info = _SYEV(a=a, overwrite_a=False, lower=True, compute_v=1, lwork=_lwork(a.shape[0]))
    if info != 0:
        return linalg.pinvh(a)  # scipy raises its own error for a failed eigendecomposition
    cutoff = 0.0 + np.max(np.abs(s), initial=0.0) * (max(a.shape) * _EPS)
    above = abs(s) > cutoff
    u = u[:, above]
    return (u * (1.0 / s[above])) @ u.conj().T


def logdet(a: np.ndarray) -> float:
    """scikit-learn's `fast_logdet`: log det(a), or -inf when det(a) is not positive."""
    sign, ld = np.linalg.slogdet(a)
    return -np.inf if not sign > 0 else ld


def _allclose(a: float, b: float) -> bool:
    """`np.allclose(a, b)` for two scalars (rtol 1e-5, atol 1e-8, infinities equal only to themselves)."""
    if np.isinf(a) or np.isinf(b):
        return bool(a == b)
    return bool(abs(a - b) <= 1e-08 + 1e-05 * abs(b))


def _fold(X: np.ndarray) -> DistinctRows:
    """X's distinct rows, in X's memory layout (so their distances take the same BLAS path)."""
    fold = distinct_rows(X)
    if X.flags.f_contiguous and not X.flags.c_contiguous:
        return DistinctRows(np.asfortranarray(fold.rows), fold.inverse, fold.counts)
    return DistinctRows(np.ascontiguousarray(fold.rows), fold.inverse, fold.counts)


def _distances(X: np.ndarray, location: np.ndarray, precision: np.ndarray, fold: DistinctRows | None):
    if fold is not None:
        X = fold.rows
    centered = X - location
    dist = (np.dot(centered, precision) * centered).sum(axis=1)
    return dist if fold is None else fold.expand(dist)


def _c_step(X, n_support, random_state, remaining_iterations=30, initial_estimates=None, fold=None):
    """scikit-learn's `_c_step` (same operations, same order); `fold` = distinct rows of X, or None."""
    n_samples = X.shape[0]
    dist = np.inf
    if initial_estimates is None:
        support_indices = random_state.permutation(n_samples)[:n_support]
    else:
        location, cov = initial_estimates
        precision = pinvh(cov)
        dist = _distances(X, location, precision, fold)
        support_indices = np.argpartition(dist, n_support - 1)[:n_support]
    X_support = X[support_indices]
    location = mean(X_support, 0)
    cov = covariance(X_support)
    det = logdet(cov)
    if np.isinf(det):
        precision = pinvh(cov)
    previous_det = np.inf
    while det < previous_det and remaining_iterations > 0 and not np.isinf(det):
        previous_location, previous_covariance, previous_det = location, cov, det
        previous_support_indices = support_indices
        precision = pinvh(cov)
        dist = _distances(X, location, precision, fold)
        support_indices = np.argpartition(dist, n_support - 1)[:n_support]
        X_support = X[support_indices]
        location = mean(X_support, 0)
        cov = covariance(X_support)
        det = logdet(cov)
        remaining_iterations -= 1
    previous_dist = dist
    dist = _distances(X, location, precision, fold)
    if np.isinf(det):
        results = location, cov, det, support_indices, dist
    if _allclose(det, previous_det):
        results = location, cov, det, support_indices, dist
    elif det > previous_det:
        warnings.warn(
            "Determinant has increased; this should not happen: "
            f"log(det) > log(previous_det) ({det:.15f} > {previous_det:.15f}). "
            "You may want to try with a higher value of "
            f"support_fraction (current value: {n_support / n_samples:.3f}).",
            RuntimeWarning,
            stacklevel=2,
        )
        results = (
            previous_location,
            previous_covariance,
            previous_det,
            previous_support_indices,
            previous_dist,
        )
    if remaining_iterations == 0:
        results = location, cov, det, support_indices, dist
    location, cov, det, support_indices, dist = results
    support = np.bincount(support_indices, minlength=n_samples).astype(bool)
    return location, cov, det, support, dist


def _select_candidates(X, n_support, n_trials, select=1, n_iter=30, random_state=None, fold=None):
    """scikit-learn's `select_candidates`: the `select` best of `n_trials` c-step runs (lowest det)."""
    if isinstance(n_trials, tuple):
        starts = list(zip(*n_trials, strict=True))
        runs = [_c_step(X, n_support, random_state, n_iter, start, fold) for start in starts]
    else:
        runs = [_c_step(X, n_support, random_state, n_iter, None, fold) for _ in range(n_trials)]
    locs, covs, dets, supports, dists = zip(*runs, strict=True)
    best = np.argsort(dets)[:select]
    pick = [int(i) for i in best]
    return (
        np.asarray(locs)[best],
        np.asarray(covs)[best],
        np.asarray([supports[i] for i in pick]),
        np.asarray([dists[i] for i in pick]),
    )


def fast_mcd(X: np.ndarray, support_fraction: float | None = None, random_state=None):
    """scikit-learn's `fast_mcd`: raw (location, covariance, support, dist). Lean path for > 500 rows."""
    random_state = check_random_state(random_state)
    n_samples, n_features = X.shape
    if n_samples <= 500 or n_features == 1:
        return sklearn_fast_mcd(X, support_fraction, covariance, random_state)
    if support_fraction is None:
        n_support = min(int(np.ceil(0.5 * (n_samples + n_features + 1))), n_samples)
    else:
        n_support = int(support_fraction * n_samples)
    n_subsets = n_samples // 300
    n_samples_subsets = n_samples // n_subsets
    samples_shuffle = random_state.permutation(n_samples)
    h_subset = int(np.ceil(n_samples_subsets * (n_support / float(n_samples))))
    n_best_sub = 10
    n_trials = max(10, 500 // n_subsets)
    n_best_tot = n_subsets * n_best_sub
    all_best_locations = np.zeros((n_best_tot, n_features))
    all_best_covariances = np.zeros((n_best_tot, n_features, n_features))
    for i in range(n_subsets):
        low = i * n_samples_subsets
        subset = X[samples_shuffle[low : low + n_samples_subsets]]
        locs, covs, _, _ = _select_candidates(subset, h_subset, n_trials, n_best_sub, 2, random_state)
        all_best_locations[i * n_best_sub : (i + 1) * n_best_sub] = locs
        all_best_covariances[i * n_best_sub : (i + 1) * n_best_sub] = covs
    n_samples_merged = min(1500, n_samples)
    h_merged = int(np.ceil(n_samples_merged * (n_support / float(n_samples))))
    n_best_merged = 10 if n_samples > 1500 else 1
    selection = random_state.permutation(n_samples)[:n_samples_merged]
    merged = X[selection]
    starts = (all_best_locations, all_best_covariances)
    locs, covs, supports, d = _select_candidates(
        merged, h_merged, starts, n_best_merged, 30, random_state, _fold(merged)
    )
    if n_samples < 1500:
        support = np.zeros(n_samples, dtype=bool)
        dist = np.zeros(n_samples)
        support[selection] = supports[0]
        dist[selection] = d[0]
        return locs[0], covs[0], support, dist
    locs, covs, supports, d = _select_candidates(X, n_support, (locs, covs), 1, 30, random_state, _fold(X))
    return locs[0], covs[0], supports[0], d[0]


def fit_elliptic_envelope(
    X: np.ndarray,
    *,
    contamination: float = 0.1,
    support_fraction: float | None = None,
    random_state: int | None = None,
) -> EllipticEnvelope:
    """`EllipticEnvelope(...).fit(X)`, the fitted estimator bitwise equal, FastMCD done by `fast_mcd`."""
    est = EllipticEnvelope(
        contamination=contamination, support_fraction=support_fraction, random_state=random_state
    )
    est._validate_params()
    # MinCovDet.fit, step by step:
    X = validate_data(est, X, ensure_min_samples=2, estimator="MinCovDet")
    rng = check_random_state(est.random_state)
    n_features = X.shape[1]
    if (linalg.svdvals(np.dot(X.T, X)) > 1e-8).sum() != n_features:
        warnings.warn("The covariance matrix associated to your dataset is not full rank", stacklevel=2)
    raw_location, raw_covariance, raw_support, raw_dist = fast_mcd(X, est.support_fraction, rng)
    est.raw_location_ = raw_location
    est.raw_covariance_ = raw_covariance
    est.raw_support_ = raw_support
    est.location_ = raw_location
    est.support_ = raw_support
    est.dist_ = raw_dist
    est.correct_covariance(X)
    est.reweight_covariance(X)
    # EllipticEnvelope.fit:
    est.offset_ = np.percentile(-est.dist_, 100.0 * est.contamination)
    return est
