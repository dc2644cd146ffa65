"""The BETH record schemas and the Tracee v0.5 event table.

One schema serves both paths: the loader reads Kaggle files into it, the sensors emit it, the
collector writes it. Column names and order are exactly those of the Kaggle files; types are the
narrowest Arrow types that hold every published value (mount namespaces exceed int32, stack
addresses exceed int64, hence uint64).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cache
from importlib import resources

import polars as pl

# --- process logs ---------------------------------------------------------------------------------

#: The three split files (labelled_training/validation/testing_data.csv): 16 columns.
PROCESS_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "processId",
    "threadId",
    "parentProcessId",
    "userId",
    "mountNamespace",
    "processName",
    "hostName",
    "eventId",
    "eventName",
    "stackAddresses",
    "argsNum",
    "returnValue",
    "args",
    "sus",
    "evil",
)

#: The per-host files (labelled_2021may-<host>.csv): 13 columns, no threadId/mountNamespace/stackAddresses.
HOST_PROCESS_COLUMNS: tuple[str, ...] = tuple(
    c for c in PROCESS_COLUMNS if c not in ("threadId", "mountNamespace", "stackAddresses")
)

#: Raw (as stored in CSV) polars types of every process column.
PROCESS_DTYPES: dict[str, pl.DataType] = {
    "timestamp": pl.Float64(),
    "processId": pl.Int64(),
    "threadId": pl.Int64(),
    "parentProcessId": pl.Int64(),
    "userId": pl.Int64(),
    "mountNamespace": pl.Int64(),
    "processName": pl.String(),
    "hostName": pl.String(),
    "eventId": pl.Int64(),
    "eventName": pl.String(),
    "stackAddresses": pl.String(),
    "argsNum": pl.Int64(),
    "returnValue": pl.Int64(),
    "args": pl.String(),
    "sus": pl.Int8(),
    "evil": pl.Int8(),
}

#: One Tracee argument: `{'name', 'type', 'value'}`. `value` holds ints (as decimal text) and strings;
#: `items` holds list values (execve argv); `kind` says which of 'int', 'str', 'list' the value was.
ARG_DTYPE = pl.Struct(
    {
        "name": pl.String(),
        "type": pl.String(),
        "kind": pl.String(),
        "value": pl.String(),
        "items": pl.List(pl.String()),
    }
)

#: Types of the columns that `load(..., parse_nested=True)` parses.
PROCESS_NESTED_DTYPES: dict[str, pl.DataType] = {
    "stackAddresses": pl.List(pl.UInt64()),
    "args": pl.List(ARG_DTYPE),
}

# --- DNS logs -------------------------------------------------------------------------------------

DNS_COLUMNS: tuple[str, ...] = (
    "Timestamp",
    "SourceIP",
    "DestinationIP",
    "DnsQuery",
    "DnsAnswer",
    "DnsAnswerTTL",
    "DnsQueryNames",
    "DnsQueryClass",
    "DnsQueryType",
    "NumberOfAnswers",
    "DnsResponseCode",
    "DnsOpCode",
    "SensorId",
    "sus",
    "evil",
)

#: DNS timestamps are second-precision UTC, written `YYYY-MM-DDTHH:MM:SSZ`.
DNS_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

DNS_DTYPES: dict[str, pl.DataType] = {
    "Timestamp": pl.String(),
    "SourceIP": pl.String(),
    "DestinationIP": pl.String(),
    "DnsQuery": pl.String(),
    "DnsAnswer": pl.String(),
    "DnsAnswerTTL": pl.String(),
    "DnsQueryNames": pl.String(),
    "DnsQueryClass": pl.String(),
    "DnsQueryType": pl.String(),
    "NumberOfAnswers": pl.Int64(),
    "DnsResponseCode": pl.Int64(),
    "DnsOpCode": pl.Int64(),
    "SensorId": pl.String(),
    "sus": pl.Int8(),
    "evil": pl.Int8(),
}

#: DNS list columns: Python-literal lists of strings (`['52.95.19.240']`), empty text for none.
DNS_LIST_COLUMNS: tuple[str, ...] = ("DnsAnswer", "DnsAnswerTTL", "DnsQueryClass", "DnsQueryType")

DNS_NESTED_DTYPES: dict[str, pl.DataType] = {
    "Timestamp": pl.Datetime("us", "UTC"),
    **{c: pl.List(pl.String()) for c in DNS_LIST_COLUMNS},
}


class FileKind(enum.Enum):
    """What a BETH file holds, recognised from its header."""

    PROCESS = "process"  # 16 columns: the three split files, and beth's own process logs
    HOST_PROCESS = "host-process"  # 13 columns: labelled_2021may-<host>.csv
    DNS = "dns"  # 15 columns: labelled_2021may-<host>-dns.csv

    @property
    def columns(self) -> tuple[str, ...]:
        return _COLUMNS[self]

    @property
    def dtypes(self) -> dict[str, pl.DataType]:
        """Raw column types of this kind, in file order (one shared dict per kind: do not modify)."""
        return _DTYPES[self]

    @property
    def is_process(self) -> bool:
        return self is not FileKind.DNS


_COLUMNS = {
    FileKind.PROCESS: PROCESS_COLUMNS,
    FileKind.HOST_PROCESS: HOST_PROCESS_COLUMNS,
    FileKind.DNS: DNS_COLUMNS,
}
_DTYPES = {
    kind: {c: (DNS_DTYPES if kind is FileKind.DNS else PROCESS_DTYPES)[c] for c in _COLUMNS[kind]}
    for kind in FileKind
}


def kind_of_header(columns: list[str] | tuple[str, ...]) -> FileKind | None:
    """The kind whose exact column list this is, or None."""
    cols = tuple(columns)
    for kind in FileKind:
        if cols == kind.columns:
            return kind
    return None


# --- Tracee v0.5 event ids ------------------------------------------------------------------------

#: The feature model's eventId vocabulary: ids 0..1010 (syscalls and Tracee v0.5 derived events).
EVENT_VOCABULARY = 1011


@dataclass(frozen=True)
class EventDef:
    """One Tracee v0.5.2 event: id, name, kind ('syscall'/'tracee_derived'), sets and argument list."""

    id: int
    name: str
    kind: str
    in_beth: bool
    sets: frozenset[str]
    params: tuple[tuple[str, str], ...]  # (type, name) pairs, Tracee's order

    @property
    def argnames(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.params)


def _parse_params(text: str) -> tuple[tuple[str, str], ...]:
    params = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        type_, _, name = part.rpartition(" ")
        params.append((type_.strip(), name))
    return tuple(params)


@cache
def events() -> dict[int, EventDef]:
    """Event id -> definition, from the bundled tracee-v0.5-event-ids.tsv."""
    text = resources.files("beth.resources").joinpath("tracee-v0.5-event-ids.tsv").read_text()
    table: dict[int, EventDef] = {}
    header: list[str] | None = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if header is None:
            header = fields
            continue
        row = dict(zip(header, fields, strict=False))
        ev = EventDef(
            id=int(row["eventId"]),
            name=row["eventName"],
            kind=row["kind"],
            in_beth=row["in_beth"] == "1",
            sets=frozenset(filter(None, row.get("tracee_sets_v0.5.2", "").split(","))),
            params=_parse_params(row.get("args(type name)_v0.5.2", "")),
        )
        table[ev.id] = ev
    return table


@cache
def event_ids() -> dict[str, int]:
    """Event name -> id."""
    return {ev.name: ev.id for ev in events().values()}
