"""Redis killed and started again (empty) while clients on two nodes chat.

Extends tests/hub/test_multinode.py's resync test with accounting: both nodes run on a private
redis-server; while it is down, sends still commit to PostgreSQL (or are answered ``unavailable``
and retried), broadcasts are lost, and each node tells its sockets ``resync`` once its Redis link is
back.  Every acknowledged message is stored once, and both clients end with the room's history.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.support.chat import Chatter, check_nothing_lost
from tests.support.nodes import Node, RedisServer
from tests.support.rest import create_room
from tests.support.tokens import ApiKey

SIZES = [
    pytest.param(150, 80, id="small"),
    pytest.param(800, 600, id="large", marks=pytest.mark.faults),
]  # (messages per client, acknowledged messages in all before the fault)
DOWN_FOR = 1.0  # seconds Redis stays down
FAST = {"HERALD_MESSAGE_RATE": "1000", "HERALD_MESSAGE_BURST": "1000"}


@pytest.mark.parametrize(("per_client", "fault_after"), SIZES)
async def test_redis_restart_while_chatting_loses_no_acknowledged_message(
    private_redis: RedisServer,
    start_node: Node,
    api_key: ApiKey,
    db: asyncpg.Connection,
    per_client: int,
    fault_after: int,
) -> None:
    key = await api_key("publish")
    url_a = await start_node(REDIS_URL=private_redis.url, **FAST)
    url_b = await start_node(REDIS_URL=private_redis.url, **FAST)
    await create_room(url_a, key, "team", ["alice", "bob"])
    alice = Chatter("alice", "team", [url_a])
    bob = Chatter("bob", "team", [url_b])
    await alice.start()
    await bob.start()

    async def chat(chatter: Chatter) -> None:
        for n in range(per_client):
            await chatter.send(n)
            await asyncio.sleep(0.01)

    async def restart_redis() -> tuple[int, int]:
        async with asyncio.timeout(60):
            while len(alice.acked) + len(bob.acked) < fault_after:
                await asyncio.sleep(0.005)
        at_kill = len(alice.acked) + len(bob.acked)
        await private_redis.kill()
        await asyncio.sleep(DOWN_FOR)
        at_restart = len(alice.acked) + len(bob.acked)
        await private_redis.start()  # same port, empty
        return at_kill, at_restart - at_kill

    try:
        async with asyncio.timeout(60 + per_client * 0.2):
            (at_kill, while_down), *_ = await asyncio.gather(restart_redis(), chat(alice), chat(bob))
            async with asyncio.timeout(20):
                while not (alice.resyncs and bob.resyncs):
                    await asyncio.sleep(0.05)
        assert at_kill < 2 * per_client, "the restart came after the chat"
        assert alice.reconnects == 0 and bob.reconnects == 0, "the sockets stay up"
        stored = await check_nothing_lost(db, "team", [alice, bob], 2 * per_client)
        print(
            f"redis killed after {at_kill} acks, {while_down} acked while it was down; stored {stored}; "
            f"resyncs {alice.resyncs}/{bob.resyncs}; answers retried: {dict(alice.errors + bob.errors)}"
        )
    finally:
        await alice.close()
        await bob.close()
