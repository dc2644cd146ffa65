"""DoSE: the statistics, the aggregate posterior, the detector (seeds, unknown values, resume)."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
import torch
from sklearn.base import clone

from beth.detectors import registry
from beth.detectors.classic import WhitenedOneClassSVM
from beth.detectors.dose import DoSE
from beth.detectors.dose_stats import (
    STATISTICS,
    aggregate_posterior,
    dose_statistics,
    row_keys,
    row_normals,
)
from beth.detectors.vae import CategoricalVAE, Vocabulary, gaussian_log_prob
from beth.errors import DataError, UsageError
from beth.features import distinct_rows

from .contract_data import OUTLIER, benign

CPU = torch.device("cpu")
#: A quick detector (also the shared contract's `dose` case): a small VAE trained long enough, in
#: ~250 steps of 64 rows, for the decoder to learn which categories never occur; 4 Monte-Carlo passes.
QUICK_DOSE = dict(
    hidden=16, lr=1e-2, batch_size=64, decoder_samples=16, max_epochs=8, mc_passes=4, device="cpu"
)
TRAIN, VAL = benign(2000, seed=0), benign(600, seed=1)
UNSEEN = np.array([[0, 0, 0, 0, 3, 9, 0], [1, 1, 1, 1, 700, 1, 0]], dtype=float)  # argsNum 9; eventId 700


def dose_outlier(det: DoSE, X: np.ndarray) -> np.ndarray:
    """The row, among rows with values unseen in `X`, that scikit-learn's SVM finds most outlying.

    DoSE-SVM is the `svm` method's whitened linear one-class SVM on statistics instead of features,
    with the same property (see test_classic.py): on centred data its optimum is w = 0, so the
    direction SGD leaves it pointing in depends on the seed. Rows with unseen values have extreme
    statistics (distortion -30 to -40 nats against -3 to -13 for training rows), and for most seeds
    (9 of seeds 1-10 here) some of them lie far beyond every training row on the SVM's outlier
    side. The polarity test picks the candidate scikit-learn itself puts deepest on that side (its
    `decision_function`, not ours) and checks that OUR score ranks it above every training row.
    """
    base = X[0]
    candidates = []
    for r in range(1, X.shape[1] + 1):
        for cols in combinations(range(X.shape[1]), r):
            row = base.copy()
            row[list(cols)] = 97.0  # unseen in every column of the benign matrices
            candidates.append(row)
    candidates = np.array(candidates)
    svm = det.svm_
    decision = svm.estimator_.decision_function(svm.whitener_.transform(det.statistics(candidates)))
    return candidates[[int(np.argmin(decision))]]


@pytest.fixture(scope="module")
def fitted() -> DoSE:
    return DoSE(random_state=1, **QUICK_DOSE).fit(TRAIN, X_val=VAL)


# --- statistics --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> tuple[CategoricalVAE, Vocabulary, np.ndarray]:
    """An untrained model is enough for exact-arithmetic checks (weights are seeded)."""
    X = benign(60, seed=4)
    vocab = Vocabulary.fit(X)
    torch.manual_seed(0)
    return CategoricalVAE(vocab.sizes, 14).eval(), vocab, vocab.codes(X)


def test_aggregate_posterior_over_all_rows_matches_the_exact_mixture(tiny) -> None:
    model, _, codes = tiny
    fold = distinct_rows(codes)
    z = torch.randn(50, 2) * 2
    with torch.no_grad():
        mu, ls = model.encode(torch.as_tensor(codes))  # one component per training ROW (60 of them)
        exact = torch.logsumexp(gaussian_log_prob(z[:, None], mu[None], ls[None]), dim=1) - math.log(
            len(codes)
        )
        for size in (None, len(codes), 10**6):
            q = aggregate_posterior(model, fold.rows, fold.counts, size=size, seed=3, device=CPU)
            assert q.components == len(fold.rows) < len(codes)
            torch.testing.assert_close(q.log_prob(z), exact, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(q.log_prob(z, chunk=7), exact, rtol=1e-5, atol=1e-5)


def test_aggregate_posterior_subset_is_a_seeded_sample_of_training_rows(tiny) -> None:
    model, _, codes = tiny
    fold = distinct_rows(codes)
    q = aggregate_posterior(model, fold.rows, fold.counts, size=25, seed=3, device=CPU)
    weights = q.log_weight.exp().numpy() * 25
    np.testing.assert_allclose(weights, np.rint(weights), atol=1e-4)  # multiplicities of 25 drawn rows
    assert q.components <= 25 and math.isclose(weights.sum(), 25, rel_tol=1e-5)
    again = aggregate_posterior(model, fold.rows, fold.counts, size=25, seed=3, device=CPU)
    torch.testing.assert_close(again.mu, q.mu)
    other = aggregate_posterior(model, fold.rows, fold.counts, size=25, seed=4, device=CPU)
    z = torch.randn(20, 2)
    assert not torch.allclose(other.log_prob(z), q.log_prob(z))


def test_row_normals_are_standard_normal_and_a_function_of_the_row() -> None:
    codes = np.array([[0, 1, 2], [0, 1, 2], [5, 1, 2], [0, 1, 3]])
    keys = row_keys(codes, seed=1)
    assert keys[0] == keys[1] and len(set(keys.tolist())) == 3
    assert row_keys(codes, seed=2)[0] != keys[0]
    draws = row_normals(keys, 7)
    assert draws.shape == (4, 7)
    np.testing.assert_array_equal(draws[0], draws[1])
    np.testing.assert_array_equal(row_normals(keys[2:3], 7), draws[2:3])  # the rest do not matter
    many = row_normals(row_keys(np.arange(4000)[:, None], seed=0), 100).ravel()
    assert abs(many.mean()) < 0.01 and abs(many.std() - 1) < 0.01
    assert abs(np.mean(many > 1.96) - 0.025) < 0.002


def test_statistics_have_the_right_shape_are_finite_and_obey_their_definitions(tiny) -> None:
    model, vocab, codes = tiny
    fold = distinct_rows(codes)
    q = aggregate_posterior(model, fold.rows, fold.counts, size=None, seed=0, device=CPU)
    unseen = vocab.codes(UNSEEN)
    rows = np.vstack([fold.rows, unseen])
    stats = dose_statistics(model, rows, q, passes=5, iwae_samples=4, seed=9, device=CPU, chunk_rows=7)
    assert stats.shape == (len(rows), len(STATISTICS)) and stats.dtype == np.float64
    assert np.isfinite(stats).all()
    rate, xent, ent, dist, _ = stats.T
    np.testing.assert_allclose(rate, xent - ent, atol=1e-4)  # same z: log q(z|x) - log q(z)
    assert (dist < 0).all()  # log-probabilities of discrete data
    # Against a direct computation for one row, from the same per-row draws.
    r = len(rows) - 1
    eps = torch.as_tensor(row_normals(row_keys(rows[r : r + 1], 9), 5 * 5 * 2)[0], dtype=torch.float32)
    eps = eps.view(5, 5, 2)
    c = torch.as_tensor(rows[r : r + 1])
    with torch.no_grad():
        mu, ls = model.encode(c)
        z = mu + ls.exp() * eps  # (pass, sample, 2)
        lp = gaussian_log_prob(z, mu, ls)
        la = q.log_prob(z)
        ll = model.log_likelihood(z.reshape(-1, 2), c.expand(25, -1)).view(5, 5)
        w = ll[:, 1:] + la[:, 1:] - lp[:, 1:]
        want = [
            (lp[:, 0] - la[:, 0]).mean(),
            -la[:, 0].mean(),
            -lp[:, 0].mean(),
            ll[:, 0].mean(),
            (torch.logsumexp(w, 1) - math.log(4)).mean(),
        ]
    np.testing.assert_allclose(stats[r], [float(v) for v in want], rtol=1e-4, atol=1e-4)


def test_statistics_once_per_distinct_row_equal_statistics_of_every_row(tiny) -> None:
    model, _, codes = tiny
    fold = distinct_rows(codes)
    q = aggregate_posterior(model, fold.rows, fold.counts, size=None, seed=0, device=CPU)
    every = dose_statistics(model, codes, q, passes=3, seed=2, device=CPU)
    once = dose_statistics(model, fold.rows, q, passes=3, seed=2, device=CPU)
    np.testing.assert_allclose(fold.expand(once), every, rtol=1e-6, atol=1e-6)


# --- the detector ------------------------------------------------------------------------------------


def test_detector_is_registered_uses_validation_and_has_the_paper_defaults() -> None:
    method = registry.get("dose")
    assert method.uses_validation and method.paper_auroc == 0.698
    det = registry.make("dose", 3)
    assert isinstance(det, DoSE) and det.random_state == 3
    params = det.get_params()
    assert (params["hidden"], params["lr"], params["weight_decay"]) == (64, 3e-3, 0.1)
    assert (params["max_epochs"], params["patience"], params["mc_passes"], params["iwae_samples"]) == (
        20,
        3,
        16,
        4,
    )
    assert params["aggregate_size"] == 10_000


def test_fitted_detector_exposes_statistics_history_and_the_svm(fitted: DoSE) -> None:
    stats = fitted.statistics(TRAIN)
    assert stats.shape == (len(TRAIN), 5) and np.isfinite(stats).all()
    assert fitted.history_["best_epoch"] >= 1
    assert fitted.history_["best_val_loss"] < fitted.history_["val_loss"][0]
    assert set(fitted.timings_) == {"train", "statistics", "svm"}
    # DoSE-SVM = the whitened SGD one-class SVM fitted on every training row's statistics.
    ref = WhitenedOneClassSVM(random_state=1).fit(stats)
    np.testing.assert_array_equal(fitted.score_samples(VAL), ref.score_samples(fitted.statistics(VAL)))
    assert fitted.threshold_ == 0.0


def test_values_unseen_in_training_are_scored_and_look_unlikely(fitted: DoSE) -> None:
    scores = fitted.score_samples(np.vstack([UNSEEN, OUTLIER]))
    assert np.isfinite(scores).all()
    seen = UNSEEN.copy()
    seen[0, 5], seen[1, 4] = 1, 3  # the same rows with training values in place of the unseen ones
    dist = STATISTICS.index("distortion")
    gap = fitted.statistics(seen)[:, dist] - fitted.statistics(UNSEEN)[:, dist]
    assert (gap > 1.0).all(), gap  # nats: an unknown value is much less likely than a seen one


def test_each_seed_trains_its_own_vae_and_computes_its_own_statistics(fitted: DoSE) -> None:
    other = DoSE(random_state=2, **QUICK_DOSE).fit(TRAIN, X_val=VAL)
    w1, w2 = fitted.model_.decoder_big.weight, other.model_.decoder_big.weight
    assert not torch.equal(w1, w2)
    assert not np.allclose(fitted.statistics(VAL), other.statistics(VAL))
    same = clone(fitted).fit(TRAIN, X_val=VAL)
    np.testing.assert_array_equal(same.statistics(VAL), fitted.statistics(VAL))


def test_work_dir_holds_checkpoint_and_statistics_and_resume_reuses_them(tmp_path) -> None:
    params = dict(QUICK_DOSE, work_dir=str(tmp_path), random_state=4)
    first = DoSE(**params).fit(TRAIN, X_val=VAL)
    scores = first.score_samples(VAL[:50])
    names = {p.name.split("-", 2)[-1] for p in tmp_path.iterdir()}  # seed4-<key>-<what>
    assert {"vae.pt", "statistics-training.npz", "statistics-validation.npz", "svm.npz"} < names
    assert len([n for n in names if n.startswith("statistics-scored-")]) == 1
    assert (tmp_path / f"seed4-{first.key_}-vae.pt").exists()
    assert (tmp_path / f"seed4-{first.stats_key_}-statistics-training.npz").exists()
    assert not first.resumed_

    again = DoSE(**params, resume=True).fit(TRAIN, X_val=VAL)
    assert again.resumed_ and again.svm_resumed_ and not first.svm_resumed_
    for a in ("components_", "mean_", "explained_variance_"):
        np.testing.assert_array_equal(getattr(again.svm_.whitener_, a), getattr(first.svm_.whitener_, a))
    np.testing.assert_array_equal(again.svm_.estimator_.coef_, first.svm_.estimator_.coef_)
    np.testing.assert_equal(again.history_, first.history_)
    np.testing.assert_array_equal(again.score_samples(VAL[:50]), scores)

    fresh = DoSE(**params).fit(TRAIN, X_val=VAL)  # resume=False: trains again, same result
    assert not fresh.resumed_
    changed = DoSE(**{**params, "hidden": 21}, resume=True).fit(TRAIN, X_val=VAL)
    assert not changed.resumed_, "another configuration never reuses a checkpoint"
    more = DoSE(**{**params, "mc_passes": 6}, resume=True).fit(TRAIN, X_val=VAL)
    assert more.resumed_ and more.stats_key_ != first.stats_key_, "same VAE, statistics computed anew"
    assert not np.array_equal(more.statistics(VAL[:50]), first.statistics(VAL[:50]))
    other_data = DoSE(**params, resume=True).fit(TRAIN[:1500], X_val=VAL)
    assert not other_data.resumed_

    ckpt = tmp_path / f"seed4-{first.key_}-vae.pt"
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="unreadable VAE checkpoint") as info:
        DoSE(**params, resume=True).fit(TRAIN, X_val=VAL)
    assert "\n" not in str(info.value)
    DoSE(**params).fit(TRAIN, X_val=VAL)  # writes every file again
    svm_file = tmp_path / f"seed4-{first.svm_key_}-svm.npz"
    svm_file.write_bytes(b"not arrays")
    with pytest.raises(DataError, match="unreadable SVM file"):
        DoSE(**params, resume=True).fit(TRAIN, X_val=VAL)


def test_a_diverged_vae_is_reported_among_the_fit_warnings() -> None:
    det = DoSE(**{**QUICK_DOSE, "lr": 1e6, "weight_decay": 0.0}).fit(TRAIN, X_val=VAL)
    assert det.history_["best_epoch"] == 0
    expected = "VAE training diverged in epoch 1 (non-finite loss); kept epoch 0 (lower lr)"
    assert det.fit_warnings_[0] == expected
    assert np.isfinite(det.score_samples(VAL)).all()


def test_bad_parameters_are_usage_errors() -> None:
    for bad in (dict(mc_passes=0), dict(iwae_samples=0), dict(aggregate_size=0), dict(hidden=0)):
        with pytest.raises(UsageError):
            DoSE(**{**QUICK_DOSE, **bad}).fit(TRAIN[:100])
    with pytest.raises(UsageError, match="unknown device"):
        DoSE(**{**QUICK_DOSE, "device": "abacus"}).fit(TRAIN[:100])
