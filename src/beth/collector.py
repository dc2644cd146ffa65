"""The collector: transport -> two correlated BETH logs per host, every event written exactly once.

For each host it appends process rows to `labelled_<stamp>-<host>.csv` and DNS rows to
`labelled_<stamp>-<host>-dns.csv` (the Kaggle layouts, through `EventWriter`), where `<stamp>` is the
UTC time the pair of segments was opened (`20260514T201503Z`). Both files of a host rotate together
(by size or age), so a pair always covers the same period. With `fmt="parquet"` each closed segment is
converted to Parquet.

Durability and exactly-once: one cycle fetches a batch, drops duplicates and restores order by the
envelopes' sequence numbers (`SequenceTracker`), writes the rows, fsyncs the touched files, then
atomically replaces the checkpoint (`.beth-collector.json`: segment byte sizes + sequence state) and
only then acknowledges the batch (one cumulative ack). After a crash, segments are cut back to the
checkpointed sizes and the unacknowledged messages come again; those already in the checkpoint are
recognised as duplicates. So every row is written once, whether the collector, the broker or the
sensor side restarted.

Deliveries from other hosts are untrusted (a honeypot may be compromised): each batch is parsed with
the BETH schema and each row's hostName/SensorId must name the host of the subject it came on.
Rows that fail are never written; they are counted and kept with the reason in `rejected.jsonl`.
Gaps, duplicates, rejections and the sensors' own loss counters go to `collector-stats.json`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import polars as pl

from beth.data.load import load
from beth.data.write import CSV_LINE_END, EventWriter, write_table
from beth.errors import DataError, UsageError
from beth.schema import FileKind
from beth.transport.base import Delivery, Subscriber, lines_block
from beth.transport.envelope import DNS, PROCESS, STATS, host_token
from beth.transport.sequence import Gap, SequenceTracker, StreamCounts

STATE_FILE = ".beth-collector.json"
STATS_FILE = "collector-stats.json"
REJECTED_FILE = "rejected.jsonl"
FILE_KINDS = {PROCESS: FileKind.PROCESS, DNS: FileKind.DNS}
_HOST_COLUMN = {PROCESS: "hostName", DNS: "SensorId"}
_STATE_VERSION = 1
_MAX_REJECTED_TEXT = 4096


def host_name(token: str) -> str:
    """The host name a subject token stands for (inverse of `host_token`)."""
    return unquote(token)


def segment_names(stamp: str, token: str, fmt: str = "csv") -> dict[str, str]:
    """File names of one host's pair of segments."""
    return {PROCESS: f"labelled_{stamp}-{token}.{fmt}", DNS: f"labelled_{stamp}-{token}-dns.{fmt}"}


# --- row validation (untrusted senders) -------------------------------------------------------------


def _frame(kind: FileKind, block: bytes, rows: int) -> pl.DataFrame | None:
    """`block` (CSV lines, each ended by CRLF) parsed with the BETH schema, or None if it is not
    exactly `rows` full rows of UTF-8 text."""
    header = (",".join(kind.columns) + CSV_LINE_END).encode()
    try:
        df = pl.read_csv(header + block, schema=kind.dtypes, has_header=True)
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException):
        return None
    if df.height != rows:
        return None
    required = [c for c in df.columns if c not in _NULLABLE]
    if any(df.select(pl.col(required).null_count()).row(0)):
        return None
    return df


_NULLABLE = frozenset({"DnsAnswer", "DnsAnswerTTL", "DnsQuery", "DnsQueryNames"})
_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _precheck(kind: FileKind, line: str) -> str | None:
    """Why `line` is not one full record of `kind` (a cheap pure-Python check), or None."""
    try:
        rows = list(csv.reader(io.StringIO(line), strict=True))
    except csv.Error as exc:
        return f"malformed CSV ({exc})"
    if len(rows) != 1:
        return f"not one CSV record ({len(rows)} records)"
    fields = rows[0]
    if len(fields) != len(kind.columns):
        return f"expected {len(kind.columns)} fields, found {len(fields)}"
    for name, value in zip(kind.columns, fields, strict=True):
        dtype = kind.dtypes[name]
        if value == "":
            if name not in _NULLABLE:
                return f"{name} is empty"
        elif dtype.is_integer() and not _INT.fullmatch(value):
            return f"{name} is not an integer: {value[:40]!r}"
        elif dtype.is_float() and not _FLOAT.fullmatch(value):
            return f"{name} is not a number: {value[:40]!r}"
    return None


def _bisect(kind: FileKind, records: list[bytes], idx: list[int]) -> tuple[list[int], list[int]]:
    """Indices of the records polars accepts and refuses, in O(bad * log n) polars calls."""
    if _frame(kind, lines_block([records[i] for i in idx]), len(idx)) is not None:
        return idx, []
    if len(idx) == 1:
        return [], idx
    mid = len(idx) // 2
    good_a, bad_a = _bisect(kind, records, idx[:mid])
    good_b, bad_b = _bisect(kind, records, idx[mid:])
    return good_a + good_b, bad_a + bad_b


def _claims_its_host(kind: str, df: pl.DataFrame, deliveries: list[Delivery]) -> bool:
    """Whether every row's hostName/SensorId is the host all `deliveries` came from."""
    hosts = {d.host for d in deliveries}
    if len(hosts) != 1:
        return False
    (token,) = hosts
    return all(name and host_token(name) == token for name in df[_HOST_COLUMN[kind]].unique().to_list())


def check_rows(kind: str, deliveries: list[Delivery]) -> tuple[list[Delivery], list[tuple[Delivery, str]]]:
    """Split deliveries of one kind into well-formed rows from the right host and rejects (with reasons).

    All records are parsed in one polars call, and one look at the distinct host names shows whether
    they all name their sender: then the deliveries go through whole. Only a batch that fails is
    looked at event by event (`Delivery.split`): a cheap Python check names what is wrong with most
    bad rows, and bisection with polars finds the rest, so a host that floods malformed rows costs
    the collector little.
    """
    fk = FILE_KINDS[kind]
    block = b"".join(d.block() for d in deliveries)
    df = _frame(fk, block, sum(d.count for d in deliveries))
    if df is not None and _claims_its_host(kind, df, deliveries):
        return deliveries, []
    rows = [p for d in deliveries for p in d.split()]
    records = [p.records()[0] for p in rows]
    bad: list[tuple[Delivery, str]] = []
    if df is None:
        candidates = []
        for i, (p, record) in enumerate(zip(rows, records, strict=True)):
            try:
                why = _precheck(fk, record.decode("utf-8"))
            except UnicodeDecodeError:
                why = "payload is not UTF-8"
            if why is None:
                candidates.append(i)
            else:
                bad.append((p, why))
        good_idx, refused = _bisect(fk, records, candidates) if candidates else ([], [])
        bad += [(rows[i], f"a field does not fit the {fk.value} schema") for i in refused]
        if not good_idx:
            return [], bad
        rows = [rows[i] for i in good_idx]
        df = _frame(fk, lines_block([records[i] for i in good_idx]), len(good_idx))
        assert df is not None
    claimed = df[_HOST_COLUMN[kind]].to_list()
    tokens = {name: host_token(name) if name else "" for name in set(claimed)}
    good = []
    for p, name in zip(rows, claimed, strict=True):
        if tokens[name] == p.host:
            good.append(p)
        else:
            bad.append((p, f"{_HOST_COLUMN[kind]} {name!r} is not the sending host {host_name(p.host)!r}"))
    return good, bad


def _sensor_counts(entry: object) -> dict[str, Any]:
    """The known counters of one sensor's stats record (a host may send anything: keep only those)."""
    if not isinstance(entry, dict):
        return {}
    out: dict[str, Any] = {"sensor": str(entry.get("sensor", "?"))[:32]}
    for key in ("events", "lost", "malformed", "duplicates"):
        value = entry.get(key)
        out[key] = value if isinstance(value, int) and not isinstance(value, bool) else None
    per_cpu = entry.get("lost_per_cpu")
    if isinstance(per_cpu, list):
        out["lost_per_cpu"] = [v for v in per_cpu[:1024] if isinstance(v, int)]
    return out


# --- segments -----------------------------------------------------------------------------------


@dataclass
class _Segment:
    """One host's open pair of segment files."""

    stamp: str
    opened: float
    sizes: dict[str, int]  # bytes durably written (as of the last checkpoint)
    writers: dict[str, EventWriter] = field(default_factory=dict)


@dataclass
class HostCounts:
    rows: dict[str, int] = field(default_factory=lambda: {PROCESS: 0, DNS: 0})
    rejected: int = 0
    sensor_stats: list[dict[str, Any]] = field(default_factory=list)  # latest counters the sensors sent


class Collector:
    """Consumes deliveries from a `Subscriber` and writes per-host BETH logs under `out_dir`."""

    def __init__(
        self,
        subscriber: Subscriber,
        out_dir: str | Path,
        *,
        fmt: str = "csv",
        rotate_bytes: int = 256 * 1024 * 1024,
        rotate_seconds: float = 86_400.0,
        batch: int = 5000,
        commit_interval: float = 0.05,
        reorder_window: float = 2.0,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if fmt not in ("csv", "parquet"):
            raise UsageError(f"the collector writes csv or parquet, not {fmt!r}")
        if rotate_bytes < 4096 or rotate_seconds <= 0:
            raise UsageError("rotation needs at least 4096 bytes and a positive interval")
        self.sub = subscriber
        self.out = Path(out_dir)
        self.fmt = fmt
        self.rotate_bytes, self.rotate_seconds = rotate_bytes, rotate_seconds
        self.batch, self.commit_interval = batch, commit_interval
        self.log = log or (lambda message: None)
        self.clock = clock
        self.tracker = SequenceTracker(reorder_window=reorder_window, on_gap=self._on_gap)
        self.hosts: dict[str, HostCounts] = {}
        self.closed_segments: list[str] = []  # CSV segments waiting for Parquet conversion
        self._segments: dict[str, _Segment] = {}
        self._pending: list[
            Delivery
        ] = []  # fetched, not yet handled (or handled, waiting for a later one), in fetch order
        self._rejected_fh: Any = None
        self._last_stats = 0.0
        self.written = 0
        self._open = False

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Collector:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Create the output directory, or recover it from the checkpoint of an earlier run."""
        self.out.mkdir(parents=True, exist_ok=True)
        state_path = self.out / STATE_FILE
        if state_path.exists():
            self._recover(state_path)
        self._open = True

    def _recover(self, state_path: Path) -> None:
        try:
            state = json.loads(state_path.read_text())
            if state.get("version") != _STATE_VERSION:
                raise ValueError(f"version {state.get('version')}")
        except (ValueError, OSError) as exc:
            raise DataError(f"unreadable collector checkpoint ({exc})", path=state_path) from None
        if state["format"] != self.fmt:
            raise UsageError(
                f"{self.out} was collected as {state['format']}; collect into another directory "
                f"to write {self.fmt}"
            )
        now = self.clock()
        for token, seg in state["segments"].items():
            sizes = {k: int(v) for k, v in seg["sizes"].items()}
            for kind, name in segment_names(seg["stamp"], token).items():
                path = self.out / name
                size = path.stat().st_size if path.exists() else -1
                if size < sizes[kind]:
                    raise DataError(
                        f"segment is shorter than the checkpoint says ({size} < {sizes[kind]} bytes): "
                        "it was truncated or removed behind the collector's back",
                        path=path,
                    )
                if size > sizes[kind]:  # rows written after the last checkpoint: they come again
                    os.truncate(path, sizes[kind])
            self._segments[token] = _Segment(seg["stamp"], float(seg["opened"]), sizes)
        counts = {(c["host"], c["kind"]): StreamCounts(**c["counts"]) for c in state["streams"]}
        self.tracker.restore(state["sequences"], counts, now)
        for token, h in state["hosts"].items():
            self.hosts[token] = HostCounts(h["rows"], h["rejected"], h["sensor_stats"])
        self.closed_segments = list(state["closed"])
        self.written = int(state["written"])
        self._convert_closed()

    def close(self) -> None:
        """Write what is held in order (nothing is acknowledged that is not written), close the files."""
        if not self._open:
            return
        self._open = False
        for seg in self._segments.values():
            for w in seg.writers.values():
                w.close()
            seg.writers.clear()
        if self.fmt == "parquet":  # leave only loadable Parquet files behind
            for token in list(self._segments):
                self._retire(token)
            self._checkpoint()
            self._convert_closed()
        if self._rejected_fh is not None:
            self._rejected_fh.close()
        self._write_stats(force=True)

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, on_cycle: Callable[[Collector], None] | None = None) -> None:
        """Collect until `stop` is set, then drain what is already fetched."""
        while not stop.is_set():
            self.step(0.2)
            if on_cycle is not None:
                on_cycle(self)

    def step(self, timeout: float) -> int:
        """One cycle: fetch (for up to `commit_interval` once something arrived), write, fsync,
        checkpoint, acknowledge. Returns the number of rows written."""
        got = self.sub.fetch(self.batch, timeout)
        if got and (n := sum(d.count for d in got)) < self.batch and self.commit_interval > 0:
            got += self.sub.fetch(self.batch - n, self.commit_interval, fill=True)
        now = self.clock()
        ready: list[Delivery] = []
        offer = self.tracker.offer
        self._pending.extend(got)
        for d in got:
            if d.error is None and d.kind != STATS:
                offer(d, now, ready)
            elif d.error is not None:
                self._reject(d, d.error)
            else:
                self._take_stats(d)
        if self.tracker.held:
            ready.extend(self.tracker.expire(now))
        written = self._write(ready) if ready else 0
        if got or ready:
            self._commit()
        self._rotate_due(now)
        self._write_stats()
        return written

    # --- writing ----------------------------------------------------------------------------

    def _write(self, ready: list[Delivery]) -> int:
        by_stream: dict[tuple[str, str], list[Delivery]] = {}
        for d in ready:
            by_stream.setdefault((d.host, d.kind), []).append(d)
        written = 0
        for (token, kind), items in by_stream.items():
            if self.sub.untrusted:
                items, bad = check_rows(kind, items)
                for d, reason in bad:
                    self._reject(d, reason)
            if not items:
                continue
            rows = sum(d.count for d in items)
            self._writer(token, kind).write_block(b"".join(d.block() for d in items), rows)
            for d in items:
                d.done = True
            self.hosts[token].rows[kind] += rows
            written += rows
        self.written += written
        return written

    def _writer(self, token: str, kind: str) -> EventWriter:
        seg = self._segments.get(token)
        if seg is None:
            seg = self._new_segment(token)
        w = seg.writers.get(kind)
        if w is None:
            name = segment_names(seg.stamp, token)[kind]
            w = seg.writers[kind] = EventWriter(self.out / name, FILE_KINDS[kind], "csv", append=True)
        return w

    def _new_segment(self, token: str) -> _Segment:
        """Open a new pair of files (header only) and checkpoint them before any row goes in."""
        now = self.clock()
        base = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
        stamp, n = base, 1
        while any((self.out / name).exists() for name in self._all_names(stamp, token)):
            stamp, n = f"{base}.{n}", n + 1
        seg = _Segment(stamp, now, {})
        for kind, name in segment_names(stamp, token).items():
            with EventWriter(self.out / name, FILE_KINDS[kind], "csv") as w:
                w.flush(durable=True)
                seg.sizes[kind] = w.size()
        self._segments[token] = seg
        self.hosts.setdefault(token, HostCounts())
        self._fsync_dir()
        self._checkpoint()
        self.log(f"collector: new segment for {host_name(token)}: {segment_names(stamp, token)[PROCESS]}")
        return seg

    def _all_names(self, stamp: str, token: str) -> list[str]:
        return [*segment_names(stamp, token).values(), *segment_names(stamp, token, "parquet").values()]

    def _reject(self, d: Delivery, reason: str) -> None:
        """Mark every event of `d` handled, count it, keep it with `reason` in rejected.jsonl."""
        d.done = True
        counts = self.hosts.setdefault(d.host, HostCounts())
        if self._rejected_fh is None:
            self._rejected_fh = open(self.out / REJECTED_FILE, "a", encoding="utf-8")  # noqa: SIM115
        for i, record in enumerate(d.records()):
            entry = {
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
                "host": host_name(d.host),
                "kind": d.kind,
                "run": d.run,
                "seq": d.seq + i,
                "reason": reason,
                "record": record.decode("utf-8", "replace")[:_MAX_REJECTED_TEXT],
            }
            self._rejected_fh.write(json.dumps(entry) + "\n")
            counts.rejected += 1
            n = counts.rejected
            if (
                n <= 10
            ):  # a flooding host must not flood the collector's log: the first ten, then every 1000th
                self.log(
                    f"collector: rejected {d.kind} event #{d.seq + i} from {host_name(d.host)}: {reason}"
                )
            elif n % 1000 == 0:
                self.log(
                    f"collector: {n:,} events rejected from {host_name(d.host)} so far (see {REJECTED_FILE})"
                )

    def _take_stats(self, d: Delivery) -> None:
        """Keep the counters of the latest well-formed stats record; reject malformed ones."""
        for p in d.split():
            p.done = True
            try:
                record = p.events[0] if p.events is not None else json.loads(p.records()[0])
                if not isinstance(record, dict) or not isinstance(record.get("sensors"), list):
                    raise ValueError("no sensors list")
            except ValueError as exc:
                self._reject(p, f"malformed stats message ({exc})")
                continue
            self.hosts.setdefault(p.host, HostCounts()).sensor_stats = [
                _sensor_counts(x) for x in record["sensors"][:8]
            ]

    def _on_gap(self, gap: Gap) -> None:
        self.log(f"collector: gap: {gap}")

    # --- durability -------------------------------------------------------------------------

    def _commit(self) -> None:
        for seg in self._segments.values():
            for kind, w in seg.writers.items():
                size = w.size()
                if size != seg.sizes[kind]:
                    w.flush(durable=True)
                    seg.sizes[kind] = size
        if self._rejected_fh is not None:
            self._rejected_fh.flush()
            os.fsync(self._rejected_fh.fileno())
        self._checkpoint()
        self._fsync_dir()  # the checkpoint's rename must be on disk before anything is acknowledged
        pending = self._pending
        handled, last = 0, None  # the handled prefix; its last delivery with a token
        for d in pending:
            if not d.handled:
                break
            handled += 1
            if d.token is not None:
                last = d
        if last is not None:
            self.sub.ack(last)
        del pending[:handled]

    def _checkpoint(self) -> None:
        state = {
            "version": _STATE_VERSION,
            "format": self.fmt,
            "written": self.written,
            "segments": {
                t: {"stamp": s.stamp, "opened": s.opened, "sizes": s.sizes} for t, s in self._segments.items()
            },
            "closed": self.closed_segments,
            "sequences": self.tracker.state(),
            "streams": [
                {"host": k[0], "kind": k[1], "counts": c.to_record()} for k, c in self.tracker.counts.items()
            ],
            "hosts": {
                t: {"rows": h.rows, "rejected": h.rejected, "sensor_stats": h.sensor_stats}
                for t, h in self.hosts.items()
            },
        }
        _atomic_write(self.out / STATE_FILE, json.dumps(state, separators=(",", ":")))

    def _fsync_dir(self) -> None:
        fd = os.open(self.out, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # --- rotation ---------------------------------------------------------------------------

    def _rotate_due(self, now: float) -> None:
        for token, seg in list(self._segments.items()):
            if now - seg.opened >= self.rotate_seconds or max(seg.sizes.values()) >= self.rotate_bytes:
                self._retire(token)
                self._checkpoint()
        self._convert_closed()

    def _retire(self, token: str) -> None:
        """Close a host's current pair; the next row for it opens a new pair."""
        seg = self._segments.pop(token)
        for w in seg.writers.values():
            w.close()
        if self.fmt == "parquet":
            self.closed_segments.extend(segment_names(seg.stamp, token).values())
        self.log(f"collector: closed segment {segment_names(seg.stamp, token)[PROCESS]} (+ -dns)")

    def _convert_closed(self) -> None:
        """CSV segments -> Parquet (write aside, rename, then drop the CSV); redone after a crash."""
        while self.closed_segments:
            name = self.closed_segments[0]
            csv_path = self.out / name
            pq_path = csv_path.with_suffix(".parquet")
            if csv_path.exists():
                kind = FileKind.DNS if name.endswith("-dns.csv") else FileKind.PROCESS
                tmp = pq_path.with_name(pq_path.name + ".tmp")
                write_table(load(csv_path), tmp, kind, fmt="parquet")
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, pq_path)
                self._fsync_dir()
                csv_path.unlink()
            self.closed_segments.pop(0)
            self._checkpoint()

    # --- stats ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Everything counted so far, per host and kind (also written to collector-stats.json)."""
        hosts: dict[str, Any] = {}
        for token, h in sorted(self.hosts.items()):
            entry: dict[str, Any] = {"rejected": h.rejected, "sensors": h.sensor_stats}
            for kind in (PROCESS, DNS):
                c = self.tracker.counts.get((token, kind), StreamCounts())
                entry[kind] = {"rows": h.rows[kind], **c.to_record()}
            hosts[host_name(token)] = entry
        return {
            "written": self.written,
            "held": self.tracker.held,
            "unacknowledged": sum(d.count for d in self._pending),
            "hosts": hosts,
        }

    def _write_stats(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_stats >= 1.0:
            self._last_stats = now
            _atomic_write(self.out / STATS_FILE, json.dumps(self.stats(), indent=1), durable=False)


def _atomic_write(path: Path, text: str, *, durable: bool = True) -> None:
    """Replace `path` with `text` so that a crash leaves either the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)
