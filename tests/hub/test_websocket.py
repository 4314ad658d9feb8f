"""Herald's own websocket connections (hub.websocket), seen from a raw client on the wire: the
handshake, frames split and fragmented, pings, the close handshake, the RFC 6455 errors, and
aiohttp holding nothing of a connection once it was taken over."""

from __future__ import annotations

import asyncio
import gc
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from config import Settings
from hub import websocket
from hub.app import SOCKETS, create_app
from tests.support.nodes import serving
from tests.support.wire import RawClient, connect_packet
from tests.support.wire import connected as _connected

Node = tuple[str, int, web.Application, web.AppRunner]


@pytest.fixture
async def node(env: dict[str, str]) -> AsyncIterator[Node]:
    app = create_app(Settings.from_env({**env, "HERALD_MAX_FRAME_BYTES": "16384", "HERALD_MAX_TEXT_LENGTH": "1000"}))
    async with serving(app) as (runner, port):
        yield f"http://127.0.0.1:{port}", port, app, runner


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


@pytest.mark.parametrize(
    ("payload", "answer"),
    [
        (b"", 1000),  # no status code: a normal close
        (struct.pack("!H", 1001) + b"going", 1001),
        (struct.pack("!H", 1012), 1012),  # registered with IANA after RFC 6455 (service restart)
        (struct.pack("!H", 3000), 3000),  # registered for libraries
        (struct.pack("!H", 4999) + "é".encode(), 4999),  # private use, a UTF-8 reason
        (b"\x03", 1002),  # one byte cannot be a status code
        (struct.pack("!H", 1000) + b"\xff\xfe", 1007),  # a reason that is not UTF-8
        *((struct.pack("!H", code), 1002) for code in (999, 1004, 1005, 1006, 1015, 1016, 1100, 2999, 5000)),
    ],
    ids=lambda v: v.hex() if isinstance(v, bytes) else str(v),
)
async def test_a_close_frame_is_answered_with_its_code_or_the_error_its_payload_makes(
    node: Node, payload: bytes, answer: int
) -> None:
    _, port, app, _ = node
    client = await _connected(port, "alice")
    client.send(RawClient.frame(websocket.OP_CLOSE, payload))
    assert await client.closed_with() == answer
    await _sockets(app, 0)


async def test_a_message_right_before_a_bad_frame_is_handled_and_answered_before_the_close(node: Node) -> None:
    _, port, _, _ = node
    client = await _connected(port, "mallory")
    # one write: a valid event with an ack id, then an unmasked frame (a protocol error)
    client.send(
        RawClient.frame(websocket.OP_TEXT, b'421["presence",{"room":"nowhere"}]')
        + RawClient.frame(websocket.OP_TEXT, b"42[]", masked=False)
    )
    texts, code = await client.texts_until_close()
    acks = [json.loads(t[3:]) for t in texts if t.startswith("431")]
    assert acks and acks[0][0]["error"]["code"] == "not_found"  # answered, not dropped
    assert code == 1002


async def test_a_client_close_waits_for_the_acks_of_the_events_before_it(node: Node) -> None:
    _, port, _, _ = node
    client = await _connected(port, "alice")
    client.send(
        b"".join(
            RawClient.frame(websocket.OP_TEXT, f'42{i}["presence",{{"room":"nowhere"}}]'.encode()) for i in range(5)
        )
        + RawClient.frame(websocket.OP_CLOSE, struct.pack("!H", 1000))
    )
    texts, code = await client.texts_until_close()
    assert sorted(t[:3] for t in texts if t.startswith("43")) == [f"43{i}" for i in range(5)]
    assert code == 1000


async def test_text_that_is_not_utf8_fails_at_its_first_fragment_without_waiting_for_the_last(node: Node) -> None:
    _, port, _, _ = node
    client = await _connected(port, "alice")
    client.send(RawClient.frame(websocket.OP_TEXT, b'42["x","\xc3\x28', fin=False))  # never finished
    assert await client.closed_with() == 1007


async def test_a_character_split_between_fragments_is_read_whole(node: Node) -> None:
    _, port, _, _ = node
    client = await _connected(port, "alice")
    text = '421["é-event"]'.encode()  # an unknown event: the error names it
    cut = text.index("é".encode()) + 1  # inside the two bytes of é
    client.send(
        RawClient.frame(websocket.OP_TEXT, text[:cut], fin=False)
        + RawClient.frame(websocket.OP_CONTINUATION, text[cut:])
    )
    answer = json.loads((await client.until("431"))[3:])
    assert "é-event" in answer[0]["error"]["message"]


async def test_a_big_frame_in_many_small_reads_arrives_whole(env: dict[str, str]) -> None:
    app = create_app(Settings.from_env({**env, "HERALD_MAX_FRAME_BYTES": str(4 * 1024 * 1024)}))
    async with serving(app) as (_, port):
        client = await _connected(port, "alice")
        room = "r" * (3 * 1024 * 1024)
        wire = RawClient.frame(websocket.OP_TEXT, f'427["presence",{{"room":"{room}"}}]'.encode())
        for i in range(0, len(wire), 65536):
            client.send(wire[i : i + 65536])
            await client.writer.drain()
        answer = json.loads((await client.until("437"))[3:])
        assert answer[0]["error"]["code"] in {"not_found", "invalid_payload"}


async def _flood_until_cut(app: web.Application, client: RawClient) -> None:
    """Emit to the only socket until its queue overflows and it is cut off (the client reads nothing)."""
    sio = app[SOCKETS].sio
    sid = next(iter(app[SOCKETS].hub.connections.by_sid))
    eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
    ws = sio.eio.sockets[eio_sid].ws
    ws.max_pending = 20
    big = "x" * 60_000
    for n in range(400):  # ~24 MB: more than the socket buffers between the server and a reader that stopped
        await sio.emit("note", {"n": n, "pad": big}, to=sid)
        if ws.closing:
            return
    pytest.fail("the reader was never cut off")


async def test_a_reader_too_slow_for_its_queue_gets_a_1013_close_frame(node: Node) -> None:
    _, port, app, _ = node
    client = await _connected(port, "slow")
    await _flood_until_cut(app, client)
    texts, code = await client.texts_until_close()  # reading again at once: everything up to the close frame
    assert code == 1013
    assert texts and all(t.startswith('42["note"') for t in texts)
    await _sockets(app, 0)


def _tcp_ports() -> set[tuple[int, int]]:
    """(local port, remote port) of every IPv4 TCP socket on this machine."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote = line.split()[1:3]
        ports.add((int(local.split(":")[1], 16), int(remote.split(":")[1], 16)))
    return ports


async def test_a_reader_that_never_reads_again_is_reset_and_its_buffers_released(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, port, app, _ = node
    monkeypatch.setattr(websocket, "CUT_GRACE", 0.3)
    client = await _connected(port, "stuck")
    client_port = client.writer.get_extra_info("sockname")[1]
    assert (port, client_port) in _tcp_ports()  # the server's end of this connection
    await _flood_until_cut(app, client)
    await _sockets(app, 0)  # gone within the grace, not when the reader finally reads
    async with asyncio.timeout(5):
        while (port, client_port) in _tcp_ports():  # reset: no FIN-WAIT socket keeping the unsent bytes
            await asyncio.sleep(0.05)
    with pytest.raises(ConnectionResetError):
        while await client.reader.read(1 << 20):
            pass
