"""What a set of BETH files holds: rows per host and the sus/evil breakdown (the paper's label table).

Pure functions over loaded tables; `beth info` renders them.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from beth.data.load import BethFile, LoadReport, read_file
from beth.errors import DataError

#: The (sus, evil) combinations of the paper's label table, in its order.
LABEL_ROWS: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (1, 1))


@dataclass(frozen=True)
class FileSummary:
    """Counts of one file: rows, rows per host (sensor for DNS), rows per (sus, evil)."""

    file: BethFile
    rows: int
    hosts: dict[str, int]
    labels: dict[tuple[int, int], int]

    @property
    def name(self) -> str:
        return self.file.split or self.file.path.name


def summarise(bf: BethFile, *, on_bad_rows: str = "error", report: LoadReport | None = None) -> FileSummary:
    """Read (and so validate) every column of the file; count hosts and labels."""
    host = "hostName" if bf.kind.is_process else "SensorId"
    df = read_file(bf, on_bad_rows=on_bad_rows, report=report)  # type: ignore[arg-type]
    hosts = dict(df.group_by(host).len().sort("len", descending=True).iter_rows())
    labels = {(int(s), int(e)): int(n) for s, e, n in df.group_by("sus", "evil").len().iter_rows()}
    for bad in [k for k in labels if k not in LABEL_ROWS]:
        raise DataError(f"label combination sus={bad[0]} evil={bad[1]} is not a BETH label", path=bf.path)
    return FileSummary(bf, df.height, hosts, labels)


def label_table(summaries: list[FileSummary]) -> pl.DataFrame:
    """One row per file (its split name when it is a split file): rows per sus/evil combination, total."""
    rows = []
    for s in summaries:
        row: dict[str, object] = {"file": s.name}
        row.update({f"sus={a} evil={b}": s.labels.get((a, b), 0) for a, b in LABEL_ROWS})
        row["total"] = s.rows
        rows.append(row)
    return pl.DataFrame(rows)


def host_table(summaries: list[FileSummary]) -> pl.DataFrame:
    """One row per (file, host): rows and share of the file."""
    rows = [
        {"file": s.name, "host": host, "rows": n, "share": n / s.rows if s.rows else 0.0}
        for s in summaries
        for host, n in s.hosts.items()
    ]
    return pl.DataFrame(
        rows, schema={"file": pl.String, "host": pl.String, "rows": pl.Int64, "share": pl.Float64}
    )
