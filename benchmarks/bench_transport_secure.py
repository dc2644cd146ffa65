"""The price of security: end-to-end events/s through NATS JetStream with TLS, client certificates and
per-host permissions (`beth broker init`), next to the same run on a plain broker, in one run.

Both brokers run side by side; plain and secure runs alternate, so machine noise hits both alike.
Each secure host publishes with its own certificate (two publisher processes); the plain run uses the
same two processes without credentials. Every run checks that every event was written once, in order.
Target (issue 7): the secure path within 1.5x of the plain one.

    python benchmarks/bench_transport_secure.py [--events 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_transport import CPU, HOSTS, nats
from beth.transport.broker import NatsServer, free_port, init_broker, local_server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        plain = local_server(base / "plain").start()
        port = free_port()
        files = init_broker(
            base / "secure", list(HOSTS), server_names=["127.0.0.1"], listen="127.0.0.1", port=port
        )
        secure = NatsServer(files.config, port=port).start()
        secure_args = (files.ca, files.collector, files.directory / "hosts")
        runs: dict[str, list[tuple[float, float, float]]] = {"plain": [], "secure": []}
        cpu: dict[str, list[dict[str, float]]] = {"plain": [], "secure": []}
        try:
            for r in range(args.repeat):
                for mode in ("plain", "secure"):
                    tmp = base / f"{mode}-{r}"
                    tmp.mkdir()
                    if mode == "plain":
                        # Two publisher processes as in the secure run (one per host).
                        result = nats(args.events, tmp, plain.url, split=True, server_pid=plain.proc.pid)
                    else:
                        url = f"tls://127.0.0.1:{port}"
                        result = nats(args.events, tmp, url, secure=secure_args, server_pid=secure.proc.pid)
                    runs[mode].append(result)
                    cpu[mode].append(CPU["nats"][-1])
                    parts = ", ".join(f"{k} {v:.1f}" for k, v in cpu[mode][-1].items())
                    rate = f"{result[0]:,.0f} events/s"
                    print(f"run {r + 1} {mode}: {rate}; CPU us/event {parts}", file=sys.stderr)
        finally:
            plain.stop()
            secure.stop()
    med = {m: statistics.median(x[0] for x in v) for m, v in runs.items()}
    p99 = {m: statistics.median(x[2] for x in v) for m, v in runs.items()}
    print(f"{args.events:,} events, 2 hosts, median of {args.repeat} alternating runs")
    for mode in ("plain", "secure"):
        print(
            f"{mode:7} {med[mode]:10,.0f} events/s   p99 publish->fsync (saturated) {p99[mode] * 1e3:8.0f} ms"
        )
    print(f"secure is {med['plain'] / med['secure']:.2f}x slower than plain (target <= 1.5x)")
    total = {m: statistics.median(sum(r.values()) for r in cpu[m]) for m in cpu}
    for mode in ("plain", "secure"):
        parts = ", ".join(f"{k} {statistics.median(r[k] for r in cpu[mode]):.1f}" for k in cpu[mode][0])
        print(f"CPU per event, {mode}: {parts} = {total[mode]:.1f} us")
    print(f"secure costs {total['secure'] / total['plain']:.2f}x the CPU of plain per event")


if __name__ == "__main__":
    main()
