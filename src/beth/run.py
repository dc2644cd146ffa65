"""`beth run`: the single-host live path in one process — sensors -> transport -> collector.

With the memory transport (the default) the process and DNS sensors, the transport and the collector
all run here and write `--out`. With a NATS URL the sensors publish to the broker instead and the
collector runs elsewhere (`beth collect`). Each sensor runs on its own thread, stamping its events
with a per-run sequence number (`Channel`); every `stats_interval` seconds the sensors' counters
(events, kernel losses, malformed input) travel as a `stats` message, so the collector's stats
file shows what each host lost.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beth.collector import Collector
from beth.errors import BethError, DataError, SensorError, UsageError
from beth.sensors.base import Sensor
from beth.transport.base import Publisher
from beth.transport.envelope import STATS, Channel
from beth.transport.memory import MemoryBus

SENSORS: tuple[str, ...] = ("process", "dns")


@dataclass
class RunOptions:
    out: Path | None = None  # where the in-process collector writes (memory transport)
    transport: str = "memory"  # "memory" or nats://HOST:PORT / tls://HOST:PORT
    creds: Path | None = None
    ca: Path | None = None
    host: str = field(default_factory=socket.gethostname)
    sensors: tuple[str, ...] = SENSORS
    process_events: str | None = None  # the process sensor's event selection (None: its default)
    dns_interface: str | None = None
    fmt: str = "csv"
    rotate_bytes: int = 256 * 1024 * 1024
    rotate_seconds: float = 86_400.0
    stats_interval: float = 5.0

    def check(self) -> None:
        unknown = [s for s in self.sensors if s not in SENSORS]
        if unknown or not self.sensors:
            raise UsageError(
                f"unknown sensor(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(SENSORS)}"
            )
        if self.transport == "memory":
            if self.out is None:
                raise UsageError("--out DIR is needed: the in-process collector writes the logs there")
        elif not self.transport.startswith(("nats://", "tls://")):
            raise UsageError(f"--transport must be 'memory' or a nats:// URL, not {self.transport!r}")
        elif self.out is not None:
            raise UsageError("--out is for the in-process collector; with a broker, run `beth collect --out`")


def make_sensor(name: str, opts: RunOptions) -> Sensor:
    if name == "dns":
        from beth.sensors.dns import DnsSensor

        return DnsSensor(opts.host, interface=opts.dns_interface)
    from beth.sensors.process import ProcessSensor

    return ProcessSensor(events=opts.process_events, host_name=opts.host)


class Pipeline:
    """Sensors, transport and (memory transport) collector, started and stopped together."""

    def __init__(
        self,
        opts: RunOptions,
        *,
        log: Callable[[str], None] | None = None,
        sensor_factory: Callable[[str, RunOptions], Sensor] = make_sensor,
    ) -> None:
        opts.check()
        self.opts = opts
        self.log = log or (lambda message: None)
        self._factory = sensor_factory
        self.sensors: list[Sensor] = []
        self.collector: Collector | None = None
        self.publisher: Publisher | None = None
        self._threads: list[threading.Thread] = []
        self._collector_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._collector_stop = threading.Event()
        self.error: BaseException | None = None
        self.started = 0.0
        self._stats_channel = Channel(opts.host, STATS)

    # --- start ---

    def start(self) -> None:
        if os.geteuid() != 0:
            raise SensorError(
                "beth run needs root: the process sensor loads eBPF programs and the DNS sensor opens a "
                "raw packet socket (run it with sudo)"
            )
        try:
            for name in self.opts.sensors:
                sensor = self._factory(name, self.opts)
                sensor.__enter__()
                self.sensors.append(sensor)
            self._start_transport()
        except BaseException:
            self._close_sensors()
            raise
        self.started = time.monotonic()
        for sensor in self.sensors:
            t = threading.Thread(target=self._pump, args=(sensor,), name=f"beth-{sensor.name}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._report, name="beth-stats", daemon=True)
        t.start()
        self._threads.append(t)

    def _start_transport(self) -> None:
        if self.opts.transport == "memory":
            bus = MemoryBus()
            assert self.opts.out is not None
            self.collector = Collector(
                bus.subscriber(),
                self.opts.out,
                fmt=self.opts.fmt,
                rotate_bytes=self.opts.rotate_bytes,
                rotate_seconds=self.opts.rotate_seconds,
                log=self.log,
            )
            self.collector.open()
            self.publisher = bus.publisher()
            self._collector_thread = threading.Thread(
                target=self._collect, name="beth-collector", daemon=True
            )
            self._collector_thread.start()
        else:
            from beth.transport.broker import host_user
            from beth.transport.nats import Endpoint, NatsPublisher

            endpoint = Endpoint.parse(
                self.opts.transport, creds=self.opts.creds, ca=self.opts.ca, name="beth-run"
            )
            user, mine = endpoint.user, host_user(self.opts.host)
            if user is not None and user != mine:
                raise UsageError(
                    f"--creds {self.opts.creds} is the identity {user!r}, but this host publishes as "
                    f"{mine!r}: use the credentials issued for this host, or --host-name with the name "
                    "they were issued for"
                )
            self.publisher = NatsPublisher(endpoint, log=self.log)

    # --- threads ---

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, OSError):  # disk full, permissions: a user's problem, said in one line
            where = f" ({exc.filename})" if exc.filename else ""
            exc = DataError(f"writing the logs failed: {exc.strerror or exc}{where}")
        if self.error is None:
            self.error = exc
        self._stop.set()
        for sensor in self.sensors:
            sensor.stop()

    def _pump(self, sensor: Sensor) -> None:
        channel = Channel(self.opts.host, sensor.name)
        assert self.publisher is not None
        publish, wrap = self.publisher.publish, channel.wrap
        try:
            while not self._stop.is_set():
                for event in sensor.poll(0.2):
                    publish(wrap(event))
            for event in sensor.drain():  # everything captured before the stop
                publish(wrap(event))
        except BaseException as exc:  # reported by close()
            self._fail(exc)

    def _collect(self) -> None:
        assert self.collector is not None
        try:
            self.collector.run(self._collector_stop)
        except BaseException as exc:
            self._fail(exc)

    def _report(self) -> None:
        while not self._stop.wait(self.opts.stats_interval):
            self._send_stats()

    def _send_stats(self) -> None:
        assert self.publisher is not None
        record = {
            "time": time.time(),
            "sensors": [s.stats().to_record() for s in self.sensors],
            "publisher": self.publisher.stats().to_record(),
        }
        try:
            self.publisher.publish(self._stats_channel.wrap(record))
        except BethError as exc:
            self._fail(exc)

    # --- state ---

    def snapshot(self) -> dict[str, Any]:
        """Counters for a status line: per sensor events/lost, rows written, events published."""
        return {
            "elapsed": time.monotonic() - self.started if self.started else 0.0,
            "sensors": {s.name: s.stats().to_record() for s in self.sensors},
            "published": self.publisher.stats().published if self.publisher else 0,
            "acked": self.publisher.stats().acked if self.publisher else 0,
            "written": self.collector.written if self.collector else None,
        }

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- stop ---

    def stop(self) -> None:
        """Ask everything to stop (safe from signal handlers and other threads)."""
        self._stop.set()
        for sensor in self.sensors:
            sensor.stop()

    def close(self, timeout: float = 30.0) -> dict[str, Any]:
        """Stop, hand every sensed event to the transport and the files, release everything.

        Returns the final counters; raises the first error a thread met (after cleaning up).
        """
        self.stop()
        for t in self._threads:
            t.join(timeout)
        summary: dict[str, Any] = {}
        try:
            if self.publisher is not None and self.error is None:
                self._send_stats()
                self.publisher.flush(timeout)
        except BethError as exc:
            self._fail(exc)
        finally:
            self._collector_stop.set()
            if self._collector_thread is not None:
                self._collector_thread.join(timeout)
            summary = self.snapshot()
            self._close_sensors()
            if self.collector is not None:
                self.collector.close()
                summary["collector"] = self.collector.stats()
            if self.publisher is not None:
                self.publisher.close()
        if self.error is not None:
            raise self.error
        return summary

    def _close_sensors(self) -> None:
        for sensor in self.sensors:
            try:
                sensor.__exit__(None, None, None)
            except Exception as exc:  # keep closing the others
                self.log(f"closing the {sensor.name} sensor: {exc}")
