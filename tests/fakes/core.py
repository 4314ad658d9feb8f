"""Shared core of the fake push providers.

`HTTPServer`: HTTP/2 over TLS with the `h2` library on asyncio. ALPN ``h2`` is offered but not
required: a connection is HTTP/2 when its first bytes are the HTTP/2 preface (prior knowledge, as
aioapns does), otherwise HTTP/1.1 through `h11` when the server allows it (google-auth refreshes its
tokens with `requests`, which only speaks HTTP/1.1).

`FakeProvider`: what both fakes share: scripted replies per token, holds, a fixed added latency,
a request log, and start/stop in the current event loop or in a background thread.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import json
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Self, cast

import h11
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes

from .tls import TestTLS, shared_tls

log = logging.getLogger(__name__)

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass
class Request:
    method: str
    path: str
    headers: list[tuple[str, str]]  # lower-case names in arrival order, pseudo-headers left out
    body: bytes
    http2: bool
    _first: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)

    def header(self, name: str) -> str | None:
        """The first value of ``name`` (a lower-case name)."""
        if self._first is None:  # built once: a request's checks look up about ten headers
            self._first = {}
            for key, value in self.headers:
                self._first.setdefault(key, value)
        return self._first.get(name)

    def header_dict(self) -> dict[str, str]:
        return dict(self.headers)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
        hdrs = [("content-type", "application/json; charset=UTF-8"), *headers]
        return cls(status, hdrs, json.dumps(obj).encode())


Handler = Callable[[Request], Awaitable[Response]]


class HTTPServer:
    """An asyncio TLS server answering every request with `handler`."""

    def __init__(
        self, handler: Handler, ssl_context: ssl.SSLContext, *, max_streams: int = 1000, http1: bool = False
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.max_streams = max_streams
        self.http1 = http1
        #: True (benchmark processes): skip h2's per-header checks and answer with a stateless HPACK
        #: encoder, so the fake's own CPU does not cap what a client can be measured at
        self.lean = False
        self.port = 0
        self.connections_made = 0
        self.protocol_errors = 0
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, ssl=self.ssl_context)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for conn in list(self._connections):
            conn.abort()
        await self._server.wait_closed()
        self._server = None

    def drop_connections(self) -> None:
        """Abort every open connection (the listener stays up)."""
        for conn in list(self._connections):
            conn.abort()


@dataclass
class _Partial:
    method: str = ""
    path: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)

    def add_headers(self, raw: Iterable[tuple[bytes | str, bytes | str]]) -> None:
        for name, value in raw:
            key, text = _text(name).lower(), _text(value)
            if key == ":method":
                self.method = text
            elif key == ":path":
                self.path = text
            elif not key.startswith(":"):
                self.headers.append((key, text))

    def request(self, http2: bool) -> Request:
        return Request(self.method, self.path, self.headers, bytes(self.body), http2)


class _Connection(asyncio.Protocol):
    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.h2: H2Connection | None = None
        self.h1: h11.Connection | None = None
        self.sniffed = b""
        self.partials: dict[int, _Partial] = {}
        self.pending: dict[int, bytes] = {}  # response bodies waiting for flow-control window
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.h1_busy = False
        self.h1_part = _Partial()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server.connections_made += 1
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        for task in self.tasks.values():
            task.cancel()

    def data_received(self, data: bytes) -> None:
        if self.h2 is not None:
            self._h2_received(data)
        elif self.h1 is not None:
            self._h1_received(data)
        else:
            self._sniff(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _sniff(self, data: bytes) -> None:
        buf = self.sniffed + data
        if len(buf) < len(H2_PREFACE) and H2_PREFACE.startswith(buf):
            self.sniffed = buf
            return
        self.sniffed = b""
        if buf.startswith(H2_PREFACE):
            self._start_h2()
            self._h2_received(buf)
        elif self.server.http1:
            self.h1 = h11.Connection(h11.SERVER)
            self._h1_received(buf)
        else:
            self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _spawn(self, key: int, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks[key] = task
        task.add_done_callback(lambda _t: self.tasks.pop(key, None))

    async def _answer(self, request: Request) -> Response:
        try:
            return await self.server.handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("fake provider handler failed")
            return Response(500)

    # -- HTTP/2

    def _start_h2(self) -> None:
        lean = self.server.lean
        config = H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_outbound_headers=not lean,
            normalize_outbound_headers=not lean,
            validate_inbound_headers=not lean,
            normalize_inbound_headers=not lean,
        )
        if lean:
            from push.h2_lean import CountingH2Connection, LeanEncoder

            # Requests being received, waiting for their answer, or sending its body: never more
            # than h2's count (an answered stream leaves ``tasks`` at once, see _h2_respond).
            conn: H2Connection = CountingH2Connection(
                config, lambda: len(self.partials) + len(self.tasks) + len(self.pending)
            )
            conn.encoder = LeanEncoder()  # type: ignore[assignment]
        else:
            conn = H2Connection(config)
        # Advertise MAX_CONCURRENT_STREAMS in a second SETTINGS frame: h2 enforces it only once the
        # client has acknowledged it, as RFC 9113 allows clients to open streams before that.
        del conn.local_settings[SettingCodes.MAX_CONCURRENT_STREAMS]
        conn.initiate_connection()
        conn.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: self.server.max_streams})
        self.h2 = conn

    def _h2_received(self, data: bytes) -> None:
        conn = self.h2
        assert conn is not None
        try:
            events = conn.receive_data(data)
        except ProtocolError:
            self.server.protocol_errors += 1
            self._h2_flush()
            self._close()
            return
        for ev in events:
            if isinstance(ev, RequestReceived):
                part = self.partials[ev.stream_id] = _Partial()
                part.add_headers(ev.headers)
            elif isinstance(ev, DataReceived):
                if (part_ := self.partials.get(ev.stream_id)) is not None:
                    part_.body += ev.data
                with contextlib.suppress(StreamClosedError):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, StreamEnded):
                if (done := self.partials.pop(ev.stream_id, None)) is not None:
                    self._spawn(ev.stream_id, self._h2_respond(ev.stream_id, done.request(http2=True)))
            elif isinstance(ev, StreamReset):
                self.partials.pop(ev.stream_id, None)
                self.pending.pop(ev.stream_id, None)
                if (task := self.tasks.pop(ev.stream_id, None)) is not None:
                    task.cancel()
            elif isinstance(ev, WindowUpdated):
                for stream_id in list(self.pending):
                    self._h2_send_pending(stream_id)
            elif isinstance(ev, ConnectionTerminated):
                self._close()
        self._h2_flush()

    def _h2_flush(self) -> None:
        if self.h2 is None or self.transport is None or self.transport.is_closing():
            return
        if out := self.h2.data_to_send():
            self.transport.write(out)

    async def _h2_respond(self, stream_id: int, request: Request) -> None:
        response = await self._answer(request)
        conn = self.h2
        if conn is None or self.transport is None or self.transport.is_closing():
            return
        headers = [(":status", str(response.status)), *response.headers]
        if response.body:
            headers.append(("content-length", str(len(response.body))))
        try:
            conn.send_headers(stream_id, headers, end_stream=not response.body)
            if response.body:
                self.pending[stream_id] = response.body
                self._h2_send_pending(stream_id)
        except (StreamClosedError, ProtocolError):
            self.pending.pop(stream_id, None)  # the client reset the stream meanwhile
        # Answered: no longer an open stream to count (a body still waiting is in ``pending``).
        self.tasks.pop(stream_id, None)
        self._h2_flush()

    def _h2_send_pending(self, stream_id: int) -> None:
        conn = self.h2
        assert conn is not None
        body = self.pending.pop(stream_id)
        try:
            while body:
                size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if size <= 0:
                    self.pending[stream_id] = body  # wait for WINDOW_UPDATE
                    return
                chunk, body = body[:size], body[size:]
                conn.send_data(stream_id, chunk, end_stream=not body)
        except (StreamClosedError, ProtocolError):
            return

    # -- HTTP/1.1

    def _h1_received(self, data: bytes) -> None:
        assert self.h1 is not None
        self.h1.receive_data(data)
        self._h1_pump()

    def _h1_pump(self) -> None:
        conn = self.h1
        assert conn is not None
        while not self.h1_busy:
            try:
                ev = conn.next_event()
            except h11.RemoteProtocolError:
                self._close()
                return
            if isinstance(ev, h11.Request):
                self.h1_part = _Partial()
                self.h1_part.add_headers([(":method", ev.method), (":path", ev.target), *ev.headers])
            elif isinstance(ev, h11.Data):
                self.h1_part.body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                self.h1_busy = True
                self._spawn(0, self._h1_respond(self.h1_part.request(http2=False)))
            elif isinstance(ev, h11.ConnectionClosed):
                self._close()
                return
            else:  # NEED_DATA or PAUSED
                return

    async def _h1_respond(self, request: Request) -> None:
        response = await self._answer(request)
        conn, transport = self.h1, self.transport
        assert conn is not None and transport is not None
        if transport.is_closing():
            return
        headers = [*response.headers, ("content-length", str(len(response.body)))]
        transport.write(conn.send(h11.Response(status_code=response.status, headers=headers)) or b"")
        transport.write(conn.send(h11.Data(data=response.body)) or b"")
        transport.write(conn.send(h11.EndOfMessage()) or b"")
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            self._close()
            return
        conn.start_next_cycle()
        self.h1_busy = False
        self._h1_pump()


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `status`/`reason` are the provider's (APNs reason, FCM error code)."""

    status: int = 200
    reason: str | None = None
    timestamp_ms: int | None = None  # APNs 410 Unregistered body
    retry_after: int | None = None  # seconds, sent as the retry-after header
    wait_s: float = 0.0  # extra delay before answering
    holds: bool = False  # wait for FakeProvider.release() before answering

    @classmethod
    def ok(cls) -> Reply:
        return cls()

    @classmethod
    def error(
        cls, status: int, reason: str, *, timestamp_ms: int | None = None, retry_after: int | None = None
    ) -> Reply:
        return cls(status, reason, timestamp_ms=timestamp_ms, retry_after=retry_after)

    @classmethod
    def delay(cls, seconds: float, then: Reply | None = None) -> Reply:
        return replace(then or cls(), wait_s=seconds)

    @classmethod
    def hold(cls, then: Reply | None = None) -> Reply:
        return replace(then or cls(), holds=True)


@dataclass
class LogEntry:
    token: str  # APNs device token; FCM token, topic or condition
    headers: dict[str, str]
    payload: Any  # parsed JSON body, None if absent or not JSON
    status: int | None = None  # None while the request is still held or delayed
    reason: str | None = None
    time: float = field(default_factory=time.time)
    apns_id: str | None = None  # APNs only
    message_id: str | None = None  # FCM only: the returned message name
    http2: bool = True


class FakeProvider(abc.ABC):
    """Scripts, holds, latency, request log and lifecycle shared by the fakes."""

    http1 = False
    alpn: tuple[str, ...] = ("h2",)

    def __init__(self, *, max_streams: int = 1000, latency: float = 0.0, tls: TestTLS | None = None) -> None:
        self.tls = tls or shared_tls()
        self.latency = latency
        self.requests: list[LogEntry] = []
        self.record = True  # False: keep no request log (long benchmark runs)
        self.server = HTTPServer(
            self.handle, self.tls.server_context(self.alpn), max_streams=max_streams, http1=self.http1
        )
        self._scripts: dict[str, deque[Reply]] = {}
        self._hold_budget: int | None = None
        self._release = asyncio.Event()
        self._held = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    async def handle(self, request: Request) -> Response: ...

    # -- lifecycle

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._loop = asyncio.get_running_loop()
        return await self.server.start(host, port)

    async def stop(self) -> None:
        self.release()
        await self.server.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve from a daemon thread with its own loop, for clients that block the test's loop
        (google-auth's synchronous token refresh inside firebase-admin)."""
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="fake-provider", daemon=True)
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.start(host, port), loop).result(10)

    def stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._thread = None

    def log(self, entry: LogEntry) -> LogEntry:
        if self.record:
            self.requests.append(entry)
        return entry

    # -- scripting

    def script(self, key: str, *replies: Reply) -> None:
        """Answer `key` with `replies` in order; the last one then repeats. Others get Reply.ok()."""
        self._scripts[key] = deque(replies or (Reply.ok(),))

    def next_reply(self, key: str) -> Reply:
        queue = self._scripts.get(key)
        if not queue:
            return Reply.ok()
        return queue.popleft() if len(queue) > 1 else queue[0]

    def hold_after(self, k: int) -> None:
        """Let `k` more successful sends through, then hold every further request until release()."""
        self._hold_budget = k

    def release(self) -> None:
        """Answer every held request and stop holding (thread-safe)."""
        loop = self._loop
        if loop is not None and self._thread is not None and not _in_loop(loop):
            loop.call_soon_threadsafe(self._release_now)
        else:
            self._release_now()

    def _release_now(self) -> None:
        self._hold_budget = None
        self._release.set()
        self._release = asyncio.Event()

    @property
    def held(self) -> int:
        """Requests currently waiting for release()."""
        return self._held

    async def wait_held(self, n: int = 1, within: float = 5.0) -> None:
        """Wait until at least `n` requests are held (TimeoutError after `within` seconds)."""
        deadline = time.monotonic() + within
        while self._held < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._held} requests held, expected {n}")
            await asyncio.sleep(0.005)

    async def pace(self, reply: Reply | None) -> None:
        """Apply holds (for scripted replies), the reply's delay and the fixed latency."""
        if reply is not None:
            must_hold = reply.holds
            if self._hold_budget is not None:
                if self._hold_budget <= 0:
                    must_hold = True
                elif reply.status == 200:
                    self._hold_budget -= 1
            if must_hold:
                event = self._release
                self._held += 1
                try:
                    await event.wait()
                finally:
                    self._held -= 1
        delay = self.latency + (reply.wait_s if reply is not None else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def cache_hpack_huffman() -> None:
    """Memoise hpack's pure-Python Huffman decoder, process-wide.

    h2 clients send ``authorization`` never-indexed, so the same ~200-byte provider JWT is
    Huffman-decoded on every request: that alone was about a third of the fake's CPU. Decoding is a
    pure function of the bytes, so caching it changes nothing else.
    """
    import hpack.hpack

    original: Callable[[bytes], bytes] = getattr(hpack.hpack, "decode_huffman")  # noqa: B009
    if getattr(original, "cached", False):
        return
    cached = functools.lru_cache(maxsize=4096)(original)

    def decode_huffman(data: bytes | memoryview) -> bytes:
        return cached(bytes(data))

    decode_huffman.cached = True  # type: ignore[attr-defined]
    setattr(hpack.hpack, "decode_huffman", decode_huffman)  # noqa: B010


def serve_forever(fake: FakeProvider, host: str, port: int, announce: Callable[[int], None]) -> None:
    """Run `fake` until SIGINT/SIGTERM, with uvloop when available; `announce` gets the port."""
    import signal

    cache_hpack_huffman()
    fake.record = False  # nobody can read the log of a separate process
    fake.server.lean = True

    async def main() -> None:
        bound = await fake.start(host, port)
        announce(bound)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await fake.stop()

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
