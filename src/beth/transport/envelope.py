"""What travels from a sensor to the collector: envelopes, subjects, message ids, the wire encoding.

Every event travels in an `Envelope` naming its host, its log kind, the sensor *run* that produced it
and its sequence number in that run (1, 2, 3, ...). The sequence number is transport metadata, never a
BETH column: it lets the collector drop redelivered copies, restore order, and report gaps. A run id is
64 random bits, so a restarted sensor starts a fresh sequence and nobody can guess another host's ids.

On the wire (NATS) an envelope is:

- subject ``beth.<host>.<kind>`` (kind ``process``, ``dns`` or ``stats``), so broker permissions can
  confine a host to ``beth.<host>.>``;
- header ``Nats-Msg-Id: <host>.<kind>.<run>.<seq>``, which JetStream uses to store a retried publish once;
- payload: the event's BETH CSV record (UTF-8, no line end), exactly the row the collector appends.

Why CSV rows: they are what the collector writes, so the fan-in point does no per-event re-encoding
(it validates whole batches with polars instead); the row has no keys, so it is smaller than JSON
records; and any consumer can parse batches of rows with the BETH loader's CSV schema. Stats
messages (sensor counters) are small JSON objects.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from beth.data.write import csv_line
from beth.errors import DataError, UsageError
from beth.events import DnsEvent, ProcessEvent

Event = ProcessEvent | DnsEvent

PROCESS, DNS, STATS = "process", "dns", "stats"
KINDS: tuple[str, ...] = (PROCESS, DNS, STATS)
SUBJECT_PREFIX = "beth"
#: The JetStream stream holding every host's events, and the collector's durable consumer on it.
STREAM, DURABLE = "BETH", "beth-collector"

_SAFE = re.compile(r"[A-Za-z0-9_-]")
_TOKEN = re.compile(r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+")
_RUN = re.compile(r"[0-9a-f]{1,32}")
_SEQ = re.compile(r"[0-9]{1,18}")  # ASCII digits only: str.isdigit() also takes '²', which int() refuses


@lru_cache(maxsize=4096)
def host_token(host: str) -> str:
    """The host name as one subject token and file-name part: `[A-Za-z0-9_-]` kept, other bytes `%XX`.

    NATS subject tokens cannot hold '.', '*', '>' or spaces, and a host name ends up in file names,
    so e.g. `ip-10-0-0-1.ec2.internal` travels as `ip-10-0-0-1%2Eec2%2Einternal`.
    """
    if not host:
        raise UsageError("the host name is empty")
    return "".join(c if _SAFE.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode()) for c in host)


def subject(host: str, kind: str) -> str:
    """`beth.<host token>.<kind>`."""
    if kind not in KINDS:
        raise UsageError(f"unknown log kind {kind!r} (one of {', '.join(KINDS)})")
    return f"{SUBJECT_PREFIX}.{host_token(host)}.{kind}"


def parse_subject(text: str) -> tuple[str, str]:
    """(host token, kind) of a `beth.<host>.<kind>` subject; DataError for anything else."""
    parts = text.split(".")
    if (
        len(parts) != 3
        or parts[0] != SUBJECT_PREFIX
        or parts[2] not in KINDS
        or not _TOKEN.fullmatch(parts[1])
    ):
        raise DataError(f"not a beth subject: {text!r}")
    return parts[1], parts[2]


def new_run_id() -> str:
    """64 random bits as 16 hex digits: a sensor run's id."""
    return secrets.token_hex(8)


@dataclass(slots=True)
class Envelope:
    """One event (or one stats record) with the metadata the collector needs."""

    host: str  # the sensor host's name (as in hostName / SensorId)
    kind: str  # process | dns | stats
    run: str
    seq: int
    event: Event | dict[str, Any]

    @property
    def subject(self) -> str:
        return subject(self.host, self.kind)

    @property
    def msg_id(self) -> str:
        return f"{host_token(self.host)}.{self.kind}.{self.run}.{self.seq}"

    def payload(self) -> bytes:
        """The wire payload: the BETH CSV record, or JSON for stats."""
        return encode(self.event)


def encode(event: Event | dict[str, Any]) -> bytes:
    """An event as its BETH CSV record (no line end), a stats record as compact JSON; UTF-8."""
    if isinstance(event, dict):
        return json.dumps(event, separators=(",", ":")).encode()
    return csv_line(event).encode()


def parse_msg_id(text: str) -> tuple[str, str, str, int]:
    """(host token, kind, run, seq) of a message id; DataError when malformed."""
    parts = text.split(".")
    if (
        len(parts) != 4
        or not _TOKEN.fullmatch(parts[0])
        or parts[1] not in KINDS
        or not _RUN.fullmatch(parts[2])
        or not _SEQ.fullmatch(parts[3])
    ):
        raise DataError(f"malformed message id {text!r}")
    return parts[0], parts[1], parts[2], int(parts[3])


class Channel:
    """Stamps one sensor's events with its host, kind, run id and the next sequence number.

    One channel per sensor run; not thread-safe (a sensor emits from one thread).
    """

    __slots__ = ("host", "kind", "run", "seq")

    def __init__(self, host: str, kind: str, run: str | None = None) -> None:
        subject(host, kind)  # validates both
        self.host, self.kind = host, kind
        self.run = run or new_run_id()
        self.seq = 0

    def wrap(self, event: Event | dict[str, Any]) -> Envelope:
        self.seq += 1
        return Envelope(self.host, self.kind, self.run, self.seq, event)
