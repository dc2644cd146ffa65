"""The NATS JetStream transport with a real nats-server started by the tests.

The big one: a sensor-side publisher process sends 100,000 events of two hosts while the collector
process is killed (SIGKILL) and restarted and nats-server is restarted; every row must be in the logs
exactly once and in order per host.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import polars as pl
import pytest

from beth.collector import REJECTED_FILE, STATS_FILE, Collector
from beth.data.load import load
from beth.data.write import EventWriter, csv_line
from beth.errors import TransportError
from beth.schema import FileKind
from beth.transport.broker import NatsServer, local_server
from beth.transport.envelope import Channel
from beth.transport.nats import BethClient, Endpoint, NatsPublisher, NatsSubscriber, read_header
from cli_runner import BETH
from sample_events import dns_events, process_events

pytestmark = pytest.mark.broker
HERE = Path(__file__).parent


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    srv = local_server(tmp_path / "broker").start()
    try:
        yield srv
    finally:
        srv.kill()


def logs(out: Path) -> dict[str, tuple[list[Path], list[Path]]]:
    """host -> (process segments, dns segments), oldest first."""
    found: dict[str, tuple[list[Path], list[Path]]] = {}
    for p in sorted(out.glob("labelled_*.csv")):
        stem = p.stem.split("-", 1)[1]
        dns = stem.endswith("-dns")
        host = stem.removesuffix("-dns")
        found.setdefault(host, ([], []))[1 if dns else 0].append(p)
    return found


def collect_until(c: Collector, n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while c.written < n:
        assert time.monotonic() < deadline, f"{c.written} of {n} rows after {timeout} s"
        c.step(0.1)


@pytest.fixture(params=["fast lane", "public API"])
def lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways BethClient talks to nats-py: its fast lane, and the public API it falls back to."""
    if request.param == "public API":
        monkeypatch.setattr(BethClient, "fast", False)
    else:
        assert BethClient.fast, "this nats-py lacks the internals of the fast lane (see BethClient)"
    return request.param


def test_events_of_two_hosts_arrive_exactly_as_the_writer_would_write_them(
    server: NatsServer, tmp_path: Path, lane: str
) -> None:
    ep = Endpoint.parse(server.url)
    events = {h: (list(process_events(h, 1500)), list(dns_events(h, 150))) for h in ("alpha", "beta")}
    with NatsSubscriber(ep) as sub, Collector(sub, tmp_path / "out") as c, NatsPublisher(ep) as pub:
        for host, (proc, dns) in events.items():
            pch, dch = Channel(host, "process"), Channel(host, "dns")
            for i, e in enumerate(proc):
                pub.publish(pch.wrap(e))
                if i % 10 == 0:
                    pub.publish(dch.wrap(dns[i // 10]))
        pub.flush(30)
        assert pub.stats().acked == 3300 and pub.stats().retried == 0
        collect_until(c, 3300)
    found = logs(tmp_path / "out")
    for host, (proc, dns) in events.items():
        for segs, evs, kind in (
            (found[host][0], proc, FileKind.PROCESS),
            (found[host][1], dns, FileKind.DNS),
        ):
            expected = tmp_path / f"{host}-{kind.value}.csv"
            with EventWriter(expected, kind) as w:
                w.write_all(evs)
            assert [s.read_bytes() for s in segs] == [expected.read_bytes()]


def test_a_publisher_that_starts_before_the_stream_exists_loses_nothing(
    server: NatsServer, tmp_path: Path
) -> None:
    ep = Endpoint.parse(server.url)
    ch = Channel("early", "process")
    with NatsPublisher(ep, create_stream=False, ack_timeout=0.3) as pub:
        for e in process_events("early", 300):
            pub.publish(ch.wrap(e))
        time.sleep(0.5)
        assert pub.stats().acked == 0  # no stream yet: kept and retried
        with NatsSubscriber(ep) as sub, Collector(sub, tmp_path) as c:  # creates the stream
            pub.flush(15)
            collect_until(c, 300)
    assert pub.stats().retried > 0
    assert load(logs(tmp_path)["early"][0])["threadId"].to_list() == list(range(300))


def test_unreachable_broker_is_a_clear_transport_error() -> None:
    from beth.transport.broker import free_port

    with pytest.raises(TransportError, match=r"cannot connect to the NATS server at nats://127\.0\.0\.1:"):
        NatsPublisher(Endpoint.parse(f"nats://127.0.0.1:{free_port()}"), connect_timeout=1.0)


def test_bad_envelopes_and_forged_rows_are_rejected_and_the_rest_written(
    server: NatsServer, tmp_path: Path, lane: str
) -> None:
    """Raw client messages: what a compromised or broken sensor could send on its own subject."""
    (good, forged) = list(process_events("mallory", 2))
    forged.hostName = "victim"
    run = "00112233aabbccdd"

    async def send() -> None:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.publish(
            "beth.mallory.process",
            csv_line(good).encode(),
            headers={"Nats-Msg-Id": f"mallory.process.{run}.1"},
        )
        await js.publish(
            "beth.mallory.process",
            csv_line(forged).encode(),
            headers={"Nats-Msg-Id": f"mallory.process.{run}.2"},
        )
        await js.publish(
            "beth.mallory.process", b"1.0,2,3", headers={"Nats-Msg-Id": f"mallory.process.{run}.3"}
        )
        await js.publish("beth.mallory.process", csv_line(good).encode())  # no message id
        await js.publish(
            "beth.mallory.process", b"\xff\xfe", headers={"Nats-Msg-Id": f"mallory.process.{run}.4"}
        )
        await js.publish(
            "beth.mallory.dns", csv_line(good).encode(), headers={"Nats-Msg-Id": f"victim.dns.{run}.1"}
        )
        await js.publish(  # a header posing as the status that ends a pull request: just a row
            "beth.mallory.process",
            csv_line(good).encode(),
            headers={"Nats-Msg-Id": f"mallory.process.{run}.5", "Status": "404"},
        )
        await nc.close()

    ep = Endpoint.parse(server.url)
    with NatsSubscriber(ep) as sub, Collector(sub, tmp_path) as c:
        asyncio.run(send())
        deadline = time.monotonic() + 15
        while sum(h.rejected for h in c.hosts.values()) < 5 and time.monotonic() < deadline:
            c.step(0.1)
        while c.written < 2 and time.monotonic() < deadline:
            c.step(0.1)
    assert load(logs(tmp_path)["mallory"][0])["hostName"].to_list() == ["mallory", "mallory"]
    reasons = [json.loads(x)["reason"] for x in (tmp_path / REJECTED_FILE).read_text().splitlines()]
    assert sorted(reasons) == sorted(
        [
            "hostName 'victim' is not the sending host 'mallory'",
            "expected 16 fields, found 3",
            "no Nats-Msg-Id header",
            "payload is not UTF-8",
            "message id 'victim.dns.00112233aabbccdd.1' names another host or kind than its subject",
        ]
    )
    assert json.loads((tmp_path / STATS_FILE).read_text())["hosts"]["mallory"]["rejected"] == 5


def test_one_pull_request_at_a_time_however_often_a_pull_is_asked_for(
    server: NatsServer, tmp_path: Path
) -> None:
    """Deliveries were once counted against several open pull requests (the collector's thread and
    the loop could both ask for the next batch); past the consumer's limit of waiting requests (64)
    every refusal asked again at once: a storm of requests that doubled the broker's and the
    collector's CPU per event. Here 200 asks arrive while a request is open."""
    ep = Endpoint.parse(server.url)
    n, batch = 5_000, 50
    ch = Channel("h", "process")
    with (
        NatsSubscriber(ep, batch=batch, max_buffered=400) as sub,
        Collector(sub, tmp_path, batch=100) as c,
        NatsPublisher(ep) as pub,
    ):
        for _ in range(200):  # what fetch() and the loop do when they think no request is open
            sub._loop.soon(sub._pull_soon)
        for e in process_events("h", n):
            pub.publish(ch.wrap(e))
        collect_until(c, n)
        pub.flush(10)
    assert sub.refused_pulls == 0
    assert n // batch <= sub.pull_requests <= n // batch + 5
    assert load(logs(tmp_path)["h"][0])["threadId"].to_list() == list(range(n))


def test_an_expired_pull_request_is_renewed_at_once(server: NatsServer, tmp_path: Path) -> None:
    """On an idle stream a pull request expires after 5 s; its 408 comes on the request's own reply
    subject and the next request goes out then, not only when the 7 s watchdog notices."""
    ep = Endpoint.parse(server.url)
    with NatsSubscriber(ep) as sub:
        assert sub.pull_requests == 1
        deadline = time.monotonic() + 6.5
        while sub.pull_requests < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sub.pull_requests == 2


def test_read_header_takes_the_status_line_and_the_first_message_id() -> None:
    assert read_header(None) == (None, None)
    assert read_header(b"NATS/1.0 404 No Messages\r\n\r\n") == ("404 No Messages", None)
    assert read_header(b"NATS/1.0 503\r\n\r\n") == ("503", None)
    assert read_header(b"NATS/1.0\r\nNats-Msg-Id:  h.process.ab.7 \r\n\r\n") == (None, "h.process.ab.7")
    # A sender's own "Status" header is not a status; of two ids, the first counts (as for JetStream).
    block = b"NATS/1.0\r\nStatus: 404\r\nX-Nats-Msg-Id: x\r\nNats-Msg-Id: a.dns.1.1\r\nNats-Msg-Id: b\r\n\r\n"
    assert read_header(block) == (None, "a.dns.1.1")


def test_an_event_too_big_for_the_broker_is_reported_and_the_rest_flows(
    server: NatsServer, tmp_path: Path, lane: str
) -> None:
    """The broker would close the connection on it (max_payload): refused before sending, counted,
    and the collector reports its number as a gap."""
    ep = Endpoint.parse(server.url)
    first, huge, last = process_events("h", 3)
    huge.args = [{"name": "pathname", "type": "const char*", "value": "x" * (1 << 20)}]
    ch = Channel("h", "process")
    log: list[str] = []
    with (
        NatsSubscriber(ep) as sub,
        Collector(sub, tmp_path, reorder_window=0.2, log=log.append) as c,
        NatsPublisher(ep) as pub,
    ):
        for e in (first, huge, last):
            pub.publish(ch.wrap(e))
        pub.flush(10)
        assert pub.stats().acked == 2 and "exceeds the broker's" in pub.stats().errors[0]
        collect_until(c, 2)
        deadline = time.monotonic() + 10
        while not any("gap" in m for m in log) and time.monotonic() < deadline:
            c.step(0.1)
    assert load(logs(tmp_path)["h"][0])["threadId"].to_list() == [0, 2]
    assert any("1 event(s) missing (#2)" in m for m in log)


def _written(out: Path) -> int:
    try:
        return int(json.loads((out / STATS_FILE).read_text())["written"])
    except (OSError, ValueError, KeyError):
        return 0


def _start_collector(url: str, out: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [*BETH, "collect", "--transport", url, "--out", str(out)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "120"},
        )


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_100k_events_survive_a_collector_kill_and_a_broker_restart_exactly_once(
    server: NatsServer, tmp_path: Path
) -> None:
    out, clog = tmp_path / "out", tmp_path / "collector.log"
    per_host, hosts = 50_000, ("ip-10-100-1-4", "ip-10-100-1-26")
    publisher = subprocess.Popen(
        [sys.executable, str(HERE / "load_publisher.py"), server.url, "--hosts", ",".join(hosts),
         "--events", str(per_host), "--rate", "8000", "--ack-timeout", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    collector = _start_collector(server.url, out, clog)
    try:
        _wait(lambda: _written(out) > 5_000, 60, "the first 5,000 rows")
        assert publisher.poll() is None  # still publishing (8,000/s for 100,000): a restart mid-stream
        server.stop()  # the broker goes away under both publisher and collector ...
        time.sleep(1.0)
        server.start()  # ... and comes back with its JetStream store
        at_restart = _written(out)
        _wait(lambda: _written(out) > at_restart + 10_000, 60, "rows after the broker restart")
        collector.send_signal(signal.SIGKILL)  # a crash: no goodbye, no final checkpoint
        collector.wait(10)
        collector = _start_collector(server.url, out, clog)
        stdout, stderr = publisher.communicate(timeout=120)
        assert publisher.returncode == 0, stderr.decode()
        published = json.loads(stdout.decode().splitlines()[-1])
        assert published["acked"] == 2 * per_host
        _wait(lambda: _written(out) >= 2 * per_host, 90, "all 100,000 rows")
        time.sleep(0.5)  # anything extra (a duplicate) would show up now
    finally:
        if publisher.poll() is None:
            publisher.kill()
        collector.send_signal(signal.SIGTERM)
        collector.wait(30)
    assert collector.returncode == 0, clog.read_text()[-3000:]
    found = logs(out)
    assert sorted(found) == sorted(hosts)
    for host in hosts:
        proc = load(found[host][0])
        dns = load(found[host][1])
        # Every event once, in the order the sensor emitted it (threadId / timestamp count up).
        assert proc.height == per_host - per_host // 10
        assert proc["threadId"].to_list() == list(range(proc.height))
        assert dns.height == per_host // 10
        ts = dns["Timestamp"].str.to_datetime("%Y-%m-%dT%H:%M:%SZ")
        assert ts.is_sorted() and ts.n_unique() == dns.height
        assert set(proc["hostName"].unique()) == {host} and set(dns["SensorId"].unique()) == {host}
    stats = json.loads((out / STATS_FILE).read_text())
    assert stats["written"] == 2 * per_host
    assert all(h["process"]["missing"] == 0 and h["dns"]["missing"] == 0 for h in stats["hosts"].values())
    assert pl.concat([load(found[h][0]).select("threadId") for h in hosts]).height == 2 * (
        per_host - per_host // 10
    )
    log_text = clog.read_text()
    assert "reconnected" in log_text or "disconnected" in log_text


def test_collector_subscriber_sees_a_broker_restart_and_carries_on(
    server: NatsServer, tmp_path: Path
) -> None:
    ep = Endpoint.parse(server.url)
    ch = Channel("h", "process")
    events = list(process_events("h", 400))
    with NatsSubscriber(ep) as sub, Collector(sub, tmp_path) as c, NatsPublisher(ep, ack_timeout=0.5) as pub:
        for e in events[:200]:
            pub.publish(ch.wrap(e))
        pub.flush(10)
        collect_until(c, 200)
        server.kill()  # abrupt: SIGKILL
        server.start()
        stop = threading.Event()
        t = threading.Thread(target=c.run, args=(stop,))
        t.start()
        for e in events[200:]:
            pub.publish(ch.wrap(e))
        pub.flush(30)
        _wait(lambda: c.written >= 400, 30, "the rows after the broker restart")
        stop.set()
        t.join()
    assert load(logs(tmp_path)["h"][0])["threadId"].to_list() == list(range(400))


def test_beth_broker_runs_a_jetstream_server_until_interrupted(tmp_path: Path) -> None:
    from beth.transport.broker import free_port

    port = free_port()
    proc = subprocess.Popen(
        [*BETH, "broker", "--dir", str(tmp_path / "b"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = proc.stdout.readline().decode().strip()  # type: ignore[union-attr]
        assert line == f"nats://127.0.0.1:{port}"
        ch = Channel("h", "process")
        with NatsPublisher(Endpoint.parse(line)) as pub:  # creates the stream: JetStream is on
            for e in process_events("h", 10):
                pub.publish(ch.wrap(e))
            pub.flush(10)
            assert pub.stats().acked == 10
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    assert proc.returncode == 0, proc.stderr.read().decode()  # type: ignore[union-attr]
    assert (tmp_path / "b" / "nats-server.conf").exists() and (tmp_path / "b" / "jetstream").is_dir()
