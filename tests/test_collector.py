"""The collector: exact BETH files per host, rotation, crash recovery, duplicates, rejects, Parquet.

Most tests drive it with the memory transport; redelivery after a crash is scripted with
`ReplaySubscriber`, a small Subscriber that replays from the last acknowledged delivery like a
durable broker consumer does (the real broker is exercised in tests/transport/test_nats.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from beth.collector import REJECTED_FILE, STATE_FILE, STATS_FILE, Collector, check_rows
from beth.data.load import load
from beth.data.write import EventWriter, csv_line
from beth.errors import DataError
from beth.schema import FileKind
from beth.transport.base import Delivery, Subscriber
from beth.transport.envelope import Channel, Envelope, host_token
from beth.transport.memory import MemoryBus
from sample_events import dns_events, process_events


class ReplaySubscriber(Subscriber):
    """Serves a fixed list of envelopes as a broker would: after `restart()`, from the last ack on;
    like the real transports, each fetch groups its events by stream, the ack token on its last."""

    def __init__(
        self, envelopes: list[Envelope], *, untrusted: bool = True, lines: dict[int, str] | None = None
    ):
        self.envelopes, self.untrusted = envelopes, untrusted
        self.lines = lines or {}  # index -> raw line to send instead of the event's record
        self.acked = -1
        self.pos = 0

    def fetch(self, max_messages: int, timeout: float, *, fill: bool = False) -> list[Delivery]:
        out: list[Delivery] = []
        runs: dict[tuple[str, str, str], Delivery] = {}
        for _ in range(max_messages):
            if self.pos == len(self.envelopes):
                break
            e = self.envelopes[self.pos]
            raw = self.lines.get(self.pos)
            record = e.payload() if raw is None else raw.encode()
            d = runs.get((e.host, e.kind, e.run))
            if d is not None and e.kind != "stats" and e.seq == d.seq + d.count:
                d.lines.append(record)  # type: ignore[union-attr]
            else:
                d = runs[(e.host, e.kind, e.run)] = Delivery(
                    host_token(e.host), e.kind, e.run, e.seq, lines=[record]
                )
                out.append(d)
            self.pos += 1
        if out:
            out[-1].token = self.pos - 1
        return out

    def ack(self, delivery: Delivery) -> None:
        assert delivery.token > self.acked
        self.acked = delivery.token

    def restart(self) -> None:
        self.pos = self.acked + 1

    def close(self) -> None:
        pass


def wrap_all(host: str, n_process: int, n_dns: int) -> list[Envelope]:
    pch, dch = Channel(host, "process"), Channel(host, "dns")
    p = [pch.wrap(e) for e in process_events(host, n_process)]
    d = [dch.wrap(e) for e in dns_events(host, n_dns)]
    out: list[Envelope] = []
    for i in range(max(len(p), len(d))):  # interleave the two kinds as the sensors would
        out += p[i : i + 1] + d[i : i + 1]
    return out


def expected_file(tmp_path: Path, events: list, kind: FileKind) -> bytes:
    path = tmp_path / f"expected-{kind.value}.csv"
    with EventWriter(path, kind) as w:
        w.write_all(events)
    return path.read_bytes()


def collect_all(c: Collector, n: int) -> None:
    for _ in range(10_000):
        if c.written >= n:
            return
        c.step(0.01)
    raise AssertionError(f"only {c.written} of {n} rows written")


def segments(out: Path, suffix: str = ".csv") -> tuple[list[Path], list[Path]]:
    files = sorted(p for p in out.iterdir() if p.name.startswith("labelled_") and p.suffix == suffix)
    return [p for p in files if not p.stem.endswith("-dns")], [p for p in files if p.stem.endswith("-dns")]


def test_two_hosts_get_two_exact_beth_files_each(tmp_path: Path) -> None:
    bus = MemoryBus()
    sub, pub = bus.subscriber(), bus.publisher()
    envs = {h: wrap_all(h, 300, 40) for h in ("ip-10-100-1-4", "ubuntu")}
    for a, b in zip(envs["ip-10-100-1-4"], envs["ubuntu"], strict=False):
        pub.publish(a)
        pub.publish(b)
    out = tmp_path / "out"
    with Collector(sub, out) as c:
        collect_all(c, 680)
    for host, hs in envs.items():
        (proc,), (dns,) = (
            [p for p in group if p.name.endswith(f"-{host}.csv") or p.name.endswith(f"-{host}-dns.csv")]
            for group in segments(out)
        )
        assert proc.name.removesuffix(f"-{host}.csv") == dns.name.removesuffix(f"-{host}-dns.csv")
        p_events = [e.event for e in hs if e.kind == "process"]
        d_events = [e.event for e in hs if e.kind == "dns"]
        # Byte for byte what the one BETH writer writes for the same events, and loadable.
        assert proc.read_bytes() == expected_file(tmp_path, p_events, FileKind.PROCESS)
        assert dns.read_bytes() == expected_file(tmp_path, d_events, FileKind.DNS)
        assert load(proc).height == 300 and load(dns).height == 40
    stats = json.loads((out / STATS_FILE).read_text())
    assert stats["written"] == 680
    assert stats["hosts"]["ubuntu"]["process"]["rows"] == 300
    assert stats["hosts"]["ubuntu"]["dns"] == {
        "rows": 40,
        "duplicates": 0,
        "late": 0,
        "missing": 0,
        "gaps": 0,
    }


def test_segments_rotate_by_size_in_pairs_and_concatenate_to_everything(tmp_path: Path) -> None:
    envs = wrap_all("h", 3000, 300)
    sub = ReplaySubscriber(envs, untrusted=False)
    clock = iter(float(i) for i in range(1_000_000))
    with Collector(sub, tmp_path, rotate_bytes=64 * 1024, batch=200, clock=lambda: next(clock)) as c:
        collect_all(c, 3300)
    procs, dnss = segments(tmp_path)
    assert len(procs) == len(dnss) >= 5
    assert [p.name.replace(".csv", "-dns.csv") for p in procs] == [d.name for d in dnss]
    assert all(p.stat().st_size < 64 * 1024 + 200 * 1000 for p in procs)
    df = load(procs)
    assert df["threadId"].to_list() == list(range(3000))
    assert load(dnss).height == 300


def test_segments_rotate_by_age(tmp_path: Path) -> None:
    envs = wrap_all("h", 100, 0)
    now = [0.0]
    sub = ReplaySubscriber(envs, untrusted=False)
    with Collector(sub, tmp_path, rotate_seconds=60, batch=10, clock=lambda: now[0]) as c:
        for _ in range(10):
            c.step(0)
            now[0] += 20
    procs, _ = segments(tmp_path)
    assert len(procs) >= 3
    assert load(procs)["threadId"].to_list() == list(range(100))


def test_a_crash_after_writing_but_before_the_ack_writes_every_row_once(tmp_path: Path) -> None:
    envs = wrap_all("h", 2000, 200)
    sub = ReplaySubscriber(envs)
    c = Collector(sub, tmp_path, batch=300)
    c.open()
    for _ in range(3):
        c.step(0)
    # Crash between fsync and ack: rows and checkpoint are on disk, the broker has no ack.
    sub.acked -= 250
    # ...and rows written after the last checkpoint (a crash mid-batch) are on disk too.
    proc, dns = (s[0] for s in segments(tmp_path))
    with proc.open("a") as fh:
        fh.write("1.0,half a row")
    sub.restart()
    c2 = Collector(sub, tmp_path, batch=300)
    with c2:
        collect_all(c2, 2200)
        assert (
            c2.tracker.counts[("h", "process")].duplicates + c2.tracker.counts[("h", "dns")].duplicates == 250
        )
    assert load(proc)["threadId"].to_list() == list(range(2000))
    assert load(dns).height == 200


def test_a_segment_cut_behind_the_collectors_back_is_an_error_naming_it(tmp_path: Path) -> None:
    sub = ReplaySubscriber(wrap_all("h", 100, 0))
    with Collector(sub, tmp_path) as c:
        collect_all(c, 100)
    proc = segments(tmp_path)[0][0]
    proc.write_text(proc.read_text()[:100])
    with pytest.raises(DataError, match="shorter than the checkpoint") as info:
        Collector(ReplaySubscriber([]), tmp_path).open()
    assert info.value.path == str(proc)


def test_forged_hosts_and_malformed_rows_are_rejected_counted_and_kept_aside(tmp_path: Path) -> None:
    envs = wrap_all("honeypot-a", 50, 10)
    forged = next(e for e in wrap_all("honeypot-b", 1, 0))
    # Envelope says honeypot-a (the subject it came on), the row claims honeypot-b.
    a, b, c_ = [i for i, e in enumerate(envs) if e.kind == "process" and i > 3][:3]
    lines = {a: forged.payload().decode(), b: "1.5,not,a,row", c_: csv_line(envs[c_].event) + "\r\n" + "x,y"}
    sub = ReplaySubscriber(envs, lines=lines)
    log: list[str] = []
    with Collector(sub, tmp_path, log=log.append) as c:
        collect_all(c, 57)
        for _ in range(3):
            c.step(0)
    proc, dns = (s[0] for s in segments(tmp_path))
    assert load(proc).height + load(dns).height == 57
    assert set(load(proc)["hostName"].to_list()) == {"honeypot-a"}
    rejected = [json.loads(x) for x in (tmp_path / REJECTED_FILE).read_text().splitlines()]
    reasons = {r["seq"]: r["reason"] for r in rejected}
    assert sorted(reasons) == [envs[i].seq for i in (a, b, c_)]
    assert reasons[envs[a].seq] == "hostName 'honeypot-b' is not the sending host 'honeypot-a'"
    assert reasons[envs[b].seq] == "expected 16 fields, found 4"
    assert reasons[envs[c_].seq] == "not one CSV record (2 records)"
    assert any("rejected" in m for m in log)
    assert json.loads((tmp_path / STATS_FILE).read_text())["hosts"]["honeypot-a"]["rejected"] == 3
    assert sub.acked == len(envs) - 1  # rejected rows are handled: acknowledged, never redelivered


def test_check_rows_accepts_quoted_newlines_and_refuses_short_rows() -> None:
    (event,) = process_events("h", 1)
    event.args = [{"name": "pathname", "type": "const char*", "value": '/tmp/a\nb,"c"'}]
    good = Delivery("h", "process", "r", 1, lines=[csv_line(event).encode()])
    short = Delivery("h", "process", "r", 2, lines=[",".join(csv_line(event).split(",")[:10]).encode()])
    ok, bad = check_rows("process", [good, short])
    assert ok == [good]
    assert [(b.seq, why) for b, why in bad] == [(2, "expected 16 fields, found 10")]


def test_gaps_are_logged_and_recorded_in_the_stats(tmp_path: Path) -> None:
    envs = [e for e in wrap_all("h", 20, 0) if e.seq not in (5, 6)]
    now = [0.0]
    log: list[str] = []
    with Collector(
        ReplaySubscriber(envs), tmp_path, reorder_window=1.0, log=log.append, clock=lambda: now[0]
    ) as c:
        c.step(0)
        assert c.written == 4  # 7.. held, waiting for 5 and 6
        now[0] = 5.0
        c.step(0)
        assert c.written == 18
    assert any("gap: h process" in m and "2 event(s) missing (#5-#6)" in m for m in log)
    stats = json.loads((tmp_path / STATS_FILE).read_text())["hosts"]["h"]["process"]
    assert (stats["gaps"], stats["missing"]) == (1, 2)


def test_parquet_output_converts_closed_segments_and_leaves_no_csv(tmp_path: Path) -> None:
    envs = wrap_all("h", 1500, 100)
    with Collector(ReplaySubscriber(envs), tmp_path, fmt="parquet", rotate_bytes=100_000, batch=250) as c:
        collect_all(c, 1600)
    procs, dnss = segments(tmp_path, ".parquet")
    assert len(procs) >= 2 and len(procs) == len(dnss)
    assert segments(tmp_path, ".csv") == ([], [])
    df = load(procs)
    assert df["threadId"].to_list() == list(range(1500))
    assert df.schema == pl.Schema(FileKind.PROCESS.dtypes)
    assert load(dnss).height == 100


def test_the_checkpoint_is_replaced_atomically(tmp_path: Path) -> None:
    with Collector(ReplaySubscriber(wrap_all("h", 10, 0)), tmp_path) as c:
        collect_all(c, 10)
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["written"] == 10 and not list(tmp_path.glob("*.tmp"))


def test_sensor_stats_messages_are_kept_as_counters_only(tmp_path: Path) -> None:
    ch = Channel("h", "stats")
    envs = [
        ch.wrap({"sensors": [{"sensor": "dns", "events": 7, "lost": 2, "malformed": 1, "duplicates": 0,
                              "lost_per_cpu": [], "junk": "x" * 10_000}, "not a dict"]}),
        ch.wrap({"no": "sensors"}),
    ]  # fmt: skip
    with Collector(ReplaySubscriber(envs), tmp_path) as c:
        c.step(0)
    host = json.loads((tmp_path / STATS_FILE).read_text())["hosts"]["h"]
    assert host["sensors"] == [
        {"sensor": "dns", "events": 7, "lost": 2, "malformed": 1, "duplicates": 0, "lost_per_cpu": []},
        {},
    ]
    assert host["rejected"] == 1  # the stats message without a sensors list


def test_rows_only_polars_refuses_are_found_by_bisection_among_many_good_ones() -> None:
    events = list(process_events("h", 2000))
    lines = [csv_line(e).encode() for e in events]
    # An integer beyond int64 looks like a number to the cheap check; only the schema parse refuses it.
    fields = lines[1234].split(b",", 2)
    lines[1234] = b",".join([fields[0], b"99999999999999999999999", fields[2]])
    lines[99] = b"garbage"
    runs = [Delivery("h", "process", "r", 1 + i, lines=lines[i : i + 500]) for i in range(0, 2000, 500)]
    ok, bad = check_rows("process", runs)
    assert [d.seq for d in ok] == [s for s in range(1, 2001) if s not in (100, 1235)]
    assert sorted((d.seq, why) for d, why in bad) == [
        (100, "expected 16 fields, found 1"),
        (1235, "a field does not fit the process schema"),
    ]
