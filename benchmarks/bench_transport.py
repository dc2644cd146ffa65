"""End-to-end events/s and latency: sensor-side publish -> transport -> collector -> fsynced BETH file.

Three paths, measured in the same run on the same events (real BETH sample rows, 9 process : 1 DNS,
two hosts), so the ratios are meaningful on a noisy machine:

  direct   the events written straight through EventWriter and fsynced (no transport): the baseline
  memory   publisher thread -> MemoryBus -> Collector thread, one process (what `beth run` does)
  nats     a publisher *process* (tests/transport/load_publisher.py, like a sensor host) -> nats-server
           (JetStream, started here) -> NatsSubscriber + Collector in this process (`beth collect`)

Throughput runs are unpaced (as fast as the path goes); the latency run paces the publisher at
--latency-rate events/s and reports p50/p99 from publish() to the row being durably written (the
collector's commit). Every run checks that the files hold every event once, in order.
Targets (issue 6): nats >= 50,000 events/s with no loss, memory >= 150,000 events/s.

    python benchmarks/bench_transport.py [--events 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "transport"))

from load_publisher import envelopes  # noqa: E402

from beth.collector import Collector  # noqa: E402
from beth.data.load import load  # noqa: E402
from beth.data.write import EventWriter  # noqa: E402
from beth.schema import FileKind  # noqa: E402
from beth.transport.broker import local_server  # noqa: E402
from beth.transport.memory import MemoryBus  # noqa: E402
from beth.transport.nats import Endpoint, NatsSubscriber  # noqa: E402

HOSTS = ("ip-10-100-1-4", "ip-10-100-1-26")


def make_order(n: int) -> list:
    per_host = [envelopes(h, n // len(HOSTS)) for h in HOSTS]
    return [e for group in zip(*per_host, strict=True) for e in group]


def verify(out: Path, n: int) -> None:
    """Every event once and in order per host, or raise."""
    total = 0
    for host in HOSTS:
        proc = load(sorted(out.glob(f"labelled_*-{host}.csv")))
        dns = load(sorted(out.glob(f"labelled_*-{host}-dns.csv")))
        assert proc["threadId"].to_list() == list(range(proc.height)), f"{host}: process rows out of order"
        total += proc.height + dns.height
    assert total == n, f"{total} rows written, {n} published"


def direct(order: list, tmp: Path) -> float:
    start = time.perf_counter()
    writers = {
        (h, k): EventWriter(tmp / f"{h}-{k}.csv", FileKind.PROCESS if k == "process" else FileKind.DNS)
        for h in HOSTS
        for k in ("process", "dns")
    }
    for env in order:
        writers[(env.host, env.kind)].write(env.event)
    for w in writers.values():
        w.flush(durable=True)
        w.close()
    return len(order) / (time.perf_counter() - start)


def latencies(published: np.ndarray, commits: list[tuple[float, int]]) -> tuple[float, float]:
    """p50/p99 seconds from publish to the commit that made the event durable."""
    times = np.array([t for t, _ in commits])
    counts = np.array([w for _, w in commits])
    idx = np.searchsorted(counts, np.arange(1, len(published) + 1))  # first commit covering event i
    lat = times[idx] - published
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


#: CPU microseconds per event of each component, per run (robust to a busy machine, unlike wall time).
CPU: dict[str, list[dict[str, float]]] = {"memory": [], "nats": []}


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory(order: list, tmp: Path, rate: float = 0.0) -> tuple[float, float, float]:
    cpu0 = time.process_time()
    bus = MemoryBus()
    collector = Collector(bus.subscriber(), tmp)
    collector.open()
    commits: list[tuple[float, int]] = []
    stop = threading.Event()

    def cycle(c: Collector) -> None:
        commits.append((time.time(), c.written))

    t = threading.Thread(target=collector.run, args=(stop,), kwargs={"on_cycle": cycle})
    t.start()
    pub = bus.publisher()
    published = np.empty(len(order))
    start = time.perf_counter()
    for i, env in enumerate(order):
        published[i] = time.time()
        pub.publish(env)
        if rate and i % 100 == 0 and (ahead := i / rate - (time.perf_counter() - start)) > 0:
            time.sleep(ahead)
    while collector.written < len(order):
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    stop.set()
    t.join()
    collector.close()
    if not rate:
        CPU["memory"].append({"publisher + collector": (time.process_time() - cpu0) / len(order) * 1e6})
    verify(tmp, len(order))
    return (len(order) / elapsed, *latencies(published, [c for c in commits if c[1]]))


def nats(
    n: int,
    tmp: Path,
    url: str,
    rate: float = 0.0,
    *,
    secure: tuple[Path, Path, Path] | None = None,
    split: bool = False,
    server_pid: int | None = None,
) -> tuple[float, float, float]:
    """End to end through a broker. `secure` = (CA, collector credentials, directory of host
    credentials); `split`: one publisher process per host (always so with `secure`)."""
    split = split or secure is not None
    cpu0, server0 = time.process_time(), proc_cpu(server_pid) if server_pid else 0.0
    times_file = tmp / "publish-times.f64"
    ca, collector_creds, host_dir = secure or (None, None, None)
    sub = NatsSubscriber(Endpoint.parse(url, creds=collector_creds, ca=ca))
    collector = Collector(sub, tmp / "out")
    collector.open()
    script = str(ROOT / "tests/transport/load_publisher.py")
    publishers = []
    for host in HOSTS if split else [",".join(HOSTS)]:  # with TLS each host has its own identity
        host_rate = rate / (len(HOSTS) if split else 1)
        cmd = [sys.executable, script, url, "--hosts", host, "--events", str(n // len(HOSTS)),
               "--rate", str(host_rate), "--times", f"{times_file}.{len(publishers)}"]  # fmt: skip
        if secure:
            cmd += ["--creds", str(host_dir / f"{host}.pem"), "--ca", str(ca)]
        publishers.append(subprocess.Popen(cmd, stdout=subprocess.PIPE))
    commits: list[tuple[float, int]] = []
    while collector.written < n:
        collector.step(0.2)
        if collector.written:
            commits.append((time.time(), collector.written))
        if any(p.poll() not in (None, 0) for p in publishers):
            raise RuntimeError("a publisher failed")
    infos = [json.loads(p.communicate(60)[0].decode().splitlines()[-1]) for p in publishers]
    collector.close()
    sub.close()
    if not rate:
        CPU["nats"].append(
            {
                "publishers": sum(i["cpu_seconds"] for i in infos) / n * 1e6,
                "broker": (proc_cpu(server_pid) - server0) / n * 1e6 if server_pid else float("nan"),
                "collector": (time.process_time() - cpu0) / n * 1e6,
            }
        )
    verify(tmp / "out", n)
    assert sum(i["acked"] for i in infos) == n and not any(i["retried"] for i in infos), infos
    # Publish times of all publishers, in the order the collector saw them (by time).
    published = np.sort(
        np.concatenate(
            [np.frombuffer(Path(f"{times_file}.{i}").read_bytes()) for i in range(len(publishers))]
        )
    )
    elapsed = commits[-1][0] - published[0]
    return (n / elapsed, *latencies(published, commits))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency-rate", type=float, default=10_000.0)
    args = ap.parse_args()
    order = make_order(args.events)
    results: dict[str, list[tuple[float, float, float]]] = {"direct": [], "memory": [], "nats": []}
    lat_runs: dict[str, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        server = local_server(base / "broker").start()
        try:
            for r in range(args.repeat):
                for mode in ("direct", "memory", "nats"):
                    tmp = base / f"{mode}-{r}"
                    tmp.mkdir()
                    if mode == "direct":
                        results[mode].append((direct(order, tmp), 0.0, 0.0))
                    elif mode == "memory":
                        results[mode].append(memory(order, tmp))
                    else:
                        results[mode].append(nats(args.events, tmp, server.url, server_pid=server.proc.pid))
                    print(f"run {r + 1} {mode}: {results[mode][-1][0]:,.0f} events/s", file=sys.stderr)
            n_lat = int(args.latency_rate * 5)
            lat_order = make_order(n_lat)
            for mode in ("memory", "nats"):
                tmp = base / f"{mode}-latency"
                tmp.mkdir()
                if mode == "memory":
                    lat_runs[mode] = memory(lat_order, tmp, rate=args.latency_rate)
                else:
                    lat_runs[mode] = nats(n_lat, tmp, server.url, rate=args.latency_rate)
        finally:
            server.stop()
    base_rate = statistics.median(r[0] for r in results["direct"])
    print(f"{args.events:,} events (2 hosts, 9 process : 1 DNS), median of {args.repeat} runs; "
          f"latency at {args.latency_rate:,.0f} events/s paced, p50/p99 publish -> fsynced row")  # fmt: skip
    heads = ("events/s", "vs direct", "p50 sat.", "p99 sat.", "p50 paced", "p99 paced")
    print(f"{'path':8} " + " ".join(f"{h:>10}" for h in heads))
    for mode in ("direct", "memory", "nats"):
        rate = statistics.median(r[0] for r in results[mode])
        line = f"{mode:8} {rate:10,.0f} {rate / base_rate:9.2f}x"
        if mode != "direct":
            p50 = statistics.median(r[1] for r in results[mode])
            p99 = statistics.median(r[2] for r in results[mode])
            _, lp50, lp99 = lat_runs[mode]
            line += "".join(f" {v * 1e3:8.1f}ms" for v in (p50, p99, lp50, lp99))
        print(line)
    print_cpu()


def print_cpu() -> None:
    """Median CPU microseconds per event per component, and what two idle cores could carry."""
    for mode, runs in CPU.items():
        if not runs:
            continue
        parts = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        total = sum(parts.values())
        shown = ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
        cores = 1 if mode == "memory" else 2  # one process (one GIL) vs three processes
        ceiling = f"ceiling on {cores} idle core(s) ~{cores * 1e6 / total:,.0f} events/s"
        print(f"CPU per event, {mode}: {shown} = {total:.1f} us -> {ceiling}")


if __name__ == "__main__":
    main()
