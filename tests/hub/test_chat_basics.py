"""Connecting, rooms and messages with a real python-socketio client against the real app."""

from __future__ import annotations

import aiohttp
import pytest
import socketio

from tests.support.rest import Rest

# Also run on the embedded PostgreSQL and Redis (`make test-embedded`).
pytestmark = pytest.mark.embedded


async def test_connect_sends_ready_with_the_users_rooms(connect, hub_url, api_key, db) -> None:
    key = await api_key("publish")
    status, body = await Rest(hub_url, key).request(
        "POST", "/rooms", {"kind": "private", "name": "team", "members": ["alice", "bob"], "id": "team"}
    )
    assert status == 201, body
    alice = await connect("alice")
    assert alice.events["ready"] == [
        {"user_id": "alice", "rooms": ["team"], "unread": {"team": 0}, "unread_total": 0, "versions": {"team": 0}}
    ]
    assert await db.fetchval("SELECT last_active_at > now() - interval '1 minute' FROM users WHERE id = 'alice'")


async def test_bad_token_is_refused_with_a_code(hub_url) -> None:
    client = socketio.AsyncClient(reconnection=False)
    refusals: list[object] = []
    client.on("connect_error", refusals.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(hub_url, auth={"token": "not-a-jwt"}, transports=["websocket"], wait_timeout=5)
    assert refusals == [
        {"message": "the token is malformed", "data": {"code": "token_invalid", "message": "the token is malformed"}}
    ]


async def test_message_is_stored_then_acked_and_broadcast(connect, hub_url, api_key, db) -> None:
    key = await api_key("publish")
    await Rest(hub_url, key).request("POST", "/rooms", {"kind": "private", "members": ["alice", "bob"], "id": "r1"})
    alice = await connect("alice")
    bob = await connect("bob")
    ack = await alice.call_ok("message:send", {"room": "r1", "client_id": "c1", "text": "hello"})
    assert ack["message"]["seq"] == 1
    stored = await db.fetchrow("SELECT text, seq FROM messages WHERE room_id = 'r1'")
    assert (stored["text"], stored["seq"]) == ("hello", 1)
    [event] = await bob.wait_for("message:new")
    assert event["message"]["text"] == "hello"
    again = await alice.call_ok("message:send", {"room": "r1", "client_id": "c1", "text": "hello"})
    assert again["message"]["id"] == ack["message"]["id"]
    assert await db.fetchval("SELECT count(*) FROM messages") == 1


async def test_cors_origins_decide_which_browsers_may_connect(start_node) -> None:
    url = await start_node(HERALD_CORS_ORIGINS="https://app.example.com")
    handshake = f"{url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(handshake, headers={"Origin": "https://app.example.com"}) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        async with http.get(handshake, headers={"Origin": "https://evil.example.net"}) as resp:
            assert resp.status == 400
        async with http.options(
            f"{url}/api/v1/rooms",
            headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
        ) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
        async with http.get(f"{url}/healthz", headers={"Origin": "https://evil.example.net"}) as resp:
            assert "Access-Control-Allow-Origin" not in resp.headers
