"""Who is online, across every web node, kept in Redis.

A user is online while some node holds one of their connections.  Each node records, per user,
an entry that expires unless the node's heartbeat renews it, so the users of a node that died
go offline by themselves: :meth:`Presence.reap` (run by every node) finds them and reports them
once, for the room to be told.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from store import keys

SEP = "\x1f"
HEARTBEAT_BATCH = 1000
# KEYS: PRESENCE_ALL, then each user's key; ARGV: node, expiry, SEP, then each user id (same order).
RENEW_LUA = """
local node, expiry, sep = ARGV[1], ARGV[2], ARGV[3]
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], expiry, node)
  redis.call('ZADD', KEYS[1], expiry, node .. sep .. ARGV[i + 2])
end
return #KEYS - 1
"""
# KEYS and ARGV as above, with ARGV[2] now and expiry after it: whether each user had a live entry before.
ARRIVE_LUA = """
local node, now, expiry, sep = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local live = {}
for i = 2, #KEYS do
  live[i - 1] = redis.call('ZCOUNT', KEYS[i], now, '+inf')
  redis.call('ZADD', KEYS[i], expiry, node)
  redis.call('ZADD', KEYS[1], expiry, node .. sep .. ARGV[i + 3])
end
return live
"""


class Presence:
    def __init__(self, redis: aioredis.Redis, node_id: str, ttl: float = 30.0) -> None:
        self._redis = redis
        self._node = node_id
        self.ttl = ttl
        self._renew_script: AsyncScript | None = None
        self._arrive_script: AsyncScript | None = None
        self._arrivals: list[tuple[str, asyncio.Future[bool]]] = []
        self._arriving: asyncio.Future[None] | None = None

    async def _any_live(self, user_id: str, now: float) -> bool:
        return int(await self._redis.zcount(keys.presence_user(user_id), now, "+inf")) > 0

    async def arrive(self, user_id: str) -> bool:
        """Record this node's connection of the user; True when the user was offline before.

        Arrivals in the same loop turn (a burst of connects) go to Redis together: one script call
        per ``HEARTBEAT_BATCH`` users instead of a ZCOUNT and a pipeline each, as if one after the other.
        """
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._arrivals.append((user_id, done))
        if self._arriving is None:
            self._arriving = asyncio.ensure_future(self._flush_arrivals())
        return await done

    async def _flush_arrivals(self) -> None:
        try:
            await asyncio.sleep(0)
            while self._arrivals:
                batch, self._arrivals = self._arrivals[:HEARTBEAT_BATCH], self._arrivals[HEARTBEAT_BATCH:]
                try:
                    if self._arrive_script is None:
                        self._arrive_script = self._redis.register_script(ARRIVE_LUA)
                    now = time.time()
                    users = [user_id for user_id, _ in batch]
                    live = await self._arrive_script(
                        keys=[keys.PRESENCE_ALL, *(keys.presence_user(u) for u in users)],
                        args=[self._node, repr(now), repr(now + self.ttl), SEP, *users],
                    )
                except BaseException as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                    if not isinstance(exc, Exception):
                        raise
                else:
                    for (_, done), count in zip(batch, live, strict=True):
                        if not done.done():
                            done.set_result(int(count) == 0)
        finally:
            self._arriving = None

    async def depart(self, user_id: str) -> bool:
        """Drop this node's entry for the user; True when no node holds the user any more."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.presence_user(user_id), self._node)
            pipe.zrem(keys.PRESENCE_ALL, f"{self._node}{SEP}{user_id}")
            await pipe.execute()
        return not await self._any_live(user_id, time.time())

    async def heartbeat(self, user_ids: Iterable[str]) -> None:
        """Renew this node's entries for the users it holds: one script call per ``HEARTBEAT_BATCH`` users.

        A pipeline of two ZADDs per user cost the web process ~30 µs per user (commands built and
        replies parsed one by one); the script takes the user ids as arguments and does the ZADDs
        inside Redis.
        """
        expiry = time.time() + self.ttl
        batch: list[str] = []
        for user_id in user_ids:
            batch.append(user_id)
            if len(batch) >= HEARTBEAT_BATCH:
                await self._renew(batch, expiry)
                batch = []
        if batch:
            await self._renew(batch, expiry)

    async def _renew(self, user_ids: list[str], expiry: float) -> None:
        if self._renew_script is None:
            self._renew_script = self._redis.register_script(RENEW_LUA)
        await self._renew_script(
            keys=[keys.PRESENCE_ALL, *(keys.presence_user(u) for u in user_ids)],
            args=[self._node, repr(expiry), SEP, *user_ids],
        )

    async def reap(self) -> list[str]:
        """Remove expired entries (nodes that died); return users now offline everywhere.

        Several nodes may reap at once: ZREM decides which one reports each entry.
        """
        now = time.time()
        expired = await self._redis.zrangebyscore(keys.PRESENCE_ALL, "-inf", now, start=0, num=1000)
        gone: list[str] = []
        for raw in expired:
            entry = raw.decode() if isinstance(raw, bytes) else str(raw)
            node, _, user_id = entry.partition(SEP)
            if not await self._redis.zrem(keys.PRESENCE_ALL, entry):
                continue
            await self._redis.zrem(keys.presence_user(user_id), node)
            if not await self._any_live(user_id, now):
                gone.append(user_id)
        return gone

    async def online_among(self, user_ids: list[str]) -> list[str]:
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.zcount(keys.presence_user(user_id), now, "+inf")
            counts = await pipe.execute()
        return [user_id for user_id, count in zip(user_ids, counts, strict=True) if int(count) > 0]
