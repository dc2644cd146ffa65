"""From captured IP packets to DNS messages: the kernel filter, IPv4/IPv6 + UDP/TCP, TCP streams.

Pure (no sockets): the sensor (`beth.sensors.dns`) feeds it what an AF_PACKET SOCK_DGRAM socket
reads, i.e. packets starting at the IP header, with the link-layer protocol from the socket address.

The classic-BPF program runs in the kernel on every packet of every interface and passes only
IPv4/IPv6 UDP or TCP with source or destination port 53 (first fragments only). It also drops the
*outgoing* copy of loopback packets: on `lo` each packet is seen leaving and arriving, and logging
it twice would double every local query.
"""

from __future__ import annotations

import socket
import struct
from collections import OrderedDict
from dataclasses import dataclass

from beth.sensors.dns_wire import ip6_text

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
PACKET_OUTGOING = 4
SNAPLEN = 262_144

# Classic BPF opcodes (linux/filter.h).
_LD_H_ABS, _LD_B_ABS, _LD_W_ABS = 0x28, 0x30, 0x20
_LD_H_IND = 0x48
_LDX_B_MSH = 0xB1
_JEQ_K, _JSET_K = 0x15, 0x45
_RET_K = 0x06
_SKF_AD_OFF = -0x1000
_SKF_AD_PROTOCOL, _SKF_AD_PKTTYPE, _SKF_AD_IFINDEX = 0, 4, 8


def _ad(field: int) -> int:
    return (_SKF_AD_OFF + field) & 0xFFFFFFFF


def bpf_program(port: int = 53, loopback_ifindex: int | None = None) -> list[tuple[int, int, int, int]]:
    """The kernel filter as (code, jt, jf, k) instructions, offsets relative to the IP header."""
    prog: list[tuple[int, int, int, int]] = []
    if loopback_ifindex is not None:
        prog += [
            (_LD_W_ABS, 0, 0, _ad(_SKF_AD_IFINDEX)),
            (_JEQ_K, 0, 2, loopback_ifindex),  # not lo: skip the pkttype test
            (_LD_W_ABS, 0, 0, _ad(_SKF_AD_PKTTYPE)),
            (_JEQ_K, 0, 0, PACKET_OUTGOING),  # patched below: outgoing on lo -> drop
        ]
    head = len(prog)
    prog += [
        (_LD_H_ABS, 0, 0, _ad(_SKF_AD_PROTOCOL)),  # h0
        (_JEQ_K, 0, 0, ETH_P_IP),  # h1 -> ipv4 / next
        (_JEQ_K, 0, 0, ETH_P_IPV6),  # h2 -> ipv6 / drop
        # ipv4 (h3)
        (_LD_B_ABS, 0, 0, 9),
        (_JEQ_K, 0, 0, 17),  # h4 udp -> frag check
        (_JEQ_K, 0, 0, 6),  # h5 tcp -> frag check / drop
        (_LD_H_ABS, 0, 0, 6),  # h6
        (_JSET_K, 0, 0, 0x1FFF),  # h7 later fragment -> drop
        (_LDX_B_MSH, 0, 0, 0),  # h8 X = header length
        (_LD_H_IND, 0, 0, 0),  # h9 source port
        (_JEQ_K, 0, 0, port),  # h10 -> accept
        (_LD_H_IND, 0, 0, 2),  # h11 destination port
        (_JEQ_K, 0, 0, port),  # h12 -> accept / drop
        # ipv6 (h13)
        (_LD_B_ABS, 0, 0, 6),
        (_JEQ_K, 0, 0, 17),  # h14
        (_JEQ_K, 0, 0, 6),  # h15
        (_LD_H_ABS, 0, 0, 40),  # h16
        (_JEQ_K, 0, 0, port),  # h17
        (_LD_H_ABS, 0, 0, 42),  # h18
        (_JEQ_K, 0, 0, port),  # h19
        (_RET_K, 0, 0, 0),  # h20 drop
        (_RET_K, 0, 0, SNAPLEN),  # h21 accept
    ]
    drop, accept = head + 20, head + 21

    def jump(at: int, jt: int, jf: int) -> None:
        code, _, _, k = prog[at]
        prog[at] = (code, jt - at - 1, jf - at - 1, k)

    h = head
    jump(h + 1, h + 3, h + 2)
    jump(h + 2, h + 13, drop)
    jump(h + 4, h + 6, h + 5)
    jump(h + 5, h + 6, drop)
    jump(h + 7, drop, h + 8)
    jump(h + 10, accept, h + 11)
    jump(h + 12, accept, drop)
    jump(h + 14, h + 16, h + 15)
    jump(h + 15, h + 16, drop)
    jump(h + 17, accept, h + 18)
    jump(h + 19, accept, drop)
    if loopback_ifindex is not None:
        jump(3, drop, head)
    return prog


def pack_program(prog: list[tuple[int, int, int, int]]) -> bytes:
    """struct sock_filter[] bytes."""
    return b"".join(struct.pack("HBBI", code, jt, jf, k) for code, jt, jf, k in prog)


@dataclass(slots=True)
class Segment:
    """The DNS-relevant part of one captured packet."""

    src: str
    dst: str
    sport: int
    dport: int
    tcp: bool
    payload: bytes
    seq: int = 0  # TCP sequence number of the payload's first byte
    flags: int = 0  # TCP flags


class NotDns(ValueError):
    """A packet that is not (or not entirely) IP + UDP/TCP on the DNS port."""


_V4 = struct.Struct("!BBHHHBBH4s4s")
_PORTS = struct.Struct("!HH")
_TCP = struct.Struct("!HHIIBB")


def parse_ip(packet: bytes, protocol: int, port: int = 53) -> Segment:
    """Addresses, ports and payload of an IPv4/IPv6 UDP or TCP packet to or from `port`."""
    if protocol == ETH_P_IP:
        if len(packet) < 20:
            raise NotDns("short IPv4 header")
        vhl, _, total, _, frag, _, proto, _, src, dst = _V4.unpack_from(packet)
        ihl = (vhl & 0xF) * 4
        if vhl >> 4 != 4 or ihl < 20 or total < ihl or frag & 0x1FFF:
            raise NotDns("bad IPv4 header or a later fragment")
        end = min(total, len(packet))
        src_text, dst_text, l4 = (
            socket.inet_ntop(socket.AF_INET, src),
            socket.inet_ntop(socket.AF_INET, dst),
            ihl,
        )
    elif protocol == ETH_P_IPV6:
        if len(packet) < 40 or packet[0] >> 4 != 6:
            raise NotDns("bad IPv6 header")
        proto = packet[6]
        end = min(40 + _PORTS.unpack_from(packet, 4)[0], len(packet))
        src_text, dst_text = ip6_text(packet[8:24]), ip6_text(packet[24:40])
        l4 = 40
    else:
        raise NotDns(f"link-layer protocol 0x{protocol:04x}")
    if proto == 17:
        if end - l4 < 8:
            raise NotDns("short UDP header")
        sport, dport, ulen = struct.unpack_from("!HHH", packet, l4)
        if port not in (sport, dport):
            raise NotDns("not the DNS port")
        stop = min(end, l4 + ulen) if ulen >= 8 else end
        return Segment(src_text, dst_text, sport, dport, False, bytes(packet[l4 + 8 : stop]))
    if proto == 6:
        if end - l4 < 20:
            raise NotDns("short TCP header")
        sport, dport, seq, _, off, flags = _TCP.unpack_from(packet, l4)
        if port not in (sport, dport):
            raise NotDns("not the DNS port")
        data = l4 + (off >> 4) * 4
        return Segment(src_text, dst_text, sport, dport, True, bytes(packet[data:end]), seq, flags)
    raise NotDns(f"IP protocol {proto}")


_FIN, _SYN, _RST = 0x01, 0x02, 0x04
_MAX_STREAM_BYTES = 65_537 * 2


@dataclass(slots=True)
class _Stream:
    next_seq: int
    buf: bytearray


class TcpStreams:
    """Reassembles DNS-over-TCP (2-byte length + message, RFC 1035 4.2.2) per direction of a flow.

    In-order segments are appended; retransmitted bytes are skipped; a hole (lost segment) drops the
    stream's partial data and counts it as `broken`. At most `max_streams` are tracked (oldest go).
    """

    def __init__(self, max_streams: int = 4096) -> None:
        self._streams: OrderedDict[tuple[str, str, int, int], _Stream] = OrderedDict()
        self.max_streams = max_streams
        self.broken = 0

    def feed(self, seg: Segment) -> list[bytes]:
        """Complete DNS messages that this segment finishes."""
        key = (seg.src, seg.dst, seg.sport, seg.dport)
        if seg.flags & (_SYN | _RST):
            self._streams.pop(key, None)
            if seg.flags & _RST or not seg.payload:
                return []
        stream = self._streams.get(key)
        seq, data = seg.seq, seg.payload
        if stream is None:
            if not data:
                return []
            if seg.flags & _SYN:
                seq += 1
            stream = _Stream(seq, bytearray())
            self._streams[key] = stream
            if len(self._streams) > self.max_streams:
                self._streams.popitem(last=False)
        else:
            self._streams.move_to_end(key)
        delta = (seq - stream.next_seq) & 0xFFFFFFFF
        if delta and delta < 0x80000000:  # a hole: bytes before this segment were lost
            self.broken += 1
            stream.buf.clear()
            stream.next_seq = seq
        elif delta:  # (partly) retransmitted bytes
            skip = (stream.next_seq - seq) & 0xFFFFFFFF
            data = data[skip:]
        stream.buf += data
        stream.next_seq = (stream.next_seq + len(data)) & 0xFFFFFFFF
        out = []
        buf = stream.buf
        while len(buf) >= 2:
            n = (buf[0] << 8) | buf[1]
            if len(buf) < 2 + n:
                break
            out.append(bytes(buf[2 : 2 + n]))
            del buf[: 2 + n]
        if len(buf) > _MAX_STREAM_BYTES:
            self.broken += 1
            buf.clear()
        if seg.flags & _FIN:
            self._streams.pop(key, None)
        return out


class RecentPackets:
    """Recognises the same packet seen again on another interface within `window` seconds.

    A container's DNS packet crosses its veth and the bridge (and the host's loopback is handled by
    the kernel filter); the second sighting of identical addresses, ports and DNS bytes on a
    *different* interface is a duplicate. The same packet again on the same interface is a real
    retransmission and is kept.
    """

    def __init__(self, window: float = 0.1) -> None:
        self.window = window
        self._seen: dict[tuple[str, str, int, int, bytes], tuple[int, float]] = {}
        self._last_prune = 0.0

    def duplicate(self, seg: Segment, payload: bytes, ifindex: int, now: float) -> bool:
        key = (seg.src, seg.dst, seg.sport, seg.dport, payload)
        prev = self._seen.get(key)
        if prev is not None and prev[0] != ifindex and now - prev[1] <= self.window:
            return True
        self._seen[key] = (ifindex, now)
        if now - self._last_prune > self.window * 10:
            self._last_prune = now
            cutoff = now - self.window
            self._seen = {k: v for k, v in self._seen.items() if v[1] >= cutoff}
        return False
