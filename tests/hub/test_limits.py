"""Rate limits on connects and REST (per address and per credential) and size limits on bodies and
frames, answered with stable codes."""

from __future__ import annotations

import json

import aiohttp
import pytest
import socketio

from tests.support.tokens import token_for


async def test_rest_per_credential_limit_answers_429_with_retry_after(start_node, api_key) -> None:  # type: ignore[no-untyped-def]
    url = await start_node(HERALD_KEY_RATE="2")
    key = await api_key("publish")
    other = await api_key("publish")
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(6):
            async with http.get(f"{url}/api/v1/users/a/rooms", headers={"Authorization": f"Bearer {key}"}) as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    body = await resp.json()
                    assert body["error"]["code"] == "rate_limited"
                    assert int(resp.headers["Retry-After"]) >= 1
        async with http.get(f"{url}/api/v1/users/a/rooms", headers={"Authorization": f"Bearer {other}"}) as resp:
            assert resp.status == 200  # another key has its own budget
    assert statuses[:4] == [200, 200, 200, 200] and 429 in statuses


async def test_rest_per_address_limit(start_node) -> None:  # type: ignore[no-untyped-def]
    url = await start_node(HERALD_ADDRESS_RATE="2")
    statuses = []
    async with aiohttp.ClientSession() as http:
        for _ in range(8):
            async with http.get(f"{url}/api/v1/users/a/rooms") as resp:
                statuses.append(resp.status)
        async with http.get(f"{url}/healthz") as resp:
            assert resp.status == 200  # health checks are never limited
    assert statuses[:4] == [401, 401, 401, 401] and statuses[-1] == 429


async def test_connect_flood_is_refused_with_rate_limited(start_node) -> None:  # type: ignore[no-untyped-def]
    url = await start_node(HERALD_ADDRESS_RATE="1")
    codes = []
    for _ in range(4):
        client = socketio.AsyncClient(reconnection=False)
        refusals: list[dict] = []  # type: ignore[type-arg]
        client.on("connect_error", refusals.append)
        try:
            await client.connect(url, auth={"token": token_for("alice")}, transports=["websocket"], wait_timeout=5)
            codes.append("connected")
            await client.disconnect()
        except socketio.exceptions.ConnectionError:
            codes.append(refusals[0]["data"]["code"])
    assert codes[:2] == ["connected", "connected"] and codes[-1] == "rate_limited"


@pytest.mark.parametrize("size", [300_000])
async def test_oversized_rest_body_is_too_large(hub_url: str, api_key, size: int) -> None:  # type: ignore[no-untyped-def]
    key = await api_key("publish")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{hub_url}/api/v1/rooms",
            data=b"{" + b" " * size + b"}",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        ) as resp,
    ):
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "too_large"


async def test_a_frame_over_the_limit_closes_only_that_connection(start_node, connect) -> None:  # type: ignore[no-untyped-def]
    """A websocket frame larger than HERALD_MAX_FRAME_BYTES is refused at the transport (close code
    1009, "message too big") before it is parsed; the node and its other clients carry on."""
    url = await start_node(HERALD_MAX_FRAME_BYTES="16384", HERALD_MAX_TEXT_LENGTH="1000")
    bystander = await connect("bob", url=url)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket")
        await ws.receive_str(timeout=5)  # Engine.IO OPEN
        await ws.send_str("40" + json.dumps({"token": token_for("mallory")}))
        while not (await ws.receive_str(timeout=5)).startswith('42["ready"'):
            pass
        frame = "421" + json.dumps(["message:send", {"room": "r", "client_id": "c", "text": "x" * 20_000}])
        await ws.send_str(frame)
        closing = await ws.receive(timeout=5)
        while closing.type == aiohttp.WSMsgType.TEXT:  # anything already on its way out
            closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    ack = await bystander.call("presence", {"room": "nowhere"})
    assert ack["ok"] is False and ack["error"]["code"] == "not_found"  # answered: the node is fine
    assert bystander.sio.connected
