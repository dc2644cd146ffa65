"""The scripted attack of the synthetic test host, step by step as the paper tells it."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest

from beth.data.literal import parse_args
from beth.data.synth import generate, generate_split
from beth.features import encode, to_matrix

TEST_ROWS = 40_000  # big enough for the whole script (below ~25k test rows it is cut to fit the labels)


@pytest.fixture(scope="module")
def test_split() -> pl.DataFrame:
    return generate_split("testing", TEST_ROWS, seed=5)


def values(df: pl.DataFrame, name: str) -> list:
    """The `name` argument of every row of df."""
    return [next(a["value"] for a in parse_args(text) if a["name"] == name) for text in df["args"]]


def test_first_evil_rows_end_the_ubuntu_session(test_split: pl.DataFrame) -> None:
    evil = test_split.filter(pl.col("evil") == 1)
    first = evil.head(5)
    assert 130 <= first["timestamp"][0] <= 134  # BETH: ~132 s after boot
    assert set(first["processName"]) == {"sshd"} and set(first["userId"]) == {1000}
    unlink = first.filter(pl.col("eventName").is_in(["security_inode_unlink", "unlink"]))
    assert unlink.height == 2
    for pid, path in zip(unlink["processId"], values(unlink, "pathname"), strict=True):
        assert re.fullmatch(rf"/tmp/ssh-[A-Za-z0-9]{{10}}/agent\.{pid}", path)
    # The root monitor of that session restores its ids: sus, not evil.
    monitor = test_split.filter(
        (pl.col("processId") == first["parentProcessId"][0])
        & (pl.col("timestamp") < first["timestamp"][0] + 1)
    )
    assert {"setregid", "setreuid", "cap_capable"} <= set(monitor["eventName"])
    assert set(monitor["userId"]) == {0} and set(monitor.select("sus", "evil").rows()) == {(1, 0)}
    assert "CAP_SETUID" in values(monitor.filter(pl.col("eventName") == "cap_capable"), "cap")


def test_new_user_logs_in_and_looks_around(test_split: pl.DataFrame) -> None:
    uid = test_split.filter(pl.col("userId") == 1001)
    assert uid.height > 0.7 * test_split.height  # BETH: 160,987 of 188,967 rows
    assert uid.filter(pl.col("evil") == 0).height > 0  # the user's own sshd: sus, not evil
    assert set(uid.filter(pl.col("evil") == 0)["processName"]) == {"sshd"}
    execs = test_split.filter((pl.col("eventName") == "execve") & (pl.col("evil") == 1))
    argvs = [" ".join(v) for v in values(execs, "argv")]
    for cmd in ("whoami", "ls -la", "cat /proc/cpuinfo", "tar xzf dota3.tar.gz", "gzip -d"):
        assert any(a.startswith(cmd) for a in argvs), cmd
    shells = test_split.filter((pl.col("eventName") == "execve") & (pl.col("userId") == 1001))
    assert ["-bash"] in values(shells, "argv")  # exec'd by the user's sshd child (sus; its shell is evil)
    # Random think time between the first commands.
    starts = execs.filter(pl.col("processName") == "bash")["timestamp"].to_list()
    assert len(starts) >= 3 and max(np.diff(starts[:4])) > 2


def test_archive_fetched_over_sftp_then_unpacked_later(test_split: pl.DataFrame) -> None:
    opens = test_split.filter(pl.col("eventName") == "openat")
    paths = values(opens, "pathname")
    archive = opens.filter(pl.Series([p.endswith("dota3.tar.gz") for p in paths]))
    written = archive.filter(pl.col("processName") == "sftp-server")
    read = archive.filter(pl.col("processName") == "tar")
    assert written.height == 1 and read.height == 1
    assert "O_WRONLY|O_CREAT|O_TRUNC" in values(written, "flags")
    assert 400 <= read["timestamp"][0] - written["timestamp"][0] <= 560  # "~7.5 minutes later"
    assert set(archive["evil"]) == {1}
    extracted = [p for p in paths if p.startswith(".configrc/")]
    assert ".configrc/c/tsm" in extracted


def test_tsm_connect_storm(test_split: pl.DataFrame) -> None:
    tsm = test_split.filter(pl.col("processName") == "tsm")
    assert tsm["processId"].n_unique() == 1 and set(tsm["userId"]) == {1001} and set(tsm["evil"]) == {1}
    assert tsm["threadId"].n_unique() > 10
    connects = tsm.filter(pl.col("eventName") == "connect")
    codes = connects["returnValue"].value_counts()
    counts = dict(codes.iter_rows())
    assert counts[-114] > 40 * counts[-115]  # BETH: 142,401 EALREADY vs 2,404 EINPROGRESS
    # Per attempt: socket -> connect -115 -> connects -114 on the same fd and target -> close.
    thread = tsm.filter(pl.col("threadId") == tsm["threadId"].mode()[0]).filter(
        pl.col("eventName").is_in(["socket", "connect", "close"])
    )
    rows = thread.select("eventName", "returnValue", "args").rows()
    fd = target = None
    for name, ret, args in rows:
        a = {x["name"]: x["value"] for x in parse_args(args)}
        if name == "socket":
            fd, target = ret, None
        elif name == "connect":
            assert a["sockfd"] == fd and "'sin_port': '22'" in a["addr"]
            assert (ret == -115) == (target is None)
            target = target or a["addr"]
            assert a["addr"] == target
        else:
            assert a["fd"] == fd
    # Every thread was cloned by tsm's main thread, with its tid as the return value.
    clones = tsm.filter(pl.col("eventName") == "clone")["returnValue"]
    assert set(tsm["threadId"].unique()) - {tsm["processId"][0]} <= set(clones)


def test_sus_only_rows_look_like_benign_privileged_work(test_split: pl.DataFrame) -> None:
    sus_only = test_split.filter((pl.col("sus") == 1) & (pl.col("evil") == 0))
    names = set(sus_only["processName"])
    assert {"sshd", "sh", "run-parts"} <= names and names <= {"sshd", "sh", "run-parts", "systemd", "(sshd)"}
    assert set(sus_only["userId"]) <= {0, 109, 1001}


def test_benign_test_rows_look_like_training_rows() -> None:
    """Every encoded (Appendix-A) benign test row also occurs in training; attack rows mostly do not."""
    splits = generate(120_000, seed=9)
    seen = {tuple(r) for r in np.unique(to_matrix(encode(splits["training"])), axis=0)}
    test = splits["testing"]
    x = to_matrix(encode(test))
    novel = np.array([tuple(r) not in seen for r in x])
    benign = (test["sus"] == 0).to_numpy()
    evil = (test["evil"] == 1).to_numpy()
    assert novel[benign].mean() == 0
    assert novel[evil].mean() > 0.8


def test_full_size_test_split_matches_the_papers_facts() -> None:
    test = generate_split("testing", 188_967, seed=0)
    assert test.group_by("sus", "evil").len().sort("sus", "evil").rows() == [
        (0, 0, 17_508),
        (1, 0, 13_027),
        (1, 1, 158_432),
    ]
    tsm = test.filter(pl.col("processName") == "tsm")
    assert tsm["threadId"].n_unique() > 100  # ">100 threads of tsm"
    assert tsm.height == pytest.approx(149_155, rel=0.05)
    ret = dict(test["returnValue"].value_counts().iter_rows())
    assert ret[-114] == pytest.approx(142_401, rel=0.05) and ret[-115] == pytest.approx(2_404, rel=0.1)
    uid = test.filter(pl.col("userId") == 1001)
    assert uid.height == pytest.approx(160_987, rel=0.03)
    assert uid.filter(pl.col("evil") == 0).height == pytest.approx(3_708, rel=0.3)
