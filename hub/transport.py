"""The Engine.IO layer under Socket.IO, made lean for many idle websockets, with a direct write path.

Stock python-engineio serves each websocket with a writer task (blocked on an ``asyncio.Queue``
through ``wait_for``), a new task and timeout for every frame read, and a task sleeping until the
next ping; its service task then wakes every ``ping_timeout / N`` seconds to look at one socket.
And aiohttp keeps, for as long as a websocket lasts, the request that opened it: the handler's
task and coroutine frames, the parsed request, the HTTP parser, a reader queue and a writer.
Held by 10,000 idle clients that was ~38 KB a socket and a third of a core (docs/benchmarks.md).
Here:

- *connection*: a socket opened as a websocket is handed, right after the upgrade, to an
  :class:`EngineConnection` (``hub.websocket``): one protocol object that parses frames as they
  arrive and writes frames straight to the transport; aiohttp's request, handler and task end;
- *reads*: a pong reschedules the ping as its frame is parsed; the other packets are handled one
  after another, in order (a Socket.IO CONNECT before the events that follow it), by a reader
  task that exists only while packets wait (Socket.IO then runs each event in a task of its own).
  More than ``MAX_INBOX`` waiting pauses reading from the client;
- *writes*: a packet is written to the transport at once when nothing is waiting before it; the
  others wait in a deque, drained by a writer task that exists only while the deque is not empty
  (order and back-pressure rules in ``hub.websocket``);
- *pings*: one :class:`PingWheel` per server, a timer ticking over buckets of sockets, sends every
  ping and closes a socket whose pong is later than ``ping_timeout`` (engineio's rule); no task per
  socket.  The service task only sweeps closed sockets, once per ``ping_timeout``;
- *queue*: :class:`Socket` makes its ``asyncio.Queue`` only if something uses it (polling,
  the polling-to-websocket upgrade, compression, which keep the stock code).

Compression.  engineio's aiohttp driver builds ``WebSocketResponse`` itself, and aiohttp then
negotiates permessage-deflate with every client that offers it: a zlib context per connection
(about 95 KB each) and a compression per frame per recipient.  Chat-sized messages gain nothing
from it, so Herald turns it off unless ``HERALD_WS_COMPRESSION`` is set; a client that offers it
to a node where it is set is served by aiohttp's ``WebSocketResponse``, the stock way.

Pinned to python-engineio 4.15 and aiohttp 3.x: ``AsyncServer._handle_connect`` and
``AsyncSocket.close`` are copied from engineio 4.15 with the changes marked; ``_service_task``,
``schedule_ping`` and ``send`` are replaced; the websocket class follows the aiohttp driver's
interface (``handler`` being the socket's bound ``_websocket_handler``); the take-over of an
aiohttp connection is ``hub.websocket.take_over``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import time
from typing import Any

import engineio
import socketio
from aiohttp.web import StreamResponse, WebSocketResponse
from engineio import async_socket, exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as engineio_aiohttp
from socketio import packet as sio_packet

from hub import websocket
from hub.websocket import MAX_PENDING, text_frame

log = logging.getLogger(__name__)

MAX_INBOX = 64  # packets read from one websocket and not handled yet, above which reading pauses
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
        self.ws: EngineConnection | None = None  # the websocket, when opened as one
        self.wheel_slot = 0

    @property
    def herald_ws(self) -> EngineConnection | None:
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

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        """Close the socket connection (engineio 4.15's; a lean websocket is closed after the packets
        queued for it, the CLOSE packet last, where engineio left that to the client)."""
        if not self.closed and not self.closing:
            self.closing = True
            await self.server._trigger_event(
                "disconnect", self.sid, reason or self.server.reason.SERVER_DISCONNECT, run_async=False
            )
            if not abort:
                await self.send(eio_packet.Packet(eio_packet.CLOSE))
            self.closed = True
            ws = self.ws
            if ws is not None:
                ws.close()
                if wait:
                    await ws.flushed()
            elif wait and self._queue is not None:
                await self._queue.join()


class EngineConnection(websocket.WebSocketConnection):
    """The websocket of one Engine.IO socket opened as a websocket (see ``hub.websocket``)."""

    __slots__ = ("inbox", "reader", "socket")

    def __init__(self, socket: Socket, max_size: int, max_pending: int) -> None:
        super().__init__(max_size, max_pending)
        self.socket = socket
        self.inbox: collections.deque[eio_packet.Packet] | None = None
        self.reader: asyncio.Task[None] | None = None

    def enqueue(self, pkt: eio_packet.Packet) -> None:
        """Send ``pkt`` in order: direct when nothing waits before it, else behind the others."""
        encoded = pkt.encode()
        if isinstance(encoded, str):
            self.send_frame(text_frame(encoded.encode()))
        else:
            self.send_frame(websocket.frame(websocket.OP_BINARY, encoded))

    def message_received(self, data: str | bytes) -> None:
        try:
            pkt = eio_packet.Packet(encoded_packet=data)
        except Exception:
            self.close(websocket.CloseCode.PROTOCOL_ERROR)  # not an Engine.IO packet
            return
        if pkt.packet_type == eio_packet.PONG:
            self.socket.schedule_ping()
            return
        inbox = self.inbox
        if inbox is None:
            inbox = self.inbox = collections.deque()
        inbox.append(pkt)
        if len(inbox) == MAX_INBOX:
            self.transport.pause_reading()  # the reader is behind: let TCP push back on the client
        if self.reader is None:
            self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        """The reader: exists while packets wait; handles them one after another, in order."""
        inbox = self.inbox
        assert inbox is not None
        socket = self.socket
        try:
            while inbox:
                if len(inbox) == MAX_INBOX:
                    self.transport.resume_reading()
                try:
                    await socket.receive(inbox.popleft())
                except (exceptions.UnknownPacketError, exceptions.SocketIsClosedError):
                    pass
                except Exception:
                    socket.server.logger.exception("Unknown receive error")
        finally:
            self.reader = None
            self.inbox = None

    def lost(self) -> None:
        self.socket.server.spawn(self._transport_closed())

    async def _transport_closed(self) -> None:
        socket = self.socket
        server = socket.server
        try:
            await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        finally:
            socket.ws = None
            socket.wheel_slot = 0
            if server.sockets.get(socket.sid) is socket:
                del server.sockets[socket.sid]


class WebSocket(engineio_aiohttp.WebSocket):  # type: ignore[misc]
    """engineio's aiohttp websocket, handing a socket opened as a websocket to an :class:`EngineConnection`."""

    compress = False
    max_pending = MAX_PENDING

    async def __call__(self, environ: dict[str, Any]) -> StreamResponse:
        request = environ["aiohttp.request"]
        socket = getattr(self.handler, "__self__", None)
        # opened as a websocket (not upgraded from polling), without compression to negotiate
        if isinstance(socket, Socket) and not socket.connected and request.transport is not None:
            offers_deflate = "permessage-deflate" in request.headers.get("Sec-WebSocket-Extensions", "")
            accept = None if self.compress and offers_deflate else websocket.accept_key(request.headers)
            if accept is not None:
                return self._take_over(request, accept, socket, environ)
        self._sock = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=self.compress)
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock

    def _take_over(self, request: Any, accept: str, socket: Socket, environ: dict[str, Any]) -> StreamResponse:
        connection = EngineConnection(socket, self.server.max_http_buffer_size, self.max_pending)
        tail = websocket.take_over(request, accept, connection)
        detach_request(environ)  # Socket.IO keeps the environ: not the aiohttp request and what it holds
        socket.connected = True
        socket.upgraded = True
        socket.ws = connection
        queued, socket._queue = socket._queue, None  # the OPEN packet, sent before this existed
        while queued is not None and not queued.empty():
            pkt = queued.get_nowait()
            if pkt is not None:
                connection.enqueue(pkt)
        if tail:
            connection.data_received(tail)
        return websocket.TakenOver()

    async def send(self, message: str | bytes) -> None:
        """Called by engineio's writer task with each packet, in order (the stock path)."""
        if isinstance(message, bytes):
            await self._sock.send_bytes(message)
        else:
            await self._sock.send_str(message)


class EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """engineio's server making :class:`Socket` objects, pinging them from one :class:`PingWheel`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wheel = PingWheel(self, tick=min(1.0, max(0.01, self.ping_timeout / 10)))
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.logger.error("socket task failed", exc_info=exc)

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
                try:
                    ret = await self._async["websocket"](s._websocket_handler, self)(environ)
                except BaseException:  # a handshake aiohttp refused: no socket left behind
                    await s.close(wait=False, abort=True, reason=self.reason.TRANSPORT_ERROR)
                    self.sockets.pop(sid, None)
                    raise
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


ENVIRON_KEPT = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR")


def remote_address(environ: dict[str, Any]) -> str:
    """The client's address: engineio's aiohttp driver fills REMOTE_ADDR with a constant, so the
    aiohttp request's while the environ has it, else what the take-over or trim left there."""
    request = environ.get("aiohttp.request")
    if request is not None:
        return str(request.remote or "unknown")
    return str(environ.get("REMOTE_ADDR") or "unknown")


def detach_request(environ: dict[str, Any]) -> None:
    """Replace the aiohttp request in a socket's environ (which holds the connection's handler,
    parser and headers) by the one thing Herald reads of it later: the client's address."""
    environ["REMOTE_ADDR"] = remote_address(environ)
    environ.pop("aiohttp.request", None)
    environ.pop("wsgi.input", None)


def trim_environ(environ: dict[str, Any]) -> None:
    """Drop what a connected socket's environ need not keep (Socket.IO keeps it for the connection's
    life): the aiohttp request and the request headers copied into it (~1 KB); what is left: the
    method, path, query and the client's address."""
    detach_request(environ)
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

    async def _send_packet(self, eio_sid: str, pkt: Packet) -> None:
        """python-socketio's, writing a text packet (each ack, each event to one socket) straight to
        a lean websocket as one frame; anything else goes python-socketio's way."""
        encoded = pkt.encode()
        socket = self.eio.sockets.get(eio_sid) if isinstance(encoded, str) else None
        ws = socket.ws if socket is not None and not socket.closed else None
        if ws is None:
            await super()._send_packet(eio_sid, pkt)
            return
        ws.send_frame(text_frame(("4" + encoded).encode()))  # "4": an Engine.IO MESSAGE


def install(sio: socketio.AsyncServer, *, compress: bool, max_pending: int = MAX_PENDING) -> None:
    """Give this server's Engine.IO the websocket class above, honouring ``compress``."""

    class ServerWebSocket(WebSocket):
        pass

    ServerWebSocket.compress = compress
    ServerWebSocket.max_pending = max_pending
    eio = sio.eio
    eio._async = {**eio._async, "websocket": ServerWebSocket}
