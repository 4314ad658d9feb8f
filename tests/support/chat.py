"""A chat client written against DESIGN.md's recovery rules only, and the no-loss check.

``Chatter`` keeps a gap-free view of one room: it appends ``message:new`` in seq order, calls
``sync`` on a seq jump, on ``resync`` and after every reconnect, and when its socket drops it
connects again to the first node on its list that answers.  A send is retried with the same
``client_id`` until it is acknowledged (the server returns the first message for a repeated
``client_id``), so a send whose ack was lost is neither lost nor stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import asyncpg
import socketio

from tests.support.sockets import ChatClient
from tests.support.tokens import token_for

CALL_TIMEOUT = 3.0
RECONNECT_WITHIN = 30.0
SEND_WITHIN = 60.0
RETRY_CODES = ("unavailable", "rate_limited")


class Chatter:
    def __init__(self, user_id: str, room: str, urls: list[str]) -> None:
        self.user_id = user_id
        self.room = room
        self.urls = urls
        self.view: list[dict[str, Any]] = []
        self.acked: dict[str, dict[str, Any]] = {}  # client_id -> the acknowledged message
        self.errors: Counter[str] = Counter()  # error codes answered, and "no answer" (timeouts, drops)
        self.reconnects = 0
        self.resyncs = 0
        self.connected_to: list[str] = []
        self.client: ChatClient | None = None
        self._lock = asyncio.Lock()
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def last_seq(self) -> int:
        return self.view[-1]["seq"] if self.view else 0

    # -- connection

    async def start(self) -> None:
        await self._open()
        self._supervisor = asyncio.create_task(self._supervise())

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECONNECT_WITHIN
        while True:
            for url in self.urls:
                client = ChatClient(url, token_for(self.user_id))
                client.sio.on("message:new", self._on_message)
                client.sio.on("resync", self._on_resync)
                try:
                    async with asyncio.timeout(CALL_TIMEOUT * 2):
                        await client.open()
                except Exception:
                    with contextlib.suppress(Exception):
                        await client.close()
                    continue
                self.client = client
                self.connected_to.append(url)
                # Dropped again at once: the supervisor sees the disconnect and comes back here.
                with contextlib.suppress(Exception):
                    await self.sync()
                return
            if loop.time() > deadline:
                raise AssertionError(f"{self.user_id}: no node accepted a connection within {RECONNECT_WITHIN}s")
            await asyncio.sleep(0.2)

    async def _supervise(self) -> None:
        while not self._closing:
            client = self.client
            assert client is not None
            await client.disconnected.wait()
            if self._closing:
                return
            self.reconnects += 1
            await self._open()

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        for task in list(self._tasks):
            task.cancel()
        if self.client is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CALL_TIMEOUT):
                    await self.client.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the room's view

    async def _on_message(self, event: dict[str, Any]) -> None:
        if event.get("room") != self.room:
            return
        message = event["message"]
        async with self._lock:
            if message["seq"] == self.last_seq + 1:
                self.view.append(message)
                return
        if message["seq"] > self.last_seq + 1:
            self._spawn(self._quiet_sync())

    async def _on_resync(self, *_: Any) -> None:
        self.resyncs += 1
        self._spawn(self._quiet_sync())

    async def _quiet_sync(self) -> None:
        with contextlib.suppress(Exception):
            await self.sync()

    async def sync(self) -> None:
        """Fetch everything after the last seq seen; raises when the socket cannot answer."""
        async with self._lock:
            while True:
                client = self.client
                assert client is not None
                answer = await client.call("sync", {"rooms": {self.room: self.last_seq}}, timeout=CALL_TIMEOUT)
                if not answer.get("ok"):
                    self.errors[answer["error"]["code"]] += 1
                    raise RuntimeError(f"sync answered {answer}")
                page = answer["rooms"][self.room]
                for message in page["messages"]:
                    if message["seq"] == self.last_seq + 1:
                        self.view.append(message)
                if not page["has_more"]:
                    return

    async def settle(self) -> None:
        """A final sync that must succeed (after reconnecting if need be)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECONNECT_WITHIN
        while True:
            try:
                await self.sync()
                return
            except Exception:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)

    # -- sending

    async def send(self, n: int) -> dict[str, Any]:
        """Send message ``n``; retry with the same client_id until it is acknowledged."""
        client_id = f"{self.user_id}-{n}"
        body = {"room": self.room, "client_id": client_id, "text": f"{self.user_id} #{n}"}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SEND_WITHIN
        while True:
            if loop.time() > deadline:
                raise AssertionError(f"{client_id} not acknowledged within {SEND_WITHIN}s: {dict(self.errors)}")
            client = self.client
            if client is None or not client.sio.connected:
                await asyncio.sleep(0.05)
                continue
            try:
                answer = await client.call("message:send", body, timeout=CALL_TIMEOUT)
            except (socketio.exceptions.SocketIOError, TimeoutError):
                self.errors["no answer"] += 1
                await asyncio.sleep(0.05)
                continue
            if answer.get("ok"):
                message: dict[str, Any] = answer["message"]
                self.acked[client_id] = message
                return message
            code = answer["error"]["code"]
            self.errors[code] += 1
            if code not in RETRY_CODES:
                raise AssertionError(f"{client_id}: {answer}")
            await asyncio.sleep(0.1)


async def check_nothing_lost(db: asyncpg.Connection, room: str, chatters: list[Chatter], sent: int) -> int:
    """Every acknowledged message is stored once, seq is gap-free, every client's view is the room.

    ``sent`` is how many distinct messages were sent in all; returns how many are stored.
    """
    stored = await db.fetch("SELECT id, seq, sender_id, client_id FROM messages WHERE room_id = $1 ORDER BY seq", room)
    assert [r["seq"] for r in stored] == list(range(1, len(stored) + 1)), "seq has a gap"
    keys = [(r["sender_id"], r["client_id"]) for r in stored]
    assert len(set(keys)) == len(keys), "a message is stored twice"
    by_key = {(r["sender_id"], r["client_id"]): r for r in stored}
    acked = 0
    for chatter in chatters:
        for client_id, message in chatter.acked.items():
            row = by_key.get((chatter.user_id, client_id))
            assert row is not None, f"acknowledged {client_id} is not in the database"
            assert (str(row["id"]), row["seq"]) == (str(message["id"]), message["seq"])
            acked += 1
    assert acked == sent == len(stored), (acked, sent, len(stored))
    expected = [(str(r["id"]), r["seq"]) for r in stored]
    for chatter in chatters:
        await chatter.settle()
        assert [(str(m["id"]), m["seq"]) for m in chatter.view] == expected, f"{chatter.user_id}'s view differs"
    return len(stored)
