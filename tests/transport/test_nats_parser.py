"""The NATS fast lane's protocol parser against nats-py's own, on the same bytes cut every which way."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.protocol.parser import Parser

from beth.transport.nats import BethClient, _RawParser, read_header

pytestmark = pytest.mark.skipif(not BethClient.fast, reason="this nats-py lacks the fast lane's internals")

RAW_SIDS = {1, 2}


class Recorder:
    """What a parser hands on, in order: raw deliveries, other messages, pings, pongs, infos, errors."""

    def __init__(self, *, fail_on: bytes | None = None) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self.fail_on = fail_on
        self._raw = {sid: self._handler(sid) for sid in RAW_SIDS}

    def _handler(self, sid: int) -> Any:
        def handle(subject: str, reply: str, data: bytes, status: str | None, msg_id: str | None) -> None:
            if data == self.fail_on:
                raise ValueError("handler failed")
            self.seen.append(("raw", sid, subject, reply, data, status, msg_id))

        return handle

    # nats-py's parser calls these on its client
    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: Any) -> None:
        if sid in RAW_SIDS:  # what BethClient._process_msg does for a raw subscription
            status, msg_id = read_header(headers)
            try:
                self._raw[sid](subject.decode(), reply.decode(), data, status, msg_id)
            except Exception as exc:
                await self._error_cb(exc)
        else:
            self.seen.append(("msg", sid, subject, reply, data, headers))

    async def _process_ping(self) -> None:
        self.seen.append(("ping",))

    async def _process_pong(self) -> None:
        self.seen.append(("pong",))

    async def _process_info(self, info: dict[str, Any]) -> None:
        self.seen.append(("info", info))

    async def _process_err(self, err: str) -> None:
        self.seen.append(("err", err))

    async def _error_cb(self, exc: Exception) -> None:
        self.seen.append(("error_cb", str(exc)))


def hmsg(subject: str, sid: int, reply: str, header: bytes, payload: bytes) -> bytes:
    r = f" {reply}" if reply else ""
    return b"HMSG %s %d%s %d %d\r\n%s%s\r\n" % (
        subject.encode(),
        sid,
        r.encode(),
        len(header),
        len(header) + len(payload),
        header,
        payload,
    )


def header(msg_id: str) -> bytes:
    return b"NATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n" % msg_id.encode()


def msg(subject: str, sid: int, reply: str, payload: bytes) -> bytes:
    r = f" {reply}" if reply else ""
    return b"MSG %s %d%s %d\r\n%s\r\n" % (subject.encode(), sid, r.encode(), len(payload), payload)


STREAM = b"".join(
    [
        b'INFO {"server_id":"x","max_payload":1048576}\r\n',
        hmsg("beth.h.process", 1, "$JS.ACK.BETH.c.1.5.5.1.0", header("h.process.r.1"), b"1.0,a"),
        hmsg("beth.h.process", 1, "$JS.ACK.BETH.c.1.6.6.1.0", header("h.process.r.2"), b""),
        msg("_INBOX.p.17", 2, "", b'{"stream":"BETH","seq":17}'),
        msg("_INBOX.p.18", 2, "", b'{"stream":"BETH","seq":18, "duplicate": true}'),
        b"PING\r\n",
        hmsg("_INBOX.c", 1, "", b"NATS/1.0 404 No Messages\r\n\r\n", b""),
        msg("other.subject", 3, "reply.x", b"not for a raw handler"),
        hmsg("beth.h.dns", 1, "", b"NATS/1.0\r\nStatus: 404\r\nNats-Msg-Id: h.dns.r.1\r\n\r\n", b"x\r\ny"),
        b"PONG\r\n",
        msg("_INBOX.p.19", 2, "", b"\r\n\r\n"),
        b"+OK\r\n",
        msg("_INBOX.p.20", 2, "", b"last"),
        b"-ERR 'Permissions Violation for Publish to \"beth.x.process\"'\r\n",
        msg("_INBOX.p.21", 2, "", b"after the error"),
    ]
)


def feed(parser: Parser, data: bytes, chunk: int) -> None:
    async def run() -> None:
        for i in range(0, len(data), chunk):
            await parser.parse(data[i : i + chunk])

    asyncio.run(run())


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 11, 16, 64, 100, 1000, len(STREAM)])
def test_the_fast_lane_hands_on_exactly_what_nats_py_does(chunk: int) -> None:
    reference, fast = Recorder(), Recorder()
    feed(Parser(reference), STREAM, len(STREAM))
    feed(_RawParser(fast), STREAM, chunk)  # type: ignore[arg-type]
    assert fast.seen == reference.seen
    assert sum(1 for s in fast.seen if s[0] == "raw") == 9
    assert ("raw", 1, "_INBOX.c", "", b"", "404 No Messages", None) in fast.seen
    assert ("raw", 1, "beth.h.dns", "", b"x\r\ny", None, "h.dns.r.1") in fast.seen


def test_a_failing_handler_is_reported_and_the_rest_is_read() -> None:
    for chunk in (5, len(STREAM)):
        reference, fast = Recorder(fail_on=b"last"), Recorder(fail_on=b"last")
        feed(Parser(reference), STREAM, len(STREAM))
        feed(_RawParser(fast), STREAM, chunk)  # type: ignore[arg-type]
        assert fast.seen == reference.seen
        assert ("error_cb", "handler failed") in fast.seen
        assert fast.seen[-1][:5] == ("raw", 2, "_INBOX.p.21", "", b"after the error")


def test_a_frame_not_ended_by_crlf_is_read_as_nats_py_reads_it() -> None:
    unended = msg("_INBOX.p.1", 2, "", b"abc").replace(b"abc\r\n", b"abcXY")
    bad = unended + b"PING\r\n" + msg("_INBOX.p.2", 2, "", b"d")
    for chunk in (1, 4, len(bad)):
        reference, fast = Recorder(), Recorder()
        feed(Parser(reference), bad, len(bad))
        feed(_RawParser(fast), bad, chunk)  # type: ignore[arg-type]
        assert fast.seen == reference.seen and len(fast.seen) == 3
