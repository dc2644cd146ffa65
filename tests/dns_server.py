"""A real DNS server for the DNS sensor tests: Debian's dnsmasq on 127.0.0.1:53 and [::1]:53.

It answers A/AAAA (a.ZONE), PTR (3.2.1.10.in-addr.arpa), CNAME (www.ZONE), TXT (t.ZONE), MX (ZONE)
with chosen TTLs, and NXDOMAIN for every other name in ZONE.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dnslib
import pytest

ZONE = "beth-test.internal"


def _port53_free(family: int, host: str) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(family, kind) as s:
            try:
                s.bind((host, 53))
            except OSError:
                return False
    return True


@contextmanager
def dnsmasq(log: Path) -> Iterator[None]:
    binary = shutil.which("dnsmasq")
    if binary is None:
        pytest.fail("dnsmasq is not installed (Debian package dnsmasq-base)")
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        if not _port53_free(family, host):
            pytest.fail(f"port 53 on {host} is taken; the DNS tests need it for their own server")
    args = [
        binary, "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
        "--listen-address=127.0.0.1", "--listen-address=::1", "--port=53", "--pid-file=",
        "--user=root", "--log-facility=-", f"--local=/{ZONE}/", "--local-ttl=300",
        f"--host-record=a.{ZONE},10.1.2.3,fd00::1234,123",
        f"--cname=www.{ZONE},a.{ZONE},45",
        f"--txt-record=t.{ZONE},hello world",
        f"--mx-host={ZONE},mail.{ZONE},10",
    ]  # fmt: skip
    with open(log, "wb") as fh:
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                dnslib.DNSRecord.question(f"a.{ZONE}").send("127.0.0.1", 53, timeout=0.1)
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail(f"dnsmasq did not answer: {log.read_text()}")
        yield
    finally:
        proc.terminate()
        proc.wait(5)
