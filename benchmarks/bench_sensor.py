"""Process sensor (issue 5): capture rate without loss, the loss curve beyond it, and per-syscall overhead.

Needs root (it loads the eBPF programs). A load generator process runs paced syscall loops: by default
bench_sensor_load.c, compiled here with cc/clang (a Python generator, bench_sensor_load.py, saturates
its own core near 170k events/s, below where the sensor starts losing). The sensor in this process
follows it with a pid filter and decodes every event into a ProcessEvent (the full Python API path:
ring buffer -> records -> events). Everything is measured in the same run, against a baseline from
the same run:

  capture  openat+close of a file = 3 events per iteration (openat, close, security_file_open), offered
           at increasing rates: delivered, lost (the kernel's per-CPU counter), consumer CPU. An offered
           rate counts as lossless when lost == 0 and delivered == 3 x iterations, exactly.
  csv      the capture sweep again, also writing every event as a BETH CSV row (`beth sense process`)
  storm    fork + exec /bin/true at increasing rates, Tracee's default event set: events/s, lost, and
           execve events == execs, exactly.
  overhead the same unpaced loops untraced; with the sensor attached but tracing other events (the
           cost every syscall pays while the sensor runs); traced into a ring read afterwards (the
           kernel-side cost); traced with the reader decoding alongside (on 2 cores it competes with
           the traced program); plus the kernel's own count of time spent in the BPF programs.

--pin puts the generator on CPU 1 and this process on CPU 0 (one core each on 2 cores); on a machine
shared with other work, leaving placement to the scheduler loses less.

    sudo .venv/bin/python benchmarks/bench_sensor.py [--seconds 4] [--repeat 3] [--generator c|python]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from beth.data.write import EventWriter
from beth.schema import FileKind
from beth.sensors.process import ProcessSensor

HERE = Path(__file__).resolve().parent
LOAD = HERE / "bench_sensor_load.py"
OPEN_EVENTS = ["openat", "close", "security_file_open"]
#: offered events/s for the capture sweep (3 events per generator iteration); 0 = unpaced
CAPTURE_RATES = (30_000, 60_000, 90_000, 120_000, 150_000, 180_000, 210_000, 240_000, 300_000, 0)
STORM_RATES = (100, 250, 500, 1000, 0)  # execs/s
CSV_RATES = (30_000, 60_000, 90_000, 120_000, 150_000, 0)
RING_BYTES = 64 << 20
#: the generator's command prefix (set in main: the compiled C generator, or Python + bench_sensor_load.py)
GENERATOR: list[str] = [sys.executable, str(LOAD)]


def build_c_generator(workdir: Path) -> list[str] | None:
    """Compile bench_sensor_load.c; None when there is no C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    exe = workdir / "bench_sensor_load"
    subprocess.run([cc, "-O2", "-o", str(exe), str(HERE / "bench_sensor_load.c")], check=True)
    return [str(exe)]


def _generator(args: list[str], pin: bool) -> subprocess.Popen[str]:
    gen = subprocess.Popen([*GENERATOR, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    os.setpriority(os.PRIO_PROCESS, gen.pid, 0)  # the load always runs at normal priority
    if pin and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(gen.pid, {1})
    assert gen.stdout is not None and gen.stdout.readline().strip() == "ready"
    return gen


def _go(gen: subprocess.Popen[str]) -> None:
    assert gen.stdin is not None
    gen.stdin.write("go\n")
    gen.stdin.flush()


def _result(gen: subprocess.Popen[str]) -> dict:
    assert gen.stdout is not None
    out = json.loads(gen.stdout.readline())
    gen.wait()
    return out


def _program_stats() -> dict[str, tuple[int, int]]:
    """run_cnt, run_time_ns of the sensor's loaded programs (needs kernel.bpf_stats_enabled=1)."""
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    if not Path(bpftool).exists():
        return {}
    progs = json.loads(subprocess.run([bpftool, "prog", "show", "-j"], capture_output=True, text=True).stdout)
    return {
        p["name"]: (p.get("run_cnt", 0), p.get("run_time_ns", 0))
        for p in progs
        if p.get("name", "").startswith("on_")
    }


def capture(
    events: list[str] | None,
    gen_args: list[str],
    pin: bool,
    count_id: int | None = None,
    csv: bool = False,
    program_stats: bool = False,
) -> dict:
    """Run one generator under the sensor; count what arrives and what the kernel lost. With `csv`,
    every event is also written as a BETH CSV row (EventWriter, to /dev/null): `beth sense process`."""
    gen = _generator(gen_args, pin)
    sink = open(os.devnull, "w")  # noqa: SIM115
    writer = EventWriter(sink, FileKind.PROCESS, "csv") if csv else None
    with ProcessSensor(events=events, pids=[gen.pid], ring_bytes=RING_BYTES) as sensor:
        delivered = counted = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        _go(gen)
        while True:
            running = gen.poll() is None
            batch = sensor.poll(0.05) if running else sensor.drain()
            if not running and not batch:
                break
            delivered += len(batch)
            if count_id is not None:
                counted += sum(1 for ev in batch if ev.eventId == count_id)
            if writer is not None:
                writer.write_all(batch)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        kernel = sensor.kernel_counts()
        stats = sensor.stats()
        programs = _program_stats() if program_stats else {}
    sink.close()
    res = _result(gen)
    return {
        "iterations": res["iterations"],
        "gen_seconds": res["seconds"],
        "delivered": delivered,
        "counted": counted,
        "lost": stats.lost,
        "lost_per_cpu": stats.lost_per_cpu,
        "sent": kernel["sent"],
        "malformed": stats.malformed,
        "consumer_cpu": cpu / wall,
        "programs": programs,
    }


def sweep_capture(
    seconds: float, pin: bool, rates: tuple[int, ...] = CAPTURE_RATES, csv: bool = False
) -> list[dict]:
    rows = []
    for rate in rates:
        r = capture(OPEN_EVENTS, ["open", "--rate", str(rate / 3), "--seconds", str(seconds)], pin, csv=csv)
        expected = 3 * r["iterations"]
        r.update(target=rate, offered=expected / r["gen_seconds"], expected=expected)
        r["lossless"] = r["lost"] == 0 and r["delivered"] == expected and r["malformed"] == 0
        rows.append(r)
        print(
            f"  capture target {rate or 'max':>7}/s  offered {r['offered']:>9,.0f} ev/s  delivered "
            f"{r['delivered']:>9,}/{expected:<9,}  lost {r['lost']:>8,} "
            f"({r['lost'] / max(expected, 1):6.2%})  consumer CPU {r['consumer_cpu']:5.0%}  "
            f"{'OK' if r['lossless'] else 'LOSS'}",
            flush=True,
        )
    return rows


def sweep_storm(seconds: float, pin: bool) -> list[dict]:
    rows = []
    for rate in STORM_RATES:
        r = capture(None, ["exec", "--rate", str(rate), "--seconds", str(seconds)], pin, count_id=59)
        r.update(
            target=rate,
            execs_per_s=r["iterations"] / r["gen_seconds"],
            events_per_s=r["delivered"] / r["gen_seconds"],
        )
        r["lossless"] = r["lost"] == 0 and r["counted"] == r["iterations"] and r["malformed"] == 0
        rows.append(r)
        print(
            f"  storm target {rate or 'max':>5}/s  execs {r['execs_per_s']:>7,.0f}/s  "
            f"events {r['events_per_s']:>9,.0f}/s  execve {r['counted']:,}/{r['iterations']:,}  "
            f"lost {r['lost']:,}  consumer CPU {r['consumer_cpu']:5.0%}  {'OK' if r['lossless'] else 'LOSS'}",
            flush=True,
        )
    return rows


def _timed(mode: str, count: int, events: list[str] | None, pin: bool, consume: bool = True) -> float:
    """Seconds the generator's loop took: untraced (events None), traced with the sensor consuming
    as it goes, or traced into a ring large enough to hold everything, read only afterwards (the
    kernel-side cost alone, without the reader competing for the 2 cores)."""
    if events is None:
        gen = _generator([mode, "--count", str(count)], pin)
        _go(gen)
        return _result(gen)["seconds"]
    if consume:
        return capture(events, [mode, "--count", str(count)], pin)["gen_seconds"]
    gen = _generator([mode, "--count", str(count)], pin)
    with ProcessSensor(events=events, pids=[gen.pid], ring_bytes=256 << 20) as sensor:
        _go(gen)
        res = _result(gen)
        assert sensor.kernel_counts()["lost"] == 0
    return res["seconds"]


def _bpf_time_per_syscall(mode: str, count: int, syscalls: int, events: list[str], pin: bool) -> float | None:
    """Kernel time in the sensor's BPF programs per traced syscall, from the kernel's own program
    statistics (run time is counted inside the kernel, so other load does not inflate it). An upper
    bound: it includes the (cheap, filtered-out) runs for every other syscall on the machine."""
    knob = Path("/proc/sys/kernel/bpf_stats_enabled")
    try:
        old = knob.read_text().strip()
        knob.write_text("1")
    except OSError:
        return None
    try:
        r = capture(events, [mode, "--count", str(count)], pin, program_stats=True)
    finally:
        knob.write_text(old)
    total_ns = sum(t for _, t in r["programs"].values())
    return total_ns / (count * syscalls) / 1000 if total_ns else None


def overhead(repeat: int, pin: bool) -> list[dict]:
    """Seconds per loop iteration untraced / sensor on other events / traced; medians of `repeat` rounds."""
    cases = [
        ("getppid", 300_000, 1, ["getppid"]),
        ("open", 100_000, 2, OPEN_EVENTS),  # 2 syscalls per iteration (openat, close), 3 events
    ]
    rows = []
    for mode, count, syscalls, traced in cases:
        times: dict[str, list[float]] = {"untraced": [], "attached": [], "traced": [], "consumed": []}
        for _ in range(repeat):  # interleaved, so that load changes hit every variant alike
            times["untraced"].append(_timed(mode, count, None, pin))
            times["attached"].append(_timed(mode, count, ["kill"], pin))
            times["traced"].append(_timed(mode, count, traced, pin, consume=False))
            times["consumed"].append(_timed(mode, count, traced, pin))
        med = {k: statistics.median(v) / count / syscalls * 1e6 for k, v in times.items()}  # us per syscall
        bpf_us = _bpf_time_per_syscall(mode, count, syscalls, traced, pin)
        base = med["untraced"]
        row = {"mode": mode, "syscalls_per_iteration": syscalls, "us_per_syscall": med,
               "added_traced_us": med["traced"] - base, "added_attached_us": med["attached"] - base,
               "ratio_traced": med["traced"] / base, "ratio_attached": med["attached"] / base,
               "added_consumed_us": med["consumed"] - base, "ratio_consumed": med["consumed"] / base,
               "bpf_us_per_traced_syscall": bpf_us}  # fmt: skip
        rows.append(row)
        print(
            f"  overhead {mode:8} untraced {med['untraced']:.3f} us/syscall, sensor on other events "
            f"{med['attached']:.3f} (+{row['added_attached_us']:.3f}, x{row['ratio_attached']:.2f}), traced "
            f"{med['traced']:.3f} (+{row['added_traced_us']:.3f} us, x{row['ratio_traced']:.2f}), "
            f"traced with the reader decoding alongside {med['consumed']:.3f} "
            f"(+{row['added_consumed_us']:.3f}, "
            f"x{row['ratio_consumed']:.2f}); in the BPF programs: "
            f"{bpf_us if bpf_us is None else round(bpf_us, 3)} us per traced syscall",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each capture/storm run")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the overhead measurement")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin the generator to CPU 1 and the sensor to CPU 0 (quiet machines)",
    )
    parser.add_argument("--only", choices=("capture", "csv", "storm", "overhead"), help="run one part")
    parser.add_argument("--nice", type=int, default=0, help="run the sensor at this niceness (e.g. -10)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--generator", choices=("c", "python"), default="c", help="load generator (default c)"
    )
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_sensor.py needs root (it loads eBPF programs)")
    global GENERATOR
    workdir = Path(tempfile.mkdtemp(prefix="bench-sensor-"))
    if opts.generator == "c":
        built = build_c_generator(workdir)
        if built is None:
            print("no C compiler: using the Python load generator", flush=True)
        GENERATOR = built or GENERATOR
    try:
        run(opts)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(opts: argparse.Namespace) -> None:
    pin = opts.pin
    if opts.nice:
        os.setpriority(os.PRIO_PROCESS, 0, opts.nice)  # the generator (a child) is reset below
    if pin and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    print(
        f"load average before: {os.getloadavg()[0]:.2f} (2 cores: above ~0.5 the numbers are noisy)",
        flush=True,
    )
    out: dict = {"load_before": os.getloadavg()[0], "cpus": os.cpu_count(), "pinned": pin, "nice": opts.nice,
                 "generator": Path(GENERATOR[-1]).name}  # fmt: skip
    if opts.only in (None, "capture"):
        print("capture (openat+close+security_file_open, pid filter, decoded to ProcessEvents):", flush=True)
        rows = sweep_capture(opts.seconds, pin)
        ok = [r["offered"] for r in rows if r["lossless"]]
        out["capture"] = rows
        out["max_lossless_offered"] = max(ok) if ok else 0.0
        print(f"  highest lossless offered rate: {out['max_lossless_offered']:,.0f} events/s "
              f"(target 150,000: ratio {out['max_lossless_offered'] / 150_000:.2f})", flush=True)  # fmt: skip
    if opts.only in (None, "csv"):
        print("capture + CSV rows (EventWriter to /dev/null, what `beth sense process` does):", flush=True)
        rows = sweep_capture(opts.seconds, pin, CSV_RATES, csv=True)
        ok = [r["offered"] for r in rows if r["lossless"]]
        out["csv"] = rows
        out["max_lossless_offered_csv"] = max(ok) if ok else 0.0
        best = out["max_lossless_offered_csv"]
        print(f"  highest lossless offered rate with CSV output: {best:,.0f} events/s", flush=True)
    if opts.only in (None, "storm"):
        print("fork/exec storm (default events):", flush=True)
        out["storm"] = sweep_storm(opts.seconds, pin)
    if opts.only in (None, "overhead"):
        print("overhead (unpaced loops; medians):", flush=True)
        out["overhead"] = overhead(opts.repeat, pin)
    out["load_after"] = os.getloadavg()[0]
    print(f"load average after: {out['load_after']:.2f}", flush=True)
    if opts.json:
        opts.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
