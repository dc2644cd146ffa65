"""DNS message parsing, checked against dnslib (an independent implementation) on built messages."""

from __future__ import annotations

import ipaddress
import struct

import dnslib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beth.sensors.dns import dns_row
from beth.sensors.dns_wire import DnsWireError, parse_message, read_name, type_name


def reply_with(*records: dnslib.RR, qname: str = "www.example.com", qtype: str = "A") -> bytes:
    r = dnslib.DNSRecord.question(qname, qtype).reply()
    for rr in records:
        r.add_answer(rr)
    return r.pack()


def test_a_cname_chain_keeps_answer_order_ttls_and_names_without_trailing_dots() -> None:
    msg = reply_with(
        dnslib.RR("www.example.com", dnslib.QTYPE.CNAME, rdata=dnslib.CNAME("edge.example.net"), ttl=60),
        dnslib.RR("edge.example.net", dnslib.QTYPE.A, rdata=dnslib.A("93.184.216.34"), ttl=17),
        dnslib.RR("edge.example.net", dnslib.QTYPE.AAAA, rdata=dnslib.AAAA("2606:2800::1"), ttl=3600),
    )
    m = parse_message(msg)
    assert m.response and (m.opcode, m.rcode) == (0, 0)
    assert m.questions == [("www.example.com", 1, 1)]
    assert [(a[1], a[3], a[4]) for a in m.answers] == [
        (5, 60, "edge.example.net"),
        (1, 17, "93.184.216.34"),
        (28, 3600, "2606:2800::1"),
    ]


@pytest.mark.parametrize(
    ("rdata", "rtype", "text"),
    [
        (dnslib.PTR("host.example.org"), dnslib.QTYPE.PTR, "host.example.org"),
        (dnslib.NS("ns1.example.org"), dnslib.QTYPE.NS, "ns1.example.org"),
        (dnslib.MX("mail.example.org", 10), dnslib.QTYPE.MX, "10 mail.example.org"),
        (
            dnslib.TXT(["v=spf1 include:_spf.example.org", " ~all"]),
            dnslib.QTYPE.TXT,
            "v=spf1 include:_spf.example.org ~all",
        ),
        (dnslib.SRV(1, 5, 5060, "sip.example.org"), dnslib.QTYPE.SRV, "1 5 5060 sip.example.org"),
        (
            dnslib.SOA("ns.example.org", "admin.example.org", (7, 3600, 600, 86400, 300)),
            dnslib.QTYPE.SOA,
            "ns.example.org admin.example.org 7 3600 600 86400 300",
        ),
        (dnslib.RD(b"\x00\x01\x02"), 65, "\\# 3 000102"),  # HTTPS: dpkt rejects the whole message
        (dnslib.RD(b""), 4242, "\\# 0"),
        (dnslib.RD(b"\x01\x02"), dnslib.QTYPE.A, "\\# 2 0102"),  # an A record of the wrong size
    ],
)
def test_record_data_in_presentation_form(rdata: dnslib.RD, rtype: int, text: str) -> None:
    m = parse_message(reply_with(dnslib.RR("x.example", rtype, rdata=rdata, ttl=5)))
    assert m.answers[0][1:] == (rtype, 1, 5, text)


def test_binary_and_dotted_labels_are_escaped_not_fatal() -> None:
    # A question name with a non-UTF-8 byte and a '.' inside a label (tunnels look like this).
    q = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x04a\xffb.\x03bad\x00" + b"\x00\x10\x00\x01"
    m = parse_message(q)
    assert m.questions == [("a\\255b\\..bad", 16, 1)]
    assert not m.response and m.id == 7


def test_the_root_name_and_unknown_types_and_classes() -> None:
    q = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x00" + struct.pack("!HH", 4242, 9)
    m = parse_message(q)
    assert m.questions == [(".", 4242, 9)]
    row = dns_row(q, "10.0.0.1", "10.0.0.2", 0.0, "h")
    assert (row.DnsQueryType, row.DnsQueryClass, row.DnsQuery) == (["TYPE4242"], ["CLASS9"], ".")
    assert type_name(65) == "HTTPS"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 11,
        struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x03abc",  # name runs off the end
        struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01",  # pointer to itself
        struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x40abc\x00\x00\x01\x00\x01",  # extended label type
        struct.pack("!HHHHHH", 1, 0x8000, 0, 1, 0, 0) + b"\x00\x00\x01\x00\x01\x00\x00\x00\x05\x00\x09\x01",
    ],
)
def test_malformed_messages_raise_dns_wire_error(data: bytes) -> None:
    with pytest.raises(DnsWireError):
        parse_message(data)


_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    qname=st.lists(_label, min_size=1, max_size=4).map(".".join),
    answers=st.lists(
        st.tuples(
            st.lists(_label, min_size=1, max_size=3).map(".".join),
            st.integers(0, 2**31 - 1),
            st.sampled_from(["A", "AAAA", "CNAME", "PTR"]),
            st.integers(0, 2**32 - 1),
        ),
        max_size=6,
    ),
    rcode=st.integers(0, 5),
)
def test_rows_match_dnslib_for_random_responses(qname: str, answers: list, rcode: int) -> None:
    r = dnslib.DNSRecord.question(qname, "A").reply()
    r.header.rcode = rcode
    expected = []
    for name, ttl, kind, seed in answers:
        rdata = {
            "A": lambda s: dnslib.A(".".join(str(b) for b in s.to_bytes(4, "big"))),
            "AAAA": lambda s: dnslib.AAAA(str(ipaddress.IPv6Address(bytes(12) + s.to_bytes(4, "big")))),
            "CNAME": lambda s: dnslib.CNAME(f"c{s}.{qname}"),
            "PTR": lambda s: dnslib.PTR(f"p{s}.example"),
        }[kind](seed)
        r.add_answer(dnslib.RR(name, getattr(dnslib.QTYPE, kind), rdata=rdata, ttl=ttl))
    wire = r.pack()
    for rr in dnslib.DNSRecord.parse(wire).rr:  # what an independent parser reads
        expected.append((str(rr.rdata).rstrip("."), str(rr.ttl)))
    row = dns_row(wire, "192.0.2.1", "192.0.2.2", 1_700_000_000.5, "sensor")
    assert (row.DnsQuery, row.DnsQueryNames, row.DnsQueryType, row.DnsQueryClass) == (
        qname,
        qname,
        ["A"],
        ["IN"],
    )
    assert list(zip(row.DnsAnswer, row.DnsAnswerTTL, strict=True)) == expected
    assert (row.NumberOfAnswers, row.DnsResponseCode, row.DnsOpCode) == (len(answers), rcode, 0)
    assert row.Timestamp.timestamp() == 1_700_000_000


def test_compressed_names_resolve_through_pointers() -> None:
    msg = reply_with(dnslib.RR("www.example.com", dnslib.QTYPE.CNAME, rdata=dnslib.CNAME("www.example.com")))
    assert b"\xc0" in msg  # dnslib compresses the repeated name
    m = parse_message(msg)
    assert m.answers[0][0] == "www.example.com" and m.answers[0][4] == "www.example.com"
    assert read_name(msg, 12) == ("www.example.com", 12 + 17)
