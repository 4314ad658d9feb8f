"""Property: a client that drops and reconnects at random during a stream of messages ends with
exactly the server's history — no gap, no duplicate — if it follows the contract: apply
``message:new`` when seq is the next one, ``sync`` from its last seq on a jump or after a reconnect.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from tests.support.rest import Rest
from tests.support.sockets import ChatClient
from tests.support.tokens import token_for

MESSAGES = 80


class ContractClient:
    """A client written against DESIGN.md's recovery rules only."""

    def __init__(self, url: str, user_id: str, room: str) -> None:
        self.url = url
        self.user_id = user_id
        self.room = room
        self.view: list[dict[str, Any]] = []
        self.client: ChatClient | None = None
        self._lock = asyncio.Lock()

    @property
    def last_seq(self) -> int:
        return self.view[-1]["seq"] if self.view else 0

    async def connect(self) -> None:
        self.client = ChatClient(self.url, token_for(self.user_id))
        self.client.sio.on("message:new", self._on_message)
        await self.client.open()
        await self.sync()

    async def drop(self) -> None:
        assert self.client is not None
        await self.client.close()

    async def _on_message(self, event: dict[str, Any]) -> None:
        async with self._lock:
            message = event["message"]
            if message["seq"] == self.last_seq + 1:
                self.view.append(message)
                return
        if message["seq"] > self.last_seq + 1:
            await self.sync()

    async def sync(self) -> None:
        assert self.client is not None
        async with self._lock:
            while True:
                answer = await self.client.call_ok("sync", {"rooms": {self.room: self.last_seq}})
                page = answer["rooms"][self.room]
                for message in page["messages"]:
                    if message["seq"] == self.last_seq + 1:
                        self.view.append(message)
                if not page["has_more"]:
                    return


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_drops_end_with_exactly_the_servers_history(  # type: ignore[no-untyped-def]
    seed: int, start_node, api_key, db
) -> None:
    rng = random.Random(seed)
    hub_url = await start_node(HERALD_MESSAGE_RATE="1000", HERALD_MESSAGE_BURST="1000")
    service = Rest(hub_url, await api_key("publish"))
    await service.request("POST", "/rooms", {"kind": "private", "id": "stream", "members": ["sender", "reader"]})
    sender = ChatClient(hub_url, token_for("sender"))
    await sender.open()
    reader = ContractClient(hub_url, "reader", "stream")
    await reader.connect()

    async def stream() -> None:
        for n in range(MESSAGES):
            await sender.call_ok("message:send", {"room": "stream", "client_id": f"s{n}", "text": f"#{n}"})
            await asyncio.sleep(rng.uniform(0, 0.01))

    async def flap() -> None:
        for _ in range(rng.randint(3, 6)):
            await asyncio.sleep(rng.uniform(0.01, 0.12))
            await reader.drop()
            await asyncio.sleep(rng.uniform(0, 0.1))
            await reader.connect()

    sending = asyncio.create_task(stream())
    await flap()
    await sending
    await reader.sync()
    stored = await db.fetch("SELECT id, seq FROM messages WHERE room_id = 'stream' ORDER BY seq")
    assert [(m["id"], m["seq"]) for m in reader.view] == [(r["id"], r["seq"]) for r in stored]
    assert [r["seq"] for r in stored] == list(range(1, MESSAGES + 1))
    await reader.drop()
    await sender.close()
