"""Small BETH-shaped matrices for detector tests (seven integer features, skewed like the real splits)."""

from __future__ import annotations

import numpy as np

#: eventIds of the training split's most common events, in decreasing frequency.
EVENTS = np.array([3, 257, 1005, 5, 4, 21, 1003, 6, 217, 41, 42, 62])


def benign(n: int, seed: int = 0) -> np.ndarray:
    """`n` rows: binary flags mostly 0, common eventIds, 1-4 args, mostly-zero return codes."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(EVENTS) + 1)
    return np.column_stack(
        [
            rng.random(n) < 0.10,
            rng.random(n) < 0.05,
            rng.random(n) < 0.02,
            rng.random(n) < 0.25,
            rng.choice(EVENTS, n, p=weights / weights.sum()),
            rng.choice([1, 2, 3, 4], n, p=[0.3, 0.2, 0.05, 0.45]),
            rng.choice([0, 1, 2], n, p=[0.7, 0.25, 0.05]),
        ]
    ).astype(np.float64)


#: A row no benign host writes: every flag set, an unseen eventId, many args, an error return.
OUTLIER = np.array([[1.0, 1.0, 1.0, 1.0, 1010.0, 12.0, 2.0]])
