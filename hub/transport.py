"""The Engine.IO layer under Socket.IO, made lean for many idle websockets, with a direct write path.

Stock python-engineio serves each websocket with a writer task (blocked on an ``asyncio.Queue``
through ``wait_for``), a new task and timeout for every frame read, and a task sleeping until the
next ping; its service task then wakes every ``ping_timeout / N`` seconds to look at one socket.
Held by 10,000 idle clients that was ~38 KB and a third of a core (docs/benchmarks.md).  Here:

- *reads*: a websocket opened as such is read by :meth:`WebSocket.serve` in the request's own task,
  one ``receive()`` after another: no task, no timeout per read (dead peers are found by pings);
- *writes*: a packet is written to the transport at once when nothing is waiting before it; the
  others wait in a deque, drained by a writer task that exists only while the deque is not empty;
- *pings*: one :class:`PingWheel` per server, a timer ticking over buckets of sockets, sends every
  ping and closes a socket whose pong is later than ``ping_timeout`` (engineio's rule); no task per
  socket.  The service task only sweeps closed sockets, once per ``ping_timeout``;
- *queue*: :class:`Socket` makes its ``asyncio.Queue`` only if something uses it (polling,
  the polling-to-websocket upgrade, which keep the stock code).

Compression.  engineio's aiohttp driver builds ``WebSocketResponse`` itself, and aiohttp then
negotiates permessage-deflate with every client that offers it: a zlib context per connection
(about 95 KB each) and a compression per frame per recipient.  Chat-sized messages gain nothing
from it, so Herald turns it off unless ``HERALD_WS_COMPRESSION`` is set.

Direct writes.  :meth:`WebSocket.enqueue` writes the frame straight to the connection's transport
when nothing is waiting before it, and :meth:`WebSocket.write_frame` lets a broadcast write one
pre-built frame to many sockets (see ``hub.fanout``).  The rules that keep this correct:

- *order*: a packet is written directly only when none of this socket's packets is queued or held
  by the writer task (``pending == 0``); otherwise it goes through the queue behind them;
- *back-pressure*: when the transport's buffer is above ``HIGH_WATER`` (a slow reader), packets go
  through the queue, whose writer waits for the buffer to drain; when more than ``max_pending``
  are queued, the connection is aborted, so a slow reader never holds memory without bound and
  never slows the others (a broadcast never waits on one socket).

Pinned to python-engineio 4.15 and aiohttp 3.x: ``AsyncServer._handle_connect`` and
``AsyncSocket.close`` are copied from engineio 4.15 with the changes marked; ``_service_task``,
``schedule_ping`` and ``send`` are replaced; the websocket class follows the aiohttp driver's
interface (``handler`` being the socket's bound ``_websocket_handler``); frames are written to
``WebSocketResponse._writer.transport``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import struct
import time
from typing import Any

import engineio
import socketio
from aiohttp import WSMsgType
from aiohttp.web import WebSocketResponse
from engineio import async_socket, exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as engineio_aiohttp
from socketio import packet as sio_packet

log = logging.getLogger(__name__)

HIGH_WATER = 256 * 1024  # bytes in a transport's buffer above which packets wait in the queue
MAX_PENDING = 4096  # packets queued for one socket before it is cut off as too slow
_TEXT = 0x81  # FIN + text opcode; a server's frames are not masked


def text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed websocket text frame carrying ``payload``."""
    n = len(payload)
    if n < 126:
        return bytes((_TEXT, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", _TEXT, 126, n) + payload
    return struct.pack("!BBQ", _TEXT, 127, n) + payload


PING = eio_packet.Packet(eio_packet.PING)
PING_FRAME = text_frame(PING.encode().encode())


class PingWheel:
    """Every socket's next ping and pong deadline, on one timer: buckets of ``tick`` seconds.

    A socket is in the bucket of its next due time; ``Socket.wheel_slot`` says which bucket is
    current for it, so an entry left behind by a reschedule (a pong before its deadline) is
    skipped.  Due with no ping outstanding: send one and wait ``ping_timeout`` for the pong.  Due
    with a ping outstanding: the client is gone, close the socket (reason ``PING_TIMEOUT``).
    """

    def __init__(self, server: EngineServer, tick: float) -> None:
        self.server = server
        self.tick = tick
        self.buckets: dict[int, list[Socket]] = {}
        self.cursor = 0  # the next slot to run
        self.timer: asyncio.TimerHandle | None = None
        self.running = False
        self.closing: set[asyncio.Task[None]] = set()

    def add(self, sock: Socket, delay: float) -> None:
        slot = math.ceil((time.monotonic() + delay) / self.tick)
        sock.wheel_slot = slot
        bucket = self.buckets.get(slot)
        if bucket is None:
            self.buckets[slot] = [sock]
        else:
            bucket.append(sock)
        if self.running:
            return  # _run re-arms when it is done
        if self.timer is None or slot < self.cursor:
            if self.timer is not None:
                self.timer.cancel()
            self.cursor = slot
            self._arm()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self.timer = loop.call_at(self._loop_time(loop, self.cursor * self.tick), self._run)

    @staticmethod
    def _loop_time(loop: asyncio.AbstractEventLoop, monotonic_at: float) -> float:
        return loop.time() + (monotonic_at - time.monotonic())

    def _run(self) -> None:
        self.timer = None
        self.running = True
        try:
            self._due(math.floor(time.monotonic() / self.tick))
        finally:
            self.running = False
        if self.buckets:
            self.cursor = max(self.cursor, min(self.buckets))
            self._arm()

    def _due(self, now_slot: int) -> None:
        server = self.server
        while self.cursor <= now_slot:
            slot = self.cursor
            self.cursor += 1
            for sock in self.buckets.pop(slot, ()):
                if sock.wheel_slot != slot or sock.closed or sock.closing:
                    continue
                if sock.last_ping is None:  # the pong came: ping again
                    sock.last_ping = time.time()
                    sock.send_nowait(PING, PING_FRAME)
                    self.add(sock, server.ping_timeout)
                else:  # no pong within ping_timeout
                    sock.wheel_slot = 0
                    task = asyncio.ensure_future(sock.ping_timed_out())
                    self.closing.add(task)
                    task.add_done_callback(self.closing.discard)


class Socket(async_socket.AsyncSocket):  # type: ignore[misc]
    """engineio's socket with its queue made on first use, pings from the wheel, and ``ws`` when lean."""

    def __init__(self, server: EngineServer, sid: str) -> None:
        # BaseSocket.__init__ without the queue (made by the property below if ever used)
        self.server = server
        self.sid = sid
        self._queue: asyncio.Queue[Any] | None = None
        self.last_ping: float | None = time.time()
        self.connected = False
        self.upgrading = False
        self.upgraded = False
        self.closing = False
        self.closed = False
        self.session: dict[str, Any] = {}
        self.ws: WebSocket | None = None  # set while served by WebSocket.serve
        self.wheel_slot = 0

    @property
    def herald_ws(self) -> WebSocket | None:
        """What hub.fanout writes broadcast frames to."""
        return self.ws

    @property
    def queue(self) -> asyncio.Queue[Any]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._queue

    def schedule_ping(self) -> None:
        # only schedule a new ping if the previous ping wait cycle completed (engineio's rule)
        if self.last_ping:
            self.last_ping = None
            self.server.wheel.add(self, self.server.ping_interval)

    async def send(self, pkt: eio_packet.Packet) -> None:
        ws = self.ws
        if ws is None:
            await super().send(pkt)
            return
        if self.closed:
            raise exceptions.SocketIsClosedError()
        ws.enqueue(pkt)

    def send_nowait(self, pkt: eio_packet.Packet, frame: bytes) -> None:
        """Send from a timer callback: the pre-built ``frame`` directly if possible."""
        ws = self.ws
        if ws is not None:
            if not ws.write_frame(frame):
                ws.enqueue(pkt)
        else:
            self.queue.put_nowait(pkt)

    async def ping_timed_out(self) -> None:
        self.server.logger.info("%s: Client is gone, closing socket", self.sid)
        # abort=False writes a CLOSE packet, for a half-open socket to learn it is disconnected
        await self.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT)
        ws = self.ws
        if ws is not None:
            ws.end()

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        """Close the socket connection (engineio 4.15's, waiting on the lean writer if there is one)."""
        if not self.closed and not self.closing:
            self.closing = True
            await self.server._trigger_event(
                "disconnect", self.sid, reason or self.server.reason.SERVER_DISCONNECT, run_async=False
            )
            if not abort:
                await self.send(eio_packet.Packet(eio_packet.CLOSE))
            self.closed = True
            if wait:
                ws = self.ws
                if ws is not None:
                    await ws.flushed()
                elif self._queue is not None:
                    await self._queue.join()


class WebSocket(engineio_aiohttp.WebSocket):  # type: ignore[misc]
    """engineio's aiohttp websocket: compression as configured, the lean read loop, direct writes."""

    compress = False
    max_pending = MAX_PENDING

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=self.compress)
        await self._sock.prepare(request)
        self.environ = environ
        self.pending = 0
        self.transport: Any = None
        self.out: collections.deque[eio_packet.Packet] | None = None
        self.writer: asyncio.Task[None] | None = None
        socket = getattr(self.handler, "__self__", None)
        writer = self._sock._writer
        if (
            isinstance(socket, Socket)
            and not socket.connected  # opened as a websocket, not upgraded from polling
            and not self._sock.compress  # nothing negotiated: frames are the same for everyone
            and writer is not None
        ):
            self.transport = writer.transport
            self.socket = socket
            await self.serve(socket)
        else:
            await self.handler(self)
        return self._sock

    # -- the lean path ------------------------------------------------------------------

    async def serve(self, socket: Socket) -> None:
        """engineio's ``_websocket_handler`` for a socket opened as a websocket, without its tasks."""
        socket.connected = True
        socket.upgraded = True
        socket.ws = self
        queued, socket._queue = socket._queue, None  # the OPEN packet, sent before this existed
        while queued is not None and not queued.empty():
            pkt = queued.get_nowait()
            if pkt is not None:
                self.enqueue(pkt)
        del queued  # ~3 KB (four deques) that would live as long as this frame
        server = socket.server
        limit = server.max_http_buffer_size
        sock = self._sock
        try:
            while True:
                msg = await sock.receive()
                if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                    break  # closed by the client, or by us (a ping timeout), or an error
                data = msg.data
                if len(data) > limit:
                    break
                try:
                    await socket.receive(eio_packet.Packet(encoded_packet=data))
                except exceptions.UnknownPacketError:
                    pass
                except exceptions.SocketIsClosedError:
                    break
                except Exception:
                    server.logger.exception("Unknown receive error")
        finally:
            writer = self.writer
            if writer is not None and not sock.closed:
                await asyncio.wait([writer])
            if not sock.closed and not self.transport.is_closing():
                await sock.close()
            await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
            socket.ws = None
            socket.wheel_slot = 0
            if writer is not None:
                writer.cancel()

    def end(self) -> None:
        """Close the connection after what was written (a dead client: its read loop then ends)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _writable(self) -> bool:
        transport = self.transport
        return bool(self.pending == 0 and not transport.is_closing() and transport.get_write_buffer_size() < HIGH_WATER)

    def write_frame(self, frame: bytes) -> bool:
        """Write a pre-built text frame now if the order allows; False: send it the normal way."""
        if not self._writable():
            return False
        self.transport.write(frame)
        return True

    def enqueue(self, pkt: eio_packet.Packet) -> None:
        """Send ``pkt`` in order: direct when nothing waits before it, else behind the others."""
        if not pkt.binary and self._writable():
            encoded = pkt.encode()
            if isinstance(encoded, str):
                self.transport.write(text_frame(encoded.encode()))
                return
        self.pending += 1
        if self.pending > self.max_pending:
            self.transport.abort()  # too slow a reader: cut it off rather than buffer without bound
            return
        out = self.out
        if out is None:
            out = self.out = collections.deque()
        out.append(pkt)
        if self.writer is None:
            self.writer = asyncio.ensure_future(self._drain())

    async def send_packet(self, pkt: eio_packet.Packet) -> None:
        """``AsyncSocket.send`` for this socket (kept for callers of the former API)."""
        await self.socket.send(pkt)

    async def _drain(self) -> None:
        """The writer: exists while packets wait; aiohttp's send waits for the buffer to drain."""
        out = self.out
        assert out is not None
        try:
            while out:
                pkt = out.popleft()
                try:
                    encoded = pkt.encode()
                    if isinstance(encoded, bytes):
                        await self._sock.send_bytes(encoded)
                    else:
                        await self._sock.send_str(encoded)
                finally:
                    self.pending -= 1
        except Exception:
            out.clear()
            self.pending = 0
            if self.transport is not None:
                self.transport.abort()
        finally:
            self.writer = None
            self.out = None

    async def flushed(self) -> None:
        """Wait until every queued packet is written (``AsyncSocket.close(wait=True)``)."""
        writer = self.writer
        if writer is not None:
            await asyncio.wait([writer])

    # -- the stock path (polling upgraded to websocket) -------------------------------------

    async def send(self, message: str | bytes) -> None:
        """Called by engineio's writer task with each packet, in order."""
        if isinstance(message, bytes):
            await self._sock.send_bytes(message)
        else:
            await self._sock.send_str(message)


class EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """engineio's server making :class:`Socket` objects, pinging them from one :class:`PingWheel`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wheel = PingWheel(self, tick=min(1.0, max(0.01, self.ping_timeout / 10)))

    async def _handle_connect(self, environ: dict[str, Any], transport: str, jsonp_index: Any = None) -> Any:
        """Handle a client connection request (engineio 4.15's, making a :class:`Socket`)."""
        if self.start_service_task:  # type: ignore[has-type]
            self.start_service_task = False
            self.service_task_handle = self.start_background_task(self._service_task)

        sid = self.generate_id()
        s = Socket(self, sid)  # Herald: was async_socket.AsyncSocket
        self.sockets[sid] = s

        pkt = eio_packet.Packet(
            eio_packet.OPEN,
            {
                "sid": sid,
                "upgrades": self._upgrades(sid, transport),
                "pingTimeout": int(self.ping_timeout * 1000),
                "pingInterval": int(self.ping_interval + self.ping_interval_grace_period) * 1000,
                "maxPayload": self.max_http_buffer_size,
            },
        )
        await s.send(pkt)

        ret = await self._trigger_event("connect", sid, environ, run_async=False)
        if ret is not None and ret is not True:
            del self.sockets[sid]
            self.logger.warning("Application rejected connection")
            return self._unauthorized(ret or None)

        s.schedule_ping()

        if transport == "websocket":
            # Herald: straight to the websocket class when the request is an upgrade, without the frames
            # of handle_get_request and _upgrade_websocket held for as long as the connection lasts.
            connection = environ.get("HTTP_CONNECTION", "").lower()
            if "upgrade" in [token.strip() for token in connection.split(",")]:
                ret = await self._async["websocket"](s._websocket_handler, self)(environ)
            else:
                ret = await s.handle_get_request(environ)
            if s.closed and sid in self.sockets:
                del self.sockets[sid]
            return ret
        s.connected = True
        headers = None
        if self.cookie:
            cookie = (
                self.cookie if isinstance(self.cookie, dict) else {"name": self.cookie, "path": "/", "SameSite": "Lax"}
            )
            headers = [("Set-Cookie", self._generate_sid_cookie(sid, cookie))]
        try:
            return self._ok(await s.poll(), headers=headers, jsonp_index=jsonp_index)
        except exceptions.QueueEmpty:
            return self._bad_request()

    async def _service_task(self) -> None:
        """Sweep closed sockets once per ``ping_timeout``; the wheel does the ping timeouts."""
        self.service_task_event = self.create_event()
        while not self.service_task_event.is_set():
            try:
                await asyncio.wait_for(self.service_task_event.wait(), timeout=self.ping_timeout)
                break
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                break
            try:
                for sid in [sid for sid, s in self.sockets.items() if s.closed]:
                    self.sockets.pop(sid, None)
            except Exception:  # pragma: no cover
                self.logger.exception("service task exception")


ENVIRON_KEPT = ("aiohttp.request", "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR")


def trim_environ(environ: dict[str, Any]) -> None:
    """Drop the request headers copied into a connected socket's environ (~1 KB, kept by Socket.IO
    for the connection's life); what is left: the aiohttp request (all headers are still there)."""
    kept = {key: environ[key] for key in ENVIRON_KEPT if key in environ}
    environ.clear()  # frees the table too, which deleting keys one by one would not
    environ.update(kept)


def _bounded_int(digits: str) -> int:
    if len(digits) > 100:  # parsing a huge integer costs quadratic time (engineio's rule)
        raise ValueError("Integer is too large")
    return int(digits)


class SafeJson:
    """engineio's JSON (integers of more than 100 digits refused) with one decoder made once;
    engineio's ``loads`` made a new ``JSONDecoder`` per call."""

    _decoder = json.JSONDecoder(parse_int=_bounded_int)
    dumps = staticmethod(json.dumps)

    @classmethod
    def loads(cls, data: str | bytes | bytearray) -> Any:
        if not isinstance(data, str):
            data = data.decode(json.detect_encoding(data), "surrogatepass")
        return cls._decoder.decode(data)


class Packet(sio_packet.Packet):  # type: ignore[misc]
    """python-socketio's packet with a cheaper search for binary attachments, and `SafeJson`.

    Every packet built to be sent (each ack, each broadcast) walks its data for ``bytes``;
    python-socketio's walk builds a list and a ``functools.reduce`` per level, a tenth of a web
    node's CPU under persisted chat. Same answer: bytes or bytearray anywhere in the lists and
    dict values, tuples and other objects not looked into.
    """

    json = SafeJson

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        pending = [data]
        while pending:
            item = pending.pop()
            kind = type(item)
            if kind is str or kind is int or kind is bool or kind is float or item is None:
                continue
            if isinstance(item, dict):
                pending.extend(item.values())
            elif isinstance(item, list):
                pending.extend(item)
            elif isinstance(item, (bytes, bytearray)):
                return True
        return False


class Server(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server over :class:`EngineServer`, with :class:`Packet`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", Packet)
        super().__init__(*args, **kwargs)

    def _engineio_server_class(self) -> type[EngineServer]:
        return EngineServer


def install(sio: socketio.AsyncServer, *, compress: bool, max_pending: int = MAX_PENDING) -> None:
    """Give this server's Engine.IO the websocket class above, honouring ``compress``."""

    class ServerWebSocket(WebSocket):
        pass

    ServerWebSocket.compress = compress
    ServerWebSocket.max_pending = max_pending
    eio = sio.eio
    eio._async = {**eio._async, "websocket": ServerWebSocket}
