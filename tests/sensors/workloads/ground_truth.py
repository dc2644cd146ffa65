"""A workload whose kernel events are known exactly, for the process-sensor acceptance test.

Start it (as root, with --uid: it drops to that uid and gid itself, after its imports, because the
interpreter may live where other users cannot read), wait for it to print "ready", start the sensor
on its pid, then send a line on stdin. It then:
  * forks N children that exec /bin/true with argv [true, "beth-gt", i], plus one child that execs a
    missing program (execve fails with -2) and one child that sleeps until killed with SIGTERM;
  * opens a named file M times (openat >= 0, then close) and a missing file K times (openat -2);
  * listens on a loopback port, connects to it and accepts the connection;
  * creates a file and unlinks it by a name relative to its working directory;
  * calls setreuid(-1, uid) and setregid(-1, gid) (allowed, 0) and setreuid(0, 0) (refused, -1 EPERM).
Finally it prints one JSON line with everything the test needs to check the events against.
Everything is imported before "ready" so that no import opens files during the measured part.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import time

TRUE = "/bin/true"
MISSING_PROGRAM = "/nonexistent/beth-missing-program"


def spawn(argv: list[str]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    return pid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--children", type=int, default=5)
    parser.add_argument("--opens", type=int, default=7)
    parser.add_argument("--missing-opens", type=int, default=3)
    parser.add_argument("--uid", type=int, help="run as this uid (and gid) from here on")
    opts = parser.parse_args()
    if opts.uid is not None:
        os.setgroups([])
        os.setgid(opts.uid)
        os.setuid(opts.uid)
    os.chdir(opts.dir)
    named = os.path.join(opts.dir, "named-file")
    with open(named, "w") as f:
        f.write("beth\n")
    missing = os.path.join(opts.dir, "missing-file")
    print("ready", flush=True)
    sys.stdin.readline()

    children = []
    for i in range(opts.children):
        argv = [TRUE, "beth-gt", str(i)]
        children.append({"pid": spawn(argv), "argv": argv})
    failed_exec = spawn([MISSING_PROGRAM, "beth-gt-missing"])
    sleeper = os.fork()
    if sleeper == 0:
        signal.pause()
        os._exit(0)
    for child in children:
        os.waitpid(child["pid"], 0)
    os.waitpid(failed_exec, 0)

    fds = []
    for _ in range(opts.opens):
        fd = os.open(named, os.O_RDONLY)
        fds.append(fd)
        os.close(fd)
    for _ in range(opts.missing_opens):
        with contextlib.suppress(FileNotFoundError):
            os.open(missing, os.O_RDONLY)

    time.sleep(0.05)  # let the sleeper reach pause()
    os.kill(sleeper, signal.SIGTERM)
    os.waitpid(sleeper, 0)

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()
    client.close()
    server.close()

    with open("victim", "w"):
        pass
    os.unlink("victim")

    uid, gid = os.getuid(), os.getgid()
    os.setreuid(-1, uid)
    os.setregid(-1, gid)
    try:
        os.setreuid(0, 0)
        refused = False
    except PermissionError:
        refused = True

    print(
        json.dumps(
            {
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "uid": uid,
                "gid": gid,
                "children": children,
                "failed_exec": failed_exec,
                "sleeper": sleeper,
                "named": named,
                "named_real": os.path.realpath(named),
                "missing": missing,
                "fds": fds,
                "port": port,
                "victim": os.path.join(os.path.realpath(opts.dir), "victim"),
                "setreuid_refused": refused,
                "mnt_ns": os.stat("/proc/self/ns/mnt").st_ino,
                "true_real": os.path.realpath(TRUE),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
