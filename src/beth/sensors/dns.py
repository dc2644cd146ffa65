"""The DNS sensor: every DNS query and answer on this host (containers included) as BETH DNS rows.

One AF_PACKET socket (SOCK_DGRAM: packets from the IP header on, on every interface of the host's
network namespace, so the bridged traffic of containers too) with the classic-BPF filter of
`dns_capture` attached: only UDP/TCP port-53 packets are copied to user space. Each packet becomes one
row, query or response (`dns_wire` reads the message). Passive only: the socket never sends.

Counted, never silent: `malformed` (port-53 packets that are not DNS, broken TCP streams),
`duplicates` (the same packet seen on a second interface), `lost` (packets the kernel dropped because
the socket buffer was full, from PACKET_STATISTICS). Timestamps are the kernel's receive times.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Self

from beth.errors import SensorError, UsageError
from beth.events import DnsEvent
from beth.sensors.base import SensorStats, WakePipe
from beth.sensors.dns_capture import NotDns, RecentPackets, TcpStreams, bpf_program, pack_program, parse_ip
from beth.sensors.dns_ring import PacketRing
from beth.sensors.dns_wire import DnsWireError, class_name, parse_message, type_name

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26


def dns_row(message_bytes: bytes, src: str, dst: str, when: float, host: str) -> DnsEvent:
    """The BETH DNS row of one message (DnsWireError if it is not a DNS message)."""
    m = parse_message(message_bytes)
    names = [q[0] for q in m.questions]
    return DnsEvent(
        Timestamp=_utc(when),
        SourceIP=src,
        DestinationIP=dst,
        DnsQuery=names[0] if names else "",
        DnsAnswer=[a[4] for a in m.answers],
        DnsAnswerTTL=[str(a[3]) for a in m.answers],
        DnsQueryNames=",".join(names),
        DnsQueryClass=[class_name(q[2]) for q in m.questions],
        DnsQueryType=[type_name(q[1]) for q in m.questions],
        NumberOfAnswers=len(m.answers),
        DnsResponseCode=m.rcode,
        DnsOpCode=m.opcode,
        SensorId=host,
    )


_utc_cache: dict[int, datetime] = {}


def _utc(when: float) -> datetime:
    """Second-precision UTC datetime (what the BETH column holds), cached per second."""
    sec = int(when)
    dt = _utc_cache.get(sec)
    if dt is None:
        if len(_utc_cache) > 4096:
            _utc_cache.clear()
        dt = _utc_cache[sec] = datetime.fromtimestamp(sec, UTC)
    return dt


class DnsSensor:
    """DNS packets of every interface as `DnsEvent`s (see the module docstring).

    host_name: the SensorId column (default: this machine's host name).
    interface: capture on one interface only (default: all).
    port: the DNS port to watch (53).
    ring_bytes: size of the kernel's receive ring (memory-mapped); a bigger one rides out longer bursts.
    """

    name = "dns"

    def __init__(
        self,
        host_name: str | None = None,
        *,
        interface: str | None = None,
        port: int = 53,
        ring_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        if not 0 < port < 65536:
            raise UsageError(f"port {port} is not a TCP/UDP port")
        if ring_bytes < 8192:
            raise UsageError(f"a receive ring of {ring_bytes} bytes is too small (at least 8 KiB)")
        self.host = host_name or socket.gethostname()
        self.interface, self.port, self.ring_bytes = interface, port, ring_bytes
        self._sock: socket.socket | None = None
        self._ring: PacketRing | None = None
        self._filter_buf: ctypes.Array[ctypes.c_char] | None = None
        self._wake: WakePipe | None = None
        self._stopped = False
        self._stats = SensorStats("dns")
        self._tcp = TcpStreams()
        self._recent = RecentPackets()
        self._last_drop_check = 0.0

    # --- lifecycle ---

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise SensorError(
                "the DNS sensor needs root (CAP_NET_RAW) to open a packet socket; run it with sudo"
            ) from None
        except OSError as exc:
            raise SensorError(f"cannot open a packet socket: {exc.strerror}") from None
        try:
            lo = _ifindex("lo")
            prog = pack_program(bpf_program(self.port, lo))
            self._filter_buf = ctypes.create_string_buffer(prog, len(prog))
            fprog = struct.pack("HL", len(prog) // 8, ctypes.addressof(self._filter_buf))
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            block = 1 << 20 if self.ring_bytes >= 4 << 20 else 4096
            self._ring = PacketRing(sock, block_bytes=block, blocks=self.ring_bytes // block)
            if self.interface is not None:
                try:
                    sock.bind((self.interface, ETH_P_ALL))
                except OSError:
                    raise SensorError(f"no network interface {self.interface!r}") from None
            self._ring.drops()  # reset the counter: count from now on
        except BaseException:
            if self._ring is not None:
                self._ring.close()
                self._ring = None
            sock.close()
            raise
        self._sock = sock
        self._wake = WakePipe()
        self._stopped = False

    def close(self) -> None:
        if self._sock is not None:
            self._read_drops()
            assert self._ring is not None
            self._ring.close()
            self._ring = None
            self._sock.close()
            self._sock = None
        if self._wake is not None:
            self._wake.close()
            self._wake = None

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        self._stopped = True
        if self._wake is not None:
            self._wake.wake()

    # --- reading ---

    def poll(self, timeout: float = 0.1) -> list[DnsEvent]:
        """DNS events of the packets that arrived, waiting at most `timeout` s for the first."""
        ring, wake = self._ring, self._wake
        if ring is None or wake is None:
            raise SensorError("the DNS sensor is not started")
        events: list[DnsEvent] = []
        if ring.wait(timeout, wake.read_fd):
            packet = self._packet
            for data, proto, ifindex, _pkttype, when in ring.packets():
                packet(data, proto, ifindex, when, events)
        wake.clear()
        now = time.monotonic()
        if now - self._last_drop_check > 0.5:
            self._last_drop_check = now
            self._read_drops()
        self._stats.events += len(events)
        return events

    def drain(self) -> list[DnsEvent]:
        """The events of the packets already in the receive ring, without waiting."""
        return self.poll(0)

    def __iter__(self) -> Iterator[DnsEvent]:
        while not self._stopped:
            yield from self.poll(0.2)

    def _packet(self, packet: bytes, proto: int, ifindex: int, when: float, events: list[DnsEvent]) -> None:
        try:
            seg = parse_ip(packet, proto, self.port)
        except NotDns:
            return  # not for us: only possible for packets queued before the filter was attached
        except (struct.error, ValueError):
            self._stats.malformed += 1
            return
        if seg.tcp:
            broken = self._tcp.broken
            messages = self._tcp.feed(seg)
            self._stats.malformed += self._tcp.broken - broken
        elif seg.payload:
            messages = [seg.payload]
        else:
            self._stats.malformed += 1
            return
        for message in messages:
            if not seg.tcp and self._recent.duplicate(seg, message, ifindex, when):
                self._stats.duplicates += 1
                continue
            try:
                events.append(dns_row(message, seg.src, seg.dst, when, self.host))
            except DnsWireError:
                self._stats.malformed += 1

    def _read_drops(self) -> None:
        if self._ring is None:
            return
        drops = self._ring.drops()
        if drops:
            self._stats.lost += drops
            log.warning("DNS sensor: the kernel dropped %d packet(s) (receive ring full)", drops)

    def stats(self) -> SensorStats:
        self._read_drops()
        s = self._stats
        return SensorStats("dns", s.events, s.lost, [], s.malformed, s.duplicates)


def _ifindex(name: str) -> int | None:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return None
