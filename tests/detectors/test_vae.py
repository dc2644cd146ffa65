"""The categorical VAE: categories (unknown values), the model, batches, stratified draws, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from beth.detectors.vae import (
    CategoricalVAE,
    TrainConfig,
    Vocabulary,
    allocate_samples,
    fit_vae,
    gaussian_log_prob,
    kl_to_prior,
    latin_normals,
    mean_loss,
    resolve_device,
    shuffled_batches,
    torch_threads,
)
from beth.errors import DataError, UsageError
from beth.features import distinct_rows

from .contract_data import benign

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """As the detector runs it (fit_vae itself leaves torch's thread count alone)."""
    with torch_threads(None):
        yield


#: Small and quick: batches of 64 rows, exact estimator, a few epochs.
QUICK = TrainConfig(hidden=16, batch_size=64, decoder_samples=None, max_epochs=4, patience=2)


def folded(X: np.ndarray, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    fold = distinct_rows(vocab.codes(X))
    return fold.rows, fold.counts


# --- categories --------------------------------------------------------------------------------------


def test_vocabulary_keeps_seen_values_and_the_fixed_event_vocabulary() -> None:
    X = benign(300, seed=0)
    vocab = Vocabulary.fit(X)
    assert vocab.sizes[4] == 1011 + 1  # eventId 0..1010, plus unknown
    for j in (0, 1, 2, 3, 5, 6):
        assert vocab.sizes[j] == len(np.unique(X[:, j])) + 1
    codes = vocab.codes(X)
    assert codes.dtype == np.int64 and codes.shape == X.shape
    np.testing.assert_array_equal(codes[:, 4], X[:, 4].astype(int))  # eventId i -> category i
    assert (codes < np.array(vocab.sizes) - 1).all(), "no training value is unknown"


def test_values_unseen_in_training_map_to_the_unknown_category() -> None:
    X = benign(300, seed=0)  # argsNum in 1..4, return codes 0..2, eventIds < 300
    vocab = Vocabulary.fit(X)
    unknown = np.array(vocab.sizes) - 1
    rows = np.array(
        [
            [0, 0, 0, 0, 3, 9, 0],  # argsNum 9: larger than any training value (the authors' IndexError)
            [0, 0, 0, 0, 3, 0, 0],  # argsNum 0: smaller, unseen
            [0, 0, 0, 0, 3, 2.5, 0],  # not an integer
            [0, 0, 0, 0, 1011, 1, 0],  # eventId outside 0..1010
            [0, 0, 0, 0, -1, 1, 0],
            [0, 0, 0, 0, 500, 1, 7],  # eventId 500: in the fixed vocabulary though unseen; return code 7
        ],
        dtype=float,
    )
    codes = vocab.codes(rows)
    assert codes[0, 5] == codes[1, 5] == codes[2, 5] == unknown[5]
    assert codes[3, 4] == codes[4, 4] == unknown[4]
    assert codes[5, 4] == 500 and codes[5, 6] == unknown[6]
    assert codes[0, 4] == 3


def test_vocabulary_refuses_continuous_columns_and_bad_widths() -> None:
    X = np.random.default_rng(0).normal(size=(70_000, 7))
    with pytest.raises(DataError, match="column 0 has 70,000 distinct values"):
        Vocabulary.fit(X)
    vocab = Vocabulary.fit(benign(50))
    with pytest.raises(UsageError, match="7 columns"):
        vocab.codes(np.zeros((3, 6)))


def test_vocabulary_round_trips_through_tensors() -> None:
    vocab = Vocabulary.fit(benign(100))
    again = Vocabulary.from_tensors(vocab.to_tensors())
    assert again.sizes == vocab.sizes
    X = benign(40, seed=3)
    np.testing.assert_array_equal(again.codes(X), vocab.codes(X))


# --- the model ---------------------------------------------------------------------------------------


def test_log_likelihood_is_the_sum_of_per_feature_log_softmax() -> None:
    sizes = (3, 3, 2, 4, 1012, 7, 4)
    model = CategoricalVAE(sizes, hidden=21)
    z = torch.randn(9, 2)
    codes = torch.stack([torch.randint(0, s, (9,)) for s in sizes], dim=1)
    big, small = model.logits(z)
    expected = torch.log_softmax(big, 1).gather(1, codes[:, 4:5]).squeeze(1)
    for i, j in enumerate(model.small):
        part = torch.log_softmax(small[:, i, : sizes[j]], 1)
        expected = expected + part.gather(1, codes[:, j : j + 1]).squeeze(1)
        assert torch.isinf(small[:, i, sizes[j] :]).all(), "padding is -inf: no probability mass"
    torch.testing.assert_close(model.log_likelihood(z, codes), expected)


def test_encoder_concatenates_one_embedding_per_feature() -> None:
    model = CategoricalVAE((3, 3, 3, 3, 1012, 7, 4), hidden=64)
    assert model.embedding.embedding_dim == 64 // 7
    assert model.encoder_out.in_features == 7 * (64 // 7)
    assert model.decoder_hidden.out_features == 64
    rows = torch.tensor([[0, 0, 0, 0, 5, 1, 0], [0, 0, 0, 0, 5, 2, 0]])
    mu, ls = model.encode(rows)
    assert mu.shape == ls.shape == (2, 2)
    with pytest.raises(UsageError, match="hidden must be at least 7"):
        CategoricalVAE((3,) * 7, hidden=6)


def test_gaussian_helpers_match_torch_distributions() -> None:
    mu, ls, z = torch.randn(5, 2), torch.randn(5, 2) * 0.3, torch.randn(5, 2)
    normal = torch.distributions.Independent(torch.distributions.Normal(mu, ls.exp()), 1)
    torch.testing.assert_close(gaussian_log_prob(z, mu, ls), normal.log_prob(z))
    prior = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(2), torch.ones(2)), 1)
    torch.testing.assert_close(kl_to_prior(mu, ls), torch.distributions.kl_divergence(normal, prior))


# --- batches and draws -------------------------------------------------------------------------------


def test_shuffled_batches_partition_every_pass_like_a_shuffle() -> None:
    counts = np.array([50, 3, 1, 20, 26])
    batches = shuffled_batches(counts, 16, np.random.default_rng(0))
    n_batches = math.ceil(counts.sum() / 16)
    first_batch_counts = []
    for _ in range(300):
        seen = np.zeros_like(counts)
        sizes = []
        for b in range(n_batches):
            idx, copies = next(batches)
            assert len(np.unique(idx)) == len(idx) and (copies > 0).all()
            seen[idx] += copies
            sizes.append(copies.sum())
            if b == 0:
                full = np.zeros_like(counts)
                full[idx] = copies
                first_batch_counts.append(full)
        np.testing.assert_array_equal(seen, counts)  # every row exactly once per pass
        assert sizes == [16] * (n_batches - 1) + [counts.sum() - 16 * (n_batches - 1)]
    # A shuffled slice of 16 holds row i hypergeometrically: mean 16 * count_i / N.
    mean = np.mean(first_batch_counts, axis=0)
    np.testing.assert_allclose(mean, 16 * counts / counts.sum(), atol=0.45)


def test_allocate_samples_is_proportional_at_least_one_and_exact_when_unlimited() -> None:
    copies = np.array([700, 200, 60, 1, 1, 38])
    np.testing.assert_array_equal(allocate_samples(copies, None), copies)
    np.testing.assert_array_equal(allocate_samples(copies, 5000), copies)
    got = allocate_samples(copies, 100)
    np.testing.assert_array_equal(got, [70, 20, 6, 1, 1, 4])
    assert (got >= 1).all() and (got <= copies).all()


def test_latin_normals_are_standard_normal_and_stratified_per_group() -> None:
    g = torch.Generator().manual_seed(0)
    sizes = torch.tensor([1, 5, 40, 200])
    group = torch.repeat_interleave(torch.arange(4), sizes)
    draws = latin_normals(group, sizes, 2, g)
    assert draws.shape == (246, 2) and draws.dtype == torch.float32
    u = torch.special.ndtr(draws.double())
    for k, n in enumerate(sizes.tolist()):
        for d in range(2):
            strata = torch.sort(torch.floor(u[group == k, d] * n)).values
            assert strata.tolist() == list(range(n)), "one draw in each of the n strata"
    many = torch.cat([latin_normals(group, sizes, 2, g) for _ in range(40)])
    assert abs(float(many.mean())) < 0.03 and abs(float(many.std()) - 1) < 0.03


# --- training ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_data() -> tuple[Vocabulary, tuple, tuple]:
    X, X_val = benign(3000, seed=0), benign(800, seed=1)
    vocab = Vocabulary.fit(X)
    return vocab, folded(X, vocab), folded(X_val, vocab)


@pytest.fixture(scope="module")
def trained(small_data):
    vocab, train, val = small_data
    return fit_vae(train, val, vocab.sizes, QUICK, seed=1, device=CPU)


def test_the_elbo_improves_during_training(small_data, trained) -> None:
    vocab, _, val = small_data
    r = trained
    assert r.best_epoch >= 1
    assert r.best_val_loss < r.val_loss[0] - 2.0, r.val_loss  # nats per row, from the untrained model
    assert r.train_loss[-1] < r.train_loss[1]
    model = CategoricalVAE(vocab.sizes, QUICK.hidden)
    model.load_state_dict(r.state)
    eps = torch.randn(16, len(val[0]), 2, generator=torch.Generator().manual_seed(2))
    again = mean_loss(model, torch.as_tensor(val[0]), torch.as_tensor(val[1], dtype=torch.float64), eps)
    assert abs(again - r.best_val_loss) < 0.05, "the kept weights are the best epoch's"


def test_early_stopping_keeps_the_best_epoch_and_stops_after_patience(trained) -> None:
    r = trained
    assert len(r.val_loss) == len(r.train_loss) <= QUICK.max_epochs + 1
    assert r.best_val_loss == min(r.val_loss)
    assert r.val_loss[r.best_epoch] == r.best_val_loss
    epochs = len(r.val_loss) - 1
    if epochs < QUICK.max_epochs:
        assert epochs - r.best_epoch == QUICK.patience and "no better" in r.stopped
    assert r.rows_seen == epochs * 3000
    assert r.decoder_evaluations == r.rows_seen, "decoder_samples=None: one evaluation per row"


def test_training_is_deterministic_per_seed(small_data, trained) -> None:
    vocab, train, val = small_data
    again = fit_vae(train, val, vocab.sizes, QUICK, seed=1, device=CPU)
    other = fit_vae(train, val, vocab.sizes, QUICK, seed=2, device=CPU)
    assert again.val_loss == trained.val_loss
    for k, v in trained.state.items():
        assert torch.equal(v, again.state[k])
    assert any(not torch.equal(v, other.state[k]) for k, v in trained.state.items())


def test_validation_loss_over_distinct_rows_equals_the_loss_over_every_row() -> None:
    vocab = Vocabulary.fit(benign(400, seed=0))
    codes = vocab.codes(benign(400, seed=5))
    fold = distinct_rows(codes)
    model = CategoricalVAE(vocab.sizes, 14)
    eps = torch.randn(8, len(fold.rows), 2)
    folded_loss = mean_loss(
        model, torch.as_tensor(fold.rows), torch.as_tensor(fold.counts, dtype=torch.float64), eps
    )
    every = mean_loss(  # every row on its own, each copy with its distinct row's draws
        model, torch.as_tensor(codes), torch.ones(len(codes), dtype=torch.float64), eps[:, fold.inverse]
    )
    assert folded_loss == pytest.approx(every, rel=1e-5)


def test_the_sampled_estimator_trains_as_well_with_fewer_decoder_evaluations() -> None:
    X, X_val = benign(3000, seed=0), benign(800, seed=1)
    X[:, :4] = X_val[:, :4] = 0  # fewer distinct rows, as on BETH: most of a batch repeats some row
    vocab = Vocabulary.fit(X)
    train, val = folded(X, vocab), folded(X_val, vocab)
    exact = TrainConfig(hidden=16, batch_size=256, decoder_samples=None, max_epochs=8, patience=8)
    sampled = TrainConfig(**{**exact.to_dict(), "decoder_samples": 32})
    a = fit_vae(train, val, vocab.sizes, exact, seed=1, device=CPU)
    b = fit_vae(train, val, vocab.sizes, sampled, seed=1, device=CPU)
    assert a.rows_seen == b.rows_seen == a.decoder_evaluations
    assert b.decoder_evaluations < 0.5 * b.rows_seen
    assert b.best_val_loss < b.val_loss[0] - 2.0
    assert abs(b.best_val_loss - a.best_val_loss) < 0.15, (a.best_val_loss, b.best_val_loss)


def test_training_without_validation_rows_stops_on_the_training_loss(small_data) -> None:
    vocab, train, _ = small_data
    r = fit_vae(train, None, vocab.sizes, QUICK, seed=1, device=CPU)
    assert r.best_val_loss < r.val_loss[0]


def test_a_diverging_run_stops_and_keeps_the_last_good_weights(small_data) -> None:
    vocab, train, val = small_data
    wild = TrainConfig(**{**QUICK.to_dict(), "lr": 1e6, "weight_decay": 0.0})
    r = fit_vae(train, val, vocab.sizes, wild, seed=1, device=CPU)
    assert r.stopped == "diverged in epoch 1 (non-finite loss); kept epoch 0"
    assert r.best_epoch == 0 and r.best_val_loss == r.val_loss[0] and r.val_loss[1] == math.inf
    assert r.rows_seen < 3000, "stopped within the epoch"
    torch.manual_seed(1)
    untrained = CategoricalVAE(vocab.sizes, QUICK.hidden)
    for k, v in untrained.state_dict().items():
        assert torch.equal(r.state[k], v), "the epoch-0 (initial) weights are kept"


def test_train_config_refuses_bad_values_and_scales_by_the_square_root_rule() -> None:
    for bad in ({"hidden": 0}, {"lr": 0.0}, {"lr": float("nan")}, {"weight_decay": -1.0}, {"patience": 0}):
        with pytest.raises(UsageError):
            TrainConfig(**bad)
    with pytest.raises(UsageError, match="batch_size must be a positive integer"):
        TrainConfig(batch_size=12.5)  # type: ignore[arg-type]
    cfg = TrainConfig(lr=3e-3, weight_decay=0.1, batch_size=1024)
    assert cfg.effective_lr == pytest.approx(3e-3 * math.sqrt(8))
    assert cfg.effective_weight_decay == pytest.approx(0.1 * math.sqrt(8))
    paper = TrainConfig(batch_size=128, decoder_samples=None)
    assert paper.effective_lr == paper.lr and paper.effective_weight_decay == paper.weight_decay


def test_device_and_threads() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("abacus")
    before = torch.get_num_threads()
    with torch_threads(None):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
