"""The Socket.IO server over Herald's Engine.IO layer (``hub.transport``).

What it adds to python-socketio, by the Node server's rules:

- a connection that has not joined a namespace within ``connect_timeout`` seconds is closed;
- a packet that breaks the protocol (:class:`PacketError`) is answered, never only logged with its
  stack: an event whose ack id could be read gets an error ack (``invalid_payload``), a CONNECT gets a
  ``connect_error`` with that code, anything else closes the connection; one log line each;
- a CONNECT to a namespace nobody serves gets ``connect_error`` ``{message, data: {code}}``;
- the event handlers running for a lean websocket are counted, so that a close the client asked for
  (or earned) goes after their acks (``hub.websocket.WebSocketConnection.fail``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio
from socketio import packet as sio_packet

from config.errors import Code
from hub.errors import HubError, ack_error
from hub.transport.driver import WebSocket
from hub.transport.engine import EngineServer
from hub.transport.packets import Packet, PacketError
from hub.transport.socket import EngineConnection
from hub.websocket import MAX_PENDING, text_frame

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 45.0  # the Node server's default


class Server(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server over :class:`EngineServer`, with :class:`Packet`."""

    def __init__(self, *args: Any, connect_timeout: float = CONNECT_TIMEOUT, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", Packet)
        super().__init__(*args, **kwargs)
        self.connect_timeout = connect_timeout
        self._connect_deadlines: dict[str, asyncio.TimerHandle] = {}
        self._event_tasks: set[asyncio.Task[None]] = set()

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

    # -- connecting ---------------------------------------------------------------------

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        await super()._handle_eio_connect(eio_sid, environ)
        loop = asyncio.get_running_loop()
        self._connect_deadlines[eio_sid] = loop.call_later(self.connect_timeout, self._connect_timed_out, eio_sid)

    def _connect_timed_out(self, eio_sid: str) -> None:
        self._connect_deadlines.pop(eio_sid, None)
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and not socket.closed:
            log.info("closing a connection that joined no namespace within %g s", self.connect_timeout)
            self.eio.spawn(socket.close(wait=False, reason=self.eio.reason.SERVER_DISCONNECT))

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        """python-socketio's, but a namespace nobody serves is refused with a code, and a connect
        that succeeds ends the connect timeout."""
        namespace = namespace or "/"
        if not self._serves(namespace):
            await self._connect_error(eio_sid, namespace, Code.NOT_FOUND, "Invalid namespace")
            return
        await super()._handle_connect(eio_sid, namespace, data)
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is not None and self.manager.is_connected(sid, namespace):
            deadline = self._connect_deadlines.pop(eio_sid, None)
            if deadline is not None:
                deadline.cancel()

    def _serves(self, namespace: str) -> bool:
        # python-socketio's test in _handle_connect
        return (
            namespace in self.handlers
            or namespace in self.namespace_handlers
            or self.namespaces == "*"
            or namespace in self.namespaces
        )

    async def _connect_error(self, eio_sid: str, namespace: str, code: Code, message: str) -> None:
        """``connect_error`` in the shape of a refused connect handler's (``{message, data: {code, message}}``)."""
        data = {"message": message, "data": {"code": code, "message": message}}
        await self._send_packet(eio_sid, Packet(sio_packet.CONNECT_ERROR, data=data, namespace=namespace))

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        deadline = self._connect_deadlines.pop(eio_sid, None)
        if deadline is not None:
            deadline.cancel()
        await super()._handle_eio_disconnect(eio_sid, reason)

    # -- packets ------------------------------------------------------------------------

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except PacketError as exc:
            await self._refuse(eio_sid, exc)
        except ValueError as exc:  # python-socketio's own: an unexpected binary packet or attachment
            await self._refuse(eio_sid, PacketError(str(exc)))

    async def _refuse(self, eio_sid: str, exc: PacketError) -> None:
        """Answer a packet that breaks the protocol: an error ack, a connect_error, or the end."""
        namespace = exc.namespace
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        connected = sid is not None and self.manager.is_connected(sid, namespace)
        message = f"the packet does not decode: {exc.reason}"
        if exc.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT) and exc.ack_id is not None and connected:
            log.info("refused an event: %s", exc.reason, extra={"sid": sid})
            error = ack_error(HubError(Code.INVALID_PAYLOAD, message))
            await self._send_packet(eio_sid, Packet(sio_packet.ACK, data=[error], namespace=namespace, id=exc.ack_id))
        elif exc.packet_type == sio_packet.CONNECT and not connected:
            log.info("refused a connect: %s", exc.reason)
            await self._connect_error(eio_sid, namespace, Code.INVALID_PAYLOAD, message)
        else:
            log.info("closing a connection that sent a bad packet: %s", exc.reason, extra={"sid": sid})
            socket = self.eio.sockets.get(eio_sid)
            if socket is not None:
                await socket.close(wait=False, reason=self.eio.reason.TRANSPORT_ERROR)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: list[Any]) -> None:
        """python-socketio's (handlers always run as tasks), counting the handlers that run for a lean
        websocket: its close waits for their acks."""
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.manager.is_connected(sid, namespace):
            return
        socket = self.eio.sockets.get(eio_sid)
        ws = socket.ws if socket is not None else None
        if ws is not None:
            ws.handling += 1
        task = asyncio.ensure_future(self._run_event(sid, eio_sid, data, namespace, id, ws))
        self._event_tasks.add(task)
        task.add_done_callback(self._event_tasks.discard)

    async def _run_event(
        self, sid: str, eio_sid: str, data: list[Any], namespace: str, id: int | None, ws: EngineConnection | None
    ) -> None:
        try:
            await self._handle_event_internal(self, sid, eio_sid, data, namespace, id)
        finally:
            if ws is not None:
                ws.handled()


def install(sio: socketio.AsyncServer, *, compress: bool, max_pending: int = MAX_PENDING) -> None:
    """Give this server's Engine.IO the websocket class above, honouring ``compress``."""

    class ServerWebSocket(WebSocket):
        pass

    ServerWebSocket.compress = compress
    ServerWebSocket.max_pending = max_pending
    eio = sio.eio
    eio._async = {**eio._async, "websocket": ServerWebSocket}
