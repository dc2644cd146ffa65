"""Metrics: equal to scikit-learn's on every row, and exactly the same on folded distinct rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from beth.detectors.base import MemberOutputs
from beth.errors import DataError
from beth.evaluation.metrics import Targets, auprc, auroc, evaluate, seed_summary
from beth.features import distinct_rows


def tied_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    score = np.round(rng.normal(size=n) + y, 1)  # rounding makes many ties, also across classes
    return score, y


@pytest.mark.parametrize("seed", range(5))
def test_auroc_and_auprc_equal_sklearn_with_ties(seed: int) -> None:
    score, y = tied_scores(2000, seed)
    t = Targets.from_labels("sus", y)
    assert auroc(score, t) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert auprc(score, t) == pytest.approx(average_precision_score(y, score), abs=1e-12)


def test_hard_votes_give_the_sklearn_auroc_of_a_six_level_vote() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    votes = rng.integers(0, 2, (5, 500)) | y  # the anomalies get more votes
    mean_vote = votes.mean(axis=0)
    assert auroc(mean_vote, Targets.from_labels("sus", y)) == pytest.approx(roc_auc_score(y, mean_vote))


def test_folded_metrics_equal_every_row_metrics() -> None:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 4, (5000, 3)).astype(float)
    y = ((X.sum(axis=1) + rng.integers(0, 3, 5000)) > 5).astype(int)  # labels vary within a distinct row
    fold = distinct_rows(X)
    row_score = X @ np.array([1.0, 0.5, 0.25])
    folded = Targets.from_labels("evil", y, fold)
    assert folded.positives == y.sum() and folded.negatives == len(y) - y.sum()
    distinct_score = fold.rows @ np.array([1.0, 0.5, 0.25])
    assert auroc(distinct_score, folded) == pytest.approx(roc_auc_score(y, row_score), abs=1e-12)
    assert auprc(distinct_score, folded) == pytest.approx(average_precision_score(y, row_score), abs=1e-12)


def test_perfect_and_inverted_rankings() -> None:
    y = np.array([0, 0, 1, 1])
    t = Targets.from_labels("sus", y)
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), t) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), t) == 0.0
    assert auroc(np.zeros(4), t) == 0.5
    assert auprc(np.array([0.1, 0.2, 0.8, 0.9]), t) == 1.0
    assert auprc(np.zeros(4), t) == 0.5  # one threshold: precision = base rate


@pytest.mark.parametrize(("y", "kind"), [([0, 0, 0], "positive"), ([1, 1], "negative")])
def test_one_class_labels_are_a_clear_error(y: list[int], kind: str) -> None:
    t = Targets.from_labels("evil", np.array(y))
    with pytest.raises(DataError, match=f"no {kind} rows for label 'evil'.*AUROC and AUPRC are undefined"):
        auroc(np.zeros(len(y)), t)
    with pytest.raises(DataError, match=r"labelled_testing_data\.csv"):
        t.check("labelled_testing_data.csv")


def test_labels_must_be_zero_one() -> None:
    with pytest.raises(DataError, match="only 0 and 1"):
        Targets.from_labels("sus", np.array([0, 2]))


def test_evaluate_names_protocol_label_metric_and_seed_for_every_number() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    scores = rng.normal(size=(3, 300)) + y
    votes = (scores > 1).astype(int)
    out = MemberOutputs((1, 2, 3), scores * 7, votes, scores)  # standardized = scores
    vals = evaluate("ifor", out, [Targets.from_labels("sus", y), Targets.from_labels("evil", 1 - y)])
    keys = {(v.protocol, v.label, v.metric, v.aggregate, v.seed) for v in vals}
    assert (
        len(keys) == len(vals) == 2 * (1 + 2) * 4
    )  # labels x (paper auroc + scores auroc/auprc) x (ens + 3)
    ens = next(v for v in vals if (v.protocol, v.label, v.aggregate) == ("paper", "sus", "ensemble"))
    assert ens.value == pytest.approx(roc_auc_score(y, votes.mean(axis=0)))
    seed2 = next(v for v in vals if (v.protocol, v.label, v.metric, v.seed) == ("scores", "sus", "auprc", 2))
    assert seed2.value == pytest.approx(average_precision_score(y, scores[1]))
    per_seed = [v for v in vals if (v.protocol, v.label, v.metric) == ("scores", "sus", "auroc")]
    mean, std = seed_summary(per_seed)
    expected = [roc_auc_score(y, s) for s in scores]
    assert mean == pytest.approx(np.mean(expected)) and std == pytest.approx(np.std(expected, ddof=1))
