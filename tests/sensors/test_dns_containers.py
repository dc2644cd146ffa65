"""Containers: a DNS lookup from another network namespace, bridged like Docker does, is logged once.

The test builds what a container runtime builds — a network namespace whose veth is enslaved to a
bridge on the host — and resolves a name from inside it against a server on the bridge address. The
host's sensor sees each packet twice (on the veth and on the bridge) and must log it once.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import dnslib
import pytest

from beth.sensors.dns import DnsSensor

pytestmark = pytest.mark.root
NS, BRIDGE, VETH_HOST, VETH_NS = "beth-c1", "beth-br0", "beth-vh0", "beth-vc0"
HOST_IP, CONTAINER_IP = "10.199.0.1", "10.199.0.2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def container() -> Iterator[None]:
    if shutil.which("ip") is None:
        pytest.fail("the ip command is missing (Debian package iproute2)")
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)  # leftovers of a killed run
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
    try:
        ip("netns", "add", NS)
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS)
        ip("link", "set", VETH_NS, "netns", NS)
        ip("link", "set", VETH_HOST, "master", BRIDGE)
        ip("addr", "add", f"{HOST_IP}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        ip("link", "set", VETH_HOST, "up")
        ip("netns", "exec", NS, "ip", "addr", "add", f"{CONTAINER_IP}/24", "dev", VETH_NS)
        ip("netns", "exec", NS, "ip", "link", "set", VETH_NS, "up")
        yield
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def serve_one(sock: socket.socket) -> None:
    """Answer one query with A 10.1.2.3 (TTL 77)."""
    data, peer = sock.recvfrom(65535)
    q = dnslib.DNSRecord.parse(data)
    r = q.reply()
    r.add_answer(dnslib.RR(q.q.qname, dnslib.QTYPE.A, rdata=dnslib.A("10.1.2.3"), ttl=77))
    sock.sendto(r.pack(), peer)


CLIENT = f"""
import dnslib
print(dnslib.DNSRecord.question("svc.container.beth-test", "A").send("{HOST_IP}", 53, timeout=3).hex())
"""


def test_a_container_lookup_across_veth_and_bridge_is_logged_once(container: None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind((HOST_IP, 53))
        t = threading.Thread(target=serve_one, args=(server,), daemon=True)
        t.start()
        with DnsSensor("host") as sensor:
            time.sleep(0.2)  # let IPv6 autoconfiguration chatter on the new links settle
            sensor.poll(0)
            before = sensor.stats().duplicates
            subprocess.run(
                ["ip", "netns", "exec", NS, sys.executable, "-c", CLIENT], check=True, capture_output=True
            )
            t.join(5)
            rows = []
            deadline = time.monotonic() + 3
            while len(rows) < 2 and time.monotonic() < deadline:
                rows += [r for r in sensor.poll(0.1) if r.DnsQuery == "svc.container.beth-test"]
            time.sleep(0.2)
            rows += [r for r in sensor.poll(0.1) if r.DnsQuery == "svc.container.beth-test"]
            duplicates = sensor.stats().duplicates - before
    assert [(r.SourceIP, r.DestinationIP, r.DnsAnswer, r.DnsAnswerTTL) for r in rows] == [
        (CONTAINER_IP, HOST_IP, [], []),
        (HOST_IP, CONTAINER_IP, ["10.1.2.3"], ["77"]),
    ]
    assert duplicates == 2  # the second sighting of each packet, on the bridge or the veth
