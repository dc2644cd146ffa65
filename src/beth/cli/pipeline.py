"""`beth run`, `beth collect`, `beth broker`: the live path from sensors to per-host BETH logs."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from beth.cli.app import app, err, live_progress, out, until_signal
from beth.errors import UsageError

FORMAT_HELP = "Log format: csv (the Kaggle layout, appended live) or parquet (each closed segment converted)."
ROTATE_SIZE_HELP = "Start a new pair of files per host when one reaches this size (e.g. 256M, 1G)."
ROTATE_EVERY_HELP = "Start a new pair of files per host after this long (e.g. 1d, 6h, 30m)."
CREDS_HELP = "PEM file with this client's certificate and private key (from `beth broker init`)."
CA_HELP = "PEM file of the CA that signed the broker's certificate (from `beth broker init`)."

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", re.I)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)", re.I)


def parse_size(text: str) -> int:
    """'256M' -> bytes (K, M, G, T are powers of 1024)."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise UsageError(f"not a size: {text!r} (e.g. 64M, 1G)")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2).lower() or " "))


def parse_duration(text: str) -> float:
    """'1d', '6h', '30m', '10s' or plain seconds -> seconds."""
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise UsageError(f"not a duration: {text!r} (e.g. 1d, 6h, 30m, 10s)")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2).lower()]


# --- beth run ------------------------------------------------------------------------------------


@app.command("run")
def run_cmd(
    out_dir: Path | None = typer.Option(
        None, "--out", "-o", help="Directory for the logs (memory transport: the in-process collector)."
    ),
    transport: str = typer.Option(
        "memory",
        "--transport",
        "-t",
        help="'memory' (sensors, transport and collector in this process), or nats://HOST:PORT "
        "(tls://HOST:PORT with --creds/--ca) to publish to a broker and collect there with `beth collect`.",
    ),
    creds: Path | None = typer.Option(None, "--creds", help=CREDS_HELP),
    ca: Path | None = typer.Option(None, "--ca", help=CA_HELP),
    duration: float | None = typer.Option(
        None, "--duration", "-d", min=0.0, help="Stop after S seconds (default: until Ctrl-C or SIGTERM)."
    ),
    sensors: str = typer.Option("process,dns", "--sensors", help="Sensors to run: process, dns or both."),
    events: str | None = typer.Option(
        None, "--events", "-e", help="Process events to trace (names or sets, as in `beth sense process`)."
    ),
    host: str = typer.Option(
        socket.gethostname(), "--host-name", help="Host name in the logs and the transport subjects."
    ),
    fmt: str = typer.Option("csv", "--format", "-f", help=FORMAT_HELP),
    rotate_size: str = typer.Option("256M", "--rotate-size", help=ROTATE_SIZE_HELP),
    rotate_every: str = typer.Option("1d", "--rotate-every", help=ROTATE_EVERY_HELP),
) -> None:
    """Sense this host (process + DNS, needs root) and store the two BETH logs, or send them to a broker.

    Events travel one by one with a per-sensor sequence number; the collector writes
    labelled_<stamp>-<host>.csv and labelled_<stamp>-<host>-dns.csv, acknowledging only what is on
    disk. Stop with Ctrl-C or SIGTERM: everything sensed until then is written (or stored by the broker).
    """
    from beth.run import Pipeline, RunOptions

    opts = RunOptions(
        out=out_dir,
        transport=transport,
        creds=creds,
        ca=ca,
        host=host,
        sensors=tuple(s.strip() for s in sensors.split(",") if s.strip()),
        process_events=events,
        fmt=fmt,
        rotate_bytes=parse_size(rotate_size),
        rotate_seconds=parse_duration(rotate_every),
    )
    pipeline = Pipeline(opts, log=lambda m: err.print(m, markup=False, highlight=False))
    pipeline.start()
    summary: dict[str, Any] = {}
    try:
        with until_signal(pipeline.stop), live_progress("beth run", duration, "{task.fields[status]}") as bar:
            task = bar.add_task("run", total=duration, status="starting")
            start = time.monotonic()
            while not pipeline.stopping:
                elapsed = time.monotonic() - start
                if duration is not None and elapsed >= duration:
                    break
                time.sleep(0.25 if duration is None else max(0.0, min(0.25, duration - elapsed)))
                bar.update(task, completed=elapsed, status=_status(pipeline.snapshot()))
            bar.update(task, completed=duration or 0, status="stopping: writing what was sensed")
            summary = pipeline.close()
    finally:
        if not summary:
            pipeline.stop()
    _print_run_summary(summary, opts.transport)


def _status(snap: dict[str, Any]) -> str:
    parts = [f"{name} {s['events']:,} ev ({s['lost']:,} lost)" for name, s in snap["sensors"].items()]
    if snap["written"] is not None:
        parts.append(f"{snap['written']:,} rows written")
    else:
        parts.append(f"{snap['acked']:,}/{snap['published']:,} stored by the broker")
    return "  ".join(parts)


def _print_run_summary(summary: dict[str, Any], transport: str) -> None:
    table = Table(title="beth run", title_justify="left")
    for col in ("sensor", "events", "lost", "malformed", "duplicates"):
        table.add_column(col, justify="left" if col == "sensor" else "right")
    for name, s in summary.get("sensors", {}).items():
        table.add_row(name, *(f"{s[k]:,}" for k in ("events", "lost", "malformed", "duplicates")))
    out.print(table)
    collector = summary.get("collector")
    if collector is not None:
        _print_collector(collector)
    else:
        out.print(
            f"published {summary.get('published', 0):,} events to {transport}; "
            f"{summary.get('acked', 0):,} stored"
        )


def _print_collector(stats: dict[str, Any]) -> None:
    table = Table(title="collector", title_justify="left")
    for col in ("host", "process rows", "dns rows", "duplicates", "missing", "rejected"):
        table.add_column(col, justify="left" if col == "host" else "right")
    for host, h in stats["hosts"].items():
        p, d = h["process"], h["dns"]
        table.add_row(
            host,
            f"{p['rows']:,}",
            f"{d['rows']:,}",
            f"{p['duplicates'] + d['duplicates']:,}",
            f"{p['missing'] + d['missing']:,}",
            f"{h['rejected']:,}",
        )
    out.print(table)


# --- beth collect --------------------------------------------------------------------------------


@app.command("collect")
def collect_cmd(
    transport: str = typer.Option(
        ...,
        "--transport",
        "-t",
        help="The broker: nats://HOST:PORT, or tls://HOST:PORT with --creds/--ca for a broker from "
        "`beth broker init`.",
    ),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Directory for the per-host logs."),
    creds: Path | None = typer.Option(None, "--creds", help=CREDS_HELP),
    ca: Path | None = typer.Option(None, "--ca", help=CA_HELP),
    duration: float | None = typer.Option(
        None, "--duration", "-d", min=0.0, help="Stop after S seconds (default: until Ctrl-C or SIGTERM)."
    ),
    fmt: str = typer.Option("csv", "--format", "-f", help=FORMAT_HELP),
    rotate_size: str = typer.Option("256M", "--rotate-size", help=ROTATE_SIZE_HELP),
    rotate_every: str = typer.Option("1d", "--rotate-every", help=ROTATE_EVERY_HELP),
    durable: str = typer.Option(
        "beth-collector",
        "--durable",
        help="Name of the broker-side durable consumer that remembers the position.",
    ),
) -> None:
    """Consume every host's process and DNS events from the broker and write two BETH logs per host.

    Rows are written in each sensor's order, each exactly once (redeliveries are recognised by
    sequence number), fsynced before the broker is told; restarting the collector, the broker or a
    sensor loses nothing. Rows whose host does not match the subject they came on are rejected
    (rejected.jsonl); gaps are reported here and in collector-stats.json.
    """
    from beth.collector import Collector
    from beth.transport.nats import Endpoint, NatsSubscriber

    if not transport.startswith(("nats://", "tls://")):
        raise UsageError(
            f"--transport must be a nats:// URL, not {transport!r} (the memory transport is `beth run`)"
        )
    log = lambda m: err.print(m, markup=False, highlight=False)  # noqa: E731
    endpoint = Endpoint.parse(transport, creds=creds, ca=ca, name="beth-collector")
    stop = threading.Event()
    with (
        NatsSubscriber(endpoint, durable=durable, log=log) as sub,
        Collector(
            sub,
            out_dir,
            fmt=fmt,
            rotate_bytes=parse_size(rotate_size),
            rotate_seconds=parse_duration(rotate_every),
            log=log,
        ) as collector,
        until_signal(stop.set),
        live_progress("beth collect", duration, "{task.fields[rows]:,} rows written") as bar,
    ):
        task = bar.add_task("collect", total=duration, rows=0)
        start = time.monotonic()
        if duration is not None:
            timer = threading.Timer(duration, stop.set)
            timer.daemon = True
            timer.start()

        def cycle(c: Collector) -> None:
            bar.update(task, completed=time.monotonic() - start, rows=c.written)

        collector.run(stop, on_cycle=cycle)
    _print_collector(collector.stats())


# --- beth broker ---------------------------------------------------------------------------------

broker_app = typer.Typer(
    help="Run a local NATS server with JetStream for beth (`beth broker`), or set up a secured one "
    "(`beth broker init`).",
    invoke_without_command=True,
)
app.add_typer(broker_app, name="broker")


@broker_app.callback()
def broker_cmd(
    ctx: typer.Context,
    directory: Path = typer.Option(
        Path("beth-broker"), "--dir", help="Directory for the config and the JetStream store."
    ),
    port: int = typer.Option(4222, "--port", help="Port to listen on."),
    listen: str = typer.Option(
        "127.0.0.1", "--listen", help="Address to listen on (0.0.0.0: every interface)."
    ),
) -> None:
    """Start nats-server (Debian package nats-server) with JetStream, in the foreground until Ctrl-C.

    Uses DIR/nats-server.conf when `beth broker init DIR` made one (TLS, per-host users); otherwise
    writes a plain local config there.
    """
    if ctx.invoked_subcommand is not None:
        return
    from beth.transport.broker import CONFIG_NAME, NatsServer, configured_port, local_server

    config = directory / CONFIG_NAME
    if config.exists():
        port = configured_port(config) or port
        server = NatsServer(config, host="127.0.0.1" if listen == "0.0.0.0" else listen, port=port)
    else:
        server = local_server(directory, port=port, listen=listen)
    server.start()
    err.print(
        f"beth broker: nats-server with JetStream on {listen}:{port}; "
        f"config {server.config}; log {server.log}"
    )
    out.print(server.url)
    stop = threading.Event()
    with until_signal(stop.set):
        while not stop.wait(0.5):
            if server.proc is not None and server.proc.poll() is not None:
                raise UsageError(f"nats-server exited ({server.proc.returncode}); see {server.log}")
    server.stop()


@broker_app.command("init")
def broker_init_cmd(
    directory: Path = typer.Argument(
        ..., help="Directory for the CA, certificates, config and JetStream store."
    ),
    hosts: str = typer.Option(
        ..., "--hosts", help="Honeypot host names, comma-separated (as in --host-name)."
    ),
    server_name: list[str] = typer.Option(
        [],
        "--server-name",
        help="A DNS name or IP address the honeypots use to reach the broker (repeatable); "
        "localhost, 127.0.0.1, ::1 and this machine's names are always included.",
    ),
    listen: str = typer.Option("0.0.0.0", "--listen", help="Address the broker listens on."),
    port: int = typer.Option(4222, "--port", help="Port the broker listens on (TLS only)."),
    days: int = typer.Option(825, "--days", min=1, help="Lifetime of the certificates issued now."),
) -> None:
    """Create a secured broker: a private CA, TLS everywhere, one client certificate per host.

    Writes DIR/ca.pem (give it to every host), DIR/ca-key.pem (keep it offline once hosts are
    issued), DIR/server.pem + server-key.pem, DIR/collector.pem (the collector's certificate and key),
    DIR/hosts/<host>.pem (each honeypot's certificate and key), DIR/nats-server.conf. Secrets are 0600.
    Host H may only publish to beth.H.> and read its own replies; the collector may only consume; a
    client without a certificate from this CA is refused. Run again with new --hosts to add hosts
    (the CA is kept). Then: `beth broker --dir DIR`.
    """
    from beth.transport.broker import init_broker

    fqdn = socket.getfqdn()  # may ask DNS: once
    names = [*server_name]
    for default in ("localhost", "127.0.0.1", "::1", socket.gethostname(), fqdn):
        if default not in names:
            names.append(default)
    host_list = [h.strip() for h in hosts.split(",") if h.strip()]
    files = init_broker(directory, host_list, server_names=names, listen=listen, port=port, days=days)
    table = Table(title=f"beth broker init: {files.directory}", title_justify="left")
    table.add_column("who")
    table.add_column("copy to that machine")
    table.add_row("broker + collector node", f"{files.config}, {files.collector}, {files.ca}")
    for host, path in files.hosts.items():
        table.add_row(host, f"{path}, {files.ca}")
    out.print(table)
    url = f"tls://{server_name[0] if server_name else fqdn}:{files.port}"
    out.print(f"start the broker:  beth broker --dir {files.directory}")
    out.print(
        f"collector:         beth collect --transport {url} --creds {files.collector} --ca {files.ca} ",
        end="",
    )
    out.print("--out LOGS")
    out.print(f"each honeypot:     beth run --transport {url} --creds <host>.pem --ca ca.pem")
