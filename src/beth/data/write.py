"""Write BETH logs: tables (batch) and event streams (sensors, collector) as CSV, JSONL or Parquet.

CSV output is laid out like the Kaggle files (same header, CRLF line ends, minimal quoting,
Python-literal lists, shortest float text), so beth's own loader and anyone's pandas code read it
the same way. Parquet keeps the raw column types of `beth.schema` and records in its metadata
what the file holds.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from beth.errors import UsageError
from beth.events import DnsEvent, ProcessEvent
from beth.schema import DNS_TIMESTAMP_FORMAT, FileKind

Format = Literal["csv", "jsonl", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")

#: The Kaggle BETH files end lines with CRLF; beth writes them the same way.
CSV_LINE_END = "\r\n"

#: Parquet key-value metadata keys written by beth.
META_KIND = b"beth.kind"
META_SYNTHETIC = b"beth.synthetic"
META_NOTE = b"beth.note"


def parquet_metadata(kind: FileKind, *, synthetic: bool = False, note: str = "") -> dict[bytes, bytes]:
    meta = {META_KIND: kind.value.encode(), META_SYNTHETIC: b"1" if synthetic else b"0"}
    if note:
        meta[META_NOTE] = note.encode()
    return meta


def write_table(
    df: pl.DataFrame,
    path: str | Path,
    kind: FileKind,
    *,
    fmt: Format | None = None,
    synthetic: bool = False,
    note: str = "",
) -> Path:
    """Write a raw (un-nested) BETH table of `kind` to `path`; format from `fmt` or the suffix."""
    path = Path(path)
    fmt = fmt or format_of(path)
    df = df.select(list(kind.columns))
    if fmt == "parquet":
        table = df.to_arrow()
        table = table.replace_schema_metadata(parquet_metadata(kind, synthetic=synthetic, note=note))
        pq.write_table(table, path, compression="zstd")
    elif fmt == "csv":
        # Kaggle writes empty list fields as nothing, not as "": nulls give exactly that.
        strings = [c for c, t in df.schema.items() if t == pl.String]
        df = df.with_columns(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in strings)
        df.write_csv(path, line_terminator=CSV_LINE_END, quote_style="necessary")
    elif fmt == "jsonl":
        df.write_ndjson(path)
    else:
        raise UsageError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
    return path


def _q(text: str) -> str:
    """One CSV field as `csv.writer` (minimal quoting) writes it."""
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _lst(values: list[str]) -> str:
    return _q(repr(values)) if values else ""


def seconds_text(t: float) -> str:
    """`repr(round(t, 6))`, a process timestamp as BETH writes it, about twice as fast.

    `f"{t:.6f}"` is the decimal that `round(t, 6)` reads back (both round the exact binary value
    half-even to 6 places with the same dtoa routine). For 1e-4 <= t < 1e9 it has at most 15
    significant digits, so no shorter decimal reads back as the same double: it is the shortest
    round-trip text, i.e. the repr, once the trailing zeros are cut (repr keeps one digit after the
    point) - and repr writes these magnitudes without an exponent. Anything else (tiny, huge,
    negative, nan) takes `repr(round(t, 6))` itself.
    """
    if 1e-4 <= t < 1e9:
        text = f"{t:.6f}".rstrip("0")
        return text + "0" if text[-1] == "." else text
    return repr(round(t, 6))


def dns_time_text(ts: datetime) -> str:
    """`ts.astimezone(UTC).strftime(DNS_TIMESTAMP_FORMAT)`, about twice as fast for UTC times.

    For a UTC datetime from year 1000 on, the format's fields are the plain numbers (the year has
    four digits; the others zero-padded to two); other times go through strftime itself (glibc does
    not pad years below 1000).
    """
    if ts.tzinfo is UTC and ts.year >= 1000:
        # %-formatting: twice as fast as the f-string with six format specs
        return "%d-%02d-%02dT%02d:%02d:%02dZ" % (ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second)  # noqa: UP031
    return ts.astimezone(UTC).strftime(DNS_TIMESTAMP_FORMAT)


@lru_cache(maxsize=8192, typed=True)
def _process_middle(
    parent: int, user: int, mount_ns: int, process: str, host: str, event_id: int, event: str
) -> str:
    """Columns parentProcessId .. eventName of a process row: the same for all events of one kind
    from one process, so they are formatted once (`typed`: 1 and True are different keys)."""
    return f"{parent},{user},{mount_ns},{_q(process)},{_q(host)},{event_id},{_q(event)}"


def csv_line(event: ProcessEvent | DnsEvent) -> str:
    """The event as one Kaggle-layout CSV record without the line end.

    Exactly what `csv.writer` writes for `event.csv_fields()` (tests hold them equal), several times
    faster: the collector and the sensors format every event through this. The args column
    (`repr` of the list of dicts) is the biggest part of what is left.
    """
    if type(event) is ProcessEvent:
        e = event
        middle = _process_middle(
            e.parentProcessId, e.userId, e.mountNamespace, e.processName, e.hostName, e.eventId, e.eventName
        )
        stack, args = e.stackAddresses, e.args
        return (
            f"{seconds_text(e.timestamp)},{e.processId},{e.threadId},{middle},"
            f"{'[]' if stack == [] else _q(repr(stack))},{e.argsNum},{e.returnValue},"
            f"{'[]' if args == [] else _q(repr(args))},{e.sus},{e.evil}"
        )
    d = event
    assert isinstance(d, DnsEvent)
    return (
        f"{dns_time_text(d.Timestamp)},{_q(d.SourceIP)},"
        f"{_q(d.DestinationIP)},{_q(d.DnsQuery)},{_lst(d.DnsAnswer)},{_lst(d.DnsAnswerTTL)},"
        f"{_q(d.DnsQueryNames)},{_lst(d.DnsQueryClass)},{_lst(d.DnsQueryType)},{d.NumberOfAnswers},"
        f"{d.DnsResponseCode},{d.DnsOpCode},{_q(d.SensorId)},{d.sus},{d.evil}"
    )


def format_of(path: str | Path) -> Format:
    """Output format from a file suffix (.csv, .jsonl/.ndjson, .parquet)."""
    suffix = Path(path).suffix.lower()
    fmt = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}.get(suffix)
    if fmt is None:
        raise UsageError(
            f"cannot tell the output format of {str(path)!r}: use a .csv, .jsonl or .parquet name"
        )
    return fmt  # type: ignore[return-value]


def rows_to_frame(kind: FileKind, rows: list[list[str]], *, errors: str = "strict") -> pl.DataFrame:
    """CSV text fields of `kind` as a typed frame (polars parses them exactly as it reads a file);
    `errors`: how text that is not UTF-8 is encoded ("surrogateescape" passes it through as bytes)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([kind.columns, *rows])
    return pl.read_csv(io.BytesIO(buf.getvalue().encode("utf-8", errors=errors)), schema=kind.dtypes)


class EventWriter:
    """Streaming writer of ProcessEvents or DnsEvents to one file or stdout ('-').

    CSV and JSONL rows go out as they come (buffered by the OS stream; `flush(durable=True)`
    fsyncs); Parquet rows are buffered and written as one row group per `row_group_size` rows.
    """

    def __init__(
        self,
        target: str | Path | IO[str],
        kind: FileKind,
        fmt: Format = "csv",
        *,
        row_group_size: int = 65_536,
        synthetic: bool = False,
        append: bool = False,
    ) -> None:
        """`append=True` continues an existing CSV/JSONL file (header only if it is empty): the
        collector reopens its segments this way after a restart."""
        if fmt not in FORMATS:
            raise UsageError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
        if kind is FileKind.HOST_PROCESS:
            raise UsageError("events are written with all 16 process columns, not the 13-column host layout")
        self.kind, self.fmt, self.rows = kind, fmt, 0
        self._row_group_size = row_group_size
        self._synthetic = synthetic
        self._pending: list[list[str]] = []
        self._parquet: pq.ParquetWriter | None = None
        self._owns = not hasattr(target, "write")
        if fmt == "parquet":
            if not self._owns or str(target) == "-":
                raise UsageError("Parquet output needs a file name, not a stream")
            self._path = Path(target)  # type: ignore[arg-type]
            self._stream: IO[str] | None = None
        elif not self._owns:
            self._stream = target  # type: ignore[assignment]
        elif str(target) == "-":
            self._stream, self._owns = sys.stdout, False
        else:
            mode = "a" if append else "w"
            self._stream = open(target, mode, newline="", encoding="utf-8")  # noqa: SIM115
        if append and fmt == "parquet":
            raise UsageError("Parquet files cannot be appended to")
        if fmt == "csv" and not (append and self._owns and self._stream.tell() > 0):
            csv.writer(self._stream, lineterminator=CSV_LINE_END).writerow(kind.columns)

    def write(self, event: ProcessEvent | DnsEvent) -> None:
        if self.fmt == "csv":
            self._stream.write(csv_line(event) + CSV_LINE_END)  # type: ignore[union-attr]
        elif self.fmt == "jsonl":
            record = event.to_record()
            assert self._stream is not None
            self._stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        else:
            self._pending.append(event.csv_fields())
            if len(self._pending) >= self._row_group_size:
                self._write_row_group()
        self.rows += 1

    def write_block(self, block: bytes, rows: int) -> None:
        """Append `rows` already encoded CSV records, each ended by CRLF, to a CSV file this writer
        opened: the collector's batches, encoded once and validated as a whole before they land here."""
        if self.fmt != "csv" or not self._owns or self._stream is None:
            raise UsageError("write_block appends encoded CSV records to a CSV file this writer opened")
        self._stream.flush()  # what went through the text layer (the header) goes first
        self._stream.buffer.write(block)  # type: ignore[attr-defined]
        self.rows += rows

    def size(self) -> int:
        """Bytes in the file once everything written so far is flushed (files this writer opened)."""
        if not self._owns or self._stream is None:
            raise UsageError("size() needs a CSV or JSONL file that this writer opened")
        self._stream.flush()
        return os.fstat(self._stream.fileno()).st_size

    def write_all(self, events: Iterable[ProcessEvent | DnsEvent]) -> None:
        for event in events:
            self.write(event)

    def _write_row_group(self) -> None:
        if not self._pending:
            return
        df = rows_to_frame(self.kind, self._pending)
        self._pending.clear()
        table: pa.Table = df.to_arrow().replace_schema_metadata(
            parquet_metadata(self.kind, synthetic=self._synthetic)
        )
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._path, table.schema, compression="zstd")
        self._parquet.write_table(table)

    def flush(self, *, durable: bool = False) -> None:
        """Push buffered rows to the OS; with `durable`, also to the disk (fsync)."""
        if self.fmt == "parquet":
            self._write_row_group()
            return
        assert self._stream is not None
        self._stream.flush()
        if durable and self._owns:
            os.fsync(self._stream.fileno())

    def close(self) -> None:
        self.flush()
        if self._parquet is not None:
            self._parquet.close()
        elif self.fmt == "parquet":  # no rows at all: still leave a valid, empty file
            pq.write_table(
                pl.DataFrame(schema=self.kind.dtypes)
                .to_arrow()
                .replace_schema_metadata(parquet_metadata(self.kind, synthetic=self._synthetic)),
                self._path,
            )
        if self._owns and self._stream is not None:
            self._stream.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
