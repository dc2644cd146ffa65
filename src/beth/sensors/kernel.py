"""What the running kernel and this process offer the process sensor, checked before loading.

Privileges (effective capabilities), BTF, the built CO-RE object (and that it is not older than its
source), which BTF tracepoints exist, and where in kernel text the capability checks made without
auditing come from (/proc/kallsyms). Each check fails with a `SensorError` saying what is missing.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

from beth.errors import SensorError
from beth.sensors.records import MAX_NOAUDIT

#: Where `make bpf` puts the object (next to its source, inside the package); BETH_BPF_OBJECT overrides.
OBJECT_NAME = "process.bpf.o"
_CAP_BPF, _CAP_PERFMON, _CAP_SYS_ADMIN = 39, 38, 21


#: Kernel functions that check a capability with CAP_OPT_NOAUDIT; Tracee's cap_capable skipped those checks.
#: cap_vm_enough_memory is usually inlined into security_vm_enough_memory_mm (every writable mmap).
NOAUDIT_FUNCTIONS = ("security_vm_enough_memory_mm", "cap_vm_enough_memory", "has_ns_capability_noaudit",
                     "has_capability_noaudit", "ns_capable_noaudit")  # fmt: skip


def noaudit_ranges(kallsyms: str = "/proc/kallsyms") -> list[tuple[int, int]]:
    """Kernel text ranges [start, end) of NOAUDIT_FUNCTIONS (and their .cold parts); [] when the
    kernel hides its addresses (kptr_restrict) or has none of them. A function ends where the next
    symbol at a higher address starts (kallsyms lists the core kernel in address order)."""
    try:
        text = Path(kallsyms).read_text()
    except OSError:
        return []
    names = "|".join(NOAUDIT_FUNCTIONS)
    ranges = []
    for m in re.finditer(rf"^([0-9a-f]+) [tT] (?:{names})(?:\.\w+)?$", text, re.M):
        start = int(m.group(1), 16)
        if not start:
            return []  # addresses hidden
        end = start + 4096
        for line in text[m.end() + 1 : m.end() + 4096].splitlines():
            addr = int(line.split(" ", 1)[0], 16)
            if addr > start:
                end = addr
                break
        ranges.append((start, end))
    return sorted(set(ranges))[:MAX_NOAUDIT]


def object_path() -> Path:
    """The CO-RE object to load: $BETH_BPF_OBJECT, else the one `make bpf` builds inside the package."""
    override = os.environ.get("BETH_BPF_OBJECT")
    if override:
        return Path(override)
    return Path(str(resources.files("beth.sensors").joinpath("bpf", OBJECT_NAME)))


def check_object(path: Path) -> None:
    if not path.is_file():
        raise SensorError(
            f"the eBPF object {path} is missing: build it with `make bpf` in the beth source tree "
            "(needs clang, llvm, libbpf-dev and bpftool)"
        )
    source = path.with_name("process.bpf.c")
    newest = max((p.stat().st_mtime for p in (source, path.with_name("process.h")) if p.is_file()), default=0)
    if newest > path.stat().st_mtime:
        raise SensorError(f"the eBPF object {path} is older than its source: rebuild it with `make bpf`")


def check_privileges() -> None:
    """Effective capabilities, not the uid, decide (root in a container may lack them)."""
    caps = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                caps = int(line.split()[1], 16)
    except OSError:
        pass
    if caps is None:  # no /proc: let the kernel decide
        return
    if caps >> _CAP_SYS_ADMIN & 1 or (caps >> _CAP_BPF & 1 and caps >> _CAP_PERFMON & 1):
        return
    who = "root" if os.geteuid() else "root with its capabilities"
    raise SensorError(
        f"the process sensor needs {who}: loading eBPF programs takes CAP_BPF and CAP_PERFMON "
        "(or CAP_SYS_ADMIN); run it as root, e.g. with sudo"
    )


def check_kernel() -> None:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        raise SensorError(
            "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing): the process sensor needs a "
            "kernel built with CONFIG_DEBUG_INFO_BTF=y"
        )


def has_tracepoint(name: str, btf: str = "/sys/kernel/btf/vmlinux") -> bool:
    """Whether the running kernel has the BTF tracepoint `name` (its `btf_trace_<name>` type)."""
    try:
        return b"\0btf_trace_" + name.encode() + b"\0" in Path(btf).read_bytes()
    except OSError:
        return False


def host_mount_namespace(candidates: tuple[str, ...] = ("/proc/1/ns/mnt", "/proc/self/ns/mnt")) -> int:
    """Inode of the host's initial mount namespace, the reference for the mountNamespace feature of
    live events (kernels number it differently: 4026531840 on BETH's hosts, 4026531832 on 6.18).

    init's namespace when it can be read; otherwise this process's own (the sensor runs on the host,
    and some sandboxes refuse to show pid 1's namespaces even to root).
    """
    for path in candidates:
        try:
            link = os.readlink(path)  # "mnt:[4026531832]"
        except OSError:
            continue
        return int(link[link.index("[") + 1 : link.rindex("]")])
    raise SensorError(f"cannot read the host's mount namespace from {' or '.join(candidates)}")
