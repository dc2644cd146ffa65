"""AUROC and AUPRC under the benchmark's two protocols, on rows or on weighted distinct rows.

Protocols (always named next to a number):

- `paper`: each seed's hard 0/1 predictions, averaged over the seeds, then AUROC: what the authors'
  code computes (with the polarity fixed).
- `scores`: each seed's continuous scores, standardized against its own training scores and
  averaged over the seeds, then AUROC and AUPRC (average precision): the better practice.

Labels: `sus` (the paper's target) and `evil`. Both metrics are computed from per-unit positive and
negative counts (`Targets`), where a unit is a row or a distinct encoded row with its multiplicity,
so a benchmark folded to a few hundred distinct rows gets exactly the numbers of every row.
Ties count half (AUROC) or as one threshold (AUPRC), as in scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from beth.detectors.base import MemberOutputs
from beth.errors import DataError, UsageError
from beth.features import DistinctRows

PROTOCOLS: dict[str, str] = {
    "paper": "mean of the seeds' hard 0/1 predictions (1 = anomaly), then AUROC (the authors' procedure)",
    "scores": (
        "mean of the seeds' continuous scores, each standardized by the mean and std of that seed's "
        "scores on the training split, then AUROC and AUPRC"
    ),
}
LABELS: tuple[str, ...] = ("sus", "evil")
#: The metrics each protocol reports.
PROTOCOL_METRICS: dict[str, tuple[str, ...]] = {"paper": ("auroc",), "scores": ("auroc", "auprc")}


@dataclass(frozen=True)
class Targets:
    """Positive and negative row counts per scored unit, for one label."""

    label: str
    pos: np.ndarray
    neg: np.ndarray

    @classmethod
    def from_labels(cls, label: str, y: np.ndarray, fold: DistinctRows | None = None) -> Targets:
        """Counts from a 0/1 label per row; per distinct row of `fold` when given."""
        y = np.asarray(y)
        if y.ndim != 1 or not np.isin(y, (0, 1)).all():
            raise DataError(f"label {label!r} must hold only 0 and 1")
        if fold is None:
            pos = y.astype(np.float64)
            return cls(label, pos, 1.0 - pos)
        if len(y) != len(fold.inverse):
            raise UsageError(f"label {label!r} has {len(y)} rows, the folded matrix {len(fold.inverse)}")
        pos = np.bincount(fold.inverse, weights=y, minlength=len(fold.rows))
        return cls(label, pos, fold.counts - pos)

    @property
    def positives(self) -> int:
        return int(np.rint(self.pos.sum()))

    @property
    def negatives(self) -> int:
        return int(np.rint(self.neg.sum()))

    def check(self, path: str | Path | None = None) -> None:
        """DataError unless both classes occur (AUROC and AUPRC are undefined otherwise)."""
        for count, kind, value in ((self.positives, "positive", 1), (self.negatives, "negative", 0)):
            if count == 0:
                raise DataError(
                    f"no {kind} rows for label {self.label!r} (no {self.label}={value}): "
                    "AUROC and AUPRC are undefined",
                    path=path,
                )


def _grouped(score: np.ndarray, t: Targets) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative counts per distinct score value, in increasing score order."""
    score = np.asarray(score, dtype=np.float64)
    if score.shape != t.pos.shape:
        raise UsageError(f"{score.shape[0]} scores for {t.pos.shape[0]} labelled units")
    if np.isnan(score).any():
        raise DataError("scores hold NaN: cannot rank them")
    _, inverse = np.unique(score, return_inverse=True)
    return np.bincount(inverse, weights=t.pos), np.bincount(inverse, weights=t.neg)


def auroc(score: np.ndarray, t: Targets) -> float:
    """Area under the ROC curve: P(positive scores above negative), ties counting one half."""
    t.check()
    pos, neg = _grouped(score, t)
    neg_below = np.cumsum(neg) - neg
    return float((pos * (neg_below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def auprc(score: np.ndarray, t: Targets) -> float:
    """Average precision: sum over thresholds (highest first) of recall gained x precision there."""
    t.check()
    pos, neg = _grouped(score, t)
    tp, fp = np.cumsum(pos[::-1]), np.cumsum(neg[::-1])
    precision = np.divide(tp, tp + fp, out=np.ones_like(tp), where=(tp + fp) > 0)
    return float((pos[::-1] / pos.sum() * precision).sum())


METRICS = {"auroc": auroc, "auprc": auprc}


@dataclass(frozen=True)
class MetricValue:
    """One number of a benchmark, named by everything needed to read it."""

    method: str
    protocol: str  # "paper" | "scores"
    label: str  # "sus" | "evil"
    metric: str  # "auroc" | "auprc"
    aggregate: str  # "ensemble" (the seeds combined) | "seed" (one seed's own)
    seed: int | None
    value: float


def evaluate(method: str, outputs: MemberOutputs, targets: list[Targets]) -> list[MetricValue]:
    """Every metric of both protocols, per seed and for the ensemble, on each label's targets."""
    values: list[MetricValue] = []
    per_protocol = {
        "paper": (outputs.votes, outputs.mean_vote()),
        # Per seed, the same standardized scores the ensemble averages (the map is increasing, but
        # rounding can merge two nearly equal raw scores: ranking one set of values keeps it exact).
        "scores": (outputs.standardized, outputs.mean_score()),
    }
    for t in targets:
        for protocol, (members, ensemble) in per_protocol.items():
            for metric in PROTOCOL_METRICS[protocol]:
                fn = METRICS[metric]
                name = (method, protocol, t.label, metric)
                values.append(MetricValue(*name, "ensemble", None, fn(ensemble, t)))
                for seed, member in zip(outputs.seeds, members, strict=True):
                    values.append(MetricValue(*name, "seed", seed, fn(member, t)))
    return values


def seed_summary(values: list[MetricValue]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one seed) of per-seed values."""
    xs = np.array([v.value for v in values if v.aggregate == "seed"])
    if len(xs) == 0:
        raise UsageError("no per-seed values to summarise")
    return float(xs.mean()), float(xs.std(ddof=1)) if len(xs) > 1 else 0.0
