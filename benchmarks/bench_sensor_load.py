"""Syscall load generator for bench_sensor.py: a paced loop of known syscalls, run as its own process.

    python bench_sensor_load.py open  --rate R --seconds S   # openat+close of a file, R iterations/s
    python bench_sensor_load.py exec  --rate R --seconds S   # fork + exec /bin/true + wait, R/s
    python bench_sensor_load.py getppid --count N            # N getppid() as fast as possible
    python bench_sensor_load.py open --count N               # N openat+close as fast as possible

It imports everything, prints "ready", waits for a line on stdin, runs, then prints one JSON line
{"iterations", "seconds"}. --rate 0 means unpaced. Pacing checks the clock every few iterations and
sleeps when ahead of schedule, so the offered rate is steady rather than bursty.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

TARGET = "/etc/hostname"
TRUE = "/bin/true"


def _open_once() -> None:
    os.close(os.open(TARGET, os.O_RDONLY))


def _exec_once() -> None:
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(TRUE, [TRUE])
        finally:
            os._exit(127)
    os.waitpid(pid, 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("open", "exec", "getppid"))
    parser.add_argument("--rate", type=float, default=0.0, help="iterations per second (0: unpaced)")
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--count", type=int, default=0)
    opts = parser.parse_args()
    step = {"open": _open_once, "exec": _exec_once, "getppid": os.getppid}[opts.mode]
    chunk = 1 if opts.mode == "exec" else 64
    print("ready", flush=True)
    sys.stdin.readline()

    done = 0
    start = time.perf_counter()
    if opts.count and not opts.rate:
        for _ in range(opts.count):
            step()
        done = opts.count
    else:
        end = start + opts.seconds
        while True:
            now = time.perf_counter()
            if now >= end or (opts.count and done >= opts.count):
                break
            if opts.rate:
                ahead = start + done / opts.rate - now
                if ahead > 0.0005:
                    time.sleep(ahead)
            for _ in range(chunk):
                step()
            done += chunk
    print(json.dumps({"iterations": done, "seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()
