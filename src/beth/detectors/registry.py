"""Method names -> detector factories: what `beth bench --methods` and the seed ensemble accept.

Each entry names its detector class by import path, so listing or checking methods imports
nothing heavy (the VAE pulls in torch); `Method.make(seed, **params)` imports it on first use.
Adding a method is one entry in `METHODS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from beth.errors import UsageError

if TYPE_CHECKING:
    from beth.detectors.base import Detector


@dataclass(frozen=True)
class Method:
    """A registered detector: short name, display title, class, and what the benchmark needs to know."""

    name: str
    title: str
    target: str  # "module:Class", a Detector subclass taking random_state=
    uses_validation: bool = False  # fit receives X_val= (the validation split's matrix)
    paper_auroc: float | None = None  # published AUROC on test `sus` (paper Table 5, `paper` protocol)

    def factory(self) -> Callable[..., Detector]:
        """The detector class (imported on first use)."""
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def make(self, seed: int, **params: Any) -> Detector:
        """A new, unfitted detector of this method seeded with `seed`."""
        try:
            return self.factory()(random_state=seed, **params)
        except TypeError as exc:
            raise UsageError(f"bad parameters for method {self.name!r}: {exc}") from None


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("rcov", "Robust covariance", "beth.detectors.classic:RobustCovariance", paper_auroc=0.519),
        Method("svm", "One-class SVM", "beth.detectors.classic:WhitenedOneClassSVM", paper_auroc=0.605),
        Method(
            "ifor", "Isolation forest", "beth.detectors.classic:WhitenedIsolationForest", paper_auroc=0.850
        ),
        Method("dose", "VAE + DoSE-SVM", "beth.detectors.dose:DoSE", uses_validation=True, paper_auroc=0.698),
    )
}

#: The paper's classical baselines, in Table 5 order.
CLASSICAL: tuple[str, ...] = ("rcov", "svm", "ifor")


def names() -> tuple[str, ...]:
    """Every registered method name, in registration order."""
    return tuple(METHODS)


def get(name: str) -> Method:
    """The registered method called `name`; a UsageError listing the known names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise UsageError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}") from None


def make(name: str, seed: int, **params: Any) -> Detector:
    """A new, unfitted detector of method `name` seeded with `seed`."""
    return get(name).make(seed, **params)


def parse_methods(spec: str | Iterable[str]) -> list[Method]:
    """Methods from a comma-separated list ("rcov,svm,ifor") or names; unknown or empty -> UsageError."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen: list[Method] = []
    for item in (s.strip() for s in items):
        if not item:
            continue
        method = get(item)
        if method not in chosen:
            chosen.append(method)
    if not chosen:
        raise UsageError(f"no method given; known methods: {', '.join(METHODS)}")
    return chosen
