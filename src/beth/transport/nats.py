"""NATS JetStream transport between hosts: the only module that imports the NATS client (nats-py).

Publisher (sensor host): one message per event on `beth.<host>.<kind>`, with a `Nats-Msg-Id` so that
JetStream stores a retried message once. Acks are pipelined: up to `max_in_flight` messages are
unacknowledged at a time; each PubAck arrives on a per-message reply subject. A message not acked
within `ack_timeout` (broker restarting, stream missing) is sent again, as is everything unacked after
a reconnect; the collector restores order by sequence number. Nothing is dropped: when the broker is
away, `publish` queues up to `max_queued` events (250,000 by default) and then blocks, so the sensors'
kernel buffers fill and count what they drop.

Subscriber (collector): a durable pull consumer (`beth-collector`, ack policy "all") on the `BETH`
stream. It is re-created at start from its own ack floor, so messages a crashed collector had
fetched but not acknowledged come again at once and in stream order. Pull requests are kept
outstanding, so the broker streams batches while the collector writes the previous one.

Both run the asyncio client on a private thread; their methods are synchronous and thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig

from beth.errors import DataError, TransportError, UsageError
from beth.transport.base import Delivery, Publisher, PublisherStats, Subscriber
from beth.transport.envelope import KINDS, SUBJECT_PREFIX, Envelope, parse_msg_id, parse_subject

STREAM = "BETH"
DURABLE = "beth-collector"
STREAM_SUBJECTS = [f"{SUBJECT_PREFIX}.*.{kind}" for kind in KINDS]
MSG_ID = "Nats-Msg-Id"


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect: `nats://` or `tls://` URL, optional client credentials and CA."""

    url: str
    creds: Path | None = None  # PEM file with this client's certificate and private key
    ca: Path | None = None  # PEM file of the CA that signed the server's certificate
    name: str = "beth"
    inbox_prefix: str = "_INBOX"

    @classmethod
    def parse(
        cls, url: str, *, creds: str | Path | None = None, ca: str | Path | None = None, name: str = "beth"
    ) -> Endpoint:
        """Check the URL and files; with credentials, the client's identity (certificate CN) sets the
        reply inbox the broker's permissions allow it, and an expired certificate is refused here."""
        parts = urlsplit(url)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise UsageError(f"not a NATS URL: {url!r} (expected nats://HOST:PORT or tls://HOST:PORT)")
        for label, path in (("--creds", creds), ("--ca", ca)):
            if path is not None and not Path(path).is_file():
                raise UsageError(f"{label} file not found: {path}")
        prefix = "_INBOX"
        if creds is not None:
            from beth.transport.broker import inbox_prefix
            from beth.transport.pki import check_client_pem, common_name

            prefix = inbox_prefix(common_name(check_client_pem(Path(creds))))
        return cls(url, Path(creds) if creds else None, Path(ca) if ca else None, name, prefix)

    @property
    def user(self) -> str | None:
        """The identity in the client certificate (its CN), if any."""
        if self.creds is None:
            return None
        from beth.transport.pki import check_client_pem, common_name

        return common_name(check_client_pem(self.creds))

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.ca is None and self.creds is None and not self.url.startswith("tls://"):
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca) if self.ca else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.creds is not None:
            try:
                ctx.load_cert_chain(str(self.creds))
            except (ssl.SSLError, OSError) as exc:
                raise UsageError(
                    f"{self.creds}: not a PEM file with a certificate and its private key ({exc})"
                ) from None
        return ctx


def stream_config(max_bytes: int = -1, max_age_days: float = 7.0) -> StreamConfig:
    """The BETH stream: every host's process, DNS and stats subjects, kept on disk for `max_age_days`."""
    return StreamConfig(
        name=STREAM,
        subjects=STREAM_SUBJECTS,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=max_age_days * 86400,
        max_bytes=max_bytes,
        max_msg_size=1 << 20,
        duplicate_window=120.0,
    )


def _fatal(exc: BaseException, endpoint: Endpoint) -> str | None:
    """A readable reason when `exc` means retrying cannot help (credentials, certificates, permissions)."""
    text = str(exc)
    low = text.lower()
    creds = f"--creds {endpoint.creds}" if endpoint.creds else None
    if "authorization violation" in low or "authentication" in low:
        if creds:
            return f"the broker does not know the identity in {creds} (authorization violation)"
        return "the broker refused the connection (authorization violation): pass --creds"
    if "permissions violation" in low:
        return f"the broker denied a subject to this identity: {text.removeprefix('nats: ').strip()}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        hint = "" if endpoint.ca else " (pass --ca with the broker's CA certificate)"
        return f"TLS: the broker's certificate was not accepted: {exc.verify_message}{hint}"
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or text).upper()
        if any(
            k in reason
            for k in ("BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_REQUIRED", "CERTIFICATE_EXPIRED")
        ):
            if not creds:
                return f"TLS: the broker requires a client certificate: pass --creds ({exc.reason})"
            return (
                f"TLS: the broker refused the client certificate in {creds} ({exc.reason}): "
                "it is not signed by the broker's CA"
            )
        return f"TLS error: {exc.reason or text}"
    return None


class _QuietSslEof(logging.Filter):
    """asyncio warns on every TLS connection nats-py closes ("returning true from eof_received() has no
    effect when using ssl"); it says nothing to a beth user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_QuietSslEof())


class _Loop:
    """An asyncio event loop on a daemon thread, with a synchronous `call`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


class _Connection:
    """A nats-py client connected on a `_Loop`, with the errors it reported and reconnect hooks."""

    def __init__(
        self, endpoint: Endpoint, loop: _Loop, *, connect_timeout: float, log: Callable[[str], None]
    ):
        self.endpoint, self.loop, self.log = endpoint, loop, log
        self.fatal: str | None = None
        self.last_error: str | None = None
        self.on_reconnect: list[Callable[[], None]] = []
        self.nc: Client = loop.call(self._connect(connect_timeout))

    async def _connect(self, timeout: float) -> Client:
        fatal = asyncio.Event()

        async def error_cb(exc: Exception) -> None:
            reason = _fatal(exc, self.endpoint)
            if reason is not None:
                self.fatal = reason
                fatal.set()
            msg = str(exc) or type(exc).__name__
            if msg != self.last_error:
                self.last_error = msg
                self.log(f"nats: {reason or msg}")

        async def disconnected_cb() -> None:
            self.log(f"nats: disconnected from {self.endpoint.url}")

        async def reconnected_cb() -> None:
            self.log(f"nats: reconnected to {self.endpoint.url}")
            for hook in self.on_reconnect:
                hook()

        ep = self.endpoint
        task = asyncio.ensure_future(
            nats.connect(
                servers=[ep.url],
                name=ep.name,
                tls=ep.ssl_context(),
                inbox_prefix=ep.inbox_prefix,
                error_cb=error_cb,
                disconnected_cb=disconnected_cb,
                reconnected_cb=reconnected_cb,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                connect_timeout=2,
                ping_interval=5,
                max_outstanding_pings=3,
                pending_size=64 * 1024 * 1024,
                skip_subject_validation=True,  # subjects are built from host tokens and nuids
            )
        )
        stop = asyncio.ensure_future(fatal.wait())
        done, _ = await asyncio.wait({task, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if task in done and task.exception() is None:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if self.fatal:
            raise TransportError(f"{ep.url}: {self.fatal}")
        why = self.last_error or (
            str(task.exception()) if task.done() and not task.cancelled() else "timed out"
        )
        raise TransportError(f"cannot connect to the NATS server at {ep.url} within {timeout:g} s ({why})")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.call(self.nc.close(), 5)


# --- publisher ------------------------------------------------------------------------------------


class NatsPublisher(Publisher):
    """Sensor side of the NATS transport (see the module docstring)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        max_in_flight: int = 20_000,
        max_queued: int = 250_000,
        ack_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        create_stream: bool | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """`create_stream`: create the BETH stream if it is missing. Default: only without client
        credentials, since on a secured broker (`beth broker init`) hosts may not use JetStream's API
        and the collector creates the stream."""
        if create_stream is None:
            create_stream = endpoint.creds is None
        self.max_in_flight, self.max_queued, self.ack_timeout = max_in_flight, max_queued, ack_timeout
        self.log = log or (lambda message: None)
        self._stats = PublisherStats()
        self._queue: deque[Envelope] = deque()
        self._unacked: dict[int, tuple[str, bytes, dict[str, str], float]] = {}
        self._next_token = 0
        self._space = threading.Condition()
        self._idle = True
        self._closing = False
        self._loop = _Loop("beth-nats-publisher")
        try:
            self._conn = _Connection(endpoint, self._loop, connect_timeout=connect_timeout, log=self.log)
        except BaseException:
            self._loop.stop()
            raise
        self._conn.on_reconnect.append(self._on_reconnect)
        self._resend_all = False
        self._loop.call(self._start(create_stream))

    async def _start(self, create_stream: bool) -> None:
        nc = self._conn.nc
        self._wake = asyncio.Event()
        self._acks_freed = asyncio.Event()
        self._reply_prefix = f"{nc._inbox_prefix.decode()}.{nc._nuid.next().decode()}."
        await nc.subscribe(
            self._reply_prefix + "*", cb=self._on_ack, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        if create_stream:
            await ensure_stream(nc, self.log)
        self._sender = asyncio.ensure_future(self._send_loop())

    # --- called from sensor threads ---

    def publish(self, envelope: Envelope) -> None:
        if self._conn.fatal:
            raise TransportError(self._conn.fatal)
        if self._closing:
            raise TransportError("the NATS publisher is closed")
        if len(self._queue) >= self.max_queued:
            with self._space:
                while len(self._queue) >= self.max_queued and not self._conn.fatal and not self._closing:
                    self._space.wait(0.1)
        self._queue.append(envelope)
        self._stats.published += 1
        if self._idle:
            self._idle = False
            self._loop.soon(self._wake.set)

    def flush(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._queue or self._unacked:
            if self._conn.fatal:
                raise TransportError(self._conn.fatal)
            if time.monotonic() > deadline:
                left = len(self._queue) + len(self._unacked)
                why = f" (last error: {self._conn.last_error})" if self._conn.last_error else ""
                raise TransportError(
                    f"{left} event(s) not yet stored by the NATS server after {timeout:g} s{why}"
                )
            if self._idle:
                self._loop.soon(self._wake.set)
            time.sleep(0.01)
        if self._conn.fatal:
            raise TransportError(self._conn.fatal)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(Exception):
            self._loop.call(self._stop(), 5)
        self._conn.close()
        self._loop.stop()

    async def _stop(self) -> None:
        self._sender.cancel()
        with contextlib.suppress(BaseException):
            await self._sender

    def stats(self) -> PublisherStats:
        return self._stats

    # --- on the loop ---

    def _on_reconnect(self) -> None:
        self._resend_all = True
        self._wake.set()

    async def _on_ack(self, msg: Msg) -> None:
        token = int(msg.subject[len(self._reply_prefix) :])
        data = msg.data
        if msg.headers and msg.headers.get("Status") == "503":
            return  # no stream yet: keep it, it is sent again after ack_timeout
        if b'"error"' in data:
            reason = json.loads(data).get("error", {}).get("description", data.decode(errors="replace"))
            if reason not in self._stats.errors:
                self._stats.errors.append(reason)
                self.log(f"nats: the server did not store an event: {reason}; retrying")
            return
        if self._unacked.pop(token, None) is None:
            return  # ack of a retried copy
        self._stats.acked += 1
        if b'"duplicate"' in data:
            self._stats.duplicates += 1
        if len(self._unacked) <= self.max_in_flight // 2:
            self._acks_freed.set()

    async def _send_loop(self) -> None:
        nc = self._conn.nc
        queue, unacked, prefix = self._queue, self._unacked, self._reply_prefix
        while True:
            if not queue and not self._resend_all:
                self._idle = True
                if queue:  # raced with publish()
                    self._idle = False
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=min(1.0, self.ack_timeout))
                    self._wake.clear()
                    self._idle = False
            if not nc.is_connected:
                await asyncio.sleep(0.05)
                continue
            now = time.monotonic()
            if self._resend_all or (unacked and now - next(iter(unacked.values()))[3] > self.ack_timeout):
                self._resend_all = False
                await self._resend(now)
            sent = 0
            while queue and len(unacked) < self.max_in_flight and nc.is_connected:
                env = queue.popleft()
                token = self._next_token = self._next_token + 1
                subj, payload, hdr = env.subject, env.payload(), {MSG_ID: env.msg_id}
                unacked[token] = (subj, payload, hdr, now)
                await nc.publish(subj, payload, reply=f"{prefix}{token}", headers=hdr)
                sent += 1
                if sent % 512 == 0:
                    now = time.monotonic()
                    await asyncio.sleep(0)  # let acks in
            if sent and len(self._queue) < self.max_queued:
                with self._space:
                    self._space.notify_all()
            if len(unacked) >= self.max_in_flight:
                self._acks_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._acks_freed.wait(), timeout=self.ack_timeout)

    async def _resend(self, now: float) -> None:
        """Send every unacked message again, oldest first (JetStream drops the copies it has)."""
        nc = self._conn.nc
        items = list(self._unacked.items())
        for i, (token, (subj, payload, hdr, _)) in enumerate(items):
            if not nc.is_connected:
                return
            self._unacked[token] = (subj, payload, hdr, now)
            await nc.publish(subj, payload, reply=f"{self._reply_prefix}{token}", headers=hdr)
            if i % 512 == 511:
                await asyncio.sleep(0)
        self._stats.retried += len(items)


async def ensure_stream(nc: Client, log: Callable[[str], None], **config: Any) -> bool:
    """Create the BETH stream if it is missing; False when this client may not (it then must exist)."""
    js = nc.jetstream(timeout=5)
    try:
        await js.stream_info(STREAM)
        return True
    except nats.js.errors.NotFoundError:
        pass
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError, nats.js.errors.APIError):
        log("nats: cannot look up the BETH stream (no JetStream permission?); assuming it exists")
        return False
    try:
        await js.add_stream(stream_config(**config))
        log("nats: created the BETH stream")
        return True
    except (nats.errors.TimeoutError, nats.js.errors.APIError) as exc:
        log(f"nats: cannot create the BETH stream ({exc})")
        return False


# --- subscriber -----------------------------------------------------------------------------------


class NatsSubscriber(Subscriber):
    """Collector side of the NATS transport (see the module docstring)."""

    untrusted = True

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        durable: str = DURABLE,
        batch: int = 5000,
        max_buffered: int = 50_000,
        connect_timeout: float = 10.0,
        log: Callable[[str], None] | None = None,
        stream_max_bytes: int = -1,
    ) -> None:
        self.durable, self.batch, self.max_buffered = durable, batch, max_buffered
        self.log = log or (lambda message: None)
        self._buffer: deque[Delivery] = deque()
        self._ready = threading.Event()
        self._waiting = False
        self._subjects: dict[str, tuple[str, str]] = {}  # parsed subjects (a few per host)
        self._runs: set[str] = set()  # run ids already checked
        self._loop = _Loop("beth-nats-collector")
        try:
            self._conn = _Connection(endpoint, self._loop, connect_timeout=connect_timeout, log=self.log)
            self._loop.call(self._start(stream_max_bytes), connect_timeout)
        except BaseException:
            self._loop.stop()
            raise
        self._conn.on_reconnect.append(lambda: asyncio.ensure_future(self._pull()))

    async def _start(self, stream_max_bytes: int) -> None:
        nc = self._conn.nc
        if not await ensure_stream(nc, self.log, max_bytes=stream_max_bytes) and self._conn.fatal:
            raise TransportError(self._conn.fatal)
        js = nc.jetstream(timeout=5)
        start = 1
        try:
            info = await js.consumer_info(STREAM, self.durable)
            start = info.ack_floor.stream_seq + 1 if info.ack_floor else 1
            await js.delete_consumer(STREAM, self.durable)
        except nats.js.errors.NotFoundError:
            pass
        except (nats.errors.TimeoutError, nats.js.errors.APIError) as exc:
            raise TransportError(
                f"cannot set up the collector's consumer: {self._conn.fatal or exc}"
            ) from None
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.ALL,
            ack_wait=30.0,
            max_ack_pending=-1,
            max_waiting=64,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if start > 1 else DeliverPolicy.ALL,
            opt_start_seq=start if start > 1 else None,
        )
        try:
            await js.add_consumer(STREAM, config)
        except (nats.errors.TimeoutError, nats.js.errors.APIError) as exc:
            raise TransportError(
                f"cannot create the collector's consumer: {self._conn.fatal or exc}"
            ) from None
        self._inbox = f"{nc._inbox_prefix.decode()}.{nc._nuid.next().decode()}"
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{self.durable}"
        self._outstanding = 0
        self._pull_sent = 0.0
        await nc.subscribe(self._inbox, cb=self._on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        await self._pull()
        self._watchdog = asyncio.ensure_future(self._watch())

    async def _pull(self) -> None:
        """Ask for the next batch unless enough is already buffered."""
        if len(self._buffer) >= self.max_buffered or not self._conn.nc.is_connected:
            return
        self._outstanding = self.batch
        self._pull_sent = time.monotonic()
        request = json.dumps({"batch": self.batch, "expires": 5_000_000_000}).encode()
        with contextlib.suppress(nats.errors.Error):
            await self._conn.nc.publish(self._next_subject, request, reply=self._inbox)

    async def _watch(self) -> None:
        """Re-issue a pull request that got lost (broker restart) and report a dead consumer."""
        while True:
            await asyncio.sleep(1.0)
            if time.monotonic() - self._pull_sent > 7.0:
                await self._pull()

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers
        status = headers.get("Status") if headers else None
        if status is not None:
            if status in ("404", "408", "409"):  # request ended (no messages / expired / limits)
                if status == "409" and "Deleted" in headers.get("Description", ""):  # type: ignore[union-attr]
                    self.log("nats: the collector's consumer was deleted; restart the collector")
                self._outstanding = 0
                await self._pull()
            return
        self._buffer.append(self._delivery(msg, headers))
        if self._waiting:
            self._ready.set()
        self._outstanding -= 1
        if self._outstanding <= 0:
            await self._pull()

    def _delivery(self, msg: Msg, headers: dict[str, str] | None) -> Delivery:
        subject, reply = msg.subject, msg.reply
        parsed = self._subjects.get(subject)
        if parsed is None:
            try:
                parsed = parse_subject(subject)
            except DataError:
                return Delivery("?", "?", "", 0, line="", token=reply, error=f"bad subject {subject!r}")
            if len(self._subjects) < 100_000:
                self._subjects[subject] = parsed
        host, kind = parsed
        try:
            line = msg.data.decode("utf-8")
        except UnicodeDecodeError:
            return Delivery(host, kind, "", 0, line="", token=reply, error="payload is not UTF-8")
        msg_id = headers.get(MSG_ID) if headers else None
        if msg_id is None:
            return Delivery(host, kind, "", 0, line=line, token=reply, error="no Nats-Msg-Id header")
        parts = msg_id.split(".")
        if (
            len(parts) == 4
            and parts[0] == host
            and parts[1] == kind
            and parts[3].isdigit()
            and parts[2] in self._runs
        ):
            return Delivery(host, kind, parts[2], int(parts[3]), line=line, token=reply)
        try:  # the slow, exact path: a new run id, or something wrong
            id_host, id_kind, run, seq = parse_msg_id(msg_id)
            if (id_host, id_kind) != (host, kind):
                raise DataError(f"message id {msg_id!r} names another host or kind than its subject")
        except DataError as exc:
            return Delivery(host, kind, "", 0, line=line, token=reply, error=exc.message)
        if len(self._runs) < 100_000:
            self._runs.add(run)
        return Delivery(host, kind, run, seq, line=line, token=reply)

    # --- called from the collector's thread ---

    def fetch(self, max_messages: int, timeout: float) -> list[Delivery]:
        buf = self._buffer
        if not buf:
            self._waiting = True
            self._ready.clear()
            if not buf:
                self._ready.wait(timeout)
            self._waiting = False
        if self._conn.fatal:
            raise TransportError(self._conn.fatal)
        n = min(max_messages, len(buf))
        out = [buf.popleft() for _ in range(n)]
        if out and len(buf) < self.max_buffered // 2 and self._outstanding <= 0:
            self._loop.soon(lambda: asyncio.ensure_future(self._pull()))
        return out

    def ack(self, delivery: Delivery) -> None:
        reply = delivery.token
        if reply:
            self._loop.soon(lambda: asyncio.ensure_future(self._ack(reply)))

    async def _ack(self, reply: str) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._conn.nc.publish(reply, b"+ACK")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.call(self._flush_and_stop(), 5)
        self._conn.close()
        self._loop.stop()

    async def _flush_and_stop(self) -> None:
        self._watchdog.cancel()
        with contextlib.suppress(Exception):
            await self._conn.nc.flush(2)
