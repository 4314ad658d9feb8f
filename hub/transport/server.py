"""The Socket.IO server over Herald's Engine.IO layer (``hub.transport``)."""

from __future__ import annotations

from typing import Any

import socketio

from hub.transport.driver import WebSocket
from hub.transport.engine import EngineServer
from hub.transport.packets import Packet
from hub.websocket import MAX_PENDING, text_frame


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
