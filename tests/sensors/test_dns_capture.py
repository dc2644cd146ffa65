"""Packet decoding for the DNS sensor: IPv4/IPv6, UDP/TCP, TCP reassembly, cross-interface duplicates."""

from __future__ import annotations

import socket
import struct

import dnslib
import pytest

from beth.sensors.dns_capture import (
    ETH_P_IP,
    ETH_P_IPV6,
    NotDns,
    RecentPackets,
    Segment,
    TcpStreams,
    bpf_program,
    pack_program,
    parse_ip,
)


def udp4(src: str, dst: str, sport: int, dport: int, payload: bytes, *, frag: int = 0) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return (
        struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, frag, 64, 17, 0,
            socket.inet_aton(src), socket.inet_aton(dst),
        )
        + udp
        + b"\x00" * 6  # Ethernet padding after the IP packet must be ignored
    )  # fmt: skip


def tcp6(src: str, dst: str, sport: int, dport: int, payload: bytes, seq: int, flags: int = 0x18) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
    return (
        struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64)
        + socket.inet_pton(socket.AF_INET6, src)
        + socket.inet_pton(socket.AF_INET6, dst)
        + tcp
    )


QUERY = bytes(dnslib.DNSRecord.question("example.org", "A").pack())


def test_udp_over_ipv4_gives_addresses_ports_and_the_exact_payload() -> None:
    seg = parse_ip(udp4("10.0.0.1", "10.0.0.2", 40000, 53, QUERY), ETH_P_IP)
    assert (seg.src, seg.dst, seg.sport, seg.dport, seg.tcp) == ("10.0.0.1", "10.0.0.2", 40000, 53, False)
    assert seg.payload == bytes(QUERY)


def test_tcp_over_ipv6() -> None:
    seg = parse_ip(tcp6("fd00::1", "::1", 53, 41000, b"\x00\x02hi", seq=7), ETH_P_IPV6)
    assert (seg.src, seg.dst, seg.sport, seg.tcp, seg.seq, seg.payload) == (
        "fd00::1",
        "::1",
        53,
        True,
        7,
        b"\x00\x02hi",
    )


@pytest.mark.parametrize(
    ("packet", "proto"),
    [
        (udp4("10.0.0.1", "10.0.0.2", 1, 2, QUERY), ETH_P_IP),  # not the DNS port
        (udp4("10.0.0.1", "10.0.0.2", 1, 53, QUERY, frag=5), ETH_P_IP),  # a later fragment
        (b"\x45" + b"\x00" * 10, ETH_P_IP),  # short
        (udp4("10.0.0.1", "10.0.0.2", 1, 53, QUERY), 0x0806),  # ARP
    ],
)
def test_packets_that_are_not_dns_are_refused(packet: bytes, proto: int) -> None:
    with pytest.raises(NotDns):
        parse_ip(packet, proto)


def seg(payload: bytes, seq: int, flags: int = 0x18) -> Segment:
    return Segment("::1", "::1", 41000, 53, True, payload, seq, flags)


def framed(msg: bytes) -> bytes:
    return struct.pack("!H", len(msg)) + msg


def test_tcp_messages_split_over_segments_and_retransmissions_come_out_once() -> None:
    a, b = framed(b"A" * 30), framed(b"B" * 5)
    streams = TcpStreams()
    assert streams.feed(seg(b"", 99, flags=0x02)) == []  # SYN
    assert streams.feed(seg(a[:10], 100)) == []
    assert streams.feed(seg(a[:10], 100)) == []  # retransmitted
    assert streams.feed(seg(a[10:] + b, 110)) == [b"A" * 30, b"B" * 5]
    assert streams.feed(seg(b[-3:], 100 + len(a) + len(b) - 3)) == []  # old bytes again
    assert streams.broken == 0


def test_a_hole_in_a_tcp_stream_is_counted_and_the_stream_resynchronises() -> None:
    streams = TcpStreams()
    streams.feed(seg(framed(b"X" * 40)[:20], 1000))
    out = streams.feed(seg(framed(b"Y" * 3), 5000))  # bytes 1020..4999 never seen
    assert out == [b"YYY"] and streams.broken == 1


def test_the_same_packet_on_another_interface_is_a_duplicate_on_the_same_one_a_retransmission() -> None:
    recent = RecentPackets(window=0.1)
    s = Segment("172.17.0.2", "8.8.8.8", 40000, 53, False, QUERY)
    assert not recent.duplicate(s, QUERY, 5, 1.00)  # vethXXXX
    assert recent.duplicate(s, QUERY, 3, 1.01)  # docker0
    assert not recent.duplicate(s, QUERY, 5, 1.05)  # the resolver retried on the same veth
    assert not recent.duplicate(s, QUERY, 3, 1.50)  # long after: a new packet


def test_the_kernel_filter_is_well_formed() -> None:
    prog = bpf_program(53, loopback_ifindex=1)
    assert len(pack_program(prog)) == 8 * len(prog)
    assert prog[-1] == (0x06, 0, 0, 262144) and prog[-2] == (0x06, 0, 0, 0)  # accept / drop
    for i, (code, jt, jf, _) in enumerate(prog):
        if code & 0x07 == 0x05:  # jumps stay inside the program
            assert i + 1 + max(jt, jf) < len(prog)
