"""A websocket client written out byte by byte (RFC 6455 framing, Engine.IO and Socket.IO packets as
text), for tests that must say exactly what goes on the wire: no library client hides the frames."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct

from hub import websocket, ws_upgrade
from tests.support.tokens import token_for


class RawClient:
    """A websocket client written out byte by byte, so each test says exactly what goes on the wire."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, version: str = "13") -> tuple[RawClient, bytes]:
        """Connect and send the upgrade; returns the client and the response head."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        if head.startswith(b"HTTP/1.1 101"):
            accept = base64.b64encode(hashlib.sha1(key.encode() + ws_upgrade.GUID).digest())
            assert b"Sec-WebSocket-Accept: " + accept + b"\r\n" in head
        return cls(reader, writer), head

    @staticmethod
    def frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
        n = len(payload)
        b0 = (0x80 if fin else 0) | rsv | opcode
        m = 0x80 if masked else 0
        if n < 126:
            head = bytes((b0, m | n))
        elif n < 65536:
            head = struct.pack("!BBH", b0, m | 126, n)
        else:
            head = struct.pack("!BBQ", b0, m | 127, n)
        if not masked:
            return head + payload
        mask = os.urandom(4)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read(self) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload); a server never masks."""
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), 5)
        assert b0 & 0x80 and not b1 & 0x80  # whole frames, unmasked
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2))
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8))
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def text(self) -> str:
        opcode, payload = await self.read()
        assert opcode == websocket.OP_TEXT, (opcode, payload)
        return payload.decode()

    async def until(self, prefix: str) -> str:
        while not (text := await self.text()).startswith(prefix):
            pass
        return text

    async def texts_until_close(self) -> tuple[list[str], int]:
        """The text frames up to the server's close frame, and its code."""
        texts = []
        while True:
            opcode, payload = await self.read()
            if opcode == websocket.OP_CLOSE:
                return texts, int.from_bytes(payload[:2])
            texts.append(payload.decode())

    async def closed_with(self) -> int:
        """Read up to the server's close frame: its code; then the server ends the TCP connection."""
        _, code = await self.texts_until_close()
        assert await asyncio.wait_for(self.reader.read(), 5) == b""
        return code


def connect_packet(user: str) -> bytes:
    return ("40" + json.dumps({"token": token_for(user)})).encode()


async def connected(port: int, user: str) -> RawClient:
    client, _ = await RawClient.open(port)
    assert (await client.text()).startswith("0{")  # Engine.IO OPEN
    client.send(RawClient.frame(websocket.OP_TEXT, connect_packet(user)))
    await client.until('42["ready"')
    return client
