"""engineio's aiohttp websocket class, handing a socket opened as a websocket to an ``EngineConnection``."""

from __future__ import annotations

from typing import Any

from aiohttp.web import StreamResponse, WebSocketResponse
from engineio.async_drivers import aiohttp as engineio_aiohttp

from hub import ws_upgrade
from hub.transport.environ import detach_request
from hub.transport.socket import EngineConnection, Socket
from hub.websocket import MAX_PENDING


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
            accept = None if self.compress and offers_deflate else ws_upgrade.accept_key(request.headers)
            if accept is not None:
                return self._take_over(request, accept, socket, environ)
        self._sock = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=self.compress)
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock

    def _take_over(self, request: Any, accept: str, socket: Socket, environ: dict[str, Any]) -> StreamResponse:
        connection = EngineConnection(socket, self.server.max_http_buffer_size, self.max_pending)
        tail = ws_upgrade.take_over(request, accept, connection)
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
        return ws_upgrade.TakenOver()

    async def send(self, message: str | bytes) -> None:
        """Called by engineio's writer task with each packet, in order (the stock path)."""
        if isinstance(message, bytes):
            await self._sock.send_bytes(message)
        else:
            await self._sock.send_str(message)


async def accept_and_close(environ: dict[str, Any]) -> StreamResponse:
    """A websocket for a session that already has one, or is being upgraded to one: accepted, then
    closed at once (code 1000), as the Node server does; engineio answered 400 "Unexpected HTTP request"."""
    ws = WebSocketResponse(compress=False)
    await ws.prepare(environ["aiohttp.request"])
    await ws.close()
    return ws
