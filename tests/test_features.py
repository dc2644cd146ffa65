"""Appendix-A features: the table of paper-protocol.md on real rows; batch == one-event transform."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beth.data.load import load
from beth.errors import DataError, UsageError
from beth.events import ProcessEvent
from beth.features import FEATURES, distinct_rows, encode, encode_event, to_matrix


@pytest.fixture(scope="module")
def splits(samples: Path) -> pl.DataFrame:
    names = [f"labelled_{s}_data.head100.csv" for s in ("training", "validation", "testing")]
    return load([samples / n for n in names])


@pytest.mark.parametrize(
    ("name", "line", "expected"),
    [
        # pid 381, ppid 1, uid 100, mnt 4026532231, prctl, 5 args, returns 0
        ("labelled_training_data.head100.csv", 2, (1, 0, 0, 1, 157, 5, 0)),
        # pid 7347, ppid 7341, uid 0, host mnt ns, access, 2 args, returns -2 (ENOENT)
        ("labelled_training_data.head100.csv", 5, (1, 1, 0, 0, 21, 2, 2)),
        # pid 1407, ppid 1326, uid 1000 (the attacker's ssh session), unlink 1 arg, returns 0
        ("labelled_testing_data.head100.csv", 71, (1, 1, 1, 0, 87, 1, 0)),
        # systemd-resolve socket() returning fd 15 (positive), 3 args
        ("labelled_validation_data.head100.csv", 2, (1, 0, 0, 1, 41, 3, 1)),
    ],
)
def test_encoding_matches_the_protocol_table(samples: Path, name: str, line: int, expected: tuple) -> None:
    encoded = encode(load(samples / name))
    assert encoded.row(line - 2) == expected


def test_kernel_pids_and_sign_codes() -> None:
    df = pl.DataFrame(
        {
            "processId": [0, 1, 2, 3],
            "parentProcessId": [2, 3, 0, 1],
            "userId": [0, 999, 1000, 1001],
            "mountNamespace": [4026531840, 4026531841, 4026532217, 4026531840],
            "eventId": [3, 1005, 42, 1010],
            "argsNum": [1, 4, 3, 0],
            "returnValue": [0, 7, -114, -1],
        }
    )
    authors = encode(df)
    assert authors.rows() == [(0, 0, 0, 0, 3, 1, 0), (0, 1, 0, 1, 1005, 4, 1), (0, 0, 1, 1, 42, 3, 2),
                              (1, 0, 1, 0, 1010, 0, 2)]  # fmt: skip
    assert encode(df, returns="sign").get_column("returnValue").to_list() == [0, 1, -1, -1]
    with pytest.raises(UsageError, match="returns must be"):
        encode(df, returns="nope")  # type: ignore[arg-type]


def test_one_event_transform_equals_batch_on_real_rows(splits: pl.DataFrame) -> None:
    batch = encode(splits).rows()
    for returns in ("authors", "sign"):
        batch = encode(splits, returns=returns).rows()
        single = [encode_event(row, returns=returns) for row in splits.iter_rows(named=True)]
        assert single == batch


_int = st.one_of(st.sampled_from([0, 1, 2, 3, 999, 1000, 1001, 4026531840, -1]), st.integers(-(2**40), 2**40))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(_int, _int, _int, _int, st.integers(0, 1010), st.integers(0, 6), _int),
        min_size=1,
        max_size=20,
    )
)
def test_one_event_transform_equals_batch_property(rows: list[tuple[int, ...]]) -> None:
    df = pl.DataFrame(rows, schema=list(FEATURES), orient="row")
    events = [
        ProcessEvent(0.0, r[0], r[0], r[1], r[2], r[3], "x", "h", r[4], "e", [], r[5], r[6], []) for r in rows
    ]
    assert [encode_event(ev) for ev in events] == encode(df).rows()


def test_host_files_cannot_be_encoded(samples: Path) -> None:
    with pytest.raises(DataError, match="mountNamespace"):
        encode(load(samples / "labelled_2021may-ubuntu.head100.csv"))
    with pytest.raises(UsageError, match="missing column"):
        encode(pl.DataFrame({"processId": [1]}))


def test_distinct_rows_matches_numpy_unique(splits: pl.DataFrame) -> None:
    X = to_matrix(encode(splits))
    folded = distinct_rows(X)
    rows, inverse, counts = np.unique(X, axis=0, return_inverse=True, return_counts=True)
    assert np.array_equal(folded.rows, rows)
    assert np.array_equal(folded.inverse, inverse.reshape(-1))
    assert np.array_equal(folded.counts, counts)
    assert np.array_equal(folded.expand(folded.rows), X)
    assert folded.rows.shape[0] < X.shape[0] / 5  # the fact the benchmark's speed rests on


def test_live_events_compare_with_the_sensing_hosts_mount_namespace() -> None:
    """Kernels number the host's mount namespace differently; live encoding takes it as a parameter."""
    from beth.sensors.kernel import host_mount_namespace

    here = host_mount_namespace(("/nonexistent/ns/mnt", "/proc/self/ns/mnt"))
    assert here == os.stat("/proc/self/ns/mnt").st_ino
    event = ProcessEvent(1.0, 100, 100, 1, 0, here, "ps", "h", 257, "openat", [], 4, 3, [])
    assert encode_event(event, host_mnt_ns=here)[3] == 0  # the host itself
    assert encode_event(event)[3] == int(here != 4026531840)  # BETH's number: a container unless equal
    df = pl.DataFrame([event.to_record()]).drop("stackAddresses", "args")
    assert encode(df, host_mnt_ns=here).row(0) == encode_event(event, host_mnt_ns=here)
