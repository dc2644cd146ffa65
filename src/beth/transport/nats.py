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
import inspect
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
from nats.protocol import parser as nats_parser

from beth.errors import DataError, TransportError, UsageError
from beth.transport.base import Arrivals, Delivery, Publisher, PublisherStats, Subscriber
from beth.transport.envelope import (
    DURABLE,
    KINDS,
    STATS,
    STREAM,
    SUBJECT_PREFIX,
    Envelope,
    parse_msg_id,
    parse_subject,
)

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
    user: str | None = None  # the identity in the client certificate (its CN), if any

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
        prefix, user = "_INBOX", None
        if creds is not None:
            from beth.transport.broker import inbox_prefix
            from beth.transport.pki import check_client_pem, common_name

            user = common_name(check_client_pem(Path(creds)))
            prefix = inbox_prefix(user)
        return cls(url, Path(creds) if creds else None, Path(ca) if ca else None, name, prefix, user)

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


#: A message beth publishes: (subject, reply subject, payload, Nats-Msg-Id).
_Message = tuple[str, str, bytes, str]
#: A message the collector received: (subject, reply subject, payload, Nats-Msg-Id).
_Received = tuple[str, str, bytes, str | None]
#: A message as beth's handlers take it: (subject, reply subject, payload, inline status, Nats-Msg-Id).
RawHandler = Callable[[str, str, bytes, str | None, str | None], None]


def read_header(block: bytes | None) -> tuple[str | None, str | None]:
    """(inline status, Nats-Msg-Id) of a raw NATS header block (`NATS/1.0[ status]\r\nName: value...`).

    The status is what the server puts on the first line (`404 No Messages`), never a header a sender
    named "Status". The message id is the first `Nats-Msg-Id` line, the one JetStream de-duplicates on.
    """
    if not block:
        return None, None
    status = None
    if block[8:9] == b" ":
        status = block[9 : block.find(b"\r\n")].strip().decode("ascii", "replace")
    start = block.find(b"\r\nNats-Msg-Id:")
    if start < 0:
        return status, None
    start += 14
    end = block.find(b"\r\n", start)
    return status, block[start:end].strip().decode("utf-8", "replace")


def _fast_lane_available() -> bool:
    """Whether this nats-py has the internals `BethClient`'s shortcuts use (checked, not assumed)."""
    try:
        process = list(inspect.signature(Client._process_msg).parameters)
        send = list(inspect.signature(Client._send_command).parameters)
        flush = inspect.iscoroutinefunction(Client._flush_pending)
        parse = list(inspect.signature(nats_parser.Parser.parse).parameters)
        parser_state = nats_parser.Parser(None)
        state = parser_state.state == nats_parser.AWAITING_CONTROL_LINE
        buffer = isinstance(parser_state.buf, bytearray)
    except (AttributeError, TypeError, ValueError):
        return False
    return (
        process == ["self", "sid", "subject", "reply", "data", "headers"]
        and send[:2] == ["self", "cmd"]
        and flush
        and parse == ["self", "data"]
        and state
        and buffer
    )


class _RawParser(nats_parser.Parser):
    """nats-py's protocol parser with a fast path for messages to raw subscriptions.

    Complete MSG/HMSG frames at the front of the buffer whose subscription has a raw handler are
    cut with `bytes.find` and handed to the handler directly, in order: no regular expression,
    state change or coroutine per message. A raw frame not yet complete waits for more bytes; any
    other frame (another subscription, PING, INFO, -ERR, something malformed) goes to nats-py's own
    parser with everything after it.
    """

    def __init__(self, nc: BethClient) -> None:
        super().__init__(nc)
        self.raw = nc._raw
        self.client = nc

    async def parse(self, data: bytes = b"") -> None:
        buf = self.buf
        buf.extend(data)
        if self.raw and self.state == nats_parser.AWAITING_CONTROL_LINE:
            used, waiting, errors = self._dispatch(buf)
            if used:
                del buf[:used]
            for exc in errors:  # as nats-py does with a callback's error: report it, read on
                await self.client._error_cb(exc)
            if waiting:
                return
        await super().parse()

    def _dispatch(self, buf: bytearray) -> tuple[int, bool, list[Exception]]:
        """Hand the leading raw-subscription frames of `buf` to their handlers: (bytes used, whether
        what is left is the start of a raw frame or nothing, the handlers' errors)."""
        raw, size, pos = self.raw, len(buf), 0
        errors: list[Exception] = []
        while pos < size:
            if buf.startswith(b"MSG ", pos):
                with_headers = False
            elif buf.startswith(b"HMSG ", pos):
                with_headers = True
            else:
                return pos, False, errors
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return pos, size - pos < nats_parser.MAX_CONTROL_LINE_SIZE, errors
            fields = bytes(buf[pos:eol]).split()
            try:
                if with_headers:  # HMSG subject sid [reply] header-bytes total-bytes
                    subject, sid, reply, hsize, total = (
                        fields[1:] if len(fields) == 6 else (fields[1], fields[2], b"", fields[3], fields[4])
                    )
                    header_size = int(hsize)
                else:  # MSG subject sid [reply] bytes
                    subject, sid, reply, total = (
                        fields[1:] if len(fields) == 5 else (fields[1], fields[2], b"", fields[3])
                    )
                    header_size = 0
                handler = raw.get(int(sid))
                start = eol + 2
                end = start + int(total)
            except (ValueError, IndexError):
                return pos, False, errors  # malformed: nats-py reports it
            if handler is None:
                return pos, False, errors
            if end + 2 > size:
                return pos, True, errors
            if buf[end : end + 2] != b"\r\n":
                return pos, False, errors
            status, msg_id = read_header(bytes(buf[start : start + header_size]) if header_size else None)
            payload = bytes(buf[start + header_size : end])
            try:
                handler(subject.decode(), reply.decode(), payload, status, msg_id)
            except Exception as exc:
                errors.append(exc)
            pos = end + 2
        return pos, True, errors


class BethClient(Client):
    """nats-py's client with a fast lane for the two per-message hot paths.

    nats-py spends most of its time per message on work beth does not need: on receipt, parsing the
    headers into a dict, building a `Msg` and passing it through an asyncio queue to a task that
    awaits the callback; on publish, validating and encoding a headers dict. With hundreds of
    thousands of messages a second (one per event, each with its own PubAck) that was most of the
    cost of both publisher and collector. The fast lane hands a subscription's messages to a plain
    function (`subscribe_raw`), cut from the received bytes by `_RawParser` ahead of nats-py's
    parser, and sends many HPUB commands as one write (`publish_batch`) through nats-py's own
    pending buffer and flusher.

    It uses nats-py internals (`_process_msg`, `_send_command`, `_flush_pending`, the parser's
    `buf`/`state`, stable since nats-py 2.0), checked once at import; where they differ the same
    methods use nats-py's public API instead (`fast = False`), slower and otherwise identical.
    Connection handling (reconnects, TLS, pings, resubscribing) is nats-py's own either way.
    """

    fast: bool = _fast_lane_available()

    def __init__(self) -> None:
        super().__init__()
        self._raw: dict[int, RawHandler] = {}
        if self.fast:
            self._ps = _RawParser(self)

    async def subscribe_raw(self, subject: str, handler: RawHandler) -> None:
        """Call `handler` for every message on `subject`, in order, on the event loop."""

        async def via_msg(msg: Msg) -> None:  # the public way: one Msg per message
            headers = msg.headers or {}
            status = None
            if not msg.data and "Status" in headers:  # nats-py puts an inline status there
                status = f"{headers['Status']} {headers.get('Description', '')}".strip()
            handler(msg.subject, msg.reply, msg.data, status, headers.get(MSG_ID))

        sub = await self.subscribe(subject, cb=via_msg, pending_msgs_limit=-1, pending_bytes_limit=-1)
        sid = getattr(sub, "_id", None)
        if self.fast and self._subs.get(sid) is sub:  # type: ignore[arg-type]
            self._raw[sid] = handler  # type: ignore[index]

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        handler = self._raw.get(sid)
        if handler is None:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        status, msg_id = read_header(headers)
        try:
            handler(subject.decode(), reply.decode(), data, status, msg_id)
        except Exception as exc:  # as nats-py does with a callback's error: report it, read on
            await self._error_cb(exc)

    async def publish_batch(self, messages: list[_Message]) -> None:
        """Publish (subject, reply subject, payload, Nats-Msg-Id) messages, in order."""
        if not self.fast:
            for subject, reply, payload, msg_id in messages:
                await self.publish(subject, payload, reply=reply, headers={MSG_ID: msg_id})
            return
        if self.is_closed:
            raise nats.errors.ConnectionClosedError
        await self._send_command(b"".join([_hpub(*m) for m in messages]))
        await self._flush_pending()


def _hpub(subject: str, reply: str, payload: bytes, msg_id: str) -> bytes:
    """The HPUB protocol command of one message with a Nats-Msg-Id header."""
    header = b"NATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n" % msg_id.encode()
    size = len(header)
    return b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
        subject.encode(),
        reply.encode(),
        size,
        size + len(payload),
        header,
        payload,
    )


class _Connection:
    """A nats-py client connected on a `_Loop`, with the errors it reported and reconnect hooks."""

    def __init__(
        self, endpoint: Endpoint, loop: _Loop, *, connect_timeout: float, log: Callable[[str], None]
    ):
        self.endpoint, self.loop, self.log = endpoint, loop, log
        self.fatal: str | None = None
        self.last_error: str | None = None
        self.on_reconnect: list[Callable[[], None]] = []
        self.nc: BethClient = loop.call(self._connect(connect_timeout))

    async def _connect(self, timeout: float) -> BethClient:
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
        nc = BethClient()
        task = asyncio.ensure_future(
            nc.connect(
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
            return nc
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
        self._unacked: dict[int, tuple[_Message, float]] = {}  # reply token -> (message, last sent)
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
        await nc.subscribe_raw(self._reply_prefix + "*", self._on_ack)
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

    def _on_ack(self, subject: str, reply: str, data: bytes, status: str | None, msg_id: str | None) -> None:
        """A PubAck: JetStream stored the message whose reply token ends `subject` (or says why not)."""
        if status is not None and status.startswith("503"):
            return  # no stream yet: keep it, it is sent again after ack_timeout
        if b'"error"' in data:
            reason = json.loads(data).get("error", {}).get("description", data.decode(errors="replace"))
            if reason not in self._stats.errors:
                self._stats.errors.append(reason)
                self.log(f"nats: the server did not store an event: {reason}; retrying")
            return
        if self._unacked.pop(int(subject[len(self._reply_prefix) :]), None) is None:
            return  # ack of a retried copy
        self._stats.acked += 1
        if b'"duplicate"' in data:
            self._stats.duplicates += 1
        if len(self._unacked) <= self.max_in_flight // 2:
            self._acks_freed.set()

    async def _send_loop(self) -> None:
        nc = self._conn.nc
        queue, unacked = self._queue, self._unacked
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
            if self._resend_all or (unacked and now - next(iter(unacked.values()))[1] > self.ack_timeout):
                self._resend_all = False
                await self._resend(now)
            sent = 0
            while queue and len(unacked) < self.max_in_flight and nc.is_connected:
                batch = self._take(min(len(queue), self.max_in_flight - len(unacked), 512), now)
                await nc.publish_batch(batch)
                sent += len(batch)
                now = time.monotonic()
                await asyncio.sleep(0)  # let acks in
            if sent and len(self._queue) < self.max_queued:
                with self._space:
                    self._space.notify_all()
            if len(unacked) >= self.max_in_flight:
                self._acks_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._acks_freed.wait(), timeout=self.ack_timeout)

    def _take(self, n: int, now: float) -> list[_Message]:
        """The next `n` queued events as messages, each with its own reply token, now unacked."""
        queue, unacked, prefix, limit = (
            self._queue,
            self._unacked,
            self._reply_prefix,
            self._conn.nc.max_payload,
        )
        batch = []
        for _ in range(n):
            env = queue.popleft()
            payload = env.payload()
            if len(payload) > limit:  # the broker would drop the connection: report it, go on
                self._refuse(env, f"an event of {len(payload):,} bytes exceeds the broker's {limit:,}")
                continue
            token = self._next_token = self._next_token + 1
            message = (env.subject, f"{prefix}{token}", payload, env.msg_id)
            unacked[token] = (message, now)
            batch.append(message)
        return batch

    def _refuse(self, env: Envelope, reason: str) -> None:
        if reason not in self._stats.errors:
            self._stats.errors.append(reason)
        self.log(f"nats: not sent: {env.kind} event #{env.seq}: {reason}")

    async def _resend(self, now: float) -> None:
        """Send every unacked message again, oldest first (JetStream drops the copies it has)."""
        nc = self._conn.nc
        tokens = list(self._unacked)
        for i in range(0, len(tokens), 512):
            if not nc.is_connected:
                return
            batch = []
            for token in tokens[i : i + 512]:
                entry = self._unacked.get(token)
                if entry is not None:  # not acked meanwhile
                    self._unacked[token] = (entry[0], now)
                    batch.append(entry[0])
            await nc.publish_batch(batch)
            self._stats.retried += len(batch)
            await asyncio.sleep(0)


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
        self._buffer: deque[_Received] = deque()  # received, not yet fetched
        self._arrivals = Arrivals()
        self._subjects: dict[str, tuple[str, str]] = {}  # parsed subjects (a few per host)
        self._loop = _Loop("beth-nats-collector")
        try:
            self._conn = _Connection(endpoint, self._loop, connect_timeout=connect_timeout, log=self.log)
            self._loop.call(self._start(stream_max_bytes), connect_timeout)
        except BaseException:
            self._loop.stop()
            raise
        self._conn.on_reconnect.append(lambda: self._pull_soon(replace=True))  # the open request died

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
        self._outstanding = 0  # messages the open pull request may still deliver (0: none open)
        self._request = ""  # reply subject of the open pull request; its end status comes there
        self._pull_sent = 0.0
        self.pull_requests = 0  # pull requests sent (one open at a time)
        self.refused_pulls = 0  # pull requests the broker refused (409: too many waiting)
        await nc.subscribe_raw(self._inbox + ".*", self._on_msg)
        await self._pull()
        self._watchdog = asyncio.ensure_future(self._watch())

    async def _pull(self, *, replace: bool = False) -> None:
        """Ask for the next batch, unless a pull request is still open (`replace`: presume it lost)
        or enough is already buffered. One request at a time: each one the broker holds open counts
        against the consumer's limit of waiting requests, and counting deliveries against several
        at once ends in a storm of requests the broker refuses."""
        if (self._outstanding > 0 and not replace) or len(self._buffer) >= self.max_buffered:
            return
        if not self._conn.nc.is_connected:
            return
        self.pull_requests += 1
        self._request = f"{self._inbox}.{self.pull_requests}"
        self._outstanding = self.batch
        self._pull_sent = time.monotonic()
        request = json.dumps({"batch": self.batch, "expires": 5_000_000_000}).encode()
        with contextlib.suppress(nats.errors.Error):
            await self._conn.nc.publish(self._next_subject, request, reply=self._request)

    async def _watch(self) -> None:
        """Re-issue a pull request that got lost (its 5 s expiry passed without a word)."""
        while True:
            await asyncio.sleep(1.0)
            if time.monotonic() - self._pull_sent > 7.0:
                await self._pull(replace=True)

    def _on_msg(self, subject: str, reply: str, data: bytes, status: str | None, msg_id: str | None) -> None:
        """A message for the collector, or the status that ends a pull request (on the loop)."""
        if status is not None:
            if subject != self._request or status[:3] not in ("404", "408", "409"):
                return  # the end of an older request, or a status that ends nothing
            if status.startswith("409") and "Deleted" in status:
                self.log("nats: the collector's consumer was deleted; restart the collector")
            self._outstanding = 0
            if status.startswith("409") and "Waiting" in status:  # others' requests are still open
                self.refused_pulls += 1
                self._loop.loop.call_later(0.5, self._pull_soon)
            else:  # served what there was, or expired
                self._pull_soon()
            return
        buf = self._buffer
        buf.append((subject, reply, data, msg_id))
        if self._arrivals.wanted:
            self._arrivals.arrived(len(buf))
        self._outstanding -= 1
        if self._outstanding == 0:
            self._pull_soon()

    def _pull_soon(self, replace: bool = False) -> None:
        """`_pull` from a plain function on the loop (the task is kept until it is done)."""
        self._pulling = asyncio.ensure_future(self._pull(replace=replace))

    def _group(self, msgs: list[_Received]) -> list[Delivery]:
        """`msgs` (in stream order) as deliveries: one per run of consecutive messages of a sensor
        stream, each run checked in full at its first message (subject, message id) and for the rest
        only to continue it (same subject, same id but the next number). The acknowledgement token,
        the last message's reply subject, goes on the last delivery."""
        out: list[Delivery] = []
        runs: dict[str, tuple[Delivery, str]] = {}  # message id less its number -> (delivery, subject)
        for subject, _, data, msg_id in msgs:
            stream = ""
            if msg_id is not None:
                stream, _, seq = msg_id.rpartition(".")
                found = runs.get(stream)
                if found is not None:
                    d, subj = found
                    if subject == subj and seq == str(d.seq + len(d.lines)):  # type: ignore[arg-type]
                        d.lines.append(data)  # type: ignore[union-attr]
                        continue
            d = self._delivery(subject, msg_id, data)
            out.append(d)
            if d.error is None and d.kind != STATS:
                runs[stream] = (d, subject)
        if out:
            out[-1].token = msgs[-1][1]
        return out

    def _delivery(self, subject: str, msg_id: str | None, data: bytes) -> Delivery:
        """A delivery of one message, or of none with the reason (`error`) it cannot be taken."""
        parsed = self._subjects.get(subject)
        if parsed is None:
            try:
                parsed = parse_subject(subject)
            except DataError:
                return Delivery("?", "?", "", 0, lines=[data], error=f"bad subject {subject!r}")
            if len(self._subjects) < 100_000:
                self._subjects[subject] = parsed
        host, kind = parsed
        if msg_id is None:
            return Delivery(host, kind, "", 0, lines=[data], error="no Nats-Msg-Id header")
        try:
            id_host, id_kind, run, seq = parse_msg_id(msg_id)
            if (id_host, id_kind) != (host, kind):
                raise DataError(f"message id {msg_id!r} names another host or kind than its subject")
        except DataError as exc:
            return Delivery(host, kind, "", 0, lines=[data], error=exc.message)
        return Delivery(host, kind, run, seq, lines=[data])

    # --- called from the collector's thread ---

    def fetch(self, max_messages: int, timeout: float, *, fill: bool = False) -> list[Delivery]:
        buf = self._buffer
        self._arrivals.wait(buf, min(max_messages, self.max_buffered) if fill else 1, timeout)
        if self._conn.fatal:
            raise TransportError(self._conn.fatal)
        n = min(max_messages, len(buf))
        msgs = [buf.popleft() for _ in range(n)]
        if msgs and len(buf) < self.max_buffered // 2 and self._outstanding <= 0:
            self._loop.soon(self._pull_soon)
        return self._group(msgs)

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
