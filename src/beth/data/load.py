"""Read BETH files (Kaggle CSV or beth's Parquet) into polars, exactly and fast.

The file kind (16-column process split, 13-column per-host process, 15-column DNS) is recognised
from the header, never from the name. Good files take the fast path: one polars scan with the exact
schema and only the requested columns. When that scan fails, or a row is short, a careful
pure-Python pass over the same file finds the first bad row and names its file, line and column —
or, with `on_bad_rows="skip"`, drops the bad rows and counts each one in the `LoadReport`.

Nested fields (`args`, `stackAddresses`, the DNS lists) stay text unless `parse_nested=True`; they
are parsed once per distinct value with `beth.data.literal` (never `eval`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow.parquet as pq

from beth.data.literal import LiteralError, arg_record, parse_args, parse_str_list
from beth.data.write import META_KIND, META_NOTE, META_SYNTHETIC, rows_to_frame
from beth.errors import DataError, UsageError
from beth.schema import (
    DNS_LIST_COLUMNS,
    DNS_NESTED_DTYPES,
    DNS_TIMESTAMP_FORMAT,
    PROCESS_COLUMNS,
    PROCESS_DTYPES,
    PROCESS_NESTED_DTYPES,
    FileKind,
    kind_of_header,
)

OnBadRows = Literal["error", "skip"]
Split = Literal["training", "validation", "testing"]
SPLITS: tuple[Split, ...] = ("training", "validation", "testing")
SUFFIXES = (".csv", ".parquet")

_SPLIT_NAME = re.compile(r"^labelled_(training|validation|testing)_data\b")
_INT = re.compile(r"[-+]?\d+\Z")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\Z")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)

#: DNS columns that may be empty (queries have no answers); every other column must hold a value.
_NULLABLE = {FileKind.DNS: frozenset({"DnsAnswer", "DnsAnswerTTL", "DnsQuery", "DnsQueryNames"})}


@dataclass(frozen=True)
class BethFile:
    """One BETH file found on disk: where, what kind, which split (if a split file), synthetic or not."""

    path: Path
    kind: FileKind
    format: Literal["csv", "parquet"]
    split: Split | None
    synthetic: bool
    note: str = ""


@dataclass
class BadRow:
    path: str
    line: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        return str(DataError(self.reason, path=self.path, line=self.line, column=self.column))


@dataclass
class LoadReport:
    """What a load read: rows per file, and every row it skipped (with `on_bad_rows="skip"`)."""

    rows: dict[str, int] = field(default_factory=dict)
    skipped: list[BadRow] = field(default_factory=list)


# --- discovering files ----------------------------------------------------------------------------


def _read_header(path: Path) -> list[str]:
    """The CSV header fields of `path` (first record; BOM tolerated)."""
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as fh:
            first = fh.readline(1 << 16)
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason})", path=path, line=1) from None
    if not first.strip():
        raise DataError("empty file: expected a BETH header line", path=path, line=1)
    try:
        return next(csv.reader([first]))
    except csv.Error as exc:
        raise DataError(f"unreadable header: {exc}", path=path, line=1) from None


def _unknown_header(path: Path, header: Sequence[str]) -> DataError:
    best = max(FileKind, key=lambda k: sum(a == b for a, b in zip(header, k.columns, strict=False)))
    expected = best.columns
    for i, (got, want) in enumerate(zip(header, expected, strict=False), start=1):
        if got != want:
            detail = f"column {i} is {got!r}, the {best.value} layout has {want!r} there"
            break
    else:
        detail = f"{len(header)} columns, the {best.value} layout has {len(expected)}"
    return DataError(
        f"unknown header ({detail}); expected the 16-column process, 13-column host-process or "
        "15-column DNS layout of the BETH files",
        path=path,
        line=1,
    )


def inspect_file(path: str | Path) -> BethFile:
    """Recognise one file's kind from its header (CSV) or schema and metadata (Parquet)."""
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or directory", path=path)
    if path.is_dir():
        raise DataError("is a directory, expected a file", path=path)
    split_m = _SPLIT_NAME.match(path.name)
    split: Split | None = split_m.group(1) if split_m else None  # type: ignore[assignment]
    if path.suffix.lower() == ".parquet":
        try:
            schema = pq.read_schema(path)
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise DataError(f"not a readable Parquet file ({exc})", path=path) from None
        kind = kind_of_header(schema.names)
        if kind is None:
            raise _unknown_header(path, schema.names)
        meta = schema.metadata or {}
        synthetic = meta.get(META_SYNTHETIC) == b"1" or ".synthetic" in path.name
        note = meta.get(META_NOTE, b"").decode(errors="replace")
        if META_KIND in meta and meta[META_KIND].decode() != kind.value:
            said = meta[META_KIND].decode()
            raise DataError(f"metadata says {said!r} but the columns are {kind.value}", path=path)
        return BethFile(path, kind, "parquet", split, synthetic, note)
    header = _read_header(path)
    kind = kind_of_header(header)
    if kind is None:
        raise _unknown_header(path, header)
    return BethFile(path, kind, "csv", split, ".synthetic" in path.name)


def discover(paths: str | Path | Iterable[str | Path]) -> list[BethFile]:
    """BETH files named by `paths` (files, or directories searched for *.csv / *.parquet), sorted."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found: list[BethFile] = []
    for p in map(Path, paths):
        if p.is_dir():
            members = sorted(q for q in p.iterdir() if q.suffix.lower() in SUFFIXES and q.is_file())
            if not members:
                raise DataError("no .csv or .parquet files in this directory", path=p)
            found.extend(inspect_file(q) for q in members)
        else:
            found.append(inspect_file(p))
    if not found:
        raise UsageError("no input files given")
    return found


def find_splits(directory: str | Path) -> dict[Split, BethFile]:
    """The training/validation/testing split files of a directory (Kaggle names, optional `.synthetic`)."""
    files = [f for f in discover(directory) if f.split is not None]
    out: dict[Split, BethFile] = {}
    for f in files:
        if f.split in out:
            raise DataError(
                f"two {f.split} split files: {out[f.split].path.name} and {f.path.name}", path=directory
            )
        if f.kind is not FileKind.PROCESS:
            raise DataError(f"{f.split} split file is not in the 16-column process layout", path=f.path)
        out[f.split] = f  # type: ignore[index]
    missing = [s for s in SPLITS if s not in out]
    if missing:
        names = ", ".join(f"labelled_{s}_data.csv" for s in missing)
        raise DataError(f"missing split file(s): {names}", path=directory)
    return {s: out[s] for s in SPLITS}


# --- the careful pass: exact location of bad rows -------------------------------------------------


def _check_value(kind: FileKind, name: str, value: str) -> str | None:
    """Why `value` is not valid for column `name`, or None."""
    dtype = kind.dtypes[name]
    if value == "":
        return None if name in _NULLABLE.get(kind, ()) else "empty value"
    if dtype.is_integer():
        if not _INT.match(value):
            return f"not an integer: {value!r}"
        number = int(value)
        bits = 8 if dtype == pl.Int8 else 64
        if not -(1 << (bits - 1)) <= number < (1 << (bits - 1)):
            return f"integer out of range for {dtype}: {value}"
    elif dtype.is_float() and not _FLOAT.match(value):
        return f"not a number: {value!r}"
    elif _UNDECODABLE.search(value):
        return "invalid UTF-8 bytes"
    return None


def _careful_rows(bf: BethFile, on_bad_rows: OnBadRows, report: LoadReport | None) -> list[list[str]]:
    """Validate every row in pure Python; return the good rows (raise on the first bad one in error mode)."""
    kind, path = bf.kind, bf.path
    width = len(kind.columns)
    good: list[list[str]] = []

    def bad(line: int, column: int | None, reason: str) -> None:
        col = None if column is None else f"{column + 1} ({kind.columns[column]})"
        if on_bad_rows == "error":
            raise DataError(reason, path=path, line=line, column=col)
        if report is not None:
            report.skipped.append(BadRow(str(path), line, col, reason))

    with path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh, strict=True)
        try:
            next(reader)  # header, already checked
            line = reader.line_num
            for row in reader:
                start, line = line + 1, reader.line_num
                if len(row) != width:
                    if len(row) == 0 or row == [""]:
                        bad(start, None, "empty line")
                    else:
                        bad(start, None, f"expected {width} fields, found {len(row)} (truncated row?)")
                    continue
                for i, value in enumerate(row):
                    reason = _check_value(kind, kind.columns[i], value)
                    if reason is not None:
                        bad(start, i, reason)
                        break
                else:
                    good.append(row)
        except csv.Error as exc:
            # The csv module cannot resynchronise after a broken quote: everything after is lost, so
            # this is an error even in skip mode.
            raise DataError(f"malformed CSV ({exc})", path=path, line=reader.line_num) from None
    return good


def lines_of_rows(path: str | Path, rows: Iterable[int]) -> dict[int, int]:
    """Physical line (1-based) where each data row (0-based, after the header) starts; one pass."""
    wanted, found = set(rows), {}
    with Path(path).open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        line = reader.line_num
        for i, _ in enumerate(reader):
            if i in wanted:
                found[i] = line + 1
                if len(found) == len(wanted):
                    break
            line = reader.line_num
    return found


def line_of_row(path: str | Path, row_index: int) -> int | None:
    """Physical line where data row `row_index` starts (None past the end)."""
    return lines_of_rows(path, [row_index]).get(row_index)


# --- reading one file -----------------------------------------------------------------------------


def _null_check(df: pl.DataFrame, kind: FileKind) -> bool:
    """True when every non-nullable column of `df` is free of nulls (short rows show up as nulls)."""
    required = [c for c in df.columns if c not in _NULLABLE.get(kind, ())]
    if not required:
        return True
    counts = df.select(pl.col(required).null_count()).row(0)
    return not any(counts)


def _read_csv(bf: BethFile, columns: list[str], on_bad_rows: OnBadRows, report: LoadReport | None):
    kind = bf.kind
    try:
        df = (
            pl.scan_csv(bf.path, schema=kind.dtypes, has_header=True, encoding="utf8")
            .select(columns)
            .collect()
        )
        if _null_check(df, kind):
            return df
    except (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError):
        pass
    rows = _careful_rows(bf, on_bad_rows, report)
    df = rows_to_frame(kind, rows, errors="surrogateescape").select(columns)
    if on_bad_rows == "error" and not _null_check(df, kind):  # pragma: no cover - careful pass is stricter
        raise DataError("rows with missing values", path=bf.path)
    return df


def _read_parquet(bf: BethFile, columns: list[str]) -> pl.DataFrame:
    try:
        df = pl.read_parquet(bf.path, columns=columns)
    except Exception as exc:
        raise DataError(f"cannot read Parquet data ({exc})", path=bf.path) from None
    want = {c: bf.kind.dtypes[c] for c in columns}
    for name, dtype in df.schema.items():
        if dtype != want[name]:
            raise DataError(f"column {name!r} has type {dtype}, expected {want[name]}", path=bf.path)
    if not _null_check(df, bf.kind):
        raise DataError("missing values in a column that must always hold one", path=bf.path)
    return df


def read_file(
    bf: BethFile,
    *,
    columns: Sequence[str] | None = None,
    parse_nested: bool = False,
    check_nested: bool = False,
    on_bad_rows: OnBadRows = "error",
    report: LoadReport | None = None,
) -> pl.DataFrame:
    """Read one recognised file. Process files come back in the 16-column layout (13-column files get
    null threadId/mountNamespace/stackAddresses), DNS files in the 15-column layout.

    `check_nested` parses the literal columns to validate them (bad rows: error, or skipped and
    counted) but returns them as text, as `beth convert` needs."""
    target = PROCESS_COLUMNS if bf.kind.is_process else bf.kind.columns
    wanted = list(columns) if columns is not None else list(target)
    unknown = [c for c in wanted if c not in target]
    if unknown:
        raise UsageError(f"unknown column(s) {', '.join(map(repr, unknown))} for {bf.kind.value} files")
    present = [c for c in wanted if c in bf.kind.columns]
    if not present:
        present = [bf.kind.columns[0]]  # read something to learn the row count
    if bf.format == "parquet":
        df = _read_parquet(bf, present)
    else:
        df = _read_csv(bf, present, on_bad_rows, report)
    if report is not None:
        report.rows[str(bf.path)] = df.height
    if bf.kind is FileKind.HOST_PROCESS:
        df = df.with_columns(pl.lit(None, PROCESS_DTYPES[c]).alias(c) for c in wanted if c not in present)
    df = df.select(wanted)
    if parse_nested or check_nested:
        parsed, keep = _parse_nested(df, bf, on_bad_rows, report)
        df = parsed if parse_nested else df if keep is None else df.filter(keep)
    return df


# --- nested fields --------------------------------------------------------------------------------


def _parse_stack(text: str) -> list[int]:
    if not (text.startswith("[") and text.endswith("]")):
        raise LiteralError("expected a list of unsigned integers", 0)
    body = text[1:-1].strip()
    if not body:
        return []
    values = []
    for part in body.split(","):
        part = part.strip()
        if not part.isdigit():
            raise LiteralError(f"not an unsigned integer: {part!r}", text.find(part))
        number = int(part)
        if number >= 1 << 64:
            raise LiteralError(f"address does not fit in 64 bits: {part}", text.find(part))
        values.append(number)
    return values


def _parse_arg_list(text: str) -> list[dict[str, Any]]:
    return [arg_record(a) for a in parse_args(text)]


_PARSERS: dict[str, Callable[[str], Any]] = {
    "stackAddresses": _parse_stack,
    "args": _parse_arg_list,
    **{c: parse_str_list for c in DNS_LIST_COLUMNS},
}


def _parse_column(
    df: pl.DataFrame, name: str, dtype: pl.DataType, bf: BethFile, on_bad_rows: OnBadRows, bad_rows: set[int]
) -> pl.DataFrame:
    """Parse column `name` once per distinct value; record the rows whose value does not parse."""
    parser = _PARSERS[name]
    distinct = df.get_column(name).drop_nulls().unique()
    parsed: list[Any] = []
    failed: dict[str, LiteralError] = {}
    for text in distinct:
        try:
            parsed.append(parser(text))
        except LiteralError as exc:
            failed[text] = exc
            parsed.append(None)
    if failed:
        rows = df.with_row_index("__row").filter(pl.col(name).is_in(list(failed))).get_column("__row")
        if on_bad_rows == "error":
            first = int(rows.min())  # type: ignore[arg-type]
            text = df.get_column(name)[first]
            line = line_of_row(bf.path, first) if bf.format == "csv" else None
            where = f"row {first + 1}: " if line is None else ""
            col = f"{bf.kind.columns.index(name) + 1} ({name})"
            raise DataError(f"{where}malformed {name}: {failed[text]}", path=bf.path, line=line, column=col)
        bad_rows.update(rows.to_list())
    table = pl.DataFrame({name: distinct, "__parsed": pl.Series(parsed, dtype=dtype)})
    return (
        df.join(table, on=name, how="left", maintain_order="left", nulls_equal=False)
        .with_columns(pl.col("__parsed").alias(name))
        .drop("__parsed")
    )


def _parse_nested(
    df: pl.DataFrame, bf: BethFile, on_bad_rows: OnBadRows, report: LoadReport | None
) -> tuple[pl.DataFrame, pl.Series | None]:
    """Parse the literal columns; with skipped rows, also the mask of the rows kept."""
    nested = DNS_NESTED_DTYPES if bf.kind is FileKind.DNS else PROCESS_NESTED_DTYPES
    bad_rows: set[int] = set()
    for name, dtype in nested.items():
        if name not in df.columns:
            continue
        if name == "Timestamp":
            df = _parse_dns_time(df, bf)
        elif df.get_column(name).dtype == pl.String:
            df = _parse_column(df, name, dtype, bf, on_bad_rows, bad_rows)
        else:  # an all-null column (13-column files have no stackAddresses)
            df = df.with_columns(pl.col(name).cast(dtype))
        # DNS lists: an empty field means an empty list, not a missing one.
        if name in DNS_LIST_COLUMNS:
            df = df.with_columns(pl.col(name).fill_null(pl.lit([], dtype)))
    if not bad_rows:
        return df, None
    lines = lines_of_rows(bf.path, bad_rows) if bf.format == "csv" else {r: None for r in bad_rows}
    if report is not None:
        for row in sorted(bad_rows):
            where = "" if lines[row] is not None else f"row {row + 1}: "
            report.skipped.append(BadRow(str(bf.path), lines[row], None, f"{where}malformed literal field"))
    keep = ~pl.int_range(df.height, eager=True).is_in(sorted(bad_rows))
    df = df.filter(keep)
    if report is not None:
        report.rows[str(bf.path)] = df.height
    return df, keep


def _parse_dns_time(df: pl.DataFrame, bf: BethFile) -> pl.DataFrame:
    try:
        return df.with_columns(
            pl.col("Timestamp").str.strptime(pl.Datetime("us", "UTC"), DNS_TIMESTAMP_FORMAT, strict=True)
        )
    except pl.exceptions.PolarsError:
        parsed = df.get_column("Timestamp").str.strptime(
            pl.Datetime("us", "UTC"), DNS_TIMESTAMP_FORMAT, strict=False
        )
        first = int(parsed.is_null().arg_max())  # type: ignore[arg-type]
        line = line_of_row(bf.path, first) if bf.format == "csv" else None
        text = df.get_column("Timestamp")[first]
        raise DataError(
            f"timestamp {text!r} is not YYYY-MM-DDTHH:MM:SSZ", path=bf.path, line=line, column="1 (Timestamp)"
        ) from None


# --- the public entry point -----------------------------------------------------------------------


def load(
    paths: str | Path | Iterable[str | Path],
    *,
    columns: Sequence[str] | None = None,
    parse_nested: bool = False,
    on_bad_rows: OnBadRows = "error",
    report: LoadReport | None = None,
) -> pl.DataFrame:
    """Load one file, a list of files, or a directory of BETH files into one polars DataFrame.

    All files must hold process events (16- or 13-column; the 13-column ones get null
    threadId/mountNamespace/stackAddresses) or all DNS events. `columns` selects columns (faster);
    `parse_nested` turns `args`/`stackAddresses`/DNS lists into nested columns; `on_bad_rows="skip"`
    drops malformed rows and records each in `report` instead of raising.
    """
    if on_bad_rows not in ("error", "skip"):
        raise UsageError(f"on_bad_rows must be 'error' or 'skip', not {on_bad_rows!r}")
    files = discover(paths)
    kinds = {f.kind.is_process for f in files}
    if len(kinds) > 1:
        dns = next(f for f in files if not f.kind.is_process)
        raise UsageError(f"cannot load process and DNS files together ({dns.path.name} is DNS); load apart")
    frames = [
        read_file(f, columns=columns, parse_nested=parse_nested, on_bad_rows=on_bad_rows, report=report)
        for f in files
    ]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
