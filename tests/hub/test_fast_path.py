"""The broadcast fast path (hub.transport, hub.fanout) and the group commit (rooms.messages):
order per connection, gap-free seqs, and a slow reader cut off without slowing the others."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from config import Settings
from hub.app import SOCKETS, create_app
from tests.support.nodes import serving
from tests.support.rest import Rest
from tests.support.tokens import token_for


@pytest.fixture
async def team(hub_url: str, api_key) -> Rest:  # type: ignore[no-untyped-def]
    service = Rest(hub_url, await api_key("publish"))
    status, _ = await service.request("POST", "/rooms", {"kind": "private", "id": "team", "members": ["alice", "bob"]})
    assert status == 201
    return service


async def test_one_connection_sends_arrive_in_order_with_gap_free_seqs(connect, team: Rest, db) -> None:  # type: ignore[no-untyped-def]
    alice, bob = await connect("alice"), await connect("bob")
    count = 40
    acks = await asyncio.gather(
        *(alice.call_ok("message:send", {"room": "team", "client_id": f"m{n}", "text": f"{n}"}) for n in range(count))
    )
    # Sent in one burst, stored in a few group commits: seq follows the order the client sent them.
    assert [ack["message"]["seq"] for ack in acks] == list(range(1, count + 1))
    received = await bob.wait_for("message:new", count)
    assert [e["message"]["text"] for e in received] == [str(n) for n in range(count)]
    assert [e["message"]["seq"] for e in received] == list(range(1, count + 1))
    assert await db.fetchval("SELECT last_seq FROM rooms WHERE id = 'team'") == count


async def test_repeat_in_one_batch_returns_the_first_and_others_still_commit(connect, team: Rest, db) -> None:  # type: ignore[no-untyped-def]
    alice = await connect("alice")
    sends = [{"room": "team", "client_id": c, "text": c} for c in ("a", "b", "a", "c", "b")]
    acks = await asyncio.gather(*(alice.call_ok("message:send", s) for s in sends))
    ids = [ack["message"]["id"] for ack in acks]
    assert ids[0] == ids[2] and ids[1] == ids[4] and len(set(ids)) == 3
    assert sorted(ack["message"]["seq"] for ack in acks) == [1, 1, 2, 2, 3]
    assert await db.fetchval("SELECT count(*) FROM messages") == 3


@pytest.fixture
async def node(env: dict[str, str]) -> AsyncIterator[tuple[str, web.Application]]:
    """A node whose websocket class cuts a socket off after 20 queued packets."""
    app = create_app(Settings.from_env({**env, "HERALD_MESSAGE_RATE": "1000", "HERALD_MESSAGE_BURST": "1000"}))
    async with serving(app) as (_, port):
        yield f"http://127.0.0.1:{port}", app


async def _raw_socket(session: aiohttp.ClientSession, url: str, user: str) -> aiohttp.ClientWebSocketResponse:
    """A Socket.IO connection in raw Engine.IO framing that reads until `ready`, then stops reading."""
    ws = await session.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket", max_msg_size=0)
    opened = await ws.receive_str(timeout=5)
    assert opened.startswith("0")
    await ws.send_str("40" + json.dumps({"token": token_for(user)}))
    while True:
        frame = await ws.receive_str(timeout=5)
        if frame.startswith('42["ready"'):
            return ws


async def test_a_slow_reader_is_cut_off_and_the_others_get_everything(
    node: tuple[str, web.Application], connect: Any, api_key: Any
) -> None:
    url, app = node
    service = Rest(url, await api_key("publish"))
    status, _ = await service.request("POST", "/rooms", {"kind": "public", "id": "big", "members": ["alice", "slow"]})
    assert status == 201
    sockets = app[SOCKETS]
    sockets.sio.eio._async["websocket"].max_pending = 20
    alice = await connect("alice", url=url)
    async with aiohttp.ClientSession() as session:
        slow = await _raw_socket(session, url, "slow")
        assert len(sockets.hub.connections) == 2
        big = "x" * 60_000
        count = 400  # ~24 MB: far more than the socket buffers between the server and a reader that stopped
        for n in range(count):
            await sockets.hub.realtime.to_room("message:new", "big", {"room": "big", "n": n, "pad": big})
        events = await alice.wait_for("message:new", count, timeout=30)
        assert [e["n"] for e in events] == list(range(count))
        async with asyncio.timeout(10):
            while len(sockets.hub.connections) > 1:
                await asyncio.sleep(0.05)
        assert [c.user_id for c in sockets.hub.connections.by_sid.values()] == ["alice"]
        await slow.close()


async def test_packets_queued_behind_a_full_buffer_keep_their_order(
    node: tuple[str, web.Application], connect: Any, api_key: Any
) -> None:
    url, app = node
    service = Rest(url, await api_key("publish"))
    status, _ = await service.request("POST", "/rooms", {"kind": "public", "id": "big", "members": ["bob"]})
    assert status == 201
    bob = await connect("bob", url=url)
    sockets = app[SOCKETS]
    big = "y" * 60_000
    # Broadcast faster than the client drains: some frames go direct, some wait in the queue.
    for n in range(15):
        await sockets.hub.realtime.to_room("message:new", "big", {"room": "big", "n": n, "pad": big})
    events: list[Any] = await bob.wait_for("message:new", 15, timeout=20)
    assert [e["n"] for e in events] == list(range(15))
    assert bob.sio.connected
