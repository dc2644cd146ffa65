"""DNS messages (RFC 1035 wire format) -> the fields of a BETH DNS row. Pure; no sockets.

Why not dpkt, which the architecture names: dpkt 1.9.8 rejects a whole message when any record has
a type it does not know (HTTPS/SVCB, CAA, DNSKEY, ... — modern resolvers ask for HTTPS records all the
time) or a label that is not UTF-8 (binary labels are how DNS tunnels look), and it mis-parses MX
preferences. A sensor on a honeypot must log exactly those packets, so this small parser reads the
header, the questions and the answer section only, renders names in presentation format (bytes
outside printable ASCII as `\\DDD`, a dot inside a label as `\\.`), and renders record data as:
A/AAAA the address; NS/CNAME/PTR/DNAME the name; MX `preference exchange`; SRV `priority weight port
target`; SOA `mname rname serial refresh retry expire minimum`; TXT the character strings joined
(RFC 7208 3.3); anything else in the RFC 3597 generic form `\\# <length> <hex>`. Names carry no
trailing dot, as in BETH. `benchmarks/bench_dns.py` measures it against dpkt.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from dataclasses import dataclass

_HEADER = struct.Struct("!HHHHHH")
_QTAIL = struct.Struct("!HH")
_RRTAIL = struct.Struct("!HHIH")
_U16 = struct.Struct("!H")

TYPES: dict[int, str] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 17: "RP",
    18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR", 36: "KX",
    37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG",
    47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA",
    55: "HIP", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB",
    65: "HTTPS", 99: "SPF", 108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR",
    252: "AXFR", 255: "ANY", 256: "URI", 257: "CAA",
}  # fmt: skip
CLASSES: dict[int, str] = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}

_PLAIN_NAME = re.compile(rb"[A-Za-z0-9_.-]+")
_PLAIN_TEXT = re.compile(rb"[\x20-\x5b\x5d-\x7e]*")
_NAME_TYPES = frozenset({2, 5, 12, 39})  # rdata is one (possibly compressed) name
_MAX_POINTERS = 64  # compression pointers followed per name before calling it a loop


class DnsWireError(ValueError):
    """The bytes are not a well-formed DNS message."""


def ip6_text(packed: bytes) -> str:
    """An IPv6 address in RFC 5952 form (glibc writes `::a.b.c.d` for some; Python does not)."""
    if packed[:12] == bytes(12):
        return ipaddress.IPv6Address(bytes(packed)).compressed
    return socket.inet_ntop(socket.AF_INET6, packed)


def type_name(code: int) -> str:
    return TYPES.get(code) or f"TYPE{code}"


def class_name(code: int) -> str:
    return CLASSES.get(code) or f"CLASS{code}"


def _label_text(label: bytes) -> str:
    if label.isascii() and label.isalnum():
        return label.decode()
    out = []
    for b in label:
        if b in (0x2E, 0x5C):  # '.' and '\' inside a label
            out.append("\\" + chr(b))
        elif 0x21 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def read_name(buf: bytes, off: int) -> tuple[str, int]:
    """The name at `off` in presentation form (no trailing dot; the root is '.') and the offset after it."""
    labels: list[bytes] = []
    end = -1
    jumps = 0
    total = 0
    n_buf = len(buf)
    while True:
        if off >= n_buf:
            raise DnsWireError("name runs past the end of the message")
        n = buf[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:
            if off + 1 >= n_buf:
                raise DnsWireError("truncated compression pointer")
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise DnsWireError("compression pointer loop")
            if end < 0:
                end = off + 2
            off = ((n & 0x3F) << 8) | buf[off + 1]
            continue
        if n & 0xC0:
            raise DnsWireError(f"unsupported label type 0x{n:02x}")
        off += 1
        if off + n > n_buf:
            raise DnsWireError("label runs past the end of the message")
        total += n + 1
        if total > 255:
            raise DnsWireError("name longer than 255 bytes")
        labels.append(buf[off : off + n])
        off += n
    if not labels:
        return ".", (end if end >= 0 else off)
    joined = b".".join(labels)
    if _PLAIN_NAME.fullmatch(joined) and joined.count(b".") == len(labels) - 1:
        text = joined.decode()  # the usual case: letters, digits, '-', '_' only
    else:
        text = ".".join(_label_text(label) for label in labels)
    return text, (end if end >= 0 else off)


def _text(chunk: bytes) -> str:
    """A TXT character-string: printable ASCII (with spaces) kept, '\\' doubled, other bytes `\\DDD`."""
    if _PLAIN_TEXT.fullmatch(chunk):
        return chunk.decode()
    return "".join("\\\\" if b == 0x5C else chr(b) if 0x20 <= b <= 0x7E else f"\\{b:03d}" for b in chunk)


def _char_strings(data: bytes) -> str:
    out, i = [], 0
    while i < len(data):
        n = data[i]
        if i + 1 + n > len(data):
            raise DnsWireError("TXT string runs past its record")
        out.append(_text(data[i + 1 : i + 1 + n]))
        i += 1 + n
    return "".join(out)


def _generic(data: bytes) -> str:
    return f"\\# {len(data)} {data.hex()}" if data else "\\# 0"


def rdata_text(buf: bytes, off: int, rdlen: int, rtype: int) -> str:
    """One record's data in the presentation form described in the module docstring."""
    data = buf[off : off + rdlen]
    try:
        if rtype == 1 and rdlen == 4:
            return socket.inet_ntop(socket.AF_INET, data)
        if rtype == 28 and rdlen == 16:
            return ip6_text(data)
        if rtype in _NAME_TYPES:
            return read_name(buf, off)[0]
        if rtype == 15 and rdlen >= 3:
            return f"{_U16.unpack_from(buf, off)[0]} {read_name(buf, off + 2)[0]}"
        if rtype == 16 and rdlen:
            return _char_strings(data)
        if rtype == 33 and rdlen >= 7:
            prio, weight, port = struct.unpack_from("!HHH", buf, off)
            return f"{prio} {weight} {port} {read_name(buf, off + 6)[0]}"
        if rtype == 6:
            mname, o = read_name(buf, off)
            rname, o = read_name(buf, o)
            numbers = struct.unpack_from("!IIIII", buf, o)
            return " ".join([mname, rname, *map(str, numbers)])
    except (DnsWireError, struct.error):
        pass  # record data that does not fit its type: keep the bytes
    return _generic(data)


@dataclass(slots=True)
class Message:
    """What a BETH row needs from one DNS message."""

    id: int
    response: bool
    opcode: int
    rcode: int
    questions: list[tuple[str, int, int]]  # (name, type, class)
    answers: list[tuple[str, int, int, int, str]]  # (name, type, class, ttl, data)


def parse_message(buf: bytes) -> Message:
    """Header, questions and answer section of a DNS message; DnsWireError when malformed."""
    if len(buf) < 12:
        raise DnsWireError(f"{len(buf)} bytes is shorter than a DNS header")
    buf = bytes(buf)
    ident, flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(buf)
    off = 12
    questions = []
    for _ in range(qdcount):
        name, off = read_name(buf, off)
        if off + 4 > len(buf):
            raise DnsWireError("question runs past the end of the message")
        qtype, qclass = _QTAIL.unpack_from(buf, off)
        off += 4
        questions.append((name, qtype, qclass))
    answers = []
    for _ in range(ancount):
        name, off = read_name(buf, off)
        if off + 10 > len(buf):
            raise DnsWireError("record runs past the end of the message")
        rtype, rclass, ttl, rdlen = _RRTAIL.unpack_from(buf, off)
        off += 10
        if off + rdlen > len(buf):
            raise DnsWireError("record data runs past the end of the message")
        answers.append((name, rtype, rclass, ttl, rdata_text(buf, off, rdlen, rtype)))
        off += rdlen
    return Message(ident, bool(flags & 0x8000), (flags >> 11) & 0xF, flags & 0xF, questions, answers)
