"""Read a BPF ring buffer from Python by mapping it, without a callback per record.

The kernel exposes a BPF_MAP_TYPE_RINGBUF as three mappings of its map fd: the consumer position
(one page, writable), the producer position (one page) and the data area mapped twice in a row, so
a run of records that wraps around the end is still contiguous. A read copies the data between the
consumer and producer positions in one slice; the decoder walks the records in that copy
(`beth.sensors.records.RecordDecoder.decode_ring`, which knows the record framing) and the reader
then hands the space back by advancing the consumer position. This is what libbpf's
ring_buffer__consume does, minus the per-record C->Python callback (the hot path). x86_64 only
(like the sensor): its loads are ordered, so a record whose header says "committed" has its data
in place.
"""

from __future__ import annotations

import ctypes
import mmap
import select
import struct

_U64 = struct.Struct("<Q")


class RingReader:
    """The consumer side of one BPF ring buffer of `size` bytes (a power of two)."""

    def __init__(self, map_fd: int, size: int, wake_fd: int | None = None) -> None:
        page = mmap.PAGESIZE
        self.size = size
        self._mask = size - 1
        self._cons_map = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._data_map = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._consumer = ctypes.c_uint64.from_buffer(self._cons_map)
        self._view = memoryview(self._data_map)
        self._page = page
        self.pos = self._consumer.value
        self._poll = select.poll()
        self._poll.register(map_fd, select.POLLIN)
        if wake_fd is not None:  # another fd that ends a wait (the sensor's stop pipe)
            self._poll.register(wake_fd, select.POLLIN)

    def producer(self) -> int:
        return _U64.unpack_from(self._view, 0)[0]

    def read(self, max_bytes: int) -> bytes:
        """A copy of up to `max_bytes` of ring data from the consumer position on (whole records or
        not: the caller walks them and says with `release` how far it got)."""
        avail = min(self.producer() - self.pos, max_bytes, self.size)
        if avail <= 0:
            return b""
        start = self._page + (self.pos & self._mask)
        return bytes(self._view[start : start + avail])

    def release(self, nbytes: int) -> None:
        """Hand `nbytes` of read records back to the kernel (they are copied out already)."""
        if nbytes:
            self.pos += nbytes
            self._consumer.value = self.pos

    def wait(self, timeout: float) -> bool:
        """Sleep until the kernel signals data (or `timeout` seconds pass); True when signalled."""
        return bool(self._poll.poll(max(0, int(timeout * 1000))))

    def close(self) -> None:
        del self._consumer
        self._view.release()
        self._cons_map.close()
        self._data_map.close()
