"""Property: a client that drops and reconnects at random while messages are sent, edited and
deleted ends with exactly the server's state of every message — none missing, none stale — if it
follows the contract of docs/protocol.md: keep the highest version applied per room, apply a live
``message:new``, ``message:updated`` or ``message:deleted`` whose version is the next one, and
``sync`` from its version on a jump or after a reconnect.
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
LIVE_EVENTS = ("message:new", "message:updated", "message:deleted")


class ContractClient:
    """A client written against the recovery rules of docs/protocol.md only."""

    def __init__(self, url: str, user_id: str, room: str) -> None:
        self.url = url
        self.user_id = user_id
        self.room = room
        self.view: dict[int, dict[str, Any]] = {}  # message id: the message as last applied
        self.version = 0
        self.client: ChatClient | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        self.client = ChatClient(self.url, token_for(self.user_id))
        for event in LIVE_EVENTS:
            self.client.sio.on(event, self._on_change)
        await self.client.open()
        await self.sync()

    async def drop(self) -> None:
        assert self.client is not None
        await self.client.close()

    async def _on_change(self, event: dict[str, Any]) -> None:
        async with self._lock:
            message = event["message"]
            if message["version"] <= self.version:
                return  # already applied (a sync got it first)
            if message["version"] == self.version + 1:
                self.view[message["id"]] = message
                self.version += 1
                return
        await self.sync()  # a jump: something was missed

    async def sync(self) -> None:
        assert self.client is not None
        async with self._lock:
            while True:
                answer = await self.client.call_ok("sync", {"rooms": {self.room: self.version}})
                page = answer["rooms"][self.room]
                for message in page["messages"]:
                    self.view[message["id"]] = message
                self.version = max(self.version, page["version"])
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
        sent: list[int] = []
        for n in range(MESSAGES):
            ack = await sender.call_ok("message:send", {"room": "stream", "client_id": f"s{n}", "text": f"#{n}"})
            sent.append(ack["message"]["id"])
            if len(sent) > 3 and rng.random() < 0.25:  # now and then, change an earlier message
                target = rng.choice(sent[:-1])
                if rng.random() < 0.5:
                    await sender.call("message:edit", {"room": "stream", "id": target, "text": f"#{n} edited"})
                else:
                    await sender.call("message:delete", {"room": "stream", "id": target})
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
    stored = await db.fetch("SELECT id, seq, text, deleted, version FROM messages WHERE room_id = 'stream'")
    mine = sorted((m["id"], m["seq"], m["text"], m["deleted"], m["version"]) for m in reader.view.values())
    assert mine == sorted((r["id"], r["seq"], r["text"], r["deleted"], r["version"]) for r in stored)
    assert sorted(r["seq"] for r in stored) == list(range(1, MESSAGES + 1))
    assert reader.version == await db.fetchval("SELECT version FROM rooms WHERE id = 'stream'")
    assert any(r["deleted"] for r in stored) and any(r["text"].endswith("edited") for r in stored)
    await reader.drop()
    await sender.close()
