"""The fast CSV record formatter and the append/line/size/block additions to EventWriter (collector)."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beth.data.load import load
from beth.data.write import CSV_LINE_END, EventWriter, csv_line, dns_time_text, seconds_text
from beth.errors import UsageError
from beth.events import DnsEvent, ProcessEvent
from beth.schema import DNS_TIMESTAMP_FORMAT, FileKind

# Text with every character the CSV writer treats specially, plus ordinary ones.
_text = st.text(alphabet=st.sampled_from(list("ab ,'\"\r\n\\é[]{}:")), max_size=12)
_arg = st.fixed_dictionaries(
    {"name": _text, "type": _text, "value": st.one_of(st.integers(-(2**63), 2**64), _text)}
)

process_events = st.builds(
    ProcessEvent,
    timestamp=st.one_of(st.floats(0, 1e7, allow_nan=False), st.floats()),
    processId=st.integers(0, 2**22),
    threadId=st.integers(0, 2**22),
    parentProcessId=st.integers(0, 2**22),
    userId=st.integers(0, 2**32),
    mountNamespace=st.integers(0, 2**33),
    processName=_text,
    hostName=_text,
    eventId=st.integers(0, 1100),
    eventName=_text,
    stackAddresses=st.lists(st.integers(0, 2**64 - 1), max_size=4),
    argsNum=st.integers(0, 6),
    returnValue=st.integers(-200, 2**31),
    args=st.lists(_arg, max_size=4),
    sus=st.integers(0, 1),
    evil=st.integers(0, 1),
)
dns_events = st.builds(
    DnsEvent,
    Timestamp=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])),
    SourceIP=_text,
    DestinationIP=_text,
    DnsQuery=_text,
    DnsAnswer=st.lists(_text, max_size=3),
    DnsAnswerTTL=st.lists(_text, max_size=3),
    DnsQueryNames=_text,
    DnsQueryClass=st.lists(_text, max_size=2),
    DnsQueryType=st.lists(_text, max_size=2),
    NumberOfAnswers=st.integers(0, 100),
    DnsResponseCode=st.integers(0, 15),
    DnsOpCode=st.integers(0, 15),
    SensorId=_text,
    sus=st.integers(0, 1),
    evil=st.integers(0, 1),
)


def _csv_module(event: ProcessEvent | DnsEvent) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=CSV_LINE_END).writerow(event.csv_fields())
    return buf.getvalue()


@settings(max_examples=300, deadline=None)
@given(st.one_of(process_events, dns_events))
def test_csv_line_is_exactly_what_the_csv_module_writes(event: ProcessEvent | DnsEvent) -> None:
    assert csv_line(event) + CSV_LINE_END == _csv_module(event)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.floats(), st.floats(1e-4, 1e9), st.integers(0, 10**9).map(lambda i: i / 1e6)))
def test_seconds_text_is_the_repr_of_the_rounded_timestamp(t: float) -> None:
    assert seconds_text(t) == repr(round(t, 6))


def test_seconds_text_on_a_million_timestamps_and_at_the_edges_of_its_fast_range() -> None:
    rng = np.random.default_rng(0)
    values = [
        *rng.uniform(0, 1e9, 400_000),  # seconds since boot: any uptime up to 31 years
        *rng.uniform(0, 1e5, 400_000),  # the usual few days
        *(np.round(rng.uniform(0, 1e6, 100_000), 6)),  # already microsecond values: ties, short reprs
        *np.exp(rng.uniform(np.log(1e-6), np.log(1e12), 100_000)),
    ]
    for edge in (1e-4, 1e9, 0.5e-4, 9.9999995e-5, 999_999_999.9999995, 1.0, 0.0, 100.0):
        values += [edge, np.nextafter(edge, 0), np.nextafter(edge, 2e9)]
    bad = [t for t in map(float, values) if seconds_text(t) != repr(round(t, 6))]
    assert bad == []


@settings(max_examples=500, deadline=None)
@given(st.datetimes(timezones=st.one_of(st.none(), st.just(UTC), st.timezones())))
def test_dns_time_text_is_what_strftime_writes(ts: datetime) -> None:
    try:
        expected = ts.astimezone(UTC).strftime(DNS_TIMESTAMP_FORMAT)
    except (OverflowError, ValueError):  # out of range once moved to UTC: the same error, then
        with pytest.raises((OverflowError, ValueError)):
            dns_time_text(ts)
        return
    assert dns_time_text(ts) == expected


def test_equal_values_of_other_types_are_formatted_as_the_csv_module_does() -> None:
    """The formatter caches the columns that repeat; 1 == True == 1.0 must not share an entry."""
    event = _process()
    variants = [
        event,
        replace(event, userId=True),
        replace(event, userId=1.0),
        replace(event, eventId=True),
        replace(event, stackAddresses=()),
        replace(event, args=()),
    ]
    for e in [*variants, *variants]:  # second round: from the caches
        assert csv_line(e) + CSV_LINE_END == _csv_module(e)


def _process() -> ProcessEvent:
    return ProcessEvent(
        timestamp=1809.491983,
        processId=381,
        threadId=7337,
        parentProcessId=1,
        userId=1,
        mountNamespace=4026531840,
        processName="close",
        hostName="ip-10-100-1-120",
        eventId=157,
        eventName="prctl",
        args=[{"name": "option", "type": "int", "value": "PR_SET_NAME"}],
    )


def _dns(second: int, query: str) -> DnsEvent:
    return DnsEvent(
        Timestamp=datetime(2021, 5, 16, 17, 13, second, tzinfo=UTC),
        SourceIP="10.100.0.2",
        DestinationIP="10.100.1.95",
        DnsQuery=query,
        DnsAnswer=["52.95.19.240"],
        DnsAnswerTTL=["17"],
        DnsQueryNames=query,
        DnsQueryClass=["IN"],
        DnsQueryType=["A"],
        NumberOfAnswers=1,
        SensorId="ip-10-100-1-95",
    )


def test_append_continues_a_file_without_a_second_header_and_size_tracks_it(tmp_path) -> None:
    path = tmp_path / "x-dns.csv"
    with EventWriter(path, FileKind.DNS, append=True) as w:  # new file: header written
        w.write(_dns(1, "a.example"))
        first_size = w.size()
    assert first_size == path.stat().st_size
    with EventWriter(path, FileKind.DNS, append=True) as w:
        w.write(_dns(2, "b.example"))
        lines = [csv_line(_dns(3, "c.example")), csv_line(_dns(4, "d.example"))]
        w.write_block("".join(x + CSV_LINE_END for x in lines).encode(), 2)
        w.write_block(b"", 0)
        w.write(_dns(5, "e.example"))  # text and blocks keep their order
        assert w.size() > first_size and w.rows == 4
    text = path.read_text()
    assert text.count("Timestamp,") == 1
    df = load(path)
    assert df["DnsQuery"].to_list() == ["a.example", "b.example", "c.example", "d.example", "e.example"]


def test_write_block_refuses_non_csv_output_and_streams(tmp_path) -> None:
    with EventWriter(tmp_path / "x.jsonl", FileKind.DNS, "jsonl") as w, pytest.raises(UsageError):
        w.write_block(b"x\r\n", 1)
    with EventWriter(io.StringIO(), FileKind.DNS) as w, pytest.raises(UsageError):
        w.write_block(b"x\r\n", 1)
