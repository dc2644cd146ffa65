"""A small ctypes binding over Debian's libbpf.so.1: open, configure, load and attach a CO-RE object.

Only what the process sensor needs. Every failure becomes a `SensorError` that says what is
missing; the verifier's log is kept (the last lines go into the error, all of it to stderr when
BETH_BPF_VERBOSE=1) because a rejected program is otherwise impossible to diagnose.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

from beth.errors import SensorError

_c = ctypes
_VERBOSE = os.environ.get("BETH_BPF_VERBOSE", "") not in ("", "0")

#: The last lines libbpf printed (warnings and the verifier log of a failed load).
_log: collections.deque[str] = collections.deque(maxlen=400)

_PRINT_FN = _c.CFUNCTYPE(_c.c_int, _c.c_int, _c.c_char_p, _c.c_void_p)
_lib: _c.CDLL | None = None
_print_cb = None  # kept referenced: libbpf calls it for as long as the process lives


def _declare(lib: _c.CDLL) -> None:
    vp, cp, i, u32, u64, sz = _c.c_void_p, _c.c_char_p, _c.c_int, _c.c_uint32, _c.c_uint64, _c.c_size_t
    sigs = {
        "bpf_object__open_file": (vp, [cp, vp]),
        "bpf_object__load": (i, [vp]),
        "bpf_object__close": (None, [vp]),
        "bpf_object__next_map": (vp, [vp, vp]),
        "bpf_object__find_map_by_name": (vp, [vp, cp]),
        "bpf_object__find_program_by_name": (vp, [vp, cp]),
        "bpf_map__name": (cp, [vp]),
        "bpf_map__fd": (i, [vp]),
        "bpf_map__set_max_entries": (i, [vp, u32]),
        "bpf_map__initial_value": (vp, [vp, _c.POINTER(sz)]),
        "bpf_program__set_autoload": (i, [vp, _c.c_bool]),
        "bpf_program__attach": (vp, [vp]),
        "bpf_link__destroy": (i, [vp]),
        "bpf_map_update_elem": (i, [i, vp, vp, u64]),
        "bpf_map_lookup_elem": (i, [i, vp, vp]),
        "libbpf_num_possible_cpus": (i, []),
        "libbpf_set_print": (vp, [_PRINT_FN]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes


def lib() -> _c.CDLL:
    """libbpf.so.1, loaded once, with its messages captured."""
    global _lib, _print_cb
    if _lib is not None:
        return _lib
    try:
        handle = _c.CDLL("libbpf.so.1", use_errno=True)
    except OSError as exc:
        raise SensorError(
            f"cannot load libbpf.so.1 ({exc}): install the Debian package libbpf1 (apt install libbpf1)"
        ) from None
    _declare(handle)
    libc = _c.CDLL(ctypes.util.find_library("c"), use_errno=True)
    vsnprintf = libc.vsnprintf
    vsnprintf.restype, vsnprintf.argtypes = _c.c_int, [_c.c_char_p, _c.c_size_t, _c.c_char_p, _c.c_void_p]

    def on_print(level: int, fmt: bytes, args: int) -> int:
        # x86_64 va_list: a 24-byte struct passed by pointer; va_copy is a plain copy of it.
        saved = _c.create_string_buffer(_c.string_at(args, 24), 24)
        need = vsnprintf(None, 0, fmt, args)
        buf = _c.create_string_buffer(max(need, 0) + 1)
        vsnprintf(buf, len(buf), fmt, _c.addressof(saved))
        text = buf.value.decode("utf-8", "replace")
        _log.extend(line for line in text.splitlines() if line.strip())
        if _VERBOSE:
            sys.stderr.write(text)
        return 0

    _print_cb = _PRINT_FN(on_print)
    handle.libbpf_set_print(_print_cb)
    _lib = handle
    return handle


def _errno_error(what: str, code: int) -> SensorError:
    code = abs(code)
    reason = os.strerror(code) if code else "unknown error"
    hint = ""
    if code in (1, 13) and os.geteuid() != 0:  # EPERM, EACCES
        hint = ": the process sensor needs root (or CAP_BPF + CAP_PERFMON)"
    return SensorError(f"{what} failed: {reason}{hint}")


def verifier_tail(lines: int = 3) -> str:
    """The last meaningful lines libbpf logged, joined into one line."""
    picked = [s.strip() for s in _log if not s.lstrip().startswith(("libbpf: prog", "-- END"))]
    return " | ".join(picked[-lines:])


def num_possible_cpus() -> int:
    n = lib().libbpf_num_possible_cpus()
    if n <= 0:
        raise _errno_error("counting the possible CPUs", n)
    return n


def map_update(fd: int, key: bytes, value: bytes) -> None:
    rc = lib().bpf_map_update_elem(fd, key, value, 0)
    if rc < 0:
        raise _errno_error("updating a BPF map", _c.get_errno() or rc)


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    """The value under `key` (value_size bytes; for per-CPU maps: 8-aligned size x possible CPUs)."""
    out = _c.create_string_buffer(value_size)
    rc = lib().bpf_map_lookup_elem(fd, key, out)
    if rc < 0:
        if _c.get_errno() == 2:  # ENOENT
            return None
        raise _errno_error("reading a BPF map", _c.get_errno() or rc)
    return out.raw


class BpfObject:
    """One opened CO-RE object file: configure its maps and programs, load, attach, close."""

    def __init__(self, path: str | Path) -> None:
        self._lib = lib()
        self._links: list[int] = []
        self.path = Path(path)
        _c.set_errno(0)
        obj = self._lib.bpf_object__open_file(str(self.path).encode(), None)
        if not obj:
            raise SensorError(
                f"cannot open the eBPF object {self.path}: {os.strerror(_c.get_errno() or 22)} "
                f"({verifier_tail(1)})"
            )
        self._obj: int | None = obj

    # -- before load ---------------------------------------------------------------------------

    def _map(self, name: str) -> int:
        assert self._obj is not None
        m = self._lib.bpf_object__find_map_by_name(self._obj, name.encode())
        if not m:
            raise SensorError(f"the eBPF object {self.path} has no map {name!r}: rebuild it with `make bpf`")
        return m

    def _program(self, name: str) -> int:
        assert self._obj is not None
        p = self._lib.bpf_object__find_program_by_name(self._obj, name.encode())
        if not p:
            raise SensorError(
                f"the eBPF object {self.path} has no program {name!r}: rebuild it with `make bpf`"
            )
        return p

    def set_rodata(self, data: bytes) -> None:
        """Write the object's read-only globals (`const volatile`), which must be exactly `data` long."""
        assert self._obj is not None
        m = self._lib.bpf_object__next_map(self._obj, None)
        while m:
            if self._lib.bpf_map__name(m).endswith(b".rodata"):
                size = _c.c_size_t()
                ptr = self._lib.bpf_map__initial_value(m, _c.byref(size))
                if not ptr or size.value != len(data):
                    raise SensorError(
                        f"the eBPF object {self.path} does not match this beth version "
                        f"(.rodata is {size.value} bytes, expected {len(data)}): rebuild it with `make bpf`"
                    )
                _c.memmove(ptr, data, len(data))
                return
            m = self._lib.bpf_object__next_map(self._obj, m)
        raise SensorError(f"the eBPF object {self.path} has no .rodata: rebuild it with `make bpf`")

    def set_max_entries(self, map_name: str, n: int) -> None:
        rc = self._lib.bpf_map__set_max_entries(self._map(map_name), n)
        if rc < 0:
            raise _errno_error(f"sizing the BPF map {map_name!r}", rc)

    def set_autoload(self, program: str, on: bool) -> None:
        rc = self._lib.bpf_program__set_autoload(self._program(program), on)
        if rc < 0:
            raise _errno_error(f"selecting the BPF program {program!r}", rc)

    def load(self) -> None:
        """Load every autoload program into the kernel (the verifier runs here)."""
        assert self._obj is not None
        _log.clear()
        rc = self._lib.bpf_object__load(self._obj)
        if rc < 0:
            err = _errno_error("loading the eBPF programs", rc)
            tail = verifier_tail()
            more = "" if _VERBOSE else " (set BETH_BPF_VERBOSE=1 for the full verifier log)"
            raise SensorError(f"{err.message}{': ' + tail if tail else ''}{more}")

    # -- after load ----------------------------------------------------------------------------

    def map_fd(self, name: str) -> int:
        fd = self._lib.bpf_map__fd(self._map(name))
        if fd < 0:
            raise _errno_error(f"getting the BPF map {name!r}", fd)
        return fd

    def attach(self, program: str) -> None:
        """Attach one loaded program to the tracepoint named by its section."""
        _c.set_errno(0)
        link = self._lib.bpf_program__attach(self._program(program))
        if not link:
            raise _errno_error(f"attaching {program!r} to its tracepoint", _c.get_errno() or 22)
        self._links.append(link)

    def close(self) -> None:
        """Detach everything and free the object (idempotent)."""
        while self._links:
            self._lib.bpf_link__destroy(self._links.pop())
        if self._obj is not None:
            self._lib.bpf_object__close(self._obj)
            self._obj = None

    def __del__(self) -> None:
        if getattr(self, "_obj", None) is not None:
            self.close()
