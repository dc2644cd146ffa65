"""Benchmark results as results.md (Table-5 shaped), results.csv (one number a row), results.json, and
rich tables for the terminal. Every number is labelled with its protocol (`paper`/`scores`) and
label (`sus`/`evil`), and every title says what the data is (synthetic data is never called BETH).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beth.errors import UsageError
from beth.evaluation.metrics import PROTOCOL_METRICS, PROTOCOLS

if TYPE_CHECKING:
    from rich.console import Group

    from beth.evaluation.bench import BenchResult

PUBLISHED = "published: BETH dataset (Highnam et al. 2021, Table 5)"
PUBLISHED_NOTE = (
    "Published: Highnam et al. 2021, Table 5: ensemble AUROC on the BETH test split, label `sus`, "
    "the authors' procedure (our `paper` protocol)"
)
STD_NOTE = "per seed = mean ± sample standard deviation (ddof=1) of the seeds' own values"


def _f(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def _pm(stats: tuple[float, float]) -> str:
    return f"{stats[0]:.3f} ± {stats[1]:.3f}"


def title(result: BenchResult) -> str:
    return f"Anomaly-detection benchmark on {result.data_title}"


def _auroc_rows(result: BenchResult, label: str, published: bool) -> tuple[list[str], list[list[str]]]:
    head = ["Method"]
    for protocol in PROTOCOLS:
        head += [f"`{protocol}` AUROC `{label}`, ensemble", f"`{protocol}` AUROC `{label}`, per seed"]
    if published:
        head.append("Published (`paper` AUROC `sus`, BETH)")
    rows = []
    for m in result.methods:
        row = [m.title]
        for protocol in PROTOCOLS:
            row += [
                _f(result.value(m.name, protocol, label, "auroc")),
                _pm(result.seed_stats(m.name, protocol, label, "auroc")),
            ]
        if published:
            row.append(_f(m.paper_auroc))
        rows.append(row)
    return head, rows


def _auprc_rows(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    head = ["Method"]
    for label in result.labels:
        head += [f"`scores` AUPRC `{label}`, ensemble", f"`scores` AUPRC `{label}`, per seed"]
    rows = []
    for m in result.methods:
        row = [m.title]
        for label in result.labels:
            row += [
                _f(result.value(m.name, "scores", label, "auprc")),
                _pm(result.seed_stats(m.name, "scores", label, "auprc")),
            ]
        rows.append(row)
    return head, rows


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def base_rates(result: BenchResult) -> dict[str, float]:
    """Fraction of test rows labelled 1, per label: the AUPRC of a random ranking."""
    test = result.splits["testing"]
    return {label: test.positives[label] / test.rows for label in result.labels}


def markdown(result: BenchResult) -> str:
    """results.md: the Table-5-shaped tables, protocols, data provenance and timings."""
    test, train = result.splits["testing"], result.splits["training"]
    rates = base_rates(result)
    seeds = ", ".join(map(str, result.seeds))
    out = [
        f"# {title(result)}",
        "",
        f"Data: `{result.data_dir}`. Trained on `{Path(train.path).name}` ({train.rows:,} rows, "
        f"{train.distinct_rows:,} distinct encoded rows); tested on `{Path(test.path).name}` "
        f"({test.rows:,} rows, {test.distinct_rows:,} distinct), where "
        + ", ".join(f"`{lb}`=1 on {test.positives[lb]:,} rows ({rates[lb]:.1%})" for lb in result.labels)
        + ".",
        "",
        f"Seeds {seeds} ({len(result.seeds)} models per method). Ensemble = the seeds combined as the "
        f"protocol says; {STD_NOTE}.",
    ]
    for label in result.labels:
        published = label == "sus"
        extra = " (the paper's Table 5)" if published else ""
        out += [
            "",
            f"## AUROC on test label `{label}`{extra}",
            "",
            _md_table(*_auroc_rows(result, label, published)),
        ]
        if published:
            note = PUBLISHED_NOTE
            if result.synthetic:
                note += "; shown for reference only: the numbers beside it are on synthetic data"
            out += ["", note + "."]
    out += ["", "## AUPRC (`scores` protocol)", "", _md_table(*_auprc_rows(result))]
    out += ["", "AUPRC of a random ranking = the positive fraction: "]
    out[-1] += ", ".join(f"`{lb}` {rates[lb]:.3f}" for lb in result.labels) + "."
    out += ["", "## Protocols", ""]
    out += [f"- `{p}`: {text}." for p, text in PROTOCOLS.items()]
    out += [
        "- Scores are HIGHER = MORE ANOMALOUS; hard predictions are 1 = anomaly (the authors' code inverted "
        "this for its whitened models; fixed here).",
        "- The test split is scored on its distinct encoded rows and broadcast: exact (the scores depend on "
        "the row alone).",
        "",
        "## Data files",
        "",
        _md_table(
            ["split", "file", "rows", "synthetic", "sha256"],
            [
                [
                    s.split,
                    f"`{Path(s.path).name}`",
                    f"{s.rows:,}",
                    "yes" if s.synthetic else "no",
                    f"`{s.sha256}`",
                ]
                for s in result.splits.values()
            ],
        ),
        "",
        "## Timings (seconds, wall clock)",
        "",
        _md_table(["stage", "seconds"], [[k, f"{v:.2f}"] for k, v in result.timings.items()]),
        "",
        _md_table(
            ["method", "fit per seed", "score per seed"],
            [
                [
                    m,
                    ", ".join(f"{x:.2f}" for x in t["fit"]),
                    ", ".join(f"{x:.3f}" for x in t["score"]),
                ]
                for m, t in result.member_timings.items()
            ],
        ),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result.versions.items() if k != "platform") + ".",
    ]
    warned = {m: w for m, w in result.fit_warnings.items() if w}
    if warned:
        out += ["", "## Warnings raised while fitting (one copy of each)", ""]
        out += [f"- {m}: {w}" for m, ws in warned.items() for w in ws]
    return "\n".join(out) + "\n"


CSV_FIELDS = ("data", "method", "method_title", "protocol", "label", "metric", "aggregate", "seed", "value")


def csv_rows(result: BenchResult) -> list[dict[str, Any]]:
    """One row per number: measured (ensemble, each seed, seed mean and std) and the published ones."""
    data = "synthetic" if result.synthetic else ("BETH" if result.is_kaggle_sized else "BETH-format")
    rows: list[dict[str, Any]] = []
    for m in result.methods:
        for label in result.labels:
            for protocol, metrics in PROTOCOL_METRICS.items():
                for metric in metrics:
                    base = {"data": data, "method": m.name, "method_title": m.title}
                    base |= {"protocol": protocol, "label": label, "metric": metric}
                    for v in result.values:
                        if (v.method, v.protocol, v.label, v.metric) == (m.name, protocol, label, metric):
                            rows.append(base | {"aggregate": v.aggregate, "seed": v.seed, "value": v.value})
                    mean, std = result.seed_stats(m.name, protocol, label, metric)
                    rows.append(base | {"aggregate": "seed_mean", "seed": None, "value": mean})
                    rows.append(base | {"aggregate": "seed_std", "seed": None, "value": std})
        if m.paper_auroc is not None:
            rows.append(
                {"data": PUBLISHED, "method": m.name, "method_title": m.title, "protocol": "paper"}
                | {"label": "sus", "metric": "auroc", "aggregate": "ensemble", "seed": None}
                | {"value": m.paper_auroc}
            )
    return rows


def csv_text(result: BenchResult) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(result):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def to_json(result: BenchResult) -> dict[str, Any]:
    """results.json: numbers with their names, and everything needed to reproduce them."""
    rows = csv_rows(result)
    return {
        "title": title(result),
        "data": {
            "dir": result.data_dir,
            "synthetic": result.synthetic,
            "kaggle_row_counts": result.is_kaggle_sized,
            "splits": {s: vars(info) for s, info in result.splits.items()},
        },
        "methods": [
            {
                "name": m.name,
                "title": m.title,
                "detector": m.target,
                "params": result.params.get(m.name, {}),
                "uses_validation": m.uses_validation,
                "published_paper_auroc_sus": m.paper_auroc,
            }
            for m in result.methods
        ],
        "seeds": list(result.seeds),
        "protocols": PROTOCOLS,
        "labels": list(result.labels),
        "std": STD_NOTE,
        "results": [row for row in rows if row["data"] != PUBLISHED],
        "published": [row for row in rows if row["data"] == PUBLISHED],
        "timings_seconds": {"stages": result.timings, "per_seed": result.member_timings},
        "n_jobs": result.n_jobs,
        "fit_warnings": result.fit_warnings,
        "versions": result.versions,
    }


def write_results(result: BenchResult, out_dir: str | Path) -> dict[str, Path]:
    """Write results.md, results.csv and results.json into `out_dir` (created if needed)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output path exists and is not a directory: {out}")
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "results.md", "csv": out / "results.csv", "json": out / "results.json"}
    paths["md"].write_text(markdown(result), encoding="utf-8")
    paths["csv"].write_text(csv_text(result), encoding="utf-8")
    paths["json"].write_text(json.dumps(to_json(result), indent=2) + "\n", encoding="utf-8")
    return paths


def _rich_table(caption: str, head: list[str], rows: list[list[str]]) -> Any:
    from rich.table import Table

    table = Table(title=caption, title_justify="left")
    for i, h in enumerate(head):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def terminal(result: BenchResult) -> Group:
    """The AUROC (both labels) and AUPRC tables as rich renderables, titled with what the data is.

    Compact headers: each table's title names its metric and label, each column its protocol.
    """
    from rich.console import Group
    from rich.text import Text

    n = len(result.seeds)
    parts: list[Any] = [Text(title(result), style="bold red" if result.synthetic else "bold")]
    for label in result.labels:
        published = label == "sus"
        _, rows = _auroc_rows(result, label, published)
        head = ["method", "paper: ensemble", f"paper: {n} seeds", "scores: ensemble", f"scores: {n} seeds"]
        if published:
            head.append("published (paper, BETH)")
        extra = " (the paper's Table 5)" if published else ""
        parts.append(_rich_table(f"AUROC, test label {label}{extra}", head, rows))
    _, rows = _auprc_rows(result)
    head = ["method"] + [f"{lb}: {kind}" for lb in result.labels for kind in ("ensemble", f"{n} seeds")]
    parts.append(
        _rich_table("AUPRC, scores protocol, test labels " + " and ".join(result.labels), head, rows)
    )
    caption = f"seeds {', '.join(map(str, result.seeds))}; {STD_NOTE}."
    if result.synthetic:
        caption += " The published column is on BETH, for reference only: this run is on synthetic data."
    parts.append(Text(caption, style="dim"))
    return Group(*parts)
