"""The record layout is written twice, in C (bpf/process.h) and in Python (beth.sensors.records):
check that the two agree, constant by constant and struct by struct."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from beth.sensors import records as d
from beth.sensors.kernel import object_path

BPF_DIR = Path(d.__file__).parent / "bpf"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _defines() -> dict[str, int]:
    text = (BPF_DIR / "process.h").read_text()
    out = {}
    for name, value in re.findall(r"^#define (\w+) (\(?[0-9A-Fa-fx<>\s*+-]+\)?)\s*(?:/\*.*)?$", text, re.M):
        out[name] = int(eval(value, {}))  # integer expressions only (matched above)
    for name, expr in re.findall(r"^#define (\w+) \(([A-Z_ \-0-9*+]+)\)", text, re.M):
        out[name] = int(eval(expr, {}, out))
    return out


def test_every_shared_constant_agrees() -> None:
    defines = _defines()
    shared = [name for name in defines if hasattr(d, name)]
    assert set(defines) - set(shared) == {"MAX_PATH_DEPTH"}  # the only kernel-side-only constant
    for name in shared:
        assert getattr(d, name) == defines[name], name
    assert defines["REC_HDR"] == d.HEADER.size
    assert defines["PAYLOAD_MAX"] == defines["REC_MAX"] - d.HEADER.size - 8 * d.MAX_STACK - 8


def test_struct_sizes_in_the_built_object() -> None:
    obj = object_path()
    bpftool = shutil.which("bpftool") or ("/usr/sbin/bpftool" if Path("/usr/sbin/bpftool").exists() else None)
    if not obj.is_file() or bpftool is None:
        if IN_CI:
            pytest.fail(f"{obj} or bpftool missing (CI builds it with make bpf)")
        pytest.skip("the eBPF object is not built here (make bpf)")
    raw = subprocess.run([bpftool, "btf", "dump", "file", str(obj), "format", "raw"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    sizes = dict(re.findall(r"STRUCT '(\w+)' size=(\d+)", raw))
    assert int(sizes["config"]) == d.CONFIG.size
    assert int(sizes["sc_cfg"]) == d.SC_CFG.size
    assert int(sizes["rec"]) == d.REC_HDR + (d.REC_MAX - d.REC_HDR)
