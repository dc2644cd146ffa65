"""The full classical protocol (3 methods x 5 seeds, both protocols, both labels): beth against the
straightforward way, side by side in one run, on the same files.

Contenders, each in its own child process, one after another:
  straightforward  benchmarks/reference_authors.py: pandas, fit and score every row, seeds one after
                   another (the authors' procedure with the polarity fixed, plus the scores protocol)
  beth             beth.evaluation.bench.run_benchmark with --jobs 1 (seeds one after another)
  beth --jobs N    the same with N seeds fitted at once in worker processes
The numbers of every contender must agree (every method, seed, protocol, label, metric; to 1e-9).
Wall time is measured inside each child (imports excluded; "process s" includes them); CPU time is
user + system of the child and its workers (robust to a busy machine, where wall time is not); peak
memory is the largest sum of the resident set sizes of the child and its worker processes, sampled
from /proc every 20 ms.
Target (issue 3): beth >= 2x faster than the straightforward way.

    python benchmarks/bench_classic.py                    # full paper size (1,141,078 rows), synthetic
    python benchmarks/bench_classic.py --rows 200000      # smaller, quicker
    python benchmarks/bench_classic.py --data DIR         # your own split files (e.g. the Kaggle ones)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-9


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_child(cmd: list[str]) -> tuple[float, int, float]:
    """Run a contender; return its outer wall time, peak tree RSS and CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc = proc.wait()
    done.set()
    sampler.join()
    wall = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"contender failed (exit {rc}): {' '.join(cmd)}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, peak, cpu


def beth_child(data: str, seeds: int, jobs: int, out: str) -> None:
    """Child: the beth way, timed from the start of the work to the last metric."""
    from beth.evaluation.bench import run_benchmark

    t0 = time.perf_counter()
    res = run_benchmark(data, "rcov,svm,ifor", seeds, n_jobs=None if jobs == 1 else jobs)
    wall = time.perf_counter() - t0
    values = {}
    for v in res.values:
        seed = "" if v.seed is None else v.seed
        values[f"{v.method}/{v.protocol}/{v.label}/{v.metric}/{v.aggregate}/{seed}"] = v.value
    doc = {"results": values, "timings": res.timings, "wall": wall}
    Path(out).write_text(json.dumps(doc))


def reference_child(data: str, seeds: int, out: str) -> None:
    """Child: the straightforward way (benchmarks/reference_authors.py), timed the same way."""
    sys.path.insert(0, str(HERE))
    import reference_authors

    t0 = time.perf_counter()
    doc = reference_authors.run(data, ["rcov", "svm", "ifor"], list(range(1, seeds + 1)))
    doc["wall"] = time.perf_counter() - t0
    Path(out).write_text(json.dumps(doc))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="directory with the three split files (default: generate synthetic ones)")
    ap.add_argument(
        "--rows", type=int, default=1_141_078, help="synthetic rows in total (default: paper size)"
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes of the parallel beth contender")
    ap.add_argument("--child", choices=["beth", "reference"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "beth":
        return beth_child(args.data, args.seeds, args.jobs, args.out)
    if args.child == "reference":
        return reference_child(args.data, args.seeds, args.out)

    with tempfile.TemporaryDirectory(prefix="bench_classic_") as tmp:
        data = args.data
        if data is None:
            from beth.data.synth import write_synthetic

            print(f"generating {args.rows:,} synthetic rows (beth synth, seed 0) ...", flush=True)
            data = os.path.join(tmp, "data")
            write_synthetic(data, rows=args.rows, seed=0)
        print(
            f"uptime before: {os.getloadavg()[0]:.2f} (1-min load average, {os.cpu_count()} CPUs)", flush=True
        )
        me = [sys.executable, __file__, "--data", data, "--seeds", str(args.seeds)]
        contenders = {
            "straightforward": [*me, "--child", "reference"],
            "beth --jobs 1": [*me, "--child", "beth", "--jobs", "1"],
            f"beth --jobs {args.jobs}": [*me, "--child", "beth", "--jobs", str(args.jobs)],
        }
        docs, outer, peaks, cpu = {}, {}, {}, {}
        for name, cmd in contenders.items():
            out = os.path.join(tmp, name.replace(" ", "_") + ".json")
            print(f"running {name} ...", flush=True)
            outer[name], peaks[name], cpu[name] = run_child([*cmd, "--out", out])
            docs[name] = json.loads(Path(out).read_text())
        print(f"uptime after: {os.getloadavg()[0]:.2f}")

    ref = docs["straightforward"]["results"]
    worst = 0.0
    for name, doc in docs.items():
        if set(doc["results"]) != set(ref):
            raise SystemExit(f"{name}: different set of numbers than the straightforward way")
        worst = max(worst, max(abs(doc["results"][k] - ref[k]) for k in ref))
    base = docs["straightforward"]["wall"]
    print()
    head = f"{'contender':<18} {'work wall s':>11} {'process s':>10} {'CPU s':>8} {'peak RSS MiB':>13}"
    print(f"{head} {'speed-up (wall)':>16} {'(CPU)':>7}")
    for name, doc in docs.items():
        ratio, cpu_ratio = base / doc["wall"], cpu["straightforward"] / cpu[name]
        mib = peaks[name] / 2**20
        row = f"{name:<18} {doc['wall']:>11.1f} {outer[name]:>10.1f} {cpu[name]:>8.1f} {mib:>13.0f}"
        print(f"{row} {ratio:>15.2f}x {cpu_ratio:>6.2f}x")
    print()
    for name, doc in docs.items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in doc["timings"].items())
        print(f"{name} stages (s): {stages}")
    print()
    print(
        f"{len(ref)} numbers (3 methods x {args.seeds} seeds + ensembles, 2 protocols, 2 labels): "
        f"largest difference from the straightforward way {worst:.1e} (tolerance {TOLERANCE:.0e})"
    )
    beth1 = base / docs["beth --jobs 1"]["wall"]
    bethn = base / docs[f"beth --jobs {args.jobs}"]["wall"]
    print(f"target >= 2x: beth --jobs 1 {beth1:.2f}x, beth --jobs {args.jobs} {bethn:.2f}x")
    if worst > TOLERANCE:
        raise SystemExit("FAIL: numbers differ")


if __name__ == "__main__":
    main()
