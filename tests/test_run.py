"""`beth run` for real: both sensors, the memory transport and the collector in one process, as root."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import time
from pathlib import Path

import dnslib
import pytest

import beth.cli
import beth.run  # imported before a test drops privileges
from beth.collector import STATS_FILE
from beth.data.load import load
from cli_runner import BETH
from dns_server import ZONE, dnsmasq


def _workload(marker: Path) -> None:
    """One round of work the sensors must see: a process touching a marked file, and DNS lookups."""
    script = f"echo beth > {marker}; cat {marker} > /dev/null; rm -f {marker}"
    subprocess.run(["sh", "-c", script], check=True)
    for name, qtype in ((f"a.{ZONE}", "A"), (f"nope.{ZONE}", "A")):
        dnslib.DNSRecord.question(name, qtype).send("127.0.0.1", 53, timeout=2)


@pytest.mark.root
@pytest.mark.slow
def test_beth_run_for_10_seconds_writes_both_loadable_logs(tmp_path: Path) -> None:
    out, marker = tmp_path / "logs", tmp_path / "beth-run-marker.txt"
    with dnsmasq(tmp_path / "dnsmasq.log"):
        proc = subprocess.Popen(
            [*BETH, "run", "--out", str(out), "--duration", "10", "--host-name", "beth-run-test"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        rounds = 0
        while proc.poll() is None:  # the workload runs for the whole life of `beth run`
            _workload(marker)
            rounds += 1
            time.sleep(0.2)
        stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr.decode()[-3000:]
    assert rounds > 10
    (proc_log,) = out.glob("labelled_*-beth-run-test.csv")
    (dns_log,) = out.glob("labelled_*-beth-run-test-dns.csv")
    assert proc_log.name.removesuffix(".csv") + "-dns.csv" == dns_log.name
    process = load(proc_log, parse_nested=True)  # args and stacks parse too
    dns = load(dns_log)
    assert process.height > 0 and dns.height > 0
    assert set(process["hostName"].unique()) == {"beth-run-test"}
    assert set(dns["SensorId"].unique()) == {"beth-run-test"}
    # The workload's file shows up in the process log (openat/unlink args name it) ...
    raw = load(proc_log)
    touched = raw.filter(raw["args"].str.contains(marker.name, literal=True))
    assert touched.height > 0, "no process event mentions the workload's file"
    # ... and its lookups in the DNS log: queries, answers and NXDOMAINs.
    ours = dns.filter(dns["DnsQuery"].str.ends_with(ZONE))
    answers = ours.filter(ours["DnsQuery"] == f"a.{ZONE}")["DnsAnswer"].drop_nulls().to_list()
    assert "['10.1.2.3']" in answers
    assert 3 in ours.filter(ours["DnsQuery"] == f"nope.{ZONE}")["DnsResponseCode"].to_list()
    stats = json.loads((out / STATS_FILE).read_text())
    host = stats["hosts"]["beth-run-test"]
    assert host["process"]["rows"] == process.height and host["dns"]["rows"] == dns.height
    assert {s["sensor"] for s in host["sensors"]} == {"process", "dns"}
    assert host["process"]["missing"] == 0 and host["dns"]["missing"] == 0
    assert "beth run" in stdout.decode()


def test_beth_run_without_root_says_so_in_one_line(tmp_path: Path) -> None:
    """Run the real CLI in a child that dropped to 'nobody'."""
    if os.geteuid() != 0:
        code, text = _run_cli(["run", "--out", str(tmp_path / "x"), "--duration", "1"])
    else:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: drop root, run the command, report its stderr and exit code
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            code, text = _run_cli(["run", "--out", str(tmp_path / "x"), "--duration", "1"])
            os.write(w, text.encode())
            os._exit(code)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        code, text = os.waitstatus_to_exitcode(status), os.read(r, 65536).decode()
        os.close(r)
    assert code == 3
    assert text.strip().splitlines() == [
        "beth: error: beth run needs root: the process sensor loads eBPF programs and the DNS sensor opens a "
        "raw packet socket (run it with sudo)"
    ]
    assert not (tmp_path / "x").exists()


def _run_cli(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        try:
            beth.cli.main(argv)
        except SystemExit as exc:
            return int(exc.code or 0), buf.getvalue()
    return 0, buf.getvalue()


def test_run_options_are_checked_before_anything_starts(tmp_path: Path) -> None:
    from beth.errors import UsageError

    for kwargs, message in (
        ({}, "--out DIR is needed"),
        ({"out": tmp_path, "transport": "kafka://x"}, "must be 'memory' or a nats:// URL"),
        ({"out": tmp_path, "transport": "nats://h:1"}, "run `beth collect --out`"),
        ({"out": tmp_path, "sensors": ("process", "files")}, "unknown sensor(s) files"),
    ):
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            beth.run.Pipeline(beth.run.RunOptions(**kwargs))


@pytest.mark.root
@pytest.mark.broker
@pytest.mark.slow
def test_beth_run_publishes_both_sensors_to_a_broker_and_beth_collect_writes_them(tmp_path: Path) -> None:
    from beth.collector import Collector
    from beth.transport.broker import local_server
    from beth.transport.nats import Endpoint, NatsSubscriber

    marker = tmp_path / "beth-run-nats-marker.txt"
    server = local_server(tmp_path / "broker").start()
    try:
        with dnsmasq(tmp_path / "dnsmasq.log"):
            opts = beth.run.RunOptions(transport=server.url, host="beth-run-nats", stats_interval=1.0)
            pipeline = beth.run.Pipeline(opts)
            pipeline.start()
            try:
                for _ in range(10):
                    _workload(marker)
                    time.sleep(0.2)
            finally:
                summary = pipeline.close()
        assert summary["acked"] == summary["published"] > 0
        sensed = sum(s["events"] for s in summary["sensors"].values())
        out = tmp_path / "logs"
        with NatsSubscriber(Endpoint.parse(server.url)) as sub, Collector(sub, out) as c:
            deadline = time.monotonic() + 30
            while c.written < sensed and time.monotonic() < deadline:
                c.step(0.2)
            for _ in range(5):  # nothing more may come
                c.step(0.1)
        assert c.written == sensed  # every sensed event, once
    finally:
        server.stop()
    raw = load(sorted(out.glob("labelled_*-beth-run-nats.csv")))
    dns = load(sorted(out.glob("labelled_*-beth-run-nats-dns.csv")))
    assert raw.filter(raw["args"].str.contains(marker.name, literal=True)).height > 0
    assert f"a.{ZONE}" in dns["DnsQuery"].to_list()
    stats = json.loads((out / STATS_FILE).read_text())["hosts"]["beth-run-nats"]
    assert stats["process"]["rows"] + stats["dns"]["rows"] == c.written
    assert {s["sensor"] for s in stats["sensors"]} == {"process", "dns"}
