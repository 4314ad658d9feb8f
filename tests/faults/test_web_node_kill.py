"""``kill -9`` one of two ``herald web`` processes while a client on each sends continuously.

The client of the killed node connects to the survivor and calls ``sync``; every send is retried
with its ``client_id`` until acknowledged.  At the end every acknowledged message is stored once,
seq has no gap, and both clients' views are exactly the room's history.
"""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import pytest

from tests.support.chat import Chatter, check_nothing_lost
from tests.support.nodes import StartWeb, stop_process
from tests.support.rest import create_room
from tests.support.tokens import ApiKey

SIZES = [
    pytest.param(150, 100, id="small"),
    pytest.param(800, 700, id="large", marks=pytest.mark.faults),
]  # (messages per client, acknowledged messages in all before the fault)
FAST = {"HERALD_MESSAGE_RATE": "1000", "HERALD_MESSAGE_BURST": "1000"}


@pytest.mark.parametrize(("per_client", "fault_after"), SIZES)
async def test_kill_9_one_web_node_while_chatting_loses_no_acknowledged_message(
    web_node: StartWeb, api_key: ApiKey, db: asyncpg.Connection, per_client: int, fault_after: int
) -> None:
    key = await api_key("publish")
    n1, n2 = await asyncio.gather(web_node(**FAST), web_node(**FAST))
    await create_room(n1.url, key, "team", ["alice", "bob"])
    alice = Chatter("alice", "team", [n1.url, n2.url])
    bob = Chatter("bob", "team", [n2.url, n1.url])
    await alice.start()
    await bob.start()

    async def chat(chatter: Chatter) -> None:
        for n in range(per_client):
            await chatter.send(n)
            await asyncio.sleep(0.005)

    async def kill_node_2() -> int:
        async with asyncio.timeout(60):
            while len(alice.acked) + len(bob.acked) < fault_after:
                await asyncio.sleep(0.005)
        await stop_process(n2.proc, signal.SIGKILL)
        return len(alice.acked) + len(bob.acked)

    try:
        async with asyncio.timeout(60 + per_client * 0.2):
            at_kill, *_ = await asyncio.gather(kill_node_2(), chat(alice), chat(bob))
        assert n2.proc.returncode == -signal.SIGKILL
        assert at_kill < 2 * per_client, "the kill came after the chat"
        assert bob.reconnects >= 1 and bob.connected_to[-1] == n1.url, "bob moved to the surviving node"
        assert alice.reconnects == 0
        stored = await check_nothing_lost(db, "team", [alice, bob], 2 * per_client)
        print(
            f"killed node 2 after {at_kill} acks; stored {stored}; bob reconnected {bob.reconnects}x, "
            f"unanswered sends retried: {dict(bob.errors)}"
        )
    finally:
        await alice.close()
        await bob.close()
