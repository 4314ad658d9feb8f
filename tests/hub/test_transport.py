"""The lean Engine.IO websocket (hub.transport): pings from one wheel, a dead client closed in time,
an answering one kept, and no task per connection while it is idle."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from config import Settings
from hub.app import SOCKETS, create_app
from hub.connections import Conn, Connections
from tests.support.nodes import serving
from tests.support.tokens import token_for

PING_INTERVAL = 1.0
PING_TIMEOUT = 1.0


@pytest.fixture
async def node(env: dict[str, str]) -> AsyncIterator[tuple[str, web.Application]]:
    """A node pinging every second and waiting one second for the pong."""
    settings = Settings.from_env(
        {**env, "HERALD_PING_INTERVAL": str(PING_INTERVAL), "HERALD_PING_TIMEOUT": str(PING_TIMEOUT)}
    )
    app = create_app(settings)
    async with serving(app) as (_, port):
        yield f"http://127.0.0.1:{port}", app


async def _open(session: aiohttp.ClientSession, url: str, user: str) -> aiohttp.ClientWebSocketResponse:
    """A Socket.IO connection in raw Engine.IO framing, read until `ready`."""
    ws = await session.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket")
    opened = json.loads((await ws.receive_str(timeout=5))[1:])
    assert opened["pingInterval"] == PING_INTERVAL * 1000 and opened["pingTimeout"] == PING_TIMEOUT * 1000
    await ws.send_str("40" + json.dumps({"token": token_for(user)}))
    while not (await ws.receive_str(timeout=5)).startswith('42["ready"'):
        pass
    return ws


async def _connections(app: web.Application, count: int, within: float) -> float:
    """Wait until the node holds ``count`` sockets; the seconds it took."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while len(app[SOCKETS].hub.connections) != count:
            await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_a_client_that_stops_answering_pings_is_disconnected_in_time(
    node: tuple[str, web.Application],
) -> None:
    url, app = node
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, url, "alice")
        # Answer two pings, then go silent (reading, but never answering).
        for _ in range(2):
            assert await ws.receive_str(timeout=PING_INTERVAL + 1) == "2"
            await ws.send_str("3")
        last_pong = time.monotonic()
        assert len(app[SOCKETS].hub.connections) == 1
        await _connections(app, 0, within=PING_INTERVAL + PING_TIMEOUT + 1.5)
        gone_after = time.monotonic() - last_pong
        # The next ping comes ping_interval after the pong; the socket closes ping_timeout later
        # (plus the wheel's tick of ping_timeout / 10).
        assert PING_INTERVAL + PING_TIMEOUT - 0.2 <= gone_after <= PING_INTERVAL + PING_TIMEOUT + 0.5
        frames = []
        async with asyncio.timeout(5):
            while True:
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                frames.append(msg.data)
        assert frames == ["2", "1"]  # the unanswered ping, then Engine.IO's CLOSE; then the connection ends
        assert not app[SOCKETS].sio.eio.sockets or all(s.closed for s in app[SOCKETS].sio.eio.sockets.values())


async def test_a_client_answering_pings_stays_and_idle_sockets_hold_no_tasks(
    node: tuple[str, web.Application],
) -> None:
    url, app = node
    async with aiohttp.ClientSession() as session:
        sockets = [await _open(session, url, user) for user in ("alice", "bob", "carol")]
        await asyncio.sleep(0.2)
        tasks_before = len(asyncio.all_tasks())
        answered = 0
        deadline = time.monotonic() + 3 * (PING_INTERVAL + PING_TIMEOUT)
        while time.monotonic() < deadline:
            for ws in sockets:
                try:
                    frame = await ws.receive_str(timeout=0.05)
                except TimeoutError:
                    continue
                assert frame == "2"
                await ws.send_str("3")
                answered += 1
        assert answered >= 3 * 4
        assert len(app[SOCKETS].hub.connections) == 3
        # Pings come from one timer, reads happen in the request's own task: no new task per socket.
        assert len(asyncio.all_tasks()) <= tasks_before + 1
        for ws in sockets:
            await ws.close()
        await _connections(app, 0, within=5)


async def test_queued_packets_then_direct_ones_keep_their_order(node: tuple[str, web.Application]) -> None:
    url, app = node
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, url, "alice")
        [sock] = [s for s in app[SOCKETS].sio.eio.sockets.values() if not s.closed]
        lean = sock.ws
        assert lean is not None and lean.writer is None and lean.out is None  # idle: no writer, no queue
        big = "z" * 200_000  # over HIGH_WATER: what follows waits in the queue behind it
        sio = app[SOCKETS].sio
        sid = next(iter(app[SOCKETS].hub.connections.by_sid))
        for n in range(30):
            await sio.emit("n", {"n": n, "pad": big if n % 10 == 0 else ""}, to=sid)
        got = []
        async with asyncio.timeout(10):
            while len(got) < 30:
                frame = await ws.receive_str()
                if frame == "2":
                    await ws.send_str("3")
                    continue
                got.append(json.loads(frame[2:])[1]["n"])
        assert got == list(range(30))
        async with asyncio.timeout(2):
            while lean.writer is not None:
                await asyncio.sleep(0.01)
        assert lean.pending == 0 and lean.out is None
        await ws.close()


async def test_token_expiries_share_one_timer_and_follow_refreshes() -> None:
    expired: list[str] = []
    conns = Connections(on_expired=lambda c: expired.append(c.sid))
    now = time.time()
    a, b, c = (Conn(sid, sid, now + delay) for sid, delay in (("a", 0.3), ("b", 0.1), ("c", 0.2)))
    for conn in (a, b, c):
        conns.add(conn)
    c.expires_at = now + 0.5  # refreshed: its first entry is skipped
    conns.watch_expiry(c)
    conns.remove("a")  # gone: never reported
    await asyncio.sleep(0.35)
    assert expired == ["b"]
    await asyncio.sleep(0.3)
    assert expired == ["b", "c"]
    conns.close()


async def test_a_burst_of_arrivals_goes_to_redis_together_and_keeps_its_meaning(redis_url: str, test_id: str) -> None:
    import redis.asyncio as aioredis

    from rooms.presence import Presence

    client = aioredis.Redis.from_url(redis_url)
    try:
        here, there = Presence(client, f"a{test_id}"), Presence(client, f"b{test_id}")
        u1, u2 = f"u1-{test_id}", f"u2-{test_id}"
        # The same user twice in one batch: only the first was offline before.
        assert await asyncio.gather(here.arrive(u1), here.arrive(u2), there.arrive(u1)) == [True, True, False]
        assert await here.arrive(u2) is False
        assert sorted(await here.online_among([u1, u2, f"u3-{test_id}"])) == sorted([u1, u2])
        await here.heartbeat([u1, u2])
        assert await here.depart(u1) is False  # still on the other node
        assert await there.depart(u1) is True
        assert await here.depart(u2) is True
    finally:
        await client.aclose()
