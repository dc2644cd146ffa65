"""The paper's Appendix-A feature encoding: seven small integers per process event.

| feature         | encoding                                                            |
|-----------------|---------------------------------------------------------------------|
| processId       | 0 if in {0, 1, 2} else 1                                            |
| parentProcessId | 0 if in {0, 1, 2} else 1                                            |
| userId          | 0 if < 1000 else 1                                                  |
| mountNamespace  | 0 if == the host's mount namespace (4026531840 on BETH's hosts) else 1 |
| eventId         | as is (vocabulary 0..1010 for the categorical VAE)                  |
| argsNum         | as is                                                               |
| returnValue     | authors' codes: 0 zero, 1 positive, 2 negative (`returns="authors"`) |
|                 | or the paper's text: -1 negative, 0 zero, 1 positive (`"sign"`)     |

The authors' code uses the 0/1/2 codes for every model (they index embeddings), so that is the
default and what the benchmark reproduces. Two implementations compute the same values: `encode`
over a whole table (polars expressions) and `encode_event` for one live event (plain Python, a few
hundred nanoseconds); a test holds them equal.

The host's own mount namespace inode depends on the kernel (4026531840 on BETH's 2021 hosts,
4026531832 on a 6.18 kernel), so encoding live events takes `host_mnt_ns=` from the sensing host
(`beth.sensors.kernel.host_mount_namespace()`); for BETH files the default is right.

The encoded splits have few distinct rows (hundreds, against a million events), so `distinct_rows`
lets deterministic scorers work on those and broadcast back, exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from beth.errors import DataError, UsageError
from beth.events import ProcessEvent

FEATURES: tuple[str, ...] = (
    "processId",
    "parentProcessId",
    "userId",
    "mountNamespace",
    "eventId",
    "argsNum",
    "returnValue",
)

#: Inode of the initial (host) mount namespace on BETH's hosts; other kernels number it differently.
HOST_MOUNT_NAMESPACE = 4026531840
#: First uid of regular (non-system) users on Debian/Ubuntu.
FIRST_REGULAR_UID = 1000
KERNEL_PIDS = (0, 1, 2)

Returns = Literal["authors", "sign"]
#: (zero, positive, negative) codes of returnValue.
RETURN_CODES: dict[str, tuple[int, int, int]] = {"authors": (0, 1, 2), "sign": (0, 1, -1)}


def _return_codes(returns: str) -> tuple[int, int, int]:
    try:
        return RETURN_CODES[returns]
    except KeyError:
        raise UsageError(f"returns must be one of {', '.join(RETURN_CODES)}, not {returns!r}") from None


def feature_exprs(returns: Returns = "authors", host_mnt_ns: int = HOST_MOUNT_NAMESPACE) -> list[pl.Expr]:
    """Polars expressions computing the seven features from the raw BETH columns."""
    zero, pos, neg = _return_codes(returns)
    rv = pl.col("returnValue")
    return [
        (~pl.col("processId").is_in(KERNEL_PIDS)).cast(pl.Int64).alias("processId"),
        (~pl.col("parentProcessId").is_in(KERNEL_PIDS)).cast(pl.Int64).alias("parentProcessId"),
        (pl.col("userId") >= FIRST_REGULAR_UID).cast(pl.Int64).alias("userId"),
        (pl.col("mountNamespace") != host_mnt_ns).cast(pl.Int64).alias("mountNamespace"),
        pl.col("eventId").cast(pl.Int64),
        pl.col("argsNum").cast(pl.Int64),
        pl.when(rv > 0).then(pos).when(rv < 0).then(neg).otherwise(zero).cast(pl.Int64).alias("returnValue"),
    ]


def encode(
    df: pl.DataFrame, returns: Returns = "authors", host_mnt_ns: int = HOST_MOUNT_NAMESPACE
) -> pl.DataFrame:
    """The seven Appendix-A features of every row of a process table (raw or nested)."""
    missing = [c for c in FEATURES if c not in df.columns]
    if missing:
        raise UsageError(f"cannot encode features: missing column(s) {', '.join(missing)}")
    nulls = [c for c, n in zip(FEATURES, df.select(pl.col(FEATURES).null_count()).row(0), strict=True) if n]
    if nulls:
        raise DataError(
            f"cannot encode features: column(s) {', '.join(nulls)} hold missing values "
            "(the 13-column per-host files have no mountNamespace)"
        )
    return df.select(feature_exprs(returns, host_mnt_ns))


def encode_event(
    event: ProcessEvent | Mapping[str, Any],
    returns: Returns = "authors",
    host_mnt_ns: int = HOST_MOUNT_NAMESPACE,
) -> tuple[int, ...]:
    """The same seven features for one event (live path); equal to `encode` on a one-row table."""
    zero, pos, neg = _return_codes(returns)
    get = event.__getitem__ if isinstance(event, Mapping) else event.__getattribute__
    rv = get("returnValue")
    return (
        int(get("processId") not in KERNEL_PIDS),
        int(get("parentProcessId") not in KERNEL_PIDS),
        int(get("userId") >= FIRST_REGULAR_UID),
        int(get("mountNamespace") != host_mnt_ns),
        int(get("eventId")),
        int(get("argsNum")),
        pos if rv > 0 else neg if rv < 0 else zero,
    )


def to_matrix(encoded: pl.DataFrame) -> np.ndarray:
    """The encoded table as a float64 matrix (rows x 7), the input of every detector."""
    return encoded.select(FEATURES).to_numpy().astype(np.float64, copy=False)


@dataclass(frozen=True)
class DistinctRows:
    """A matrix folded to its distinct rows: `rows[inverse]` rebuilds it; `counts` weighs each row."""

    rows: np.ndarray
    inverse: np.ndarray
    counts: np.ndarray

    def expand(self, values: np.ndarray) -> np.ndarray:
        """Broadcast per-distinct-row values back to every original row."""
        return values[self.inverse]


def distinct_rows(X: np.ndarray) -> DistinctRows:
    """Fold `X` to its distinct rows (sorted lexicographically), with inverse index and counts.

    Each column is ranked on its own and the ranks combined into one mixed-radix integer key, so
    the fold costs a few 1-D sorts instead of `np.unique(axis=0)`'s row-wise sort (10x faster).
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise UsageError(f"expected a 2-D matrix, got {X.ndim} dimension(s)")
    ranks, radix = [], []
    for j in range(X.shape[1]):
        values, rank = np.unique(X[:, j], return_inverse=True)
        ranks.append(rank.reshape(-1))
        radix.append(len(values))
    if X.shape[0] == 0 or float(np.prod(np.asarray(radix, dtype=float))) >= 2.0**62:
        rows, inverse, counts = np.unique(X, axis=0, return_inverse=True, return_counts=True)
        return DistinctRows(rows, inverse.reshape(-1), counts)
    key = np.zeros(X.shape[0], dtype=np.int64)
    for rank, base in zip(ranks, radix, strict=True):
        key = key * base + rank
    _, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    return DistinctRows(X[first], inverse.reshape(-1), counts)


def summary(encoded: pl.DataFrame) -> pl.DataFrame:
    """Per feature: number of distinct values and the most common ones (for `beth info`/demo)."""
    rows = []
    for name in FEATURES:
        counts = encoded.get_column(name).value_counts(sort=True)
        top = ", ".join(f"{v}: {c:,}" for v, c in counts.head(4).iter_rows())
        rows.append({"feature": name, "distinct": counts.height, "most common": top})
    return pl.DataFrame(rows)
