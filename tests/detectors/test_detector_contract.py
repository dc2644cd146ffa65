"""The shared detector contract: every registered method runs every test here.

To add a method, register it in `beth.detectors.registry` and add ONE line to `CASES` (its name and
any parameters that keep it fast on a 2,000-row matrix); `test_every_registered_method_is_covered`
fails until you do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone

from beth.detectors import registry
from beth.detectors.base import Detector, NotFittedDetector
from beth.errors import DataError, UsageError
from beth.features import distinct_rows

from .contract_data import OUTLIER, benign
from .test_dose import QUICK_DOSE, dose_outlier


def _against_svm_weights(det: Detector, X: np.ndarray) -> np.ndarray:
    """Far out along -w in the whitened space: the linear one-class SVM's most anomalous direction.

    On whitened (centred) data the SVM's optimum is w = 0, so SGD leaves a small w pointing nowhere
    in particular (see test_classic.py): a fixed outlier row lands on either side of its hyperplane
    depending on the seed. Its polarity is tested in the one direction it did learn.
    """
    w = det.estimator_.coef_.reshape(-1)
    z = -1e3 * np.abs(det.whitener_.transform(X)).max() * w / np.linalg.norm(w)
    return det.whitener_.inverse_transform(z[None, :])


@dataclass(frozen=True)
class Case:
    params: dict[str, Any] = field(default_factory=dict)
    #: The obvious outlier for this detector, given the fitted detector and its training matrix.
    outlier: Callable[[Detector, np.ndarray], np.ndarray] = lambda det, X: OUTLIER


CASES: dict[str, Case] = {
    "rcov": Case(),
    "svm": Case(outlier=_against_svm_weights),
    "ifor": Case(),
    "dose": Case(params=QUICK_DOSE, outlier=dose_outlier),
}

METHODS = list(CASES)
TRAIN = benign(2000, seed=0)
TEST = np.vstack([benign(500, seed=1), OUTLIER])


def make(method: str, seed: int = 1) -> Detector:
    return registry.make(method, seed, **CASES[method].params)


@pytest.fixture(scope="module", params=METHODS)
def fitted(request: pytest.FixtureRequest) -> tuple[str, Detector]:
    return request.param, make(request.param).fit(TRAIN)


def test_every_registered_method_is_covered() -> None:
    assert set(registry.names()) <= set(CASES), "add the new method to CASES"


@pytest.mark.parametrize("method", METHODS)
def test_init_only_stores_params_and_clone_works(method: str) -> None:
    det = make(method, seed=7)
    params = det.get_params()
    assert params["random_state"] == 7
    assert not [a for a in vars(det) if a.endswith("_")], "no fitted attribute before fit"
    copy = clone(det)
    assert copy.get_params() == params and copy is not det
    det.set_params(random_state=8)
    assert det.get_params()["random_state"] == 8


def test_fit_returns_self_and_sets_fitted_attributes(fitted: tuple[str, Detector]) -> None:
    method, det = fitted
    again = make(method)
    assert again.fit(TRAIN) is again
    assert det.n_features_in_ == TRAIN.shape[1]
    assert np.isfinite(det.threshold_)


def test_polarity_obvious_outlier_scores_above_every_training_row(fitted: tuple[str, Detector]) -> None:
    method, det = fitted
    outlier = CASES[method].outlier(det, TRAIN)
    train_scores = det.score_samples(TRAIN)
    assert det.score_samples(outlier)[0] > train_scores.max()
    assert det.predict(outlier).tolist() == [1]


def test_predict_is_zero_one_and_agrees_with_scores(fitted: tuple[str, Detector]) -> None:
    _, det = fitted
    scores = det.score_samples(TEST)
    pred = det.predict(TEST)
    assert pred.dtype.kind == "i" and set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (scores > det.threshold_).astype(int))
    np.testing.assert_array_equal(det.predict_from_scores(scores), pred)
    assert scores.shape == (len(TEST),) and scores.dtype == np.float64


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_scores_and_clone_refits_identically(method: str) -> None:
    a = make(method, seed=3).fit(TRAIN)
    b = make(method, seed=3).fit(TRAIN)
    c = clone(a).fit(TRAIN)
    np.testing.assert_array_equal(a.score_samples(TEST), b.score_samples(TEST))
    np.testing.assert_array_equal(a.score_samples(TEST), c.score_samples(TEST))
    assert a.threshold_ == b.threshold_ == c.threshold_


def test_scores_depend_on_the_row_alone_so_distinct_rows_fold_exactly(fitted: tuple[str, Detector]) -> None:
    _, det = fitted
    if not det.row_independent:
        pytest.skip("detector declares row-dependent scores; the benchmark scores every row")
    X = np.vstack([TEST, TEST[::-1], TEST[:7]])
    every = det.score_samples(X)
    fold = distinct_rows(X)
    np.testing.assert_array_equal(fold.expand(det.score_samples(fold.rows)), every)
    perm = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_array_equal(det.score_samples(X[perm]), every[perm])


@pytest.mark.parametrize("method", METHODS)
def test_fit_refuses_nan_inf_and_bad_shapes_with_clear_errors(method: str) -> None:
    bad = TRAIN.copy()
    bad[5, 2] = np.nan
    with pytest.raises(
        DataError, match=r"training matrix holds 1 NaN or infinite value\(s\); the first at row 5,"
    ):
        make(method).fit(bad)
    bad[5, 2] = np.inf
    with pytest.raises(DataError, match="NaN or infinite"):
        make(method).fit(bad)
    with pytest.raises(UsageError, match="2-D matrix"):
        make(method).fit(TRAIN[:, 0])
    with pytest.raises(DataError, match="no rows"):
        make(method).fit(TRAIN[:0])
    with pytest.raises(DataError, match="not a numeric matrix"):
        make(method).fit([["a"] * 7])
    with pytest.raises(UsageError, match="validation matrix has 6 feature column"):
        make(method).fit(TRAIN, X_val=TRAIN[:, :6])


def test_score_refuses_nan_inf_and_wrong_width(fitted: tuple[str, Detector]) -> None:
    _, det = fitted
    with pytest.raises(
        UsageError, match="input matrix has 6 feature column\\(s\\), but the detector expects 7"
    ):
        det.score_samples(TEST[:, :6])
    with pytest.raises(UsageError, match="feature column"):
        det.predict(np.hstack([TEST, TEST[:, :1]]))
    bad = TEST.copy()
    bad[3, 4] = -np.inf
    with pytest.raises(DataError, match="row 3, column 4"):
        det.score_samples(bad)


@pytest.mark.parametrize("method", METHODS)
def test_unfitted_detector_says_so(method: str) -> None:
    with pytest.raises(NotFittedDetector, match="not fitted"):
        make(method).score_samples(TEST)
