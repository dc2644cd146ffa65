"""Events for transport/collector tests: the real BETH sample rows, replayed under any host name."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from beth.data.literal import parse_args, parse_literal, parse_str_list
from beth.data.load import load
from beth.events import DnsEvent, ProcessEvent

SAMPLES = Path(__file__).parent / "data" / "beth-samples"


@cache
def _process_rows() -> tuple[ProcessEvent, ...]:
    out = []
    for name in ("labelled_training_data", "labelled_testing_data", "labelled_validation_data"):
        for row in load(SAMPLES / f"{name}.head100.csv").iter_rows(named=True):
            row["args"] = parse_args(row["args"])
            row["stackAddresses"] = parse_literal(row["stackAddresses"])
            out.append(ProcessEvent(**row))
    return tuple(out)


@cache
def _dns_rows() -> tuple[DnsEvent, ...]:
    out = []
    for row in load(SAMPLES / "labelled_2021may-dns.head100.csv").iter_rows(named=True):
        for c in ("DnsAnswer", "DnsAnswerTTL", "DnsQueryClass", "DnsQueryType"):
            row[c] = parse_str_list(row[c]) if row[c] else []
        row["DnsQuery"] = row["DnsQuery"] or ""
        row["DnsQueryNames"] = row["DnsQueryNames"] or ""
        row["Timestamp"] = datetime.strptime(row["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        out.append(DnsEvent(**row))
    return tuple(out)


def process_events(host: str, n: int, *, start: float = 100.0) -> Iterator[ProcessEvent]:
    """`n` real process rows (cycled), renamed to `host`, timestamps strictly increasing."""
    for i, e in enumerate(itertools.islice(itertools.cycle(_process_rows()), n)):
        yield replace(e, hostName=host, timestamp=round(start + i * 1e-6 * 7, 6), threadId=i)


def dns_events(host: str, n: int) -> Iterator[DnsEvent]:
    """`n` real DNS rows (cycled), as sensed on `host`, one second apart."""
    t0 = datetime(2026, 5, 14, tzinfo=UTC)
    for i, e in enumerate(itertools.islice(itertools.cycle(_dns_rows()), n)):
        yield replace(e, SensorId=host, Timestamp=t0 + timedelta(seconds=i))
