"""The synthetic training split reproduces BETH's published marginals, within stated tolerances.

PUBLISHED holds the value counts of the real `labelled_training_data.csv` (763,144 rows) as collected
in /work/shared/docs/beth-data-facts.md ("Training split value counts"), from notebooks and papers
that loaded the full Kaggle file; TEST_FACTS the test split's figures from the same document
("The attack in the test split") and paper-protocol.md.

Tolerance: a generated share g of a value whose published share is p passes when
|g - p| <= 0.25 p + 0.002, i.e. within 25% for common values, within 0.2 percentage points for rare ones.
"""

from __future__ import annotations

import polars as pl
import pytest

from beth.data.synth import generate_split, split_sizes

TRAIN_ROWS = 763_144
PUBLISHED: dict[str, dict[object, int]] = {
    "userId": {0: 754_907, 101: 3_398, 109: 1_476, 102: 1_208, 100: 1_148, 1000: 996, 103: 11},
    "mountNamespace": {
        4026531840: 567_496, 4026532217: 189_292, 4026532232: 3_398, 4026532229: 1_208, 4026532231: 1_148,
        4026532288: 602,
    },
    "processName": {
        "ps": 406_313, "systemd-udevd": 189_292, "sshd": 91_762, "systemd-journal": 20_421,
        "systemd": 17_310, "systemd-tmpfile": 13_014, "amazon-ssm-agen": 4_850, "snapd": 4_187, "cron": 4_080,
        "systemd-resolve": 3_398, "systemd-user-ru": 1_276, "systemd-timesyn": 1_208,
        "systemd-network": 1_112, "(tmpfiles)": 1_008, "ssm-agent-worke": 822, "poweroff": 754,
        "(time-dir)": 702, "systemd-logind": 602, "(sd-sync)": 523, "sh": 119, "run-parts": 112,
    },
    "eventName": {
        "close": 218_080, "openat": 209_730, "security_file_open": 148_611, "fstat": 80_071, "stat": 41_931,
        "access": 14_383, "cap_capable": 9_825, "lstat": 7_031, "getdents64": 6_149, "socket": 5_971,
        "connect": 3_581, "kill": 2_818, "dup2": 2_389, "getsockname": 2_308, "unlink": 1_809,
        "sched_process_exit": 1_409, "prctl": 1_379, "clone": 1_299, "bind": 853, "accept4": 772,
        "security_bprm_check": 581, "execve": 574, "unlinkat": 422, "dup": 354, "security_inode_unlink": 199,
        "accept": 177, "setuid": 171, "setgid": 171, "fchmod": 66, "dup3": 20, "symlink": 6, "umount": 4,
    },
    "returnValue": {
        0: 526_690, 9: 106_839, 6: 31_310, 15: 23_848, -2: 20_207, 3: 18_766, 4: 5_859, 8: 5_682, 5: 4_747,
        32: 3_067,
    },
    "argsNum": {4: 359_113, 1: 230_609, 2: 149_273, 3: 20_062, 5: 2_678, 0: 1_409},
    "stackDepth": {0: 521_115, 2: 109_594, 1: 65_545, 3: 59_301, 4: 2_445, 20: 1_406},
}  # fmt: skip
#: Test split (188,967 rows): share of rows with each property.
TEST_ROWS = 188_967
TEST_FACTS = {
    "userId == 1001": 160_987,
    "userId == 1001 and evil": 157_279,
    "processName == tsm": 149_155,
    "returnValue == -114 (EALREADY)": 142_401,
    "returnValue == -115 (EINPROGRESS)": 2_404,
}
ROWS = 100_000  # total over the three splits; the training split gets 66,880 of them


def within(generated: float, published: float) -> bool:
    return abs(generated - published) <= 0.25 * published + 0.002


def shares(df: pl.DataFrame) -> dict[str, dict[object, float]]:
    depth = (
        pl.when(pl.col("stackAddresses") == "[]")
        .then(0)
        .otherwise(pl.col("stackAddresses").str.count_matches(",") + 1)
        .alias("stackDepth")
    )
    df = df.with_columns(depth)
    return {col: {k: n / df.height for k, n in df[col].value_counts().iter_rows()} for col in PUBLISHED}


def misses(df: pl.DataFrame) -> list[str]:
    got = shares(df)
    out = []
    for col, table in PUBLISHED.items():
        for value, n in table.items():
            g, p = got[col].get(value, 0.0), n / TRAIN_ROWS
            if not within(g, p):
                out.append(f"{col}={value}: generated {g:.4%}, published {p:.4%}")
    return out


@pytest.fixture(scope="module")
def train() -> pl.DataFrame:
    return generate_split("training", split_sizes(ROWS)["training"], seed=0)


def test_training_marginals_match_the_published_ones(train: pl.DataFrame) -> None:
    assert misses(train) == []


def test_training_has_no_unpublished_users_or_namespaces(train: pl.DataFrame) -> None:
    assert set(train["userId"].unique()) <= set(PUBLISHED["userId"])
    assert set(train["mountNamespace"].unique()) <= set(PUBLISHED["mountNamespace"])
    assert set(train["eventName"].unique()) <= set(PUBLISHED["eventName"])  # the full list of 32
    assert train["returnValue"].min() >= -115  # published minimum


def test_a_wrong_marginal_would_be_caught(train: pl.DataFrame) -> None:
    """The check has teeth: moving 5% of rows from ps to sshd breaks it."""
    moved = train.with_columns(
        pl.when((pl.col("processName") == "ps") & (pl.int_range(pl.len()) % 10 == 0))
        .then(pl.lit("sshd"))
        .otherwise(pl.col("processName"))
        .alias("processName")
    )
    assert any(m.startswith("processName=sshd") for m in misses(moved))


def test_test_split_facts() -> None:
    test = generate_split("testing", split_sizes(ROWS)["testing"], seed=0)
    facts = {
        "userId == 1001": pl.col("userId") == 1001,
        "userId == 1001 and evil": (pl.col("userId") == 1001) & (pl.col("evil") == 1),
        "processName == tsm": pl.col("processName") == "tsm",
        "returnValue == -114 (EALREADY)": pl.col("returnValue") == -114,
        "returnValue == -115 (EINPROGRESS)": pl.col("returnValue") == -115,
    }
    for name, expr in facts.items():
        g = test.select(expr.mean()).item()
        assert within(g, TEST_FACTS[name] / TEST_ROWS), (
            f"{name}: {g:.4%} vs {TEST_FACTS[name] / TEST_ROWS:.4%}"
        )


@pytest.mark.slow
def test_full_size_training_split() -> None:
    """At the paper's size the marginals hold too, and the distinct counts are of the published order."""
    full = generate_split("training", TRAIN_ROWS, seed=0)
    assert misses(full) == []
    published_distinct = {"processId": 545, "threadId": 588, "parentProcessId": 205, "args": 214_720,
                          "stackAddresses": 97_050}  # fmt: skip
    for col, n in published_distinct.items():
        assert n / 2 <= full[col].n_unique() <= 2 * n, col
    assert 25 <= full["processName"].n_unique() <= 45  # published: 36
    assert (full["processId"] == full["threadId"]).mean() > 0.98  # published: ~99%
