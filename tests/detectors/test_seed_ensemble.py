"""The seed ensemble: one member per seed, both protocols' inputs, exact distinct-row scoring."""

from __future__ import annotations

import numpy as np
import pytest

from beth.detectors.base import PAPER_SEEDS, NotFittedDetector, SeedEnsemble, seeds_for
from beth.errors import UsageError
from beth.features import distinct_rows

from .contract_data import OUTLIER, benign

TRAIN = benign(2000, seed=21)
TEST = np.vstack([benign(3000, seed=22), OUTLIER])  # 3,001 rows, far fewer distinct


def test_paper_seeds_are_one_to_five() -> None:
    assert PAPER_SEEDS == seeds_for(5) == (1, 2, 3, 4, 5)
    assert seeds_for(2, first=7) == (7, 8)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(UsageError, match="number of seeds"):
            seeds_for(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["ifor", "svm"])
def test_scoring_distinct_rows_once_equals_scoring_every_row(method: str) -> None:
    ens = SeedEnsemble(method, seeds=(1, 2, 3)).fit(TRAIN)
    every = ens.outputs(TEST)  # no fold: every row scored
    fold = distinct_rows(TEST)
    assert len(fold.rows) < len(TEST) / 3
    folded = ens.outputs(TEST, fold=fold, distinct=True)
    assert folded.scores.shape == (3, len(fold.rows))
    back = folded.expand(fold)
    for name in ("scores", "votes", "standardized"):
        np.testing.assert_array_equal(getattr(back, name), getattr(every, name))
    np.testing.assert_array_equal(ens.outputs(TEST, fold=fold).scores, every.scores)


def test_members_are_seeded_and_standardized_against_their_training_scores() -> None:
    ens = SeedEnsemble("ifor", seeds=(4, 9)).fit(TRAIN)
    assert [m.random_state for m in ens.members_] == [4, 9]
    out = ens.outputs(TEST)
    for i, member in enumerate(ens.members_):
        train = member.score_samples(TRAIN)
        np.testing.assert_allclose(out.standardized[i], (out.scores[i] - train.mean()) / train.std())
        np.testing.assert_array_equal(out.votes[i], member.predict(TEST))
    assert set(np.unique(out.mean_vote())) <= {0.0, 0.5, 1.0}
    np.testing.assert_allclose(out.mean_score(), out.standardized.mean(axis=0))
    assert out.mean_score()[-1] == out.mean_score().max()  # the outlier tops the ensemble


@pytest.mark.slow  # starts worker processes (~5 s)
def test_parallel_members_equal_sequential_members() -> None:
    a = SeedEnsemble("ifor", seeds=(1, 2)).fit(TRAIN).outputs(TEST)
    calls: list[tuple[str, int]] = []
    b = (
        SeedEnsemble("ifor", seeds=(1, 2), n_jobs=2)
        .fit(TRAIN, on_member=lambda stage, seed, s: calls.append((stage, seed)))
        .outputs(TEST)
    )
    np.testing.assert_array_equal(a.scores, b.scores)
    assert calls == [("fit", 1), ("calibrate", 1), ("fit", 2), ("calibrate", 2)]


def test_misuse_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown method 'lof'"):
        SeedEnsemble("lof")
    with pytest.raises(UsageError, match="at least one seed"):
        SeedEnsemble("ifor", seeds=())
    with pytest.raises(UsageError, match="n_jobs"):
        SeedEnsemble("ifor", n_jobs=0)
    with pytest.raises(NotFittedDetector):
        SeedEnsemble("ifor").outputs(TEST)
