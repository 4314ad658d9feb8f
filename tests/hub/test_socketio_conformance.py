"""Socket.IO v5 as the Node server keeps it (hub.transport.server, hub.transport.packets), from a raw
websocket client: the connect timeout, packets that break the protocol answered or refused (never
only logged), JSON nested too deep, reserved event names, an unknown namespace."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from config import Settings
from hub import websocket
from hub.app import SOCKETS, create_app
from tests.support.nodes import serving
from tests.support.wire import RawClient, connect_packet, connected

Node = tuple[int, web.Application]


@pytest.fixture
async def node(env: dict[str, str]) -> AsyncIterator[Node]:
    app = create_app(Settings.from_env({**env, "HERALD_CONNECT_TIMEOUT": "0.5"}))
    async with serving(app) as (_, port):
        yield port, app


def text(packet: str) -> bytes:
    return RawClient.frame(websocket.OP_TEXT, packet.encode())


async def opened(port: int) -> RawClient:
    client, _ = await RawClient.open(port)
    assert (await client.text()).startswith("0{")
    return client


async def ack(client: RawClient, ack_id: int) -> list[object]:
    answer: list[object] = json.loads((await client.until(f"43{ack_id}"))[2 + len(str(ack_id)) :])
    return answer


async def still_served(client: RawClient) -> None:
    client.send(text('4299["presence",{"room":"nowhere"}]'))
    assert (await ack(client, 99))[0]["error"]["code"] == "not_found"  # type: ignore[index]


async def test_a_connection_that_never_connects_is_closed_after_the_connect_timeout(node: Node) -> None:
    port, app = node
    client = await opened(port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    texts, code = await client.texts_until_close()
    assert texts == ["1"] and code == 1000  # Engine.IO CLOSE, then the close frame
    assert loop.time() - started >= 0.4
    assert not app[SOCKETS].sio.eio.sockets


async def test_a_connection_that_connects_in_time_outlives_the_connect_timeout(node: Node) -> None:
    port, _ = node
    client = await connected(port, "alice")
    await asyncio.sleep(1.0)  # twice the timeout
    await still_served(client)


@pytest.mark.parametrize(
    "packet",
    [
        "abc",  # not a packet type
        "9",  # not a packet type either
        "2{}",  # an EVENT payload must be an array
        '2abc["x"]',  # not JSON after the type
        "2[]",  # an EVENT needs a name
        '2["disconnect"]',  # python-socketio ran the server's disconnect handler for it
        "2" + "[" * 2000 + "]" * 2000,  # too deep for the decoder, and no ack id to answer
        "1{}",  # a DISCONNECT carries nothing
        '4"no"',  # a client may not send CONNECT_ERROR
    ],
    ids=["abc", "type-9", "object", "garbage", "empty", "reserved", "deep", "disconnect-payload", "connect-error"],
)
async def test_a_packet_that_does_not_decode_and_has_no_ack_id_closes_the_connection(
    node: Node, packet: str, caplog: pytest.LogCaptureFixture
) -> None:
    port, app = node
    caplog.set_level(logging.INFO)
    client = await connected(port, "mallory")
    bystander = await connected(port, "bob")
    client.send(text("4" + packet))  # "4": an Engine.IO MESSAGE
    texts, code = await client.texts_until_close()
    assert texts[-1:] == ["1"] and code == 1000
    async with asyncio.timeout(5):
        while len(app[SOCKETS].hub.connections) != 1:
            await asyncio.sleep(0.02)
    await still_served(bystander)
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a bad packet"
    assert [r.getMessage() for r in caplog.records if "bad packet" in r.getMessage()]


@pytest.mark.parametrize(
    "packet",
    [
        "27" + "[" * 1000 + "]" * 1000,  # RecursionError in the decoder: the ack id was lost
        "27" + '["presence",{"room":"nowhere","x":' + "[" * 40 + "]" * 40 + "}]",  # deeper than 32 levels
        '27["connect", {}]',  # reserved
        '27{"room": "r1"}',  # not an array
    ],
    ids=["recursion", "depth-40", "reserved", "object"],
)
async def test_a_packet_refused_with_a_readable_ack_id_gets_an_invalid_payload_ack(
    node: Node, packet: str, caplog: pytest.LogCaptureFixture
) -> None:
    port, app = node
    caplog.set_level(logging.INFO)
    client = await connected(port, "alice")
    client.send(text("4" + packet))
    answer = await ack(client, 7)
    assert answer[0]["ok"] is False and answer[0]["error"]["code"] == "invalid_payload"  # type: ignore[index]
    await still_served(client)  # the connection stays
    assert len(app[SOCKETS].hub.connections) == 1
    assert not [r for r in caplog.records if r.exc_info]


async def test_json_nested_within_the_limit_reaches_the_handler(node: Node) -> None:
    port, _ = node
    client = await connected(port, "alice")
    client.send(text('427["presence",{"room":"nowhere","x":' + "[" * 29 + "]" * 29 + "}]"))
    assert (await ack(client, 7))[0]["error"]["code"] == "not_found"  # type: ignore[index]


async def test_a_connect_whose_auth_nests_too_deep_gets_connect_error_invalid_payload(node: Node) -> None:
    port, _ = node
    client = await opened(port)
    client.send(text('40{"token":' + "[" * 1000 + "]" * 1000 + "}"))
    refused = json.loads((await client.until("44"))[2:])
    assert refused["data"]["code"] == "invalid_payload"
    assert refused["message"]
    client.send(RawClient.frame(websocket.OP_TEXT, connect_packet("alice")))  # a good CONNECT still works
    await client.until('42["ready"')


async def test_an_unknown_namespace_is_refused_with_a_code(node: Node) -> None:
    port, _ = node
    client = await opened(port)
    client.send(text("40/nope,"))
    refused = await client.until("44/nope,")
    assert json.loads(refused[len("44/nope,") :]) == {
        "message": "Invalid namespace",
        "data": {"code": "not_found", "message": "Invalid namespace"},
    }
