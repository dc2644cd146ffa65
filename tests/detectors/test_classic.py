"""The classical baselines are the authors' scikit-learn models, with polarity fixed: held equal."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.covariance import EllipticEnvelope
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import SGDOneClassSVM

from beth.detectors.classic import (
    RobustCovariance,
    WhitenedIsolationForest,
    WhitenedOneClassSVM,
)

from .contract_data import OUTLIER, benign

# 3,000 rows: FastMCD runs all three of its stages (10 subsets, merged set, full set).
TRAIN = benign(3000, seed=11)
TEST = np.vstack([benign(800, seed=12), OUTLIER, OUTLIER * 0.5])


def anomalies(sk_predictions: np.ndarray) -> np.ndarray:
    """scikit-learn's outlier labels (-1 outlier, +1 inlier) as beth's (1 anomaly, 0 normal)."""
    return (np.asarray(sk_predictions) == -1).astype(int)


@pytest.mark.parametrize("seed", [1, 2])
def test_robust_covariance_is_sklearns_elliptic_envelope_bit_for_bit(seed: int) -> None:
    ours = RobustCovariance(random_state=seed).fit(TRAIN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = EllipticEnvelope(contamination=0.05, random_state=seed).fit(TRAIN)
    np.testing.assert_array_equal(ours.estimator_.location_, ref.location_)
    np.testing.assert_array_equal(ours.estimator_.covariance_, ref.covariance_)
    assert ours.threshold_ == -ref.offset_
    np.testing.assert_array_equal(ours.score_samples(TEST), -ref.score_samples(TEST))
    np.testing.assert_array_equal(ours.predict(TEST), anomalies(ref.predict(TEST)))
    np.testing.assert_array_equal(ours.predict(TRAIN), anomalies(ref.predict(TRAIN)))


@pytest.mark.parametrize("seed", [1, 5])
def test_whitened_svm_is_pca_then_sgd_one_class_svm(seed: int) -> None:
    ours = WhitenedOneClassSVM(random_state=seed).fit(TRAIN)
    pca = PCA(whiten=True).fit(TRAIN)
    ref = SGDOneClassSVM(random_state=seed).fit(pca.transform(TRAIN))
    np.testing.assert_array_equal(ours.score_samples(TEST), -ref.decision_function(pca.transform(TEST)))
    np.testing.assert_array_equal(ours.predict(TEST), anomalies(ref.predict(pca.transform(TEST))))


@pytest.mark.parametrize("seed", [1, 3])
def test_whitened_isolation_forest_threshold_from_distinct_rows_is_sklearns(seed: int) -> None:
    ours = WhitenedIsolationForest(random_state=seed).fit(TRAIN)
    pca = PCA(whiten=True).fit(TRAIN)
    ref = IsolationForest(contamination=0.05, random_state=seed).fit(pca.transform(TRAIN))
    assert ours.estimator_.offset_ == ref.offset_
    assert ours.threshold_ == -ref.offset_
    np.testing.assert_array_equal(ours.score_samples(TEST), -ref.score_samples(pca.transform(TEST)))
    for X in (TEST, TRAIN):
        np.testing.assert_array_equal(ours.predict(X), anomalies(ref.predict(pca.transform(X))))


def test_contamination_sets_the_training_anomaly_rate() -> None:
    for det in (RobustCovariance(random_state=1), WhitenedIsolationForest(random_state=1)):
        rate = det.fit(TRAIN).predict(TRAIN).mean()
        assert rate <= 0.05 + 1e-9, type(det).__name__
    assert WhitenedIsolationForest(contamination=0.2, random_state=1).fit(TRAIN).predict(TRAIN).mean() > 0.1


def test_linear_one_class_svm_on_whitened_data_learns_next_to_nothing() -> None:
    """On centred data the linear one-class SVM's optimum is w = 0 (sum of w.x is 0, so the hinge
    term is at least rho/nu): SGD stops near it. This is why the paper's SVM is near chance."""
    for seed in (1, 2, 3):
        det = WhitenedOneClassSVM(random_state=seed).fit(TRAIN)
        assert np.linalg.norm(det.estimator_.coef_) < 0.05


def test_fit_warnings_are_kept_not_printed() -> None:
    X = TRAIN.copy()
    X[:, 2] = 0.0  # a constant column: MinCovDet warns that the covariance is not full rank
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det = RobustCovariance(random_state=1).fit(X)
    assert any("not full rank" in w for w in det.fit_warnings_)
    assert len(det.fit_warnings_) == len(set(det.fit_warnings_))
