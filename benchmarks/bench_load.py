"""Loading + Appendix-A features of the three splits: beth against pandas (the authors' way) and bare polars.

Each contender runs in its own child process (so peak RSS is its own), several times; the median
wall time of the work (imports excluded) is compared in the same run. Targets (issue 2):
  beth CSV      >= 3x faster than pandas CSV, peak memory below pandas'
  beth CSV      within 1.3x of a bare polars read of the same columns
  beth Parquet  >= 10x faster than pandas CSV

    python benchmarks/bench_load.py                 # full paper size, synthetic, in a temp dir
    python benchmarks/bench_load.py --data DIR      # your own split files (e.g. the Kaggle ones)
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

COLUMNS = ["processId", "parentProcessId", "userId", "mountNamespace", "eventId", "argsNum", "returnValue"]
LABELS = ["sus", "evil"]


def pandas_authors(paths: list[str]) -> np.ndarray:
    """The authors' way: read every column with pandas, then map each feature with a Python lambda."""
    import pandas as pd

    out = []
    for path in paths:
        df = pd.read_csv(path)
        df["processId"] = df["processId"].map(lambda x: 0 if x in [0, 1, 2] else 1)
        df["parentProcessId"] = df["parentProcessId"].map(lambda x: 0 if x in [0, 1, 2] else 1)
        df["userId"] = df["userId"].map(lambda x: 0 if x < 1000 else 1)
        df["mountNamespace"] = df["mountNamespace"].map(lambda x: 0 if x == 4026531840 else 1)
        df["returnValue"] = df["returnValue"].map(lambda x: 0 if x == 0 else (1 if x > 0 else 2))
        out.append(df[COLUMNS + LABELS].to_numpy(dtype=np.int64))
    return np.concatenate(out)


def bare_polars(paths: list[str]) -> np.ndarray:
    """A bare polars read of the same columns (no validation, no encoding): the floor."""
    import polars as pl

    frames = [pl.read_csv(p, columns=COLUMNS + LABELS) for p in paths]
    return pl.concat(frames).to_numpy()


def beth_load(paths: list[str]) -> np.ndarray:
    """beth: validated load of the needed columns, then the Appendix-A encoding."""
    import polars as pl

    from beth.data.load import load
    from beth.features import encode

    out = []
    for p in paths:
        df = load(p, columns=COLUMNS + LABELS)
        out.append(pl.concat([encode(df), df.select(LABELS).cast(pl.Int64)], how="horizontal").to_numpy())
    return np.concatenate(out)


CONTENDERS = {"pandas": pandas_authors, "polars": bare_polars, "beth": beth_load, "beth-parquet": beth_load}
#: Imported before the clock starts: library import time is not what is compared.
IMPORTS = {
    "pandas": ["pandas"],
    "polars": ["polars"],
    "beth": ["polars", "beth.data.load", "beth.features"],
    "beth-parquet": ["polars", "beth.data.load", "beth.features"],
}


def peak_rss_mib() -> float:
    """Peak resident set size of this process since its exec (VmHWM; ru_maxrss would include the
    parent's size at fork time)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(name: str, paths: list[str], check: str | None) -> None:
    for module in IMPORTS[name]:
        importlib.import_module(module)
    t0 = time.perf_counter()
    result = CONTENDERS[name](paths)
    seconds = time.perf_counter() - t0
    peak_mib = peak_rss_mib()
    if check:
        np.save(check, result)
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "rows": int(result.shape[0])}))


def run_child(name: str, paths: list[Path], check: Path | None = None) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        name,
        *(["--check", str(check)] if check else []),
        *map(str, paths),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="directory with the three split CSV files (default: synthetic)")
    ap.add_argument("--rows", type=int, default=1_141_078, help="synthetic size when --data is not given")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--check", help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.paths, args.check)
        return

    from beth.data.load import find_splits
    from beth.data.write import write_table

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        data = args.data
        if data is None:
            from beth.data.synth import write_synthetic

            data = tmpdir / "csv"
            print(f"generating {args.rows:,} synthetic rows ...", file=sys.stderr)
            write_synthetic(data, rows=args.rows, seed=0)
        splits = find_splits(data)
        csvs = [f.path for f in splits.values()]
        parquet_dir = tmpdir / "parquet"
        parquet_dir.mkdir()
        from beth.data.load import load

        parquets = [write_table(load(p), parquet_dir / (p.stem + ".parquet"), f.kind)
                    for p, f in zip(csvs, splits.values(), strict=True)]  # fmt: skip
        size_mb = sum(p.stat().st_size for p in csvs) / 1e6

        # Same numbers from every contender (checked once, outside the timed runs).
        ref = tmpdir / "ref.npy"
        results: dict[str, list[dict]] = {}
        for name in CONTENDERS:
            inputs = parquets if name == "beth-parquet" else csvs
            out = tmpdir / f"{name}.npy"
            run_child(name, inputs, out)
            if name == "pandas":
                out.rename(ref)
            elif name != "polars":
                assert np.array_equal(np.load(out), np.load(ref)), f"{name} features differ from pandas'"
        for _ in range(args.repeats):
            for name in CONTENDERS:
                results.setdefault(name, []).append(
                    run_child(name, parquets if name == "beth-parquet" else csvs)
                )

    rows = results["beth"][0]["rows"]
    med = {n: statistics.median(r["seconds"] for r in rs) for n, rs in results.items()}
    peak = {n: max(r["peak_mib"] for r in rs) for n, rs in results.items()}
    print(
        f"\n{rows:,} rows, {size_mb:.0f} MB of CSV, median of {args.repeats} runs, each in its own process\n"
    )
    print(f"{'contender':<14}{'seconds':>10}{'peak MiB':>10}{'rows/s':>14}")
    for n in CONTENDERS:
        print(f"{n:<14}{med[n]:>10.2f}{peak[n]:>10.0f}{rows / med[n]:>14,.0f}")
    print()
    print(f"pandas / beth (CSV)         {med['pandas'] / med['beth']:6.1f}x   (target >= 3x)")
    print(f"beth / bare polars          {med['beth'] / med['polars']:6.2f}x   (target <= 1.3x)")
    print(f"pandas CSV / beth Parquet   {med['pandas'] / med['beth-parquet']:6.1f}x   (target >= 10x)")
    print(f"peak memory beth / pandas   {peak['beth'] / peak['pandas']:6.2f}    (target < 1)")


if __name__ == "__main__":
    main()
