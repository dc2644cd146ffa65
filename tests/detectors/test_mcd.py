"""beth's FastMCD is scikit-learn's, bit for bit: every fitted attribute, warnings included."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import linalg
from sklearn.covariance import EllipticEnvelope, empirical_covariance
from sklearn.utils.extmath import fast_logdet

from beth.detectors.mcd import covariance, fit_elliptic_envelope, logdet, mean, pinvh

from .contract_data import benign

ATTRIBUTES = (
    "raw_location_",
    "raw_covariance_",
    "raw_support_",
    "location_",
    "covariance_",
    "precision_",
    "support_",
    "dist_",
    "offset_",
    "n_features_in_",
)


def fit_both(X: np.ndarray, **params) -> tuple[EllipticEnvelope, EllipticEnvelope, list[str], list[str]]:
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        ref = EllipticEnvelope(**params).fit(X)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        got = fit_elliptic_envelope(X, **params)
    return ref, got, sorted({str(w.message) for w in theirs}), sorted({str(w.message) for w in ours})


def duplicated(n: int, seed: int) -> np.ndarray:
    """BETH-like: a few hundred distinct rows repeated, so FastMCD meets singular supports."""
    rng = np.random.default_rng(seed)
    base = benign(300, seed)
    return base[rng.integers(0, 300, n)]


@pytest.mark.parametrize(
    ("name", "X"),
    [
        ("3,000 rows: subsets, merged set, full set", benign(3000, 1)),
        ("1,000 rows: subsets then merged set", benign(1000, 2)),
        ("400 rows: scikit-learn's own small-sample path", benign(400, 3)),
        ("Fortran-ordered, as polars hands it over", np.asfortranarray(benign(2500, 4))),
        ("heavily duplicated rows", duplicated(4000, 5)),
        (
            "a constant column (singular covariance, warnings)",
            np.where(np.arange(7) == 2, 0.0, benign(2000, 6)),
        ),
    ],
)
@pytest.mark.parametrize("seed", [1, 7])
def test_fit_equals_elliptic_envelope_bitwise(name: str, X: np.ndarray, seed: int) -> None:
    ref, got, ref_warnings, got_warnings = fit_both(X, contamination=0.05, random_state=seed)
    for attr in ATTRIBUTES:
        np.testing.assert_array_equal(getattr(got, attr), getattr(ref, attr), err_msg=f"{name}: {attr}")
    assert got_warnings == ref_warnings
    np.testing.assert_array_equal(got.predict(X[:200]), ref.predict(X[:200]))


def test_support_fraction_is_honoured_bitwise() -> None:
    X = benign(2000, 9)
    ref, got, _, _ = fit_both(X, contamination=0.1, support_fraction=0.8, random_state=3)
    for attr in ATTRIBUTES:
        np.testing.assert_array_equal(getattr(got, attr), getattr(ref, attr), err_msg=attr)


def test_invalid_parameters_are_refused_like_sklearn() -> None:
    with pytest.raises(ValueError, match="contamination"):
        fit_elliptic_envelope(benign(600, 1), contamination=0.9)


def layouts() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    big = rng.normal(size=(900, 7)) * 1e3
    return [
        benign(300, 11),
        benign(2, 12)[:, :3],
        benign(50, 13)[:, :1],
        rng.normal(size=(40, 7)),
        np.asfortranarray(big),
        big[rng.permutation(900)[:450]],  # a fancy-indexed support, as in a c-step
        big[::3],  # a strided view
    ]


def test_building_blocks_equal_their_numpy_scipy_and_sklearn_originals() -> None:
    for X in layouts():
        for axis in (0, 1):
            np.testing.assert_array_equal(mean(X, axis), X.mean(axis))
        np.testing.assert_array_equal(covariance(X), empirical_covariance(X))
        np.testing.assert_array_equal(
            covariance(X, assume_centered=True), empirical_covariance(X, assume_centered=True)
        )
        c = empirical_covariance(X)
        np.testing.assert_array_equal(pinvh(c), linalg.pinvh(c))
        assert logdet(c) == fast_logdet(c)
    singular = np.zeros((7, 7))
    singular[0, 0] = 1.0
    np.testing.assert_array_equal(pinvh(singular), linalg.pinvh(singular))
    assert logdet(singular) == fast_logdet(singular) == -np.inf
