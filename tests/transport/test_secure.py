"""The secured broker (`beth broker init`): TLS only, one certificate per host, per-host permissions.

A real nats-server runs the generated config; every refusal asserted here is the server's (or the
TLS library's) own, for real clients: plaintext, no certificate, a foreign CA, an unknown identity, an
expired certificate, a host publishing in another host's name, a host or collector stepping outside
its permissions. Then two hosts publish at once over TLS and the collector writes every event.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest

from beth.collector import REJECTED_FILE, STATS_FILE, Collector
from beth.data.load import load
from beth.errors import TransportError, UsageError
from beth.transport import pki
from beth.transport.broker import BrokerFiles, NatsServer, free_port, host_user, inbox_prefix, init_broker
from beth.transport.envelope import Channel
from beth.transport.nats import Endpoint, NatsPublisher, NatsSubscriber
from sample_events import process_events

pytestmark = pytest.mark.broker
HERE = Path(__file__).parent
HOSTS = ["honeypot-a", "honeypot-b"]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrokerFiles, NatsServer]]:
    directory = tmp_path_factory.mktemp("secure-broker")
    port = free_port()
    files = init_broker(
        directory, HOSTS, server_names=["localhost", "127.0.0.1"], listen="127.0.0.1", port=port
    )
    server = NatsServer(files.config, port=port).start()
    try:
        yield files, server
    finally:
        server.stop()


def url(server: NatsServer) -> str:
    return f"tls://127.0.0.1:{server.port}"


def publisher(server: NatsServer, creds: Path | None, ca: Path | None, **kw) -> NatsPublisher:
    return NatsPublisher(
        Endpoint.parse(url(server), creds=creds, ca=ca), create_stream=False, connect_timeout=5, **kw
    )


def collect_until(c: Collector, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while c.written < n:
        assert time.monotonic() < deadline, f"{c.written} of {n} rows"
        c.step(0.1)


# --- what `beth broker init` writes -------------------------------------------------------------


def test_init_writes_secrets_0600_and_a_tls_only_config(broker: tuple[BrokerFiles, NatsServer]) -> None:
    files, _ = broker
    d = files.directory
    secrets = [d / "ca-key.pem", d / "server-key.pem", files.collector, files.config, *files.hosts.values()]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    text = files.config.read_text()
    assert "verify_and_map: true" in text and '"beth.honeypot-a.>"' in text
    assert "CN=host.honeypot-b" in text and "CN=collector" in text
    assert sorted(files.hosts) == HOSTS


def test_init_again_adds_a_host_and_keeps_the_ca(tmp_path: Path) -> None:
    first = init_broker(tmp_path, ["h1"], server_names=["localhost"], port=4333)
    ca = first.ca.read_bytes()
    h1 = first.hosts["h1"].read_bytes()
    second = init_broker(tmp_path, ["h2"], server_names=["localhost"], port=4333)
    assert second.ca.read_bytes() == ca
    assert sorted(second.hosts) == ["h1", "h2"] and second.hosts["h1"].read_bytes() == h1
    assert "CN=host.h1" in second.config.read_text() and "CN=host.h2" in second.config.read_text()


# --- who is refused ---------------------------------------------------------------------------


def test_a_plaintext_client_is_refused_by_the_server(broker: tuple[BrokerFiles, NatsServer]) -> None:
    _, server = broker
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        me = s.getsockname()[1]
        info = s.recv(4096).decode()
        assert info.startswith("INFO ") and json.loads(info[5:])["tls_required"] is True
        s.sendall(b'CONNECT {"verbose":false}\r\nPUB beth.honeypot-a.process 2\r\nhi\r\nPING\r\n')
        reply = s.recv(4096)
    assert reply == b""  # no PONG: the server hung up
    time.sleep(0.2)
    refusal = [line for line in server.log.read_text().splitlines() if f"127.0.0.1:{me} " in line]
    assert refusal and "TLS handshake error" in refusal[-1], refusal


def test_a_client_without_a_certificate_is_refused(broker: tuple[BrokerFiles, NatsServer]) -> None:
    files, server = broker
    with pytest.raises(TransportError, match="the broker requires a client certificate: pass --creds"):
        publisher(server, None, files.ca)


def test_a_certificate_from_another_ca_is_refused(
    broker: tuple[BrokerFiles, NatsServer], tmp_path: Path
) -> None:
    files, server = broker
    mallory_ca = pki.make_ca("mallory CA")
    forged = pki.issue(mallory_ca, host_user("honeypot-a"), client=True)  # right name, wrong signer
    creds = tmp_path / "forged.pem"
    pki.write_secret(creds, forged.cert_pem() + forged.key_pem())
    with pytest.raises(TransportError, match=r"refused the client certificate in --creds .*forged\.pem"):
        publisher(server, creds, files.ca)


def test_a_valid_certificate_for_an_unknown_identity_is_refused(
    broker: tuple[BrokerFiles, NatsServer], tmp_path: Path
) -> None:
    files, server = broker
    ca = pki.load_issued(files.directory / "ca.pem", files.directory / "ca-key.pem")
    stranger = pki.issue(ca, host_user("not-configured"), client=True)
    creds = tmp_path / "stranger.pem"
    pki.write_secret(creds, stranger.cert_pem() + stranger.key_pem())
    with pytest.raises(TransportError, match=r"does not know the identity .* \(authorization violation\)"):
        publisher(server, creds, files.ca)


def test_an_expired_client_certificate_is_refused_with_its_date(
    broker: tuple[BrokerFiles, NatsServer], tmp_path: Path
) -> None:
    files, server = broker
    ca = pki.load_issued(files.directory / "ca.pem", files.directory / "ca-key.pem")
    old = datetime(2020, 1, 1, tzinfo=UTC)
    expired = pki.issue(
        ca, host_user("honeypot-a"), client=True, not_before=old, not_after=old + timedelta(days=30)
    )
    creds = tmp_path / "expired.pem"
    pki.write_secret(creds, expired.cert_pem() + expired.key_pem())
    with pytest.raises(UsageError, match="the client certificate expired on 2020-01-31"):
        publisher(server, creds, files.ca)
    # ... and the server refuses it too, for a client that does not check first:
    ctx = ssl.create_default_context(cafile=str(files.ca))
    ctx.load_cert_chain(str(creds))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        me = raw.getsockname()[1]
        raw.recv(4096)  # INFO, in clear text, then the TLS upgrade
        with (
            pytest.raises((ssl.SSLError, ConnectionError)),
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"CONNECT {}\r\nPING\r\n")
            assert tls.recv(4096)  # an alert or EOF instead of a PONG
    time.sleep(0.2)
    refusal = [line for line in server.log.read_text().splitlines() if f"127.0.0.1:{me} " in line]
    assert refusal and "certificate has expired" in refusal[-1], refusal


def test_a_broker_certificate_from_an_unknown_ca_is_refused_by_the_client(
    broker: tuple[BrokerFiles, NatsServer], tmp_path: Path
) -> None:
    files, server = broker
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(pki.make_ca("someone else").cert_pem())
    with pytest.raises(TransportError, match="broker's certificate was not accepted"):
        publisher(server, files.hosts["honeypot-a"], other_ca)


def test_an_expired_broker_certificate_is_refused_by_the_client(tmp_path: Path) -> None:
    files = init_broker(tmp_path, ["h1"], server_names=["127.0.0.1"], listen="127.0.0.1", port=free_port())
    ca = pki.load_issued(files.ca, tmp_path / "ca-key.pem")
    old = datetime(2020, 1, 1, tzinfo=UTC)
    server_cert = pki.issue(
        ca, "beth broker", server_names=("127.0.0.1",), not_before=old, not_after=old + timedelta(days=1)
    )
    pki.write_secret(tmp_path / "server-key.pem", server_cert.key_pem())
    pki.write_public(tmp_path / "server.pem", server_cert.cert_pem())
    with (
        NatsServer(files.config, port=files.port) as server,
        pytest.raises(TransportError, match="broker's certificate was not accepted: certificate has expired"),
    ):
        publisher(server, files.hosts["h1"], files.ca)


# --- what an authenticated identity may do ----------------------------------------------------


def test_host_a_publishing_in_host_bs_name_is_refused_by_the_server(
    broker: tuple[BrokerFiles, NatsServer],
) -> None:
    files, server = broker
    pub = publisher(server, files.hosts["honeypot-a"], files.ca)
    try:
        ch = Channel("honeypot-b", "process")
        with pytest.raises(TransportError) as info:  # from publish() once the refusal came back, or flush()
            for e in process_events("honeypot-b", 3):
                pub.publish(ch.wrap(e))
            pub.flush(10)
    finally:
        pub.close()
    assert 'permissions violation for publish to "beth.honeypot-b.process"' in str(info.value)
    assert (
        'Publish Violation - User "CN=host.honeypot-a", Subject "beth.honeypot-b.process"'
        in server.log.read_text()
    )


async def _try(server: NatsServer, files: BrokerFiles, creds: Path, action: str) -> list[str]:
    """Do one forbidden thing with an identity; the errors the server sent back."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    ctx = ssl.create_default_context(cafile=str(files.ca))
    ctx.load_cert_chain(str(creds))
    user = pki.common_name(pki.check_client_pem(creds))
    nc = await nats.connect(url(server), tls=ctx, error_cb=on_error, inbox_prefix=inbox_prefix(user))
    if action == "subscribe":
        await nc.subscribe("beth.>")
    else:
        await nc.publish("beth.honeypot-a.process", b"forged")
    await nc.flush(2)
    await asyncio.sleep(0.3)
    await nc.close()
    return errors


def test_a_host_may_not_subscribe_to_anything_but_its_replies(broker: tuple[BrokerFiles, NatsServer]) -> None:
    files, server = broker
    errors = asyncio.run(_try(server, files, files.hosts["honeypot-a"], "subscribe"))
    assert any('permissions violation for subscription to "beth.>"' in e for e in errors), errors


def test_the_collector_may_not_publish_events(broker: tuple[BrokerFiles, NatsServer]) -> None:
    files, server = broker
    errors = asyncio.run(_try(server, files, files.collector, "publish"))
    assert any('permissions violation for publish to "beth.honeypot-a.process"' in e for e in errors), errors


def test_credentials_of_another_host_are_caught_before_connecting(
    broker: tuple[BrokerFiles, NatsServer],
) -> None:
    from beth.run import Pipeline, RunOptions

    files, server = broker
    opts = RunOptions(transport=url(server), creds=files.hosts["honeypot-b"], ca=files.ca, host="honeypot-a")
    with pytest.raises(
        UsageError, match=r"is the identity 'host\.honeypot-b', but this host publishes as 'host\.honeypot-a'"
    ):
        Pipeline(opts)._start_transport()


# --- the collector over TLS ---------------------------------------------------------------------


def test_a_forged_event_on_a_hosts_own_subject_is_counted_and_not_written(
    broker: tuple[BrokerFiles, NatsServer], tmp_path: Path
) -> None:
    files, server = broker
    good = list(process_events("honeypot-a", 5))
    (forged,) = process_events("honeypot-b", 1)  # claims to be honeypot-b, sent by honeypot-a
    ch = Channel("honeypot-a", "process")
    envs = [ch.wrap(e) for e in good[:2]] + [ch.wrap(forged)] + [ch.wrap(e) for e in good[2:]]
    with (
        NatsSubscriber(Endpoint.parse(url(server), creds=files.collector, ca=files.ca)) as sub,
        Collector(sub, tmp_path) as c,
    ):
        pub = publisher(server, files.hosts["honeypot-a"], files.ca)
        for env in envs:
            pub.publish(env)
        pub.flush(10)
        pub.close()
        deadline = time.monotonic() + 20
        while (
            c.written < 5 or not c.hosts.get("honeypot-a") or not c.hosts["honeypot-a"].rejected
        ) and time.monotonic() < deadline:
            c.step(0.1)
    procs = sorted(tmp_path.glob("labelled_*-honeypot-a.csv"))
    assert load(procs)["hostName"].to_list() == ["honeypot-a"] * 5
    assert not list(tmp_path.glob("labelled_*-honeypot-b*.csv"))
    rejected = [json.loads(x) for x in (tmp_path / REJECTED_FILE).read_text().splitlines()]
    assert [(r["host"], r["seq"], r["reason"]) for r in rejected] == [
        ("honeypot-a", 3, "hostName 'honeypot-b' is not the sending host 'honeypot-a'")
    ]
    assert json.loads((tmp_path / STATS_FILE).read_text())["hosts"]["honeypot-a"]["rejected"] == 1


@pytest.mark.slow
def test_two_hosts_publishing_at_once_over_tls_are_collected_completely(
    broker: tuple[BrokerFiles, NatsServer], tmp_path: Path
) -> None:
    files, server = broker
    per_host = 20_000
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "load_publisher.py"),
                url(server),
                "--hosts",
                host,
                "--events",
                str(per_host),
                "--creds",
                str(files.hosts[host]),
                "--ca",
                str(files.ca),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for host in HOSTS
    ]
    out = tmp_path / "logs"
    with (
        NatsSubscriber(Endpoint.parse(url(server), creds=files.collector, ca=files.ca)) as sub,
        Collector(sub, out) as c,
    ):
        stop = threading.Event()
        t = threading.Thread(target=c.run, args=(stop,))
        t.start()
        results = [p.communicate(timeout=120) for p in procs]
        for p, (o, e) in zip(procs, results, strict=True):
            assert p.returncode == 0, e.decode()
            assert json.loads(o.decode().splitlines()[-1])["acked"] == per_host
        deadline = time.monotonic() + 60
        while c.written < 2 * per_host and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        t.join()
    for host in HOSTS:
        proc = load(sorted(out.glob(f"labelled_*-{host}.csv")))
        dns = load(sorted(out.glob(f"labelled_*-{host}-dns.csv")))
        assert proc["threadId"].to_list() == list(range(per_host - per_host // 10))
        assert dns.height == per_host // 10
        assert set(proc["hostName"].unique()) == {host}
    assert c.written == 2 * per_host


def test_beth_broker_init_from_the_command_line(tmp_path: Path) -> None:
    import contextlib
    import io

    import beth.cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.raises(SystemExit) as done:
        beth.cli.main(
            ["broker", "init", str(tmp_path / "b"), "--hosts", "web-1,db.internal", "--port", "4999"]
        )
    assert done.value.code in (0, None)
    d = tmp_path / "b"
    assert (d / "hosts" / "web-1.pem").exists() and (d / "hosts" / "db%2Einternal.pem").exists()
    text = (d / "nats-server.conf").read_text()
    assert ":4999" in text and '"beth.db%2Einternal.>"' in text
    assert "beth broker --dir" in buf.getvalue()
    cert = pki.check_client_pem(d / "hosts" / "web-1.pem")
    assert pki.common_name(cert) == "host.web-1"


@pytest.mark.slow
def test_beth_collect_with_credentials_from_the_command_line(
    broker: tuple[BrokerFiles, NatsServer], tmp_path: Path
) -> None:
    files, server = broker
    out = tmp_path / "logs"
    beth = Path(sys.executable).with_name("beth")
    pub = publisher(server, files.hosts["honeypot-b"], files.ca)
    ch = Channel("honeypot-b", "process")
    events = list(process_events("honeypot-b", 500))
    for e in events:
        pub.publish(ch.wrap(e))
    pub.flush(10)
    pub.close()
    proc = subprocess.run(
        [str(beth), "collect", "--transport", url(server), "--creds", str(files.collector),
         "--ca", str(files.ca), "--out", str(out), "--duration", "8"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    df = load(sorted(out.glob("labelled_*-honeypot-b.csv")))
    assert df.height >= 500  # earlier tests' honeypot-b events may still be waiting in the stream
    assert df["threadId"].to_list()[-500:] == list(range(500))
    # Host credentials cannot collect: the broker refuses the consumer API to them.
    bad = subprocess.run(
        [str(beth), "collect", "--transport", url(server), "--creds", str(files.hosts["honeypot-a"]),
         "--ca", str(files.ca), "--out", str(tmp_path / "x"), "--duration", "1"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 4
    assert "beth: error:" in bad.stderr.decode() and "permissions violation" in bad.stderr.decode()
