"""`beth sense process` for real (root): its files load with beth's loader, features compute on them,
and without what it needs it fails with one clear line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
import pytest

from beth import features
from beth.data.load import load
from beth.schema import PROCESS_COLUMNS
from cli_runner import BETH

pytestmark = pytest.mark.root
WORKLOAD = Path(__file__).parent / "workloads" / "ground_truth.py"


def _sense(out: Path, *extra: str, env: dict | None = None) -> tuple[dict, str]:
    """Run the CLI on a fresh workload (pid filter): the workload's truth and the CLI's stderr."""
    work = Path(tempfile.mkdtemp(prefix="beth-cli-test-"))
    work.chmod(0o777)
    wl = subprocess.Popen([sys.executable, str(WORKLOAD), "--dir", str(work), "--uid", "4243"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert wl.stdout is not None and wl.stdin is not None and wl.stdout.readline().strip() == "ready"
    cmd = [*BETH, "sense", "process", "--out", str(out), "--pid", str(wl.pid), "--duration", "60"]
    cmd += ["--stats", str(out) + ".stats.json", *extra]
    cli = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    assert cli.stderr is not None
    first = ""
    while "tracing" not in first:  # the sensor is attached once it says so
        line = cli.stderr.readline()
        assert line, first + cli.stderr.read()
        first += line
    wl.stdin.write("go\n")
    wl.stdin.flush()
    truth = json.loads(wl.stdout.readline())
    assert wl.wait(timeout=30) == 0
    cli.send_signal(2)  # Ctrl-C: stop, write what is buffered, exit 0
    rest = cli.stderr.read()
    assert cli.wait(timeout=30) == 0, rest
    return truth, first + rest


def test_csv_output_loads_and_features_compute(tmp_path: Path) -> None:
    out = tmp_path / "host.csv"
    _, stderr = _sense(out, "--host-name", "ip-10-0-0-1")
    text = out.read_text()
    assert text.splitlines()[0] == ",".join(PROCESS_COLUMNS)
    df = load(out)
    stats = json.loads((tmp_path / "host.csv.stats.json").read_text())
    assert df.height == stats["events"] > 0 and stats["lost"] == 0 and stats["kernel"]["sent"] == df.height
    assert f"wrote {df.height:,} events" in stderr
    assert set(df["hostName"]) == {"ip-10-0-0-1"} and set(df["userId"]) == {4243}
    execs = df.filter(pl.col("eventName") == "execve").sort("timestamp")
    assert execs.height == 6 and sorted(execs["returnValue"]) == [-2, 0, 0, 0, 0, 0]

    nested = load(out, parse_nested=True)
    argv = nested.filter((pl.col("eventName") == "execve") & (pl.col("returnValue") == 0))["args"]
    assert sorted(row[1]["items"][2] for row in argv.to_list()) == ["0", "1", "2", "3", "4"]

    X = features.to_matrix(features.encode(df))
    assert X.shape == (df.height, 7)
    assert set(X[:, 2]) == {1.0}  # userId 4243 >= 1000
    assert {int(v) for v in X[:, 4]} == set(df["eventId"])
    assert set(X[:, 6]) <= {0.0, 1.0, 2.0} and 2.0 in set(X[:, 6])  # some negative returns (ENOENT)


def test_parquet_and_jsonl_outputs(tmp_path: Path) -> None:
    pq_out = tmp_path / "host.parquet"
    _sense(pq_out, "--events", "proc,fs")
    df = load(pq_out)
    assert df.height > 0 and df.columns == list(PROCESS_COLUMNS)
    assert features.encode(df).height == df.height
    js_out = tmp_path / "host.jsonl"
    _sense(js_out, "--events", "openat")
    rows = [json.loads(line) for line in js_out.read_text().splitlines()]
    assert rows and {r["eventName"] for r in rows} == {"openat"} and list(rows[0]) == list(PROCESS_COLUMNS)


def _one_line_error(cmd: list[str], env: dict | None = None) -> tuple[int, str]:
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return res.returncode, lines[0]


def test_without_root_one_clear_line(tmp_path: Path) -> None:
    # The interpreter may sit where other users cannot read it (/root): load the CLI as root (running
    # its --help imports what a command needs), then drop to nobody and run the command.
    drop = "os.setgroups([]); os.setgid(65534); os.setuid(65534)"
    argv = ["sense", "process", "--out", str(tmp_path / "x.csv"), "--duration", "1"]
    code = (
        "import contextlib, io, os\nfrom beth.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['sense', 'process', '--help'])\n"
        f"{drop}\nmain({argv!r})\n"
    )
    rc, line = _one_line_error([sys.executable, "-c", code])
    assert rc == 3 and "needs root:" in line and "CAP_BPF" in line
    assert not (tmp_path / "x.csv").exists()


def test_root_without_capabilities_one_clear_line(tmp_path: Path) -> None:
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is part of every Debian system"
    drop = [setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--"]
    rc, line = _one_line_error([*drop, *BETH, "sense", "process", "--out", str(tmp_path / "x.csv")])
    assert rc == 3 and "needs root with its capabilities" in line and "CAP_BPF" in line


def test_missing_object_and_bad_events_one_clear_line(tmp_path: Path) -> None:
    env = {**os.environ, "BETH_BPF_OBJECT": str(tmp_path / "none.bpf.o")}
    rc, line = _one_line_error([*BETH, "sense", "process", "--out", str(tmp_path / "x.csv")], env)
    assert rc == 3 and "none.bpf.o" in line and "make bpf" in line
    rc, line = _one_line_error(
        [*BETH, "sense", "process", "--out", str(tmp_path / "x.csv"), "--events", "nope"]
    )
    assert rc == 2 and "unknown event or event set 'nope'" in line
    rc, line = _one_line_error([*BETH, "sense", "process", "--out", "-", "--format", "parquet"])
    assert rc == 2 and "Parquet" in line


def test_stdout_reader_going_away_ends_quietly() -> None:
    cmd = [*BETH, "sense", "process", "--out", "-", "--duration", "20", "--events", "openat,close"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith("timestamp,processId,")
    proc.stdout.close()  # like `| head -1`
    for _ in range(50):  # make sure there is something to write into the closed pipe
        os.close(os.open("/etc/hostname", os.O_RDONLY))
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 0, err
    assert "the output was closed" in err and "Traceback" not in err
