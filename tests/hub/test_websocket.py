"""Herald's own websocket connections (hub.websocket), seen from a raw client on the wire: the
handshake, frames split and fragmented, pings, the close handshake, the RFC 6455 errors, and
aiohttp holding nothing of a connection once it was taken over."""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import json
import os
import struct
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from config import Settings
from hub import websocket
from hub.app import SOCKETS, create_app
from tests.conftest import token_for
from tests.helpers import serving

Node = tuple[str, int, web.Application, web.AppRunner]


@pytest.fixture
async def node(env: dict[str, str]) -> AsyncIterator[Node]:
    app = create_app(Settings.from_env({**env, "HERALD_MAX_FRAME_BYTES": "16384", "HERALD_MAX_TEXT_LENGTH": "1000"}))
    async with serving(app) as (runner, port):
        yield f"http://127.0.0.1:{port}", port, app, runner


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
            accept = base64.b64encode(hashlib.sha1(key.encode() + websocket.GUID).digest())
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


async def _connected(port: int, user: str) -> RawClient:
    client, _ = await RawClient.open(port)
    assert (await client.text()).startswith("0{")  # Engine.IO OPEN
    client.send(RawClient.frame(websocket.OP_TEXT, connect_packet(user)))
    await client.until('42["ready"')
    return client


async def _sockets(app: web.Application, count: int) -> None:
    async with asyncio.timeout(5):
        while len(app[SOCKETS].hub.connections) != count:
            await asyncio.sleep(0.02)


async def test_frames_split_byte_by_byte_and_fragmented_messages_are_read_whole(node: Node) -> None:
    _, port, app, _ = node
    client, _ = await RawClient.open(port)
    assert (await client.text()).startswith("0{")
    packet = connect_packet("alice")
    # the CONNECT packet in three fragments, written one byte at a time
    wire = (
        RawClient.frame(websocket.OP_TEXT, packet[:5], fin=False)
        + RawClient.frame(websocket.OP_CONTINUATION, packet[5:20], fin=False)
        + RawClient.frame(websocket.OP_CONTINUATION, packet[20:])
    )
    for i in range(len(wire)):
        client.send(wire[i : i + 1])
        await client.writer.drain()
    ready = json.loads((await client.until('42["ready"'))[2:])
    assert ready[1]["user_id"] == "alice"
    await _sockets(app, 1)


async def test_packets_are_handled_in_order_an_event_right_behind_the_connect_is_answered(node: Node) -> None:
    _, port, _, _ = node
    client, _ = await RawClient.open(port)
    assert (await client.text()).startswith("0{")
    # CONNECT and an event in one write: the event is handled after the CONNECT, not dropped
    client.send(
        RawClient.frame(websocket.OP_TEXT, connect_packet("alice"))
        + RawClient.frame(websocket.OP_TEXT, b'420["presence",{"room":"nowhere"}]')
    )
    answer = json.loads((await client.until("430"))[3:])
    assert answer[0]["error"]["code"] == "not_found"


async def test_a_websocket_ping_is_answered_with_its_payload(node: Node) -> None:
    _, port, _, _ = node
    client = await _connected(port, "alice")
    client.send(RawClient.frame(websocket.OP_PING, b"are you there"))
    while True:
        opcode, payload = await client.read()
        if opcode == websocket.OP_PONG:
            break
    assert payload == b"are you there"


async def test_the_client_closing_gets_the_close_echoed_and_its_socket_removed(node: Node) -> None:
    _, port, app, _ = node
    client = await _connected(port, "alice")
    await _sockets(app, 1)
    client.send(RawClient.frame(websocket.OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
    assert await client.closed_with() == 1000
    await _sockets(app, 0)
    async with asyncio.timeout(5):
        while app[SOCKETS].sio.eio.sockets:
            await asyncio.sleep(0.02)


async def test_the_server_closing_a_socket_closes_its_websocket_after_what_was_queued(node: Node) -> None:
    _, port, app, _ = node
    client = await _connected(port, "alice")
    sio = app[SOCKETS].sio
    sid = next(iter(app[SOCKETS].hub.connections.by_sid))
    await sio.emit("note", "x" * 300_000, to=sid)  # over the high-water mark: the rest waits in the queue
    await sio.emit("note", "last", to=sid)
    await sio.eio.disconnect(sio.manager.eio_sid_from_sid(sid, "/"))
    texts, code = await client.texts_until_close()
    assert texts[-2:] == ['42["note","last"]', "1"]  # everything sent before, then Engine.IO CLOSE
    assert code == 1000
    assert await asyncio.wait_for(client.reader.read(), 5) == b""


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (RawClient.frame(websocket.OP_TEXT, b"42[]", masked=False), 1002),  # a client must mask
        (RawClient.frame(websocket.OP_TEXT, b"42[]", rsv=0x40), 1002),  # no extension was negotiated
        (RawClient.frame(0x3, b"x"), 1002),  # a reserved opcode
        (RawClient.frame(websocket.OP_PING, b"x" * 126), 1002),  # control frames carry at most 125 bytes
        (RawClient.frame(websocket.OP_CONTINUATION, b"x"), 1002),  # nothing to continue
        (RawClient.frame(websocket.OP_TEXT, b"4\xff\xfe"), 1007),  # text that is not UTF-8
        (RawClient.frame(websocket.OP_TEXT, b"4" * 16385), 1009),  # over HERALD_MAX_FRAME_BYTES
        (  # over the limit in fragments
            RawClient.frame(websocket.OP_TEXT, b"4" * 10000, fin=False)
            + RawClient.frame(websocket.OP_CONTINUATION, b"x" * 10000),
            1009,
        ),
    ],
    ids=["unmasked", "rsv", "opcode", "long-ping", "stray-continuation", "utf8", "too-big", "too-big-fragmented"],
)
async def test_a_frame_breaking_the_rules_closes_the_connection_with_its_code(
    node: Node, wire: bytes, code: int
) -> None:
    _, port, app, _ = node
    client = await _connected(port, "mallory")
    bystander = await _connected(port, "bob")
    client.send(wire)
    assert await client.closed_with() == code
    await _sockets(app, 1)
    bystander.send(RawClient.frame(websocket.OP_TEXT, b'420["presence",{"room":"nowhere"}]'))
    answer = json.loads((await bystander.until("430"))[3:])
    assert answer[0]["error"]["code"] == "not_found"  # the node goes on serving the others


async def test_an_upgrade_herald_does_not_answer_itself_gets_aiohttps_400_and_leaves_nothing(node: Node) -> None:
    _, port, app, _ = node
    _, head = await RawClient.open(port, version="12")
    assert head.startswith(b"HTTP/1.1 400")
    sio = app[SOCKETS].sio
    assert not sio.eio.sockets and not sio.environ  # the Engine.IO socket made for it is gone


async def test_aiohttp_lets_go_of_a_connection_once_it_is_taken_over(node: Node) -> None:
    """What made an idle websocket cost ~20 KB: aiohttp's request handler, its task and the request."""
    _, port, app, runner = node

    def alive() -> int:
        gc.collect()
        return sum(isinstance(o, (RequestHandler, web.BaseRequest)) for o in gc.get_objects())

    before = alive()
    clients = [await _connected(port, user) for user in ("alice", "bob", "carol")]
    await _sockets(app, 3)
    await asyncio.sleep(0.1)
    assert alive() == before
    assert runner.server is not None and not runner.server.connections
    for client in clients:  # and the sockets still work
        client.send(RawClient.frame(websocket.OP_TEXT, b'420["presence",{"room":"nowhere"}]'))
        assert (await client.until("430")).startswith("430")


async def test_shutdown_tells_the_client_why_then_closes_its_websocket(node: Node) -> None:
    _, port, _, runner = node
    client = await _connected(port, "alice")
    await runner.shutdown()  # what SIGTERM starts: the app's on_shutdown
    texts, code = await client.texts_until_close()
    assert texts[0].startswith('42["closing",{"code":"server_shutdown"')
    assert texts[-1] == "1"  # Engine.IO CLOSE, then the close frame
    assert code == 1000
    assert await asyncio.wait_for(client.reader.read(), 5) == b""
