"""The DNS sensor for real: a dnsmasq server on 127.0.0.1 and ::1, queries from this test, raw sockets.

Every row is checked against the bytes the test actually exchanged, parsed independently with
dnslib: addresses, query, type/class, every answer and TTL, rcode, opcode.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dnslib
import pytest

from beth.errors import SensorError
from beth.events import DnsEvent
from beth.sensors.base import Sensor
from beth.sensors.dns import DnsSensor
from dns_server import ZONE
from dns_server import dnsmasq as run_dnsmasq

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with run_dnsmasq(tmp_path_factory.mktemp("dnsmasq") / "dnsmasq.log"):
        yield


def exchange(name: str, qtype: str, server: str, *, tcp: bool = False) -> list[tuple[bytes, str, str]]:
    """Send one query, wait for the answer; the two messages with their (source, destination)."""
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    query = bytes(dnslib.DNSRecord.question(name, qtype).pack())
    with socket.socket(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.connect((server, 53))
        me = s.getsockname()[0]
        if tcp:
            s.sendall(len(query).to_bytes(2, "big") + query)
            n = int.from_bytes(s.recv(2), "big")
            answer = b""
            while len(answer) < n:
                answer += s.recv(n - len(answer))
        else:
            s.send(query)
            answer = s.recv(65535)
    return [(query, me, server), (answer, server, me)]


def expected_row(message: bytes, src: str, dst: str) -> dict:
    """The row, as dnslib reads the message."""
    r = dnslib.DNSRecord.parse(message)

    def data(rr: dnslib.RR) -> str:
        if rr.rtype == dnslib.QTYPE.TXT:
            return b"".join(rr.rdata.data).decode()
        return str(rr.rdata).rstrip(".")

    names = [str(q.qname).rstrip(".") for q in r.questions]
    return {
        "SourceIP": src,
        "DestinationIP": dst,
        "DnsQuery": names[0],
        "DnsAnswer": [data(rr) for rr in r.rr],
        "DnsAnswerTTL": [str(rr.ttl) for rr in r.rr],
        "DnsQueryNames": ",".join(names),
        "DnsQueryClass": [dnslib.CLASS[q.qclass] for q in r.questions],
        "DnsQueryType": [dnslib.QTYPE[q.qtype] for q in r.questions],
        "NumberOfAnswers": len(r.rr),
        "DnsResponseCode": r.header.rcode,
        "DnsOpCode": r.header.opcode,
        "SensorId": "sensor-under-test",
        "sus": 0,
        "evil": 0,
    }


def ours(rows: list[DnsEvent]) -> list[DnsEvent]:
    """Rows of this test's exchanges (the host may run other DNS traffic meanwhile)."""
    return [r for r in rows if r.DnsQuery.endswith(ZONE) or r.DnsQuery == "3.2.1.10.in-addr.arpa"]


def collect(sensor: DnsSensor, n: int, timeout: float = 5.0) -> list[DnsEvent]:
    rows: list[DnsEvent] = []
    deadline = time.monotonic() + timeout
    while len(ours(rows)) < n and time.monotonic() < deadline:
        rows += sensor.poll(0.1)
    return ours(rows)


CASES = [
    (f"a.{ZONE}", "A"),
    (f"a.{ZONE}", "AAAA"),
    ("3.2.1.10.in-addr.arpa", "PTR"),
    (f"nope.{ZONE}", "A"),  # NXDOMAIN
    (f"www.{ZONE}", "A"),  # CNAME + A
    (f"t.{ZONE}", "TXT"),
    (ZONE, "MX"),
]


@pytest.mark.parametrize("server", ["127.0.0.1", "::1"])
def test_rows_match_the_exchanged_packets_exactly(dnsmasq: None, server: str) -> None:
    with DnsSensor("sensor-under-test") as sensor:
        assert isinstance(sensor, Sensor)
        before = time.time()
        sent = [m for name, qtype in CASES for m in exchange(name, qtype, server)]
        sent += exchange(f"a.{ZONE}", "A", server, tcp=True)
        after = time.time()
        rows = collect(sensor, len(sent))
        time.sleep(0.2)
        rows += ours(sensor.poll(0.1))  # nothing more may come: loopback packets are logged once
        stats = sensor.stats()
    assert [r.to_record() | {"Timestamp": None} for r in rows] == [
        expected_row(*m) | {"Timestamp": None} for m in sent
    ]
    assert all(int(before) <= r.Timestamp.timestamp() <= after for r in rows)
    rcodes = [r.DnsResponseCode for r in rows[1::2]]
    assert rcodes == [0, 0, 0, 3, 0, 0, 0, 0]
    assert rows[9].DnsAnswer == [f"a.{ZONE}", "10.1.2.3"] and rows[9].DnsAnswerTTL == ["45", "123"]
    assert rows[3].DnsAnswer == ["fd00::1234"] and rows[5].DnsAnswer == [f"a.{ZONE}"]
    assert rows[11].DnsAnswer == ["hello world"] and rows[13].DnsAnswer == [f"10 mail.{ZONE}"]
    assert stats.lost == 0 and stats.events >= len(sent)


def test_malformed_packets_are_counted_and_skipped_and_other_ports_never_seen(dnsmasq: None) -> None:
    with DnsSensor("sensor-under-test") as sensor:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x00\x01not dns at all", ("127.0.0.1", 53))
            s.sendto(bytes(dnslib.DNSRecord.question(f"other-port.{ZONE}").pack()), ("127.0.0.1", 5353))
        sent = exchange(f"a.{ZONE}", "A", "127.0.0.1")  # the sensor carries on
        rows = collect(sensor, 2)
        assert [r.SourceIP for r in rows] == [sent[0][1], "127.0.0.1"]
        assert all("other-port" not in r.DnsQuery for r in rows)
        assert sensor.stats().malformed >= 1


def test_kernel_drops_are_counted_not_hidden() -> None:
    """A tiny receive ring that is not read overflows: every sent packet is an event or a loss."""
    n = 3000
    query = bytes(dnslib.DNSRecord.question(f"flood.{ZONE}").pack())
    with DnsSensor("sensor-under-test", ring_bytes=8192) as sensor:
        sensor.poll(0)  # discard anything queued before
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(n):
                s.sendto(query, ("127.0.0.1", 53))
        time.sleep(0.2)
        rows = ours(sensor.poll(0.1) + sensor.poll(0.1))
        stats = sensor.stats()
    assert stats.lost > 0
    assert len([r for r in rows if r.DnsQuery == f"flood.{ZONE}"]) + stats.lost >= n


def test_stop_ends_iteration_from_another_thread() -> None:
    with DnsSensor() as sensor:
        threading.Timer(0.2, sensor.stop).start()
        t = time.monotonic()
        for _ in sensor:
            pass
        assert time.monotonic() - t < 2


def test_unknown_interface_is_a_sensor_error() -> None:
    with pytest.raises(SensorError, match="no network interface"), DnsSensor(interface="nope0"):
        pass


def test_beth_sense_dns_writes_a_loadable_file(dnsmasq: None, tmp_path: Path) -> None:
    import subprocess
    import sys

    from beth.data.load import load

    out, stats = tmp_path / "dns.csv", tmp_path / "stats.json"
    beth = Path(sys.executable).with_name("beth")
    proc = subprocess.Popen(
        [str(beth), "sense", "dns", "--out", str(out), "--duration", "6", "--host-name", "cli-test",
         "--stats", str(stats)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    while proc.poll() is None:  # queries for the whole run (the CLI takes a moment to start)
        exchange(f"a.{ZONE}", "A", "127.0.0.1")
        time.sleep(0.2)
    _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    df = load(out)
    ours = df.filter(df["DnsQuery"] == f"a.{ZONE}")
    assert ours.height >= 2 and set(ours["SensorId"].unique()) == {"cli-test"}
    assert "['10.1.2.3']" in ours["DnsAnswer"].to_list()
    assert "wrote" in err.decode() and json.loads(stats.read_text())["lost"] == 0
