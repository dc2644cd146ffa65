"""A TPACKET_V3 receive ring on an AF_PACKET socket: packets without a system call each.

The kernel writes captured packets into blocks of a memory-mapped ring and hands a block over when it
is full or `retire_ms` after its first packet. Reading a block costs no system call per packet, and
every packet comes with its receive time, interface and protocol in its header (a `recvmsg` per
packet also made Python look the interface name up with an ioctl). Packets the ring had no room for
are counted by the kernel (`drops()`).

Layouts are those of <linux/if_packet.h>: tpacket_block_desc, tpacket3_hdr, sockaddr_ll.
"""

from __future__ import annotations

import mmap
import select
import socket
import struct
from collections.abc import Iterator

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_VERSION = 10
PACKET_STATISTICS = 6
TPACKET_V3 = 2
TP_STATUS_KERNEL, TP_STATUS_USER = 0, 1

_BLOCK_HDR = struct.Struct("=IIIII")  # version, offset_to_priv, block_status, num_pkts, offset_to_first_pkt
_PKT_HDR = struct.Struct("=IIIIIIHH")  # next_offset, sec, nsec, snaplen, len, status, mac, net
_SLL_OFF = 48  # TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
_PROTO = struct.Struct("!H")
_IFINDEX = struct.Struct("=i")
_STATUS = struct.Struct("=I")

Packet = tuple[bytes, int, int, int, float]  # (data from the IP header on, protocol, ifindex, pkttype, time)


class PacketRing:
    """The receive ring of one AF_PACKET socket (set up before the socket is bound)."""

    def __init__(
        self, sock: socket.socket, *, block_bytes: int = 1 << 20, blocks: int = 64, retire_ms: int = 20
    ):
        self.sock = sock
        self.block_bytes, self.blocks = block_bytes, blocks
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        frame = 2048
        req = struct.pack(
            "=IIIIIII", block_bytes, blocks, frame, block_bytes * blocks // frame, retire_ms, 0, 0
        )
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        self.map = mmap.mmap(
            sock.fileno(), block_bytes * blocks, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
        )
        self.current = 0

    def _ready(self) -> bool:
        status = _STATUS.unpack_from(self.map, self.current * self.block_bytes + 8)[0]
        return bool(status & TP_STATUS_USER)

    def wait(self, timeout: float, wake_fd: int) -> bool:
        """Wait until a block is ready (or `wake_fd` is readable); True if one is."""
        if self._ready():
            return True
        select.select([self.sock, wake_fd], [], [], timeout)
        return self._ready()

    def packets(self, max_blocks: int = 8) -> Iterator[Packet]:
        """Packets of the ready blocks (at most `max_blocks`); each block goes back to the kernel once
        its packets are consumed, so consume the iterator fully."""
        m, size = self.map, self.block_bytes
        for _ in range(max_blocks):
            base = self.current * size
            _, _, status, n, first = _BLOCK_HDR.unpack_from(m, base)
            if not status & TP_STATUS_USER:
                return
            off = base + first
            for _ in range(n):
                nxt, sec, nsec, snaplen, _, _, _, net = _PKT_HDR.unpack_from(m, off)
                sll = off + _SLL_OFF
                proto = _PROTO.unpack_from(m, sll + 2)[0]
                ifindex = _IFINDEX.unpack_from(m, sll + 4)[0]
                pkttype = m[sll + 10]
                yield m[off + net : off + net + snaplen], proto, ifindex, pkttype, sec + nsec * 1e-9
                off += nxt
            _STATUS.pack_into(m, base + 8, TP_STATUS_KERNEL)
            self.current = (self.current + 1) % self.blocks

    def drops(self) -> int:
        """Packets dropped since the last call (the ring was full)."""
        _packets, drops, _freeze = struct.unpack(
            "III", self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
        )
        return drops

    def close(self) -> None:
        self.map.close()
