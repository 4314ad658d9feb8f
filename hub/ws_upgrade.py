"""The websocket upgrade Herald answers itself, and the hand-over of aiohttp's connection to a
:class:`hub.websocket.WebSocketConnection` (pinned to aiohttp 3.x; fenced in
tests/test_library_fences.py)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from aiohttp import web

from hub.websocket import WebSocketConnection

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3


def accept_key(headers: Any) -> str | None:
    """Sec-WebSocket-Accept for an upgrade request Herald answers itself; None: leave it to aiohttp
    (a handshake that is not version 13 with a valid key, which aiohttp answers with its own 400)."""
    if headers.get("Sec-WebSocket-Version", "") != "13":
        return None
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def handshake_response(accept: str) -> bytes:
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode()


class TakenOver(web.StreamResponse):
    """What the request handler returns once the connection is a :class:`WebSocketConnection`'s:
    aiohttp has nothing left to write (the 101 went out) and must not close the transport."""

    def __init__(self) -> None:
        super().__init__(status=101)
        self.force_close()

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def take_over(request: web.BaseRequest, accept: str, connection: WebSocketConnection) -> bytes:
    """Answer the upgrade and move the connection from aiohttp to ``connection``; the handler then
    returns :class:`TakenOver`.  Returns what the client sent after its upgrade request, for
    ``connection.data_received`` once the caller has set up what the connection needs.

    Pinned to aiohttp 3.x's ``RequestHandler``: bytes that came after the upgrade request wait in
    its ``_message_tail``; with its ``transport`` unset, its ``connection_lost`` lets go of the
    connection (the server forgets it, timers stop) without closing it, and its task ends when the
    handler returns the :class:`TakenOver` response.
    """
    handler: Any = request.protocol
    transport = handler.transport
    tail: bytes = handler._message_tail
    paused: bool = handler._buffer_paused
    handler._message_tail = b""
    handler.transport = None
    handler.connection_lost(None)
    transport.write(handshake_response(accept))
    transport.set_protocol(connection)
    connection.connection_made(transport)
    if paused:
        transport.resume_reading()
    return tail
