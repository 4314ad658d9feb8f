"""Server-side websocket connections (RFC 6455) after the HTTP upgrade: one small protocol object each.

aiohttp serves a websocket from the request that opened it: the request handler's task and the
handler's coroutine frames, the parsed request and its headers, the HTTP parser, a reader queue and a
writer live as long as the connection, about 10 KB per idle socket.  Herald answers the upgrade
itself and gives the TCP transport to a :class:`WebSocketConnection` (:mod:`hub.ws_upgrade`):
a protocol object that parses frames as they
arrive and writes frames straight to the transport.  What it keeps per connection: its slots, a
partial frame while one is arriving, and a queue and a writer task only while packets wait.

Frames in: masked (a client must mask), no extensions (none are negotiated), text or binary,
fragments joined up to ``max_size`` (text checked as UTF-8 fragment by fragment); pings answered,
pongs ignored.  Bytes are kept in one ``bytearray`` while a frame is incomplete and looked at again
only once the whole frame is there, so reading is linear in the bytes received however the peer
splits them.  A frame that breaks the rules ends the connection with the code RFC 6455 (section 7.4)
gives for it: 1002 protocol error, 1007 text that is not UTF-8, 1009 message over ``max_size``.  A
close frame is answered with its own code, or 1002 if that code may not be sent (1004-1006, 1015,
1016-2999, below 1000 or above 4999) or the payload is one byte, 1007 if its reason is not UTF-8.
Either way nothing more is read, and the messages that came before are handled first
(:meth:`WebSocketConnection.fail` waits for :meth:`WebSocketConnection.busy` to be false).

Frames out, and the rules that keep them correct:

- *order*: a frame is written directly only when none of this connection's frames is queued
  (``pending == 0``); otherwise it goes through the queue behind them;
- *back-pressure*: the transport's high-water mark is ``HIGH_WATER``; above it (a slow reader) frames
  wait in the queue, whose writer waits for ``resume_writing``.  When more than ``max_pending`` are
  queued the reader is cut off (:meth:`WebSocketConnection._cut_off`): a 1013 close frame, then a
  reset after ``CUT_GRACE`` seconds.  A slow reader never holds memory without bound, in Herald or in
  the kernel, and never slows the others (a broadcast never waits on one connection).
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import socket
import struct
from enum import IntEnum
from typing import Any

from aiohttp._websocket.helpers import websocket_mask  # C-accelerated when aiohttp's extension is built

HIGH_WATER = 256 * 1024  # bytes in a transport's buffer above which frames wait in the queue
MAX_PENDING = 4096  # frames queued for one connection before it is cut off as too slow
CLOSE_GRACE = 5.0  # seconds the messages received before a close may take to be handled
CUT_GRACE = 2.0  # seconds a reader cut off as too slow has to read its close frame before the reset

FIN = 0x80
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    INVALID_DATA = 1007
    TOO_BIG = 1009
    TRY_AGAIN_LATER = 1013


def may_be_received(code: int) -> bool:
    """Whether a peer may send this close code (RFC 6455 7.4, and the IANA registry's 1012-1014;
    the rule of the Node ``ws`` server)."""
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999


def frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, unfragmented frame (a server's frames are never masked)."""
    n = len(payload)
    if n < 126:
        return bytes((FIN | opcode, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", FIN | opcode, 126, n) + payload
    return struct.pack("!BBQ", FIN | opcode, 127, n) + payload


def text_frame(payload: bytes) -> bytes:
    """A text frame carrying ``payload`` (UTF-8 already)."""
    return frame(OP_TEXT, payload)


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:123])


class WebSocketConnection(asyncio.Protocol):
    """One websocket: frames parsed as they arrive, frames written straight to the transport.

    Subclasses say what a message means (:meth:`message_received`) and what the end of the
    connection means (:meth:`lost`).
    """

    __slots__ = (
        "_buffer",
        "_close_after_flush",
        "_close_when_idle",
        "_fragment_opcode",
        "_fragments",
        "_need",
        "_resumed",
        "_stopped",
        "_utf8",
        "closing",
        "max_pending",
        "max_size",
        "out",
        "paused",
        "pending",
        "transport",
        "writer",
    )

    def __init__(self, max_size: int, max_pending: int = MAX_PENDING) -> None:
        self.transport: Any = None
        self.max_size = max_size
        self.max_pending = max_pending
        self.closing = False  # a close frame was sent or the connection was lost: nothing more goes out
        self.paused = False  # the transport's buffer is above HIGH_WATER
        self.pending = 0  # frames in the queue or held by the writer
        self.out: collections.deque[bytes] | None = None
        self.writer: asyncio.Task[None] | None = None
        self._buffer: bytearray | None = None  # the start of a frame whose rest has not arrived
        self._need = 0  # bytes the buffer must hold before it is worth parsing again
        self._fragments: bytearray | None = None  # a fragmented message so far
        self._fragment_opcode = OP_TEXT
        self._utf8: codecs.IncrementalDecoder | None = None  # checks a fragmented text message as it comes
        self._close_when_idle: int | None = None  # the close code to send once busy() is false
        self._stopped = False  # nothing more is read: ending, or a close is held for busy()
        self._resumed: asyncio.Future[None] | None = None
        self._close_after_flush: int | None = None

    # -- for subclasses -----------------------------------------------------------------

    def message_received(self, data: str | bytes) -> None:
        """A whole text (``str``) or binary (``bytes``) message."""

    def lost(self) -> None:
        """The connection is gone (closed by either side, or broken)."""

    def busy(self) -> bool:
        """Whether messages already received are still being handled (subclasses that handle them
        later say so, and call :meth:`idle` when done)."""
        return False

    def idle(self) -> None:
        """The messages received so far are handled: send the close :meth:`fail` held back."""
        code = self._close_when_idle
        if code is not None:
            self._close_when_idle = None
            self.close(code)

    @property
    def ending(self) -> bool:
        """Closing, or a close is waiting for the queued frames: nothing more is read or queued."""
        return self.closing or self._close_after_flush is not None

    @property
    def reading(self) -> bool:
        """Whether frames are still read (not after a close frame, a broken rule, or the end)."""
        return not self._stopped

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._stopped = True
        self._wake_writer()
        if self.out is not None:
            self.out.clear()
        self.lost()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_writer()

    def eof_received(self) -> bool:
        return False  # a half-closed websocket is a closed one

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        if buffer is not None:
            buffer += data
            if len(buffer) < self._need or self._stopped:
                return  # the frame is still incomplete: it is parsed once, when whole
            self._buffer = None
            self._parse(bytes(buffer))
        elif not self._stopped:
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        end = len(data)
        pos = 0
        need = 2
        while not self._stopped:
            if end - pos < 2:
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            opcode = b0 & 0x0F
            n = b1 & 0x7F
            head = pos + 2
            if n == 126:
                if end - pos < 4:
                    need = 4
                    break
                n = int.from_bytes(data[head : head + 2])
                head += 2
            elif n == 127:
                if end - pos < 10:
                    need = 10
                    break
                n = int.from_bytes(data[head : head + 8])
                head += 8
            if b0 & 0x70 or not b1 & 0x80 or (opcode >= OP_CLOSE and (n > 125 or not b0 & FIN)):
                self.fail(CloseCode.PROTOCOL_ERROR)  # reserved bits, an unmasked frame, a long control frame
                return
            if n > self.max_size:
                self.fail(CloseCode.TOO_BIG)
                return
            start = head + 4
            if end - start < n:
                need = start + n - pos
                break
            payload = bytearray(data[start : start + n])
            websocket_mask(data[head:start], payload)
            pos = start + n
            self._frame(b0 & FIN, opcode, payload)
        if pos < end and not self._stopped:
            self._buffer = bytearray(data[pos:])
            self._need = need

    def _frame(self, fin: int, opcode: int, payload: bytearray) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if self._fragments is not None:
                self.fail(CloseCode.PROTOCOL_ERROR)  # a new message inside a fragmented one
            elif fin:
                self._deliver(opcode, payload)
            else:
                self._fragments = payload
                self._fragment_opcode = opcode
                if opcode == OP_TEXT:
                    self._utf8 = codecs.getincrementaldecoder("utf-8")()
                    self._check_utf8(payload, final=False)
        elif opcode == OP_CONTINUATION:
            fragments = self._fragments
            if fragments is None:
                self.fail(CloseCode.PROTOCOL_ERROR)
                return
            fragments += payload
            if len(fragments) > self.max_size:
                self.fail(CloseCode.TOO_BIG)
            elif self._check_utf8(payload, final=bool(fin)) and fin:
                self._fragments = None
                self._utf8 = None
                self._deliver(self._fragment_opcode, fragments)
        elif opcode == OP_CLOSE:
            self.fail(_close_answer(payload))
        elif opcode == OP_PING:
            self.transport.write(frame(OP_PONG, bytes(payload)))
        elif opcode != OP_PONG:
            self.fail(CloseCode.PROTOCOL_ERROR)  # an opcode RFC 6455 reserves

    def _check_utf8(self, payload: bytearray, *, final: bool) -> bool:
        """Feed a text fragment to the incremental check: False (and the connection failed) at the
        first byte that cannot be UTF-8, without waiting for the rest of the message."""
        utf8 = self._utf8
        if utf8 is None:
            return True
        try:
            utf8.decode(payload, final)
        except UnicodeDecodeError:
            self.fail(CloseCode.INVALID_DATA)
            return False
        return True

    def _deliver(self, opcode: int, payload: bytearray) -> None:
        if opcode == OP_BINARY:
            self.message_received(bytes(payload))
            return
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            self.fail(CloseCode.INVALID_DATA)
            return
        self.message_received(text)

    def fail(self, code: int) -> None:
        """End the connection from our side after the peer's close frame or a broken rule: nothing
        more is read; the close frame goes once the messages received before are handled."""
        if self._stopped:
            return
        self._stopped = True
        self._buffer = None
        self._fragments = None
        self._utf8 = None
        self._close_when_idle = code
        self.transport.pause_reading()
        if self.busy():  # bounded: a handler that hangs does not keep the connection open
            asyncio.get_running_loop().call_later(CLOSE_GRACE, self.idle)
        else:
            self.idle()

    # -- writing ------------------------------------------------------------------------

    def write_frame(self, data: bytes) -> bool:
        """Write a whole frame now if the order allows; False: it was not written."""
        if self.pending or self.paused or self.closing:
            return False
        self.transport.write(data)
        return True

    def send_frame(self, data: bytes) -> None:
        """Send a whole frame in order: now when nothing waits before it, else behind the others."""
        if self.write_frame(data) or self.ending:
            return
        self.pending += 1
        if self.pending > self.max_pending:
            self._cut_off()  # too slow a reader: cut it off rather than buffer without bound
            return
        out = self.out
        if out is None:
            out = self.out = collections.deque()
        out.append(data)
        if self.writer is None:
            self.writer = asyncio.ensure_future(self._drain())

    def _cut_off(self) -> None:
        """Cut off a reader too slow for its queue: what waits in the queue is dropped, a 1013 close
        frame (try again later) goes behind what the transport already holds, and CUT_GRACE seconds
        later the connection is reset if it is still open: a reset, not a close, so that the kernel
        drops the bytes the reader never took instead of keeping them for it."""
        self.closing = True
        self._stopped = True
        if self.out is not None:
            self.out.clear()
        self._wake_writer()
        transport = self.transport
        transport.write(close_frame(CloseCode.TRY_AGAIN_LATER, "too slow"))
        transport.close()  # closes once what it holds is written, or at the reset
        asyncio.get_running_loop().call_later(CUT_GRACE, reset, transport)

    async def _drain(self) -> None:
        """The writer: exists while frames wait; waits while the transport's buffer is full."""
        out = self.out
        assert out is not None
        try:
            while out and not self.closing:
                if self.paused:
                    self._resumed = asyncio.get_running_loop().create_future()
                    await self._resumed
                    continue
                self.transport.write(out.popleft())
                self.pending -= 1
        finally:
            self.writer = None
            self.out = None
            self.pending = 0
            if self._close_after_flush is not None:
                self.close(self._close_after_flush)

    def _wake_writer(self) -> None:
        resumed = self._resumed
        if resumed is not None:
            self._resumed = None
            if not resumed.done():
                resumed.set_result(None)

    async def flushed(self) -> None:
        """Wait until every queued frame is written."""
        writer = self.writer
        if writer is not None:
            await asyncio.wait([writer])

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Send a close frame after what is queued, then close the transport (which writes what it
        holds first); the peer's own close frame, if it comes, finds the connection ending."""
        if self.closing:
            return
        self._stopped = True
        if self.writer is not None:
            self._close_after_flush = code
            return
        self.closing = True
        self._buffer = None
        self._fragments = None
        self._utf8 = None
        self.transport.write(close_frame(code, reason))
        self.transport.close()


def _close_answer(payload: bytearray) -> int:
    """The code to answer a peer's close frame with (RFC 6455 5.5.1 and 7.4)."""
    if not payload:
        return CloseCode.NORMAL  # no status code given
    if len(payload) == 1:
        return CloseCode.PROTOCOL_ERROR  # a status code is two bytes
    code = int.from_bytes(payload[:2])
    if not may_be_received(code):
        return CloseCode.PROTOCOL_ERROR
    try:
        payload[2:].decode()
    except UnicodeDecodeError:
        return CloseCode.INVALID_DATA
    return code


def reset(transport: Any) -> None:
    """Reset a connection that is still open (TCP RST: unsent bytes are dropped, not kept)."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.fileno() == -1:
        return  # closed already: everything was read
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
