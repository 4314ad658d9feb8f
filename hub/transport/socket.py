"""An Engine.IO session (:class:`Socket`) and the lean websocket that carries it (:class:`EngineConnection`)."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import TYPE_CHECKING, Any

from engineio import async_socket, exceptions
from engineio import packet as eio_packet

from hub import websocket
from hub.websocket import text_frame

if TYPE_CHECKING:
    from hub.transport.engine import EngineServer

MAX_INBOX = 64  # packets read from one websocket and not handled yet, above which reading pauses


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
