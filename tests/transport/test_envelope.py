"""Envelopes, subjects and message ids: what travels and how it is named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beth.collector import host_name
from beth.data.write import csv_line
from beth.errors import DataError, UsageError
from beth.transport.envelope import Channel, host_token, parse_msg_id, parse_subject, subject
from sample_events import dns_events, process_events


@given(st.text(min_size=1, max_size=30))
def test_host_tokens_are_safe_subject_tokens_and_round_trip(host: str) -> None:
    token = host_token(host)
    assert all(c.isascii() and (c.isalnum() or c in "_-%") for c in token)
    assert host_name(token) == host
    assert parse_subject(subject(host, "dns")) == (token, "dns")


def test_plain_host_names_are_kept_and_dots_are_escaped() -> None:
    assert host_token("ip-10-100-1-217") == "ip-10-100-1-217"
    assert subject("ip-10-0-0-1.ec2.internal", "process") == "beth.ip-10-0-0-1%2Eec2%2Einternal.process"


@pytest.mark.parametrize("text", ["beth.h.other", "beth.h", "x.h.dns", "beth.a.b.dns", "beth.h*.dns"])
def test_foreign_subjects_are_refused(text: str) -> None:
    with pytest.raises(DataError):
        parse_subject(text)


def test_channel_numbers_events_from_one_with_a_random_run_and_names_them() -> None:
    ch = Channel("h1", "process")
    other = Channel("h1", "process")
    events = list(process_events("h1", 3))
    envs = [ch.wrap(e) for e in events]
    assert [e.seq for e in envs] == [1, 2, 3]
    assert ch.run != other.run and len(ch.run) == 16
    assert envs[2].subject == "beth.h1.process"
    assert parse_msg_id(envs[2].msg_id) == ("h1", "process", ch.run, 3)
    assert envs[0].payload() == csv_line(events[0]).encode()


def test_dns_payload_is_the_csv_row_and_stats_are_json() -> None:
    (event,) = dns_events("h2", 1)
    assert Channel("h2", "dns").wrap(event).payload() == csv_line(event).encode()
    assert Channel("h2", "stats").wrap({"sensors": []}).payload() == b'{"sensors":[]}'


@pytest.mark.parametrize(
    "text", ["h.process.abc", "h.process.xyz.1", "h.nope.ab.1", "h.dns.ab.-1", "h.dns.ab.1.2"]
)
def test_malformed_message_ids_are_refused(text: str) -> None:
    with pytest.raises(DataError):
        parse_msg_id(text)


def test_unknown_kinds_and_empty_hosts_are_usage_errors() -> None:
    with pytest.raises(UsageError):
        Channel("h", "files")
    with pytest.raises(UsageError):
        Channel("", "dns")
