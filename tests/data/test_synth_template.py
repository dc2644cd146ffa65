"""The template language and the renderer of the synthetic hosts, on small hand-built templates."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest

from beth.data.literal import parse_args, parse_literal
from beth.data.synth_hosts import make_host
from beth.data.synth_render import STACK_LENGTHS, Stream, label_counts, render, stack_text
from beth.data.synth_syscalls import fopen, sfo_flags
from beth.data.synth_template import Fmt, Pool, Proc, Var, composition, ev, rep, template
from beth.schema import PROCESS_DTYPES, events


def host(index: int = 0, name: str = "ip-10-100-1-217", rows: int = 1000, seed: int = 0):
    return make_host(name, index, rows, 125.0, 1000.0, np.random.default_rng(seed))


def rows_of(streams: list[Stream], hosts: list, seed: int = 0) -> pl.DataFrame:
    return render(streams, hosts, np.random.default_rng(seed)).sort("_host", "timestamp", "_seq")


# --- building templates --------------------------------------------------------------------------------


def test_ev_orders_arguments_like_tracee_and_checks_names() -> None:
    e = ev("openat", 3, mode=0, flags="O_RDONLY", pathname="/etc/passwd", dirfd=-100)
    assert [name for name, _ in e.args] == ["dirfd", "pathname", "flags", "mode"]
    assert e.event_id == 257 and e.args_num == 4
    with pytest.raises(ValueError, match="unknown arguments"):
        ev("close", fd=3, flags=1)
    with pytest.raises(ValueError, match="missing"):
        ev("openat", dirfd=-100, pathname="/x")
    with pytest.raises(ValueError, match="unknown Tracee"):
        ev("frobnicate", fd=3)


def test_beth_short_argument_lists() -> None:
    """BETH's cap_capable has 1 argument and its execve 2, fewer than Tracee's parameter lists."""
    assert len(events()[1003].params) == 2 and ev("cap_capable", cap="CAP_SETUID").args_num == 1
    assert ev("execve", pathname="/bin/ls", argv=["ls"]).args_num == 2
    for eid, e in events().items():
        if e.in_beth and e.name not in ("cap_capable", "execve"):
            assert ev(e.name, **{n: 0 for n in e.argnames}).args_num == len(e.params), eid


def test_constant_args_render_as_python_repr() -> None:
    """With no holes, the text is exactly repr() of the list of dicts, as BETH wrote it."""
    e = ev("execve", pathname="/bin/run-parts", argv=["run-parts", "--report", "/etc/cron.hourly"])
    (text,) = e.tokens()
    assert text == repr(
        [
            {"name": "pathname", "type": "const char*", "value": "/bin/run-parts"},
            {
                "name": "argv",
                "type": "const char*const*",
                "value": ["run-parts", "--report", "/etc/cron.hourly"],
            },
        ]
    )
    assert ev("sched_process_exit").tokens() == ["[]"]


def test_fmt_checks_holes_and_quotes() -> None:
    with pytest.raises(ValueError, match="holes"):
        Fmt("/proc/{}/{}", (Var("pid"),))
    with pytest.raises(ValueError, match="double quotes"):
        Fmt('say "{}"', (Var("pid"),))
    with pytest.raises(ValueError, match=r"Pool\.by"):
        Pool("ip", by="host")


def test_sfo_flags_follow_the_real_rows() -> None:
    # Real pairs from tests/data/beth-samples (openat flags -> security_file_open flags).
    assert sfo_flags("O_RDONLY|O_CLOEXEC") == "O_RDONLY|O_LARGEFILE"
    assert (
        sfo_flags("O_RDONLY|O_NONBLOCK|O_DIRECTORY|O_CLOEXEC")
        == "O_RDONLY|O_NONBLOCK|O_LARGEFILE|O_DIRECTORY"
    )
    assert sfo_flags("O_RDONLY") == "O_RDONLY|O_LARGEFILE"


def test_template_checks_slots_and_names() -> None:
    with pytest.raises(ValueError, match="slot 1"):
        template("t", [Proc("a", pid="systemd")], ev("close", proc=1, fd=3))
    with pytest.raises(ValueError, match="15 characters"):
        Proc("a-very-long-process-name", pid="systemd")
    with pytest.raises(ValueError, match="needs a parent"):
        Proc("child")


def test_composition_counts_expected_rows_per_name_and_label() -> None:
    t = template(
        "t",
        [Proc("parent", pid="systemd"), Proc("child", ppid=0, label=(1, 0))],
        ev("clone", Var("pid", 1), flags="x", stack="0x0", parent_tid="0x0", child_tid="0x0", tls=0),
        rep([ev("close", proc=1, fd=3), ev("close", proc=1, fd=4, p=0.5, times=(2, 4))], 2, 4),
    )
    comp = composition(t)
    assert comp[("parent", (0, 0))] == 1
    assert comp[("child", (1, 0))] == pytest.approx(3 * (1 + 0.5 * 3))
    assert t.mean_rows == pytest.approx(1 + 3 * 2.5)


# --- rendering -----------------------------------------------------------------------------------------


def fork_template():
    """A daemon forks a child, which reads a file, runs a loop, renames a thread and exits."""
    parent, child = 0, 1
    return template(
        "fork",
        [Proc("cron", pid="cron"), Proc("sh", ppid=0, threads=3, label=(1, 0))],
        ev(
            "clone",
            Var("pid", child),
            proc=parent,
            flags="CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID",
            stack="0x0",
            parent_tid="0x0",
            child_tid="0x0",
            tls=0,
        ),
        fopen("/etc/passwd", 3, proc=child),
        rep([ev("stat", proc=child, pathname=Fmt("/proc/{}", (Var("scan"),)), statbuf=Pool("ptr"))], 3, 3),
        ev("prctl", proc=child, thread=2, option="PR_SET_NAME", arg2=0, arg3=0, arg4=0, arg5=0),
        ev("sched_process_exit", proc=child),
    )


def test_render_links_pids_parents_and_clone_returns() -> None:
    h = host()
    df = rows_of([Stream(fork_template(), h, np.array([200.0, 300.0, 400.0]), seed=1)], [h])
    assert df.height == 3 * 10  # clone + (sfo, openat, fstat, close) + 3 stat + prctl + exit
    assert df.schema == pl.Schema({**PROCESS_DTYPES, "_host": pl.Int64, "_seq": pl.Int64})
    clones = df.filter(pl.col("eventName") == "clone")
    assert clones["processId"].to_list() == [h.pids["cron"]] * 3
    children = clones["returnValue"].to_list()
    assert children == sorted(children) and len(set(children)) == 3  # fresh pids, in time order
    for pid in children:
        rows = df.filter(pl.col("processId") == pid)
        assert rows.height == 9
        assert set(rows["parentProcessId"]) == {h.pids["cron"]}
        assert set(rows["processName"]) == {"sh"}
        assert rows.filter(pl.col("eventName") == "prctl")["threadId"].to_list() == [pid + 2]
        assert (rows["timestamp"].diff().drop_nulls() >= 0).all()
    # Three threads are reserved after each fresh pid.
    assert np.diff(children).min() >= 4
    # Scan rows walk the host's process table in order.
    stats = df.filter(pl.col("eventName") == "stat")["args"].to_list()[:3]
    assert [parse_args(a)[0]["value"] for a in stats] == [f"/proc/{p}" for p in h.scan[:3]]
    assert (df["sus"] == (df["processName"] == "sh").cast(pl.Int8)).all()


def test_every_rendered_literal_parses_and_matches_argsnum() -> None:
    h = host()
    df = rows_of([Stream(fork_template(), h, np.array([200.0, 300.0]), seed=2)], [h])
    for text, n in df.select("args", "argsNum").iter_rows():
        assert len(parse_args(text)) == n
    opened = df.filter(pl.col("eventName") == "security_file_open")["args"].to_list()
    assert parse_args(opened[0])[1]["value"] == "O_RDONLY|O_LARGEFILE"
    ptrs = [parse_args(a)[1]["value"] for a in df.filter(pl.col("eventName") == "stat")["args"]]
    assert all(re.fullmatch(r"0x7FF[0-9A-F]{9}", p) for p in ptrs)


def test_budget_cuts_the_stream_exactly_and_counts_by_label() -> None:
    h = host()
    t = fork_template()
    for count, budget in (("all", 17), ("sus", 12), ("benign", 2)):
        s = Stream(t, h, np.array([200.0]), budget=budget, count=count, seed=3)
        df = rows_of([s], [h])
        counted = {"all": df.height, "sus": int(df["sus"].sum()), "benign": int((df["sus"] == 0).sum())}
        assert counted[count] == budget
    # More rows than one instance holds: the schedule continues at its own pace.
    df = rows_of([Stream(t, h, np.array([200.0, 260.0]), budget=50, seed=4)], [h])
    assert df.height == 50 and df["timestamp"].max() > 260.0
    assert label_counts(Stream(t, h, np.array([200.0]), budget=5, seed=4)) == {(0, 0): 1, (1, 0): 4}


def test_label_override_and_registered_pids() -> None:
    h = host()
    starter = template("start", [Proc("bash", ppid="systemd", register="shell")], ev("close", fd=3))
    user = template(
        "user", [Proc("tsm", pid="shell"), Proc("tsm", pid="slot:0", uid=1001)], ev("close", proc=1, fd=4)
    )
    df = rows_of(
        [
            Stream(starter, h, np.array([150.0]), seed=5),
            Stream(user, h, np.array([160.0, 170.0]), label=(1, 1), seed=6),
        ],
        [h],
    )
    shell = df.filter(pl.col("processName") == "bash")["processId"].item()
    tsm = df.filter(pl.col("processName") == "tsm")
    assert tsm["processId"].to_list() == [shell, shell]
    assert tsm["parentProcessId"].to_list() == [1, 1]  # the alias takes the aliased slot's parent
    assert tsm["userId"].to_list() == [1001, 1001]
    assert tsm["sus"].to_list() == [1, 1] and tsm["evil"].to_list() == [1, 1]
    # A name nobody registered: a process from before the log, with a fresh pid above all others.
    unknown = template("u", [Proc("x", pid="nobody")], ev("close", fd=1))
    df = rows_of([Stream(starter, h, np.array([150.0]), seed=5), Stream(unknown, h, np.array([1.0]))], [h])
    assert df.filter(pl.col("processName") == "x")["processId"].item() > shell


def test_host_type_variants_change_only_the_type_strings() -> None:
    hosts = [host(i, f"h{i}", seed=i) for i in range(8)]
    t = template("o", [Proc("cron", pid="cron")], fopen("/etc/crontab", 3))
    df = rows_of([Stream(t, h, np.array([200.0]), seed=i) for i, h in enumerate(hosts)], hosts)
    types = {
        (h, parse_args(a)[2]["type"])
        for h, a in df.filter(pl.col("eventName") == "openat").select("hostName", "args").iter_rows()
    }
    assert len({t for _, t in types}) > 1  # Tracee's type strings differ between hosts, as in BETH
    assert len(types) == len(hosts)  # but one per host


def test_stack_text_lengths_and_uint64_values() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    inst = rng.integers(0, 500, n)
    text = stack_text(inst, rng.choice([3, 257, 1005], n), rng, 500)
    lists = [parse_literal(t) for t in text.to_list()]
    lengths = np.array([len(v) for v in lists])
    total = sum(STACK_LENGTHS.values())
    for k in (0, 1, 2, 3):
        assert (lengths == k).mean() == pytest.approx(STACK_LENGTHS[k] / total, abs=0.005)
    assert ((lengths > 4) & (lengths <= 20)).any() and lengths.max() <= 20
    words = [w for v in lists for w in v]
    assert all(isinstance(w, int) and 0 <= w < 2**64 for w in words)
    assert any(w >= 2**63 for w in words)  # above int64: BETH stores these as uint64
