"""`beth synth` at the paper's size: wall time, peak memory, rows/s, against two baselines of the same run.

Contenders, each in its own child process (so peak RSS is its own), `--repeats` times, medians compared:
  synth          write_synthetic(): generate the three splits and write them as CSV (what `beth synth` does)
  write-only     the same frames generated untimed, then only written as CSV: the I/O floor of the job
  per-row        a per-row Python writer, the way a loop-based generator would emit rows: one
                 ProcessEvent built and written through EventWriter per row, on `--per-row-rows` of the
                 same rows (their argument and stack lists prepared untimed), extrapolated to rows/s
Target (issue 2): the full paper size (1,141,078 rows) generated and written as CSV in under 60 s on 2 cores.

    python benchmarks/bench_synth.py                  # full paper size, 3 repeats
    python benchmarks/bench_synth.py --rows 200000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mib() -> float:
    """Peak resident set size of this process (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_synth(out: Path, rows: int, seed: int) -> dict:
    from beth.data.synth import write_synthetic

    t0 = time.perf_counter()
    paths = write_synthetic(out, rows=rows, seed=seed, fmt="csv")
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": rows, "bytes": sum(p.stat().st_size for p in paths)}


def child_write_only(out: Path, rows: int, seed: int) -> dict:
    from beth.data.synth import generate, synthetic_note
    from beth.data.write import write_table
    from beth.schema import FileKind

    frames = generate(rows, seed)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for split, df in frames.items():
        write_table(df, out / f"labelled_{split}_data.synthetic.csv", FileKind.PROCESS, synthetic=True,
                    note=synthetic_note(rows, seed))  # fmt: skip
    return {"seconds": time.perf_counter() - t0, "rows": rows}


def child_per_row(out: Path, rows: int, seed: int) -> dict:
    from beth.data.literal import parse_args, parse_literal
    from beth.data.synth import generate_split
    from beth.data.write import EventWriter
    from beth.events import ProcessEvent
    from beth.schema import FileKind

    df = generate_split("training", max(rows, 1_000), seed).head(rows)
    records = df.to_dicts()
    for r in records:  # what a Python generator would hold before writing: real lists, not text
        r["args"] = parse_args(r["args"])
        r["stackAddresses"] = parse_literal(r["stackAddresses"])
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with EventWriter(out / "per-row.csv", FileKind.PROCESS, "csv") as writer:
        for r in records:
            writer.write(ProcessEvent(**r))
    return {"seconds": time.perf_counter() - t0, "rows": len(records)}


CHILDREN = {"synth": child_synth, "write-only": child_write_only, "per-row": child_per_row}


def run_child(name: str, out: Path, rows: int, seed: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--out",
        str(out),
        "--rows",
        str(rows),
        "--seed",
        str(seed),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_141_078, help="total rows over the three splits")
    ap.add_argument("--per-row-rows", type=int, default=100_000, help="rows written by the per-row baseline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        result = CHILDREN[args.child](args.out, args.rows, args.seed)
        print(json.dumps({**result, "peak_mib": peak_rss_mib()}))
        return

    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            for name in CHILDREN:
                rows = args.per_row_rows if name == "per-row" else args.rows
                print(f"run {k + 1}/{args.repeats}: {name} ...", file=sys.stderr)
                results.setdefault(name, []).append(
                    run_child(name, Path(tmp) / f"{name}-{k}", rows, args.seed)
                )
    med = {n: statistics.median(r["seconds"] for r in rs) for n, rs in results.items()}
    peak = {n: max(r["peak_mib"] for r in rs) for n, rs in results.items()}
    rate = {n: results[n][0]["rows"] / med[n] for n in results}
    size_mb = results["synth"][0]["bytes"] / 1e6
    print(f"\n{args.rows:,} rows ({size_mb:.0f} MB of CSV), seed {args.seed}, median of {args.repeats} runs, "
          "each in its own process\n")  # fmt: skip
    print(f"{'contender':<12}{'rows':>12}{'seconds':>10}{'rows/s':>14}{'peak MiB':>10}")
    for n in CHILDREN:
        print(f"{n:<12}{results[n][0]['rows']:>12,}{med[n]:>10.2f}{rate[n]:>14,.0f}{peak[n]:>10.0f}")
    print()
    print(
        f"synth / write-only (time)   {med['synth'] / med['write-only']:6.2f}x   (generate + write vs write)"
    )
    print(f"synth / per-row (rows/s)    {rate['synth'] / rate['per-row']:6.1f}x   (vectorised vs a row loop)")
    verdict = "PASS" if med["synth"] < 60 else "FAIL"
    print(f"synth wall time             {med['synth']:6.1f} s   (target < 60 s on 2 cores: {verdict})")


if __name__ == "__main__":
    main()
