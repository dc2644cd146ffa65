"""The loader on the real BETH sample rows, on broken files, and on random bytes."""

from __future__ import annotations

import contextlib
import csv
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beth.data.load import LoadReport, discover, find_splits, load
from beth.data.write import write_table
from beth.errors import BethError, DataError, UsageError
from beth.schema import PROCESS_COLUMNS, FileKind


def arg(name: str, type_: str, value: object) -> dict:
    """A parsed argument as the nested `args` column holds it (see schema.ARG_DTYPE)."""
    if isinstance(value, list):
        return {"name": name, "type": type_, "kind": "list", "value": None, "items": value}
    kind = "int" if isinstance(value, int) else "str"
    return {"name": name, "type": type_, "kind": kind, "value": str(value), "items": None}


# --- every sample file, whole rows ------------------------------------------------------------------

# Hand-checked against the raw CSV text of each file (line numbers are physical lines).
TRAINING_LINE_2 = {
    "timestamp": 1809.495787, "processId": 381, "threadId": 7337, "parentProcessId": 1, "userId": 100,
    "mountNamespace": 4026532231, "processName": "close", "hostName": "ip-10-100-1-120", "eventId": 157,
    "eventName": "prctl", "stackAddresses": [140662171848350, 11649800180280676], "argsNum": 5,
    "returnValue": 0,
    "args": [
        arg("option", "int", "PR_SET_NAME"),
        arg("arg2", "unsigned long", 94819493392601),
        arg("arg3", "unsigned long", 94819493392601),
        arg("arg4", "unsigned long", 140662171848350),
        arg("arg5", "unsigned long", 140662156379904),
    ],
    "sus": 1, "evil": 0,
}  # fmt: skip

TESTING_LINE_70 = {
    "timestamp": 132.477749, "processId": 1407, "threadId": 1407, "parentProcessId": 1326, "userId": 1000,
    "mountNamespace": 4026531840, "processName": "sshd", "hostName": "ip-10-100-1-217", "eventId": 1006,
    "eventName": "security_inode_unlink", "stackAddresses": [140188055678523, 94544970612048], "argsNum": 1,
    "returnValue": 0, "args": [arg("pathname", "const char*", "/tmp/ssh-ITim7SZsmg/agent.1407")],
    "sus": 1, "evil": 1,
}  # fmt: skip

TESTING_LINE_74 = {
    "timestamp": 132.482177, "processId": 1326, "threadId": 1326, "parentProcessId": 1, "userId": 0,
    "mountNamespace": 4026531840, "processName": "sshd", "hostName": "ip-10-100-1-217", "eventId": 114,
    "eventName": "setregid", "stackAddresses": [], "argsNum": 2, "returnValue": 0,
    "args": [arg("rgid", "gid_t", -1), arg("egid", "gid_t", 1000)], "sus": 1, "evil": 0,
}  # fmt: skip

TESTING_LINE_14 = {  # a stack address above 2^62: must stay exact (uint64)
    "timestamp": 129.052418, "processId": 382, "threadId": 382, "parentProcessId": 1, "userId": 101,
    "mountNamespace": 4026532232, "processName": "systemd-resolve", "hostName": "ip-10-100-1-217",
    "eventId": 1005, "eventName": "security_file_open",
    "stackAddresses": [140159195545259, 8387231030874826100],
    "argsNum": 4, "returnValue": 0,
    "args": [
        arg("pathname", "const char*", "/run/systemd/netif/links/5"),
        arg("flags", "int", "O_RDONLY|O_LARGEFILE"),
        arg("dev", "dev_t", 25),
        arg("inode", "unsigned long", 521),
    ],
    "sus": 0, "evil": 0,
}  # fmt: skip

HOST4_LINE_2 = {
    "timestamp": 131.874057, "processId": 382, "threadId": None, "parentProcessId": 1, "userId": 101,
    "mountNamespace": None, "processName": "systemd-resolve", "hostName": "ip-10-100-1-4", "eventId": 1005,
    "eventName": "security_file_open", "stackAddresses": None, "argsNum": 4, "returnValue": 0,
    "args": [
        arg("pathname", "const char*", "/run/systemd/netif/links/5"),
        arg("flags", "unsigned int", "O_RDONLY|O_LARGEFILE"),
        arg("dev", "dev_t", 25),
        arg("inode", "unsigned long", 528),
    ],
    "sus": 0, "evil": 0,
}  # fmt: skip

DNS_EVIL = {
    "Timestamp": datetime(2021, 5, 16, 21, 8, 29, tzinfo=UTC), "SourceIP": "10.100.0.2",
    "DestinationIP": "10.100.1.105", "DnsQuery": "pool.hashvault.pro",
    "DnsAnswer": ["131.153.142.106", "131.153.56.98"], "DnsAnswerTTL": ["300", "300"],
    "DnsQueryNames": "pool.hashvault.pro", "DnsQueryClass": ["IN"], "DnsQueryType": ["A"],
    "NumberOfAnswers": 2, "DnsResponseCode": 0, "DnsOpCode": 0, "SensorId": "ip-10-100-1-105",
    "sus": 1, "evil": 1,
}  # fmt: skip

DNS_LINE_2 = {  # a query: no answers, empty list fields
    "Timestamp": datetime(2021, 5, 16, 17, 13, 14, tzinfo=UTC), "SourceIP": "10.100.1.95",
    "DestinationIP": "10.100.0.2", "DnsQuery": "ssm.us-east-2.amazonaws.com", "DnsAnswer": [],
    "DnsAnswerTTL": [], "DnsQueryNames": "ssm.us-east-2.amazonaws.com", "DnsQueryClass": ["IN"],
    "DnsQueryType": ["A"], "NumberOfAnswers": 0, "DnsResponseCode": 0, "DnsOpCode": 0,
    "SensorId": "ip-10-100-1-95", "sus": 0, "evil": 0,
}  # fmt: skip


def _row(df: pl.DataFrame, line: int) -> dict:
    """The row of a file that starts on physical `line` (no sample has multi-line fields)."""
    return df.row(line - 2, named=True)


@pytest.mark.parametrize(
    ("name", "line", "expected"),
    [
        ("labelled_training_data.head100.csv", 2, TRAINING_LINE_2),
        ("labelled_testing_data.head100.csv", 70, TESTING_LINE_70),
        ("labelled_testing_data.head100.csv", 74, TESTING_LINE_74),
        ("labelled_testing_data.head100.csv", 14, TESTING_LINE_14),
        ("labelled_2021may-ip-10-100-1-4.head100.csv", 2, HOST4_LINE_2),
        ("dns-evil-row.csv", 2, DNS_EVIL),
        ("labelled_2021may-dns.head100.csv", 2, DNS_LINE_2),
    ],
)
def test_whole_rows_parse_exactly(samples: Path, name: str, line: int, expected: dict) -> None:
    df = load(samples / name, parse_nested=True)
    assert _row(df, line) == expected


def test_execve_argv_is_a_list(samples: Path) -> None:
    df = load(samples / "labelled_training_data.head100.csv", parse_nested=True)
    execs = df.filter(pl.col("eventName") == "execve")
    assert execs.height > 0
    first = execs.row(0, named=True)["args"]
    assert first == [
        arg("pathname", "const char*", "/bin/run-parts"),
        arg("argv", "const char*const*", ["run-parts", "--report", "/etc/cron.hourly"]),
    ]


@pytest.mark.parametrize("path", sorted((Path(__file__).parent / "beth-samples").glob("*.csv")), ids=str)
def test_every_sample_file_loads_completely(path: Path) -> None:
    with path.open(newline="") as fh:
        raw = list(csv.reader(fh))
    report = LoadReport()
    df = load(path, parse_nested=True, report=report)
    assert df.height == len(raw) - 1 == report.rows[str(path)]
    assert not report.skipped
    kind = discover(path)[0].kind
    if kind.is_process:
        assert df.columns == list(PROCESS_COLUMNS)
        # argsNum == len(args) in every published check; it must survive parsing.
        assert (df.get_column("args").list.len() == df.get_column("argsNum")).all()
        # Raw text of every field equals what the parser returns, re-written the BETH way.
        header = raw[0]
        for i, fields in enumerate(raw[1:]):
            row = df.row(i, named=True)
            text = dict(zip(header, fields, strict=True))
            assert repr(round(row["timestamp"], 6)) == text["timestamp"]
            assert str(row["returnValue"]) == text["returnValue"]
            if "stackAddresses" in text:
                assert repr(row["stackAddresses"]) == text["stackAddresses"]
            assert len(row["args"]) == text["args"].count("'name':")
    else:
        assert df.get_column("NumberOfAnswers").to_list() == df.get_column("DnsAnswer").list.len().to_list()


def test_host_files_have_null_missing_columns(samples: Path) -> None:
    df = load(samples / "labelled_2021may-ubuntu.head100.csv")
    for col in ("threadId", "mountNamespace", "stackAddresses"):
        assert df.get_column(col).null_count() == df.height


def test_directory_and_list_inputs(samples: Path) -> None:
    splits = [samples / f"labelled_{s}_data.head100.csv" for s in ("training", "validation", "testing")]
    both = load(splits)
    assert both.height == 300
    with pytest.raises(UsageError, match="process and DNS"):
        load(samples)  # the directory mixes process and DNS files


def test_columns_projection(samples: Path) -> None:
    df = load(samples / "labelled_training_data.head100.csv", columns=["eventId", "sus"])
    assert df.columns == ["eventId", "sus"]
    with pytest.raises(UsageError, match="unknown column"):
        load(samples / "labelled_training_data.head100.csv", columns=["nope"])


def test_find_splits(samples: Path, tmp_path: Path) -> None:
    for split in ("training", "validation"):
        (tmp_path / f"labelled_{split}_data.csv").write_bytes(
            (samples / f"labelled_{split}_data.head100.csv").read_bytes()
        )
    with pytest.raises(DataError, match=r"missing split file\(s\): labelled_testing_data.csv"):
        find_splits(tmp_path)
    test = (samples / "labelled_testing_data.head100.csv").read_bytes()
    (tmp_path / "labelled_testing_data.csv").write_bytes(test)
    assert list(find_splits(tmp_path)) == ["training", "validation", "testing"]


def test_large_uint64_stack_address(tmp_path: Path, samples: Path) -> None:
    lines = (samples / "labelled_validation_data.head100.csv").read_text().splitlines()
    row = lines[1].replace("[139913106282763", "[18446744073709551615", 1)
    assert row != lines[1]
    path = tmp_path / "big.csv"
    path.write_text("\n".join([lines[0], row]) + "\n")
    df = load(path, parse_nested=True)
    assert df.get_column("stackAddresses")[0][0] == 2**64 - 1


def test_parquet_round_trip(tmp_path: Path, samples: Path) -> None:
    src = samples / "labelled_testing_data.head100.csv"
    raw = load(src)
    out = write_table(raw, tmp_path / "t.parquet", FileKind.PROCESS, synthetic=True, note="test")
    info = discover(out)[0]
    assert (info.format, info.synthetic, info.note) == ("parquet", True, "test")
    assert load(out).equals(raw)
    assert load(out, parse_nested=True).equals(load(src, parse_nested=True))


def test_csv_written_by_beth_is_byte_identical(tmp_path: Path, samples: Path) -> None:
    for name in ("labelled_training_data.head100.csv", "labelled_2021may-dns.head100.csv"):
        src = samples / name
        kind = discover(src)[0].kind
        out = write_table(load(src), tmp_path / name, kind)
        assert out.read_bytes() == src.read_bytes()


# --- bad input: one clear error naming file, line and column ------------------------------------------


def _copy_with(samples: Path, tmp_path: Path, line: int, edit) -> Path:
    lines = (samples / "labelled_training_data.head100.csv").read_text().splitlines(keepends=True)
    lines[line - 1] = edit(lines[line - 1])
    path = tmp_path / "bad.csv"
    path.write_text("".join(lines))
    return path


def test_truncated_row(samples: Path, tmp_path: Path) -> None:
    path = _copy_with(samples, tmp_path, 7, lambda s: ",".join(s.split(",")[:5]) + "\n")
    with pytest.raises(DataError) as err:
        load(path)
    assert str(err.value) == f"{path}, line 7: expected 16 fields, found 5 (truncated row?)"


def test_truncated_last_line_mid_quote(samples: Path, tmp_path: Path) -> None:
    text = (samples / "labelled_training_data.head100.csv").read_text()
    path = tmp_path / "cut.csv"
    path.write_text(text[: text.index("[{'name': 'fd'", 2000) + 5])
    with pytest.raises(DataError, match=r"line \d+"):
        load(path)


def test_non_numeric_process_id(samples: Path, tmp_path: Path) -> None:
    path = _copy_with(samples, tmp_path, 5, lambda s: s.replace(",", ",abc", 1).replace(",abc", ",x", 1))
    with pytest.raises(DataError) as err:
        load(path)
    assert err.value.line == 5 and err.value.column == "2 (processId)"
    assert "not an integer: 'x" in str(err.value)


def test_broken_args_literal(samples: Path, tmp_path: Path) -> None:
    path = _copy_with(samples, tmp_path, 9, lambda s: s.replace("'name'", "'name", 1))
    assert load(path).height == 100  # raw text loads; the literal is only checked when parsed
    with pytest.raises(DataError) as err:
        load(path, parse_nested=True)
    assert (err.value.line, err.value.column) == (9, "14 (args)")
    assert "malformed args" in str(err.value)


def test_unknown_header(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("timestamp,pid,threadId\n1,2,3\n")
    with pytest.raises(DataError) as err:
        load(path)
    assert err.value.line == 1
    assert "column 2 is 'pid'" in str(err.value)


def test_empty_file_and_missing_path(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="empty file"):
        load(empty)
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "nope.csv")


def test_skip_mode_counts_each_bad_row(samples: Path, tmp_path: Path) -> None:
    lines = (samples / "labelled_training_data.head100.csv").read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace(",", ",x", 1)  # line 4: bad timestamp... processId
    lines[10] = ",".join(lines[10].split(",")[:3]) + "\n"  # line 11: truncated
    path = tmp_path / "bad.csv"
    path.write_text("".join(lines))
    report = LoadReport()
    df = load(path, on_bad_rows="skip", report=report)
    assert df.height == 98
    assert [(b.line, b.column) for b in report.skipped] == [(4, "2 (processId)"), (11, None)]
    assert report.rows[str(path)] == 98


def test_skip_mode_for_nested_fields(samples: Path, tmp_path: Path) -> None:
    path = _copy_with(samples, tmp_path, 9, lambda s: s.replace("'name'", "'name", 1))
    report = LoadReport()
    df = load(path, parse_nested=True, on_bad_rows="skip", report=report)
    assert df.height == 99
    assert [b.line for b in report.skipped] == [9]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=400),
    header=st.sampled_from([b"", b"timestamp,processId\n", ",".join(PROCESS_COLUMNS).encode() + b"\n"]),
    nested=st.booleans(),
    skip=st.booleans(),
)
def test_random_bytes_never_crash(
    tmp_path: Path, body: bytes, header: bytes, nested: bool, skip: bool
) -> None:
    path = tmp_path / "random.csv"
    path.write_bytes(header + body)
    with contextlib.suppress(BethError):
        load(path, parse_nested=nested, on_bad_rows="skip" if skip else "error")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_real_rows_never_crash(tmp_path: Path, samples: Path, data: st.DataObject) -> None:
    raw = (samples / "labelled_testing_data.head100.csv").read_bytes()[:3000]
    pos = data.draw(st.integers(0, len(raw) - 1))
    junk = data.draw(st.binary(min_size=1, max_size=8))
    path = tmp_path / "mutated.csv"
    path.write_bytes(raw[:pos] + junk + raw[pos + 1 :])
    with contextlib.suppress(BethError):
        load(path, parse_nested=True, on_bad_rows=data.draw(st.sampled_from(["error", "skip"])))
