"""An Engine.IO session (:class:`Socket`) and the lean websocket that carries it (:class:`EngineConnection`)."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import TYPE_CHECKING, Any

from engineio import async_socket, exceptions
from engineio import packet as eio_packet
from engineio import payload as eio_payload

from hub import websocket
from hub.websocket import text_frame

if TYPE_CHECKING:
    from hub.transport.engine import EngineServer

MAX_INBOX = 64  # packets read from one websocket and not handled yet, above which reading pauses


class PayloadError(exceptions.EngineIOError):  # type: ignore[misc]
    """A polling POST whose body is not an Engine.IO payload; its session is closed."""


class PollOverlap(exceptions.EngineIOError):  # type: ignore[misc]
    """A second GET poll while one waits; its session is closed (the Node server's "overlap from client")."""


class Socket(async_socket.AsyncSocket):  # type: ignore[misc]
    """engineio's socket with its queue made on first use, pings from the wheel, and ``ws`` when lean."""

    polling = False  # a GET poll waits for packets (set on the instance only by a polling session)

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
        self.wheel_due = 0.0  # when the PingWheel next looks at this socket (time.monotonic())

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

    async def handle_poll(self) -> list[eio_packet.Packet]:
        """A long-polling GET: wait for packets to send; refuse a second GET while one waits."""
        if self.polling:
            # the Node server's rule: the session is closed, and the GET that waits gets the CLOSE packet
            await self.close(wait=False, reason=self.server.reason.TRANSPORT_ERROR)
            raise PollOverlap()
        if self.upgrading or self.upgraded:
            return [eio_packet.Packet(eio_packet.NOOP)]  # the websocket carries the session now
        self.polling = True
        try:
            return list(await self.poll())
        except exceptions.QueueEmpty:
            await self.close(wait=False, reason=self.server.reason.TRANSPORT_ERROR)
            raise
        finally:
            self.polling = False

    async def handle_post_request(self, environ: dict[str, Any]) -> None:
        """A long-polling POST (engineio 4.15's; a body that is not a payload closes the session and
        raises :class:`PayloadError`, where engineio raised ``ValueError``, logged it with its stack and
        answered ``OK``; a payload of more than engineio's 16 packets is read whole, since its size is
        already bounded by ``max_http_buffer_size``, as the JS client bounds its batches)."""
        length = int(environ.get("CONTENT_LENGTH", "0"))
        if length > self.server.max_http_buffer_size:
            raise exceptions.ContentTooLongError()
        body = await environ["wsgi.input"].read(length)
        decoded = eio_payload.Payload()
        decoded.max_decode_packets = self.server.max_http_buffer_size
        try:
            decoded.decode(body.decode("utf-8"))
        except (ValueError, KeyError, IndexError, RecursionError):  # bad UTF-8, type, base64, JSONP, depth
            await self.close(wait=False, reason=self.server.reason.TRANSPORT_ERROR)  # Node: "parse error"
            raise PayloadError() from None
        for pkt in decoded.packets:
            await self.receive(pkt)

    async def receive(self, pkt: eio_packet.Packet) -> None:
        """engineio's, but a CLOSE over polling also answers the GET that waits (with a NOOP, as the Node
        server does) instead of leaving it to time out after interval + timeout with a 400."""
        if pkt.packet_type != eio_packet.CLOSE or self.ws is not None or self.upgraded:
            await super().receive(pkt)
            return
        await self.close(wait=False, abort=True, reason=self.server.reason.CLIENT_DISCONNECT)
        if self.polling:
            self.queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))

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
            elif self._queue is not None:
                # Herald: the end of the queue, for the stock websocket's writer (a socket upgraded from
                # polling, or compressed) to close its websocket after the CLOSE packet; engineio left
                # it open until the client closed it or the writer's poll timed out (interval + timeout).
                if self.upgraded:
                    self._queue.put_nowait(None)
                if wait:
                    await self._queue.join()


class EngineConnection(websocket.WebSocketConnection):
    """The websocket of one Engine.IO socket opened as a websocket (see ``hub.websocket``)."""

    __slots__ = ("handling", "inbox", "reader", "socket")

    def __init__(self, socket: Socket, max_size: int, max_pending: int) -> None:
        super().__init__(max_size, max_pending)
        self.socket = socket
        self.inbox: collections.deque[eio_packet.Packet] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.handling = 0  # Socket.IO event handlers running for this connection (hub.transport.server)

    def busy(self) -> bool:
        """Packets wait in the inbox, or their event handlers still run: a close the peer asked for
        (or earned) goes after their acks."""
        return self.reader is not None or self.handling > 0

    def handled(self) -> None:
        """One event handler is done."""
        self.handling -= 1
        if not self.busy():
            self.idle()

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
            self.fail(websocket.CloseCode.PROTOCOL_ERROR)  # not an Engine.IO packet
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
            if not self.handling:
                self.idle()

    def lost(self) -> None:
        self.socket.server.spawn(self._transport_closed())

    async def _transport_closed(self) -> None:
        socket = self.socket
        server = socket.server
        try:
            await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        finally:
            socket.ws = None
            socket.wheel_due = 0.0
            if server.sockets.get(socket.sid) is socket:
                del server.sockets[socket.sid]
