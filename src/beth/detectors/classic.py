"""The paper's three classical baselines, as detectors that follow the beth contract.

As in the authors' code (see ../shared/docs/paper-protocol.md): robust covariance is scikit-learn's
`EllipticEnvelope(contamination=0.05)` on the raw seven features; the one-class SVM and the
isolation forest first whiten with `PCA(whiten=True)` fitted on the training matrix, then fit
`SGDOneClassSVM` / `IsolationForest(contamination=0.05)`. Two deliberate differences: the robust
covariance is seeded (the authors left its `random_state` unset, so their five "seeds" were five
unrepeatable draws), and polarity is right: scores are HIGHER = MORE ANOMALOUS and `predict` gives
1 exactly where scikit-learn's `predict` gives -1 (held equal by tests).

Scores: robust covariance, the squared Mahalanobis distance to the robust location; one-class SVM,
the negated signed distance to its hyperplane; isolation forest, the anomaly score s(x, n) of Liu
et al. (scikit-learn's `-score_samples`). Each depends on its row alone, so the benchmark scores
distinct rows only.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import SGDOneClassSVM

from beth.detectors.base import Detector
from beth.detectors.mcd import fit_elliptic_envelope
from beth.features import distinct_rows


def _fit_quietly(fit, *args):
    """Run a scikit-learn fit, returning its result and the distinct warnings it raised.

    MinCovDet on BETH's few distinct rows warns (singular covariance, determinant increases) once per
    candidate subset, thousands of lines; detectors keep one copy of each in `fit_warnings_`.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(*args)
    seen: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {str(w.message).splitlines()[0]}"
        if text not in seen:
            seen.append(text)
    return result, seen


class RobustCovariance(Detector):
    """Minimum covariance determinant ellipse on the raw features (scikit-learn `EllipticEnvelope`).

    Fitted by `beth.detectors.mcd.fit_elliptic_envelope`: the same estimator, bitwise, 2-3x faster.

    `contamination` sets `threshold_`: the fraction of training rows `predict` calls anomalous.
    """

    def __init__(
        self,
        contamination: float = 0.05,
        support_fraction: float | None = None,
        random_state: int | None = None,
    ) -> None:
        self.contamination = contamination
        self.support_fraction = support_fraction
        self.random_state = random_state

    def _fit(self, X: np.ndarray, X_val: np.ndarray | None) -> None:
        self.estimator_, self.fit_warnings_ = _fit_quietly(
            lambda: fit_elliptic_envelope(
                X,
                contamination=self.contamination,
                support_fraction=self.support_fraction,
                random_state=self.random_state,
            )
        )
        # sklearn: anomaly iff -d - offset_ < 0, i.e. iff d > -offset_ (exactly, in floating point).
        self.threshold_ = -float(self.estimator_.offset_)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.mahalanobis(X)


class WhitenedOneClassSVM(Detector):
    """PCA whitening fitted on the training rows, then a linear one-class SVM trained by SGD."""

    def __init__(
        self, nu: float = 0.5, max_iter: int = 1000, tol: float = 1e-3, random_state: int | None = None
    ) -> None:
        self.nu = nu
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def new_estimator(self) -> SGDOneClassSVM:
        """The unfitted SGDOneClassSVM of these parameters (a saved one is loaded into it too)."""
        return SGDOneClassSVM(
            nu=self.nu, max_iter=self.max_iter, tol=self.tol, random_state=self.random_state
        )

    def _fit(self, X: np.ndarray, X_val: np.ndarray | None) -> None:
        self.whitener_ = PCA(whiten=True).fit(X)
        est = self.new_estimator()
        self.estimator_, self.fit_warnings_ = _fit_quietly(est.fit, self.whitener_.transform(X))
        # sklearn: anomaly iff decision < 0; our score is -decision, so iff score > 0.
        self.threshold_ = 0.0

    def _score(self, X: np.ndarray) -> np.ndarray:
        return -self.estimator_.decision_function(self.whitener_.transform(X))


class WhitenedIsolationForest(Detector):
    """PCA whitening fitted on the training rows, then an isolation forest.

    scikit-learn sets the contamination threshold by scoring every training row; the threshold
    here is the same percentile of the same scores, computed on the training matrix's distinct
    rows and broadcast (exact: a row's score depends on that row alone), which is most of the
    fitting time saved on BETH-sized splits.
    """

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int | float | str = "auto",
        contamination: float = 0.05,
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.contamination = contamination
        self.random_state = random_state

    def _fit(self, X: np.ndarray, X_val: np.ndarray | None) -> None:
        self.whitener_ = PCA(whiten=True).fit(X)
        # contamination="auto" skips sklearn's own pass over every training row; the forest is the same.
        est = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            contamination="auto",
            random_state=self.random_state,
        )
        self.estimator_, self.fit_warnings_ = _fit_quietly(est.fit, self.whitener_.transform(X))
        fold = distinct_rows(X)
        sk_scores = fold.expand(self.estimator_.score_samples(self.whitener_.transform(fold.rows)))
        offset = np.percentile(sk_scores, 100.0 * self.contamination)
        self.estimator_.set_params(contamination=self.contamination)
        self.estimator_.offset_ = offset
        # sklearn: anomaly iff score_samples - offset_ < 0; our score is -score_samples.
        self.threshold_ = -float(offset)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return -self.estimator_.score_samples(self.whitener_.transform(X))
