"""`beth.data.synth`: sizes, schema, literal fields, labels, order, determinism and the files it writes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from beth.data.literal import parse_args, parse_literal
from beth.data.load import discover, find_splits, load
from beth.data.synth import (
    PAPER_ROWS,
    SPLITS,
    SUS_ROWS,
    TEST_LABELS,
    apportion,
    generate,
    generate_split,
    split_sizes,
    write_synthetic,
)
from beth.data.synth_hosts import SPLIT_HOSTS
from beth.errors import UsageError
from beth.schema import PROCESS_DTYPES

ROWS = 6_000


@pytest.fixture(scope="module")
def splits() -> dict[str, pl.DataFrame]:
    return generate(ROWS, seed=7)


def test_split_sizes_are_the_papers() -> None:
    assert split_sizes() == {"training": 763_144, "validation": 188_967, "testing": 188_967}
    assert sum(split_sizes().values()) == PAPER_ROWS == 1_141_078
    for rows in (100, 1_000, 12_345, 2_000_001):
        sizes = split_sizes(rows)
        assert sum(sizes.values()) == rows
        assert sizes["training"] == pytest.approx(rows * 763_144 / PAPER_ROWS, abs=1)
    with pytest.raises(UsageError, match="at least 100"):
        split_sizes(99)


def test_apportion_is_exact_and_proportional() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        weights = rng.integers(0, 1000, rng.integers(1, 10)).tolist()
        total = int(rng.integers(0, 10_000))
        parts = apportion(total, weights)
        if sum(weights):
            assert sum(parts) == total
            exact = np.array(weights) * total / sum(weights)
            assert np.all(np.abs(np.array(parts) - exact) < 1)


def test_frames_have_the_16_raw_columns_and_types(splits: dict[str, pl.DataFrame]) -> None:
    assert list(splits) == list(SPLITS)
    for name, df in splits.items():
        assert df.schema == pl.Schema(PROCESS_DTYPES), name
        assert df.height == split_sizes(ROWS)[name]
        assert df.null_count().sum_horizontal().item() == 0
        assert df.is_duplicated().sum() == 0  # BETH's split files hold no duplicate rows either


def test_hosts_are_the_papers_in_proportion(splits: dict[str, pl.DataFrame]) -> None:
    for name, df in splits.items():
        published = SPLIT_HOSTS[name]
        counts = dict(df.group_by("hostName").len().iter_rows())
        expected = dict(zip(published, apportion(df.height, list(published.values())), strict=True))
        assert counts == {h: n for h, n in expected.items() if n}


def test_literal_fields_parse_and_args_num_matches(splits: dict[str, pl.DataFrame]) -> None:
    for df in splits.values():
        for args, n in df.select("args", "argsNum").unique().iter_rows():
            assert len(parse_args(args)) == n, args
        for text in df["stackAddresses"].unique().to_list():
            words = parse_literal(text)
            assert isinstance(words, list) and len(words) <= 20
            assert all(isinstance(w, int) and 0 <= w < 2**64 for w in words)


def test_the_loader_parses_the_written_files(tmp_path: Path) -> None:
    """Written CSV and Parquet load with the nested columns parsed, marked synthetic, split recognised."""
    for fmt in ("csv", "parquet"):
        paths = write_synthetic(tmp_path / fmt, rows=1_500, seed=3, fmt=fmt)
        assert [p.name for p in paths] == [f"labelled_{s}_data.synthetic.{fmt}" for s in SPLITS]
        found = find_splits(tmp_path / fmt)
        assert set(found) == set(SPLITS)
        for f in discover(tmp_path / fmt):
            assert f.synthetic, f.path
        test = load(found["testing"].path, parse_nested=True)
        assert (test["args"].list.len() == test["argsNum"]).all()
        assert test["stackAddresses"].dtype == pl.List(pl.UInt64)
    meta = pq.read_schema(tmp_path / "parquet" / "labelled_testing_data.synthetic.parquet").metadata
    assert meta[b"beth.synthetic"] == b"1" and b"SYNTHETIC" in meta[b"beth.note"]


def test_labels(splits: dict[str, pl.DataFrame]) -> None:
    for name, df in splits.items():
        assert (df["evil"] <= df["sus"]).all(), "evil implies sus"
        if name != "testing":
            assert df["evil"].sum() == 0
            assert df["sus"].sum() == round(df.height * SUS_ROWS[name] / split_sizes()[name])
    test = splits["testing"]
    got = dict(((s, e), n) for s, e, n in test.group_by("sus", "evil").len().iter_rows())
    assert got == dict(zip(TEST_LABELS, apportion(test.height, list(TEST_LABELS.values())), strict=True))


def test_row_order_follows_beth(splits: dict[str, pl.DataFrame]) -> None:
    """Training lists its sus rows first, grouped by host; each host's rows run forward from boot."""
    train = splits["training"]
    sus = train["sus"].to_numpy()
    first_benign = int(np.argmin(sus))
    assert sus[:first_benign].all() and not sus[first_benign:].any()
    for name, df in splits.items():
        blocks = [train[:first_benign], train[first_benign:]] if name == "training" else [df]
        for block in blocks:
            hosts = block["hostName"].to_list()
            runs = [h for k, h in enumerate(hosts) if k == 0 or hosts[k - 1] != h]
            assert len(runs) == len(set(runs)), "each host's rows are contiguous"
            per_host = block.group_by("hostName", maintain_order=True).agg(
                (pl.col("timestamp").diff().drop_nulls() >= 0).all().alias("forward"),
                pl.col("timestamp").min(),
            )
            assert per_host["forward"].all()
    assert splits["validation"]["timestamp"][0] < 135 and splits["testing"]["timestamp"][0] < 135


def test_processes_look_like_processes() -> None:
    # Medium size: at a few thousand rows most streams end mid-instance (a fork without its child).
    train = generate_split("training", 40_000, seed=7)
    assert (train["processId"] == train["threadId"]).mean() > 0.95  # BETH: ~99%
    # A fork's return value is the child's pid, and the child shows up with it.
    clones = train.filter((pl.col("eventName") == "clone") & (pl.col("returnValue") > 0))
    seen = set(zip(train["hostName"], train["processId"], strict=True)) | set(
        zip(train["hostName"], train["threadId"], strict=True)
    )
    found = [(h, r) in seen for h, r in clones.select("hostName", "returnValue").iter_rows()]
    assert clones.height and np.mean(found) > 0.9
    # Every child's parent is a process of the same host (or 0 for pid 1 and kthreadd).
    pids = train.group_by("hostName").agg(pl.col("processId").unique())
    for host, known in pids.iter_rows():
        parents = set(train.filter(pl.col("hostName") == host)["parentProcessId"].unique()) - {0}
        assert len(parents - set(known)) <= 0.5 * len(parents)
    assert re.fullmatch(r"ip-10-100-1-\d+|ubuntu", train["hostName"][0])


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    for fmt in ("csv", "parquet"):
        a = write_synthetic(tmp_path / "a" / fmt, rows=800, seed=11, fmt=fmt)
        b = write_synthetic(tmp_path / "b" / fmt, rows=800, seed=11, fmt=fmt)
        c = write_synthetic(tmp_path / "c" / fmt, rows=800, seed=12, fmt=fmt)
        for x, y, z in zip(a, b, c, strict=True):
            assert x.read_bytes() == y.read_bytes()
            assert x.read_bytes() != z.read_bytes()


def test_generate_split_matches_generate() -> None:
    rows = split_sizes(3_000)["testing"]
    assert generate_split("testing", rows, seed=2).equals(generate(3_000, seed=2)["testing"])
    with pytest.raises(UsageError, match="unknown split"):
        generate_split("train", 1000)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fmt": "jsonl"}, "csv or parquet"),
        ({"seed": -1}, "non-negative"),
        ({"rows": 10}, "at least 100"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        write_synthetic(tmp_path, **{"rows": 500, **kwargs})


def test_unwritable_output_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        write_synthetic(tmp_path / "file", rows=500)
    with pytest.raises(UsageError, match="cannot create"):
        write_synthetic(tmp_path / "file" / "sub", rows=500)


@pytest.mark.parametrize("rows", [100, 233, 1_500])
def test_tiny_sizes_keep_exact_sizes_and_labels(rows: int) -> None:
    """Down to 100 rows the script is cut (or left out) but sizes and label counts stay exact."""
    splits = generate(rows, seed=1)
    assert {k: v.height for k, v in splits.items()} == split_sizes(rows)
    test = splits["testing"]
    got = {(s, e): n for s, e, n in test.group_by("sus", "evil").len().iter_rows()}
    expected = dict(zip(TEST_LABELS, apportion(test.height, list(TEST_LABELS.values())), strict=True))
    assert got == {k: v for k, v in expected.items() if v}
