"""The `dose` protocol (VAE + DoSE-SVM, 5 seeds) at full size; beth and the authors' setup side by side.

Sections (one run, same files):
  full       `run_benchmark(methods="dose")` on the full-size splits: load + encode, 5 seeds x (train
             the VAE with early stopping, statistics of training/validation rows, SVM), test scoring.
             Target (issue 4): under 15 minutes on 2 CPU cores. `--jobs 1,2` runs it once per value.
  epoch      training throughput, rows per second of one epoch, on a subset (every 50th training row,
             as the authors' `--subsample 50`): the authors' setup (benchmarks/reference_dose_authors.py:
             DataLoader, batch 128, one decoder evaluation per row) against beth's `fit_vae` with the
             paper's estimator (batch 128, one evaluation per row) and with its defaults; and beth on
             the full training split.
  statistics DoSE statistics on the same subset: the authors' per-row loop (q(z) over every subset
             training row) against beth (once per distinct row, the same q(z)); then beth's cost at full
             size (q(z) over 10,000 training rows, every distinct row of the three splits), against the
             authors' per-row cost extrapolated to full size (it grows with rows x training rows).
  quality    (--quality-seeds K) best validation loss of K seeds trained with the paper's estimator and
             schedule (batch 128, lr 3e-3, one evaluation per row) against beth's defaults, full splits.
  diagnose   (--diagnose) seed 1's AUROC on test `sus`: DoSE-SVM, and each statistic on its own.

    python benchmarks/bench_dose.py                        # full paper size, synthetic (generated)
    python benchmarks/bench_dose.py --data DIR --jobs 1,2  # your split files; both ways of fitting seeds
    python benchmarks/bench_dose.py --skip-full --quality-seeds 3
    python benchmarks/bench_dose.py --data DIR --jobs 1,2 --quality-seeds 5 --diagnose  # as in RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference_dose_authors as authors
from beth.data.load import find_splits, load
from beth.detectors.dose_stats import aggregate_posterior, dose_statistics
from beth.detectors.vae import (
    CategoricalVAE,
    TrainConfig,
    Vocabulary,
    fit_vae,
    torch_threads,
)
from beth.features import FEATURES, distinct_rows, encode, to_matrix

CPU = torch.device("cpu")


def load_splits(data: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The encoded splits, and the test split's `sus` labels."""
    files = find_splits(data)
    splits, sus = {}, None
    for s, f in files.items():
        df = load(f.path, columns=[*FEATURES, "sus"])
        splits[s] = to_matrix(encode(df))
        if s == "testing":
            sus = df.get_column("sus").to_numpy()
    return splits, sus


def section_diagnose(splits: dict[str, np.ndarray], sus: np.ndarray) -> dict:
    """One seed's AUROC on test `sus`: the DoSE-SVM score, and each statistic on its own (either sign)."""
    from sklearn.metrics import roc_auc_score

    from beth.detectors.dose import STATISTICS, DoSE

    det = DoSE(random_state=1, device="cpu").fit(splits["training"], X_val=splits["validation"])
    stats = det.statistics(splits["testing"])
    out = {"dose_svm": roc_auc_score(sus, det.score_samples(splits["testing"]))}
    for j, name in enumerate(STATISTICS):
        out[name] = roc_auc_score(sus, stats[:, j])
    out["svm_coef"] = det.svm_.estimator_.coef_.tolist()
    return out


def section_full(data: Path, seeds: int, jobs: int) -> dict:
    from beth.evaluation.bench import run_benchmark

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        result = run_benchmark(data, "dose", seeds, out, n_jobs=None if jobs == 1 else jobs)
        wall = time.perf_counter() - t0
        runs = []
        for ckpt in sorted(Path(out, "work", "dose").glob("seed*-vae.pt")):
            saved = torch.load(ckpt, weights_only=True)
            runs.append((ckpt.name.split("-")[0], len(saved["val_loss"]) - 1, saved["best_epoch"]))
    t = result.timings
    return {
        "jobs": jobs,
        "wall_s": wall,
        "load_encode_s": sum(v for k, v in t.items() if k.startswith(("load", "encode", "fold", "hash"))),
        "fit_s": t["fit dose"],
        "score_s": t["score dose"],
        "member_fit_s": result.member_timings["dose"]["fit"],
        "epochs": runs,
        "auroc_sus": {p: result.value("dose", p, "sus") for p in ("paper", "scores")},
    }


def fold(X: np.ndarray, vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    f = distinct_rows(vocab.codes(X))
    return f.rows, f.counts


def ours_epoch(X: np.ndarray, X_val: np.ndarray, config: TrainConfig, epochs: int) -> dict:
    """rows/s of `epochs` epochs of beth's training (validation loss after each included)."""
    vocab = Vocabulary.fit(X)
    cfg = TrainConfig(**{**config.to_dict(), "max_epochs": epochs, "patience": epochs})
    fit_vae(
        fold(X[:2048], vocab),
        fold(X_val[:256], vocab),
        vocab.sizes,
        TrainConfig(max_epochs=1),
        seed=0,
        device=CPU,
    )  # warm-up (first AdamW step imports torch._dynamo)
    t0 = time.perf_counter()
    r = fit_vae(fold(X, vocab), fold(X_val, vocab), vocab.sizes, cfg, seed=1, device=CPU)
    seconds = (time.perf_counter() - t0) / epochs
    return {
        "epoch_s": seconds,
        "rows_per_s": len(X) / seconds,
        "evals_per_row": r.decoder_evaluations / r.rows_seen,
    }


def section_epoch(splits: dict[str, np.ndarray], every: int, epochs: int) -> dict:
    sub, sub_val = splits["training"][::every], splits["validation"][::every]
    ref = authors.time_training(sub, epochs)
    paper = TrainConfig(batch_size=128, decoder_samples=None)
    return {
        "subset_rows": len(sub),
        "authors": {k: v for k, v in ref.items() if k != "model"},
        "beth_paper_estimator": ours_epoch(sub, sub_val, paper, epochs),
        "beth_default": ours_epoch(sub, sub_val, TrainConfig(), epochs),
        "beth_default_full": ours_epoch(splits["training"], splits["validation"], TrainConfig(), 1),
        "_model": ref["model"],
    }


def section_statistics(splits: dict[str, np.ndarray], every: int, n_rows: int, model) -> dict:
    sub = splits["training"][::every]
    rows = splits["validation"][:: max(1, len(splits["validation"]) // n_rows)][:n_rows]
    ref = authors.time_statistics(model, sub, rows)
    # beth on the same rows, q(z) over every subset training row (the authors' definition).
    vocab = Vocabulary.fit(sub)
    torch.manual_seed(0)
    vae = CategoricalVAE(vocab.sizes, 64).eval()
    tr = distinct_rows(vocab.codes(sub))
    t0 = time.perf_counter()
    q = aggregate_posterior(vae, tr.rows, tr.counts, size=None, seed=1, device=CPU)
    f = distinct_rows(vocab.codes(rows))
    stats = f.expand(dose_statistics(vae, f.rows, q, seed=1, device=CPU))
    ours_sub = time.perf_counter() - t0
    assert np.isfinite(stats).all()
    # beth at full size: q(z) over 10,000 training rows, every distinct row of the three splits.
    vocab = Vocabulary.fit(splits["training"])
    vae = CategoricalVAE(vocab.sizes, 64).eval()
    t0 = time.perf_counter()
    full = distinct_rows(vocab.codes(splits["training"]))
    q = aggregate_posterior(vae, full.rows, full.counts, size=10_000, seed=1, device=CPU)
    distinct = 0
    for X in splits.values():
        f = distinct_rows(vocab.codes(X))
        distinct += len(f.rows)
        f.expand(dose_statistics(vae, f.rows, q, seed=1, device=CPU))
    ours_full = time.perf_counter() - t0
    n_all = sum(len(X) for X in splits.values())
    # The authors' loop costs (rows scored) x (mixture components = training rows) x a constant.
    per_pair = ref["seconds"] / (len(rows) * len(sub))
    return {
        "subset_train_rows": len(sub),
        "scored_rows": len(rows),
        "authors_s": ref["seconds"],
        "beth_s": ours_sub,
        "beth_full_s": ours_full,
        "full_distinct_rows": distinct,
        "full_rows": n_all,
        "authors_full_extrapolated_s": per_pair * n_all * len(splits["training"]),
    }


def section_quality(splits: dict[str, np.ndarray], seeds: int) -> dict:
    vocab = Vocabulary.fit(splits["training"])
    tr, va = fold(splits["training"], vocab), fold(splits["validation"], vocab)
    out = {}
    for name, cfg in (("paper", TrainConfig(batch_size=128, decoder_samples=None)), ("beth", TrainConfig())):
        runs = []
        for seed in range(1, seeds + 1):
            t0 = time.perf_counter()
            r = fit_vae(tr, va, vocab.sizes, cfg, seed=seed, device=CPU)
            runs.append(
                {
                    "seed": seed,
                    "best_val_loss": r.best_val_loss,
                    "best_epoch": r.best_epoch,
                    "epochs": len(r.val_loss) - 1,
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(f"  quality {name} seed {seed}: {runs[-1]}", file=sys.stderr, flush=True)
        out[name] = runs
    return out


def report(res: dict) -> None:
    print(f"load average at start: {res['load_start']}, at end: {os.getloadavg()}")
    for full in res.get("full", []):
        print(f"\n### full dose protocol, {full['seeds']} seeds, --jobs {full['jobs']}")
        print(
            f"- wall {full['wall_s']:.1f} s = {full['wall_s'] / 60:.2f} min (target < 15 min: "
            f"{'PASS' if full['wall_s'] < 900 else 'FAIL'}); load+encode {full['load_encode_s']:.1f} s, "
            f"fit {full['seeds']} seeds {full['fit_s']:.1f} s, score test {full['score_s']:.1f} s"
        )
        print(
            f"- per-seed fit s: {', '.join(f'{s:.1f}' for s in full['member_fit_s'])}; epochs (run, best): "
            f"{', '.join(f'{e}/{b}' for _, e, b in full['epochs'])}"
        )
        print(
            f"- AUROC test sus: paper {full['auroc_sus']['paper']:.3f}, "
            f"scores {full['auroc_sus']['scores']:.3f}"
        )
    if "epoch" in res:
        e = res["epoch"]
        a = e["authors"]["rows_per_s"]
        print(f"\n### training epoch, subset of {e['subset_rows']:,} training rows (every {res['every']}th)")
        print("| setup | s / epoch | rows/s | vs authors | decoder evals / row |")
        print("|---|---:|---:|---:|---:|")
        print(
            f"| authors (reference_dose_authors.py, batch 128) | {e['authors']['epoch_s']:.2f} "
            f"| {a:,.0f} | 1.0x | 1 |"
        )
        for key, label in (
            ("beth_paper_estimator", "beth, paper estimator (batch 128, 1 eval/row)"),
            ("beth_default", "beth defaults (batch 1024, 256 evals/batch)"),
            ("beth_default_full", "beth defaults, full training split"),
        ):
            v = e[key]
            print(
                f"| {label} | {v['epoch_s']:.2f} | {v['rows_per_s']:,.0f} | {v['rows_per_s'] / a:.1f}x | "
                f"{v['evals_per_row']:.3f} |"
            )
    if "statistics" in res:
        s = res["statistics"]
        print(
            f"\n### DoSE statistics, {s['scored_rows']:,} rows, "
            f"q(z) over {s['subset_train_rows']:,} training rows"
        )
        print(
            f"- authors per row: {s['authors_s']:.2f} s; beth once per distinct row: {s['beth_s']:.3f} s "
            f"({s['authors_s'] / s['beth_s']:.0f}x)"
        )
        print(
            f"- full size: beth {s['beth_full_s']:.2f} s for all {s['full_rows']:,} rows "
            f"({s['full_distinct_rows']} distinct, "
            f"q over 10,000 training rows); authors' per-row loop extrapolated: "
            f"{s['authors_full_extrapolated_s'] / 86400:.1f} days per seed"
        )
    if "quality" in res:
        print("\n### validation loss reached (nats per row), full splits")
        for name, runs in res["quality"].items():
            v = [r["best_val_loss"] for r in runs]
            sd = np.std(v, ddof=1) if len(v) > 1 else math.nan
            print(
                f"- {name}: {np.mean(v):.4f} ± {sd:.4f} (seeds {[round(x, 4) for x in v]}), epochs "
                f"{[r['epochs'] for r in runs]}, s {[round(r['seconds']) for r in runs]}"
            )


def report_diagnose(d: dict) -> None:
    print("\n### seed 1, AUROC on test sus: DoSE-SVM and each statistic alone (0.5 = chance; < 0.5 inverted)")
    print(
        f"- DoSE-SVM score: {d['dose_svm']:.3f}; SVM weights on the whitened statistics: "
        f"{np.round(d['svm_coef'], 5).tolist()}"
    )
    print("- " + ", ".join(f"{k} {v:.3f}" for k, v in d.items() if k not in ("dose_svm", "svm_coef")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="directory with the three split files (default: generate synthetic ones)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", default="1", help="comma-separated --jobs values for the full section")
    ap.add_argument("--every", type=int, default=50, help="subset: every N-th training row")
    ap.add_argument("--epochs", type=int, default=2, help="epochs timed per training contender")
    ap.add_argument("--stat-rows", type=int, default=2000, help="rows scored by the statistics contenders")
    ap.add_argument("--quality-seeds", type=int, default=0)
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--diagnose", action="store_true", help="AUROC of each DoSE statistic alone (seed 1)")
    ap.add_argument("--json", help="also write the numbers here")
    args = ap.parse_args()
    res: dict = {"load_start": os.getloadavg(), "every": args.every}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else Path(tmp)
        if not args.data:
            from beth.data.synth import write_synthetic

            write_synthetic(data, seed=0, fmt="csv")
        if not args.skip_full:
            res["full"] = []
            for jobs in (int(j) for j in args.jobs.split(",")):
                res["full"].append({**section_full(data, args.seeds, jobs), "seeds": args.seeds})
                print(f"full --jobs {jobs}: {res['full'][-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
        splits, sus = load_splits(data)
    with torch_threads(1):
        res["epoch"] = section_epoch(splits, args.every, args.epochs)
        model = res["epoch"].pop("_model")
        res["statistics"] = section_statistics(splits, args.every, args.stat_rows, model)
        if args.quality_seeds:
            res["quality"] = section_quality(splits, args.quality_seeds)
        if args.diagnose:
            res["diagnose"] = section_diagnose(splits, sus)
    report(res)
    if "diagnose" in res:
        report_diagnose(res["diagnose"])
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
