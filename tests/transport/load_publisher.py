"""A sensor-side publisher of synthetic events, run as its own process by the NATS tests and benchmarks.

    python tests/transport/load_publisher.py nats://127.0.0.1:4222 --hosts h1,h2 --events 50000

Each host gets `--events` events (9 process rows to 1 DNS row, the real BETH sample rows replayed),
published in order through `NatsPublisher` at up to `--rate` events/s (0: as fast as possible).
Prints one JSON line with what was published and acknowledged.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for sample_events

from beth.transport.envelope import Channel, Envelope
from beth.transport.nats import Endpoint, NatsPublisher
from sample_events import dns_events, process_events


def envelopes(host: str, n: int) -> list[Envelope]:
    n_dns = n // 10
    pch, dch = Channel(host, "process"), Channel(host, "dns")
    p = iter(process_events(host, n - n_dns))
    d = iter(dns_events(host, n_dns))
    return [dch.wrap(next(d)) if i % 10 == 9 and dch.seq < n_dns else pch.wrap(next(p)) for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--hosts", default="h1")
    ap.add_argument("--events", type=int, default=10_000, help="events per host")
    ap.add_argument("--rate", type=float, default=0.0, help="events/s over all hosts (0: unpaced)")
    ap.add_argument("--creds")
    ap.add_argument("--ca")
    ap.add_argument("--ack-timeout", type=float, default=2.0)
    ap.add_argument("--times", help="write each event's publish time (float64, time.time()) to this file")
    args = ap.parse_args()
    hosts = args.hosts.split(",")
    per_host = [envelopes(h, args.events) for h in hosts]
    order = [e for group in zip(*per_host, strict=True) for e in group]  # hosts interleaved
    endpoint = Endpoint.parse(args.url, creds=args.creds, ca=args.ca, name="load-publisher")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    times = array("d", bytes(8 * len(order))) if args.times else None
    start, cpu = time.perf_counter(), time.process_time()
    with NatsPublisher(endpoint, ack_timeout=args.ack_timeout, log=log) as pub:
        for i, env in enumerate(order):
            if times is not None:
                times[i] = time.time()
            pub.publish(env)
            if args.rate and i % 100 == 0:
                ahead = i / args.rate - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)
        pub.flush(120)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        stats = pub.stats().to_record()
    if times is not None:
        Path(args.times).write_bytes(times.tobytes())
    print(json.dumps({"events": len(order), "seconds": elapsed, "cpu_seconds": cpu, **stats}), flush=True)


if __name__ == "__main__":
    main()
