"""The web process's Redis clients: bounded calls, and a subscription read that tolerates quiet.

Every Redis client of a web node (the fan-out publisher and subscriber, presence, console
sessions, the queue it enqueues jobs on) is made with ``CLIENT_OPTIONS``: a connect or a command
that gets no answer within ``REDIS_TIMEOUT`` fails instead of waiting for as long as Redis is
frozen (a stopped process, a half-open connection after a failover).

:class:`LinkHealth` remembers that broadcasts may have been missed (a publish failed or timed out,
the subscription was lost) and, once Redis answers again, has this node's sockets told ``resync``.

A subscriber cannot use that socket timeout: its read waits for the next message, which on a
quiet channel may be minutes away.  :func:`read` waits ``IDLE_PING`` seconds at a time, pings the
quiet link, and gives it up when nothing (a message or the pong) comes within ``PONG_WITHIN``
seconds of the ping.  It uses redis-py 5's ``PubSub.parse_response(block=False, timeout=...)``
(which returns None when the wait ends) and ``PubSub.handle_message``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from arq import ArqRedis

from store import queue

log = logging.getLogger(__name__)

#: Seconds any one Redis call of the hub may take (connect, or a command's answer).
REDIS_TIMEOUT = 2.0
CLIENT_OPTIONS: dict[str, Any] = {
    "socket_timeout": REDIS_TIMEOUT,
    "socket_connect_timeout": REDIS_TIMEOUT,
    "socket_keepalive": True,
}
#: The subscriber pings after this many quiet seconds, and gives the link up when nothing at all
#: arrives within PONG_WITHIN seconds of the ping: a frozen Redis is noticed within 3 seconds.
IDLE_PING = 1.0
PONG_WITHIN = 2.0
#: Seconds between pings of a suspect link.
PROBE_EVERY = 0.25


def client(url: str) -> aioredis.Redis:
    """A Redis client whose every call is bounded (presence, console sessions, readiness)."""
    bounded: aioredis.Redis = aioredis.Redis.from_url(url, **CLIENT_OPTIONS)
    return bounded


def queue_client(url: str) -> ArqRedis:
    """arq's client for enqueueing jobs, bounded like the others (arq's own ``create_pool`` sets a
    connect timeout only, so a frozen Redis held a REST request that enqueues a job).  Close it
    with ``aclose(close_connection_pool=True)``."""
    pool = aioredis.ConnectionPool.from_url(url, **CLIENT_OPTIONS)
    return ArqRedis(pool, job_serializer=queue.serialize, job_deserializer=queue.deserialize)


async def read(pubsub: aioredis.client.PubSub) -> AsyncIterator[dict[str, Any]]:
    """A subscription's messages (subscribe confirmations included), for as long as the channel
    is quiet; ``redis.exceptions.TimeoutError`` when a ping goes unanswered."""
    loop = asyncio.get_running_loop()
    pinged: float | None = None
    while True:
        response = await pubsub.parse_response(block=False, timeout=IDLE_PING)
        if response is None:
            if pinged is None:
                await pubsub.ping()
                pinged = loop.time()
            elif loop.time() - pinged > PONG_WITHIN:
                raise redis.exceptions.TimeoutError(f"no answer from redis within {PONG_WITHIN}s of a ping")
            continue
        pinged = None  # anything at all proves the link
        message = await pubsub.handle_message(response)  # type: ignore[no-untyped-call]
        if message is not None and message["type"] != "pong":
            yield message


async def close(pubsub: aioredis.client.PubSub | None) -> None:
    """Drop a subscription's connection, without waiting on a Redis that does not answer."""
    if pubsub is not None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(REDIS_TIMEOUT):
                await pubsub.aclose()  # type: ignore[no-untyped-call]


class LinkHealth:
    """Whether this node may have missed broadcasts, and the resync once Redis answers again.

    ``suspect`` starts a probe that pings Redis every ``PROBE_EVERY`` seconds; the first answer
    (after the subscriber, if any, has a confirmed subscription again) calls ``on_restored``
    once.  A confirmed subscription after a loss does the same, whichever comes first.
    """

    def __init__(
        self, ping: Callable[[], Awaitable[object]], on_restored: Callable[[], Awaitable[None]], *, subscriber: bool
    ) -> None:
        self.up = asyncio.Event()  # the subscription is confirmed
        self.is_suspect = False
        self._ping = ping
        self._on_restored = on_restored
        self._subscriber = subscriber
        self._probe: asyncio.Task[None] | None = None

    def lost(self) -> None:
        """The subscription failed: suspect until a new one is confirmed (or Redis answers)."""
        self.up.clear()
        self.suspect("subscription lost")

    def suspect(self, reason: str) -> None:
        if not self.is_suspect:
            self.is_suspect = True
            log.warning("redis link suspect; clients will be asked to resync", extra={"reason": reason})
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._probe_link())

    async def subscribed(self) -> None:
        self.up.set()
        await self._restored()

    async def _probe_link(self) -> None:
        while self.is_suspect:
            await asyncio.sleep(PROBE_EVERY)
            if self._subscriber:
                await self.up.wait()
            try:
                async with asyncio.timeout(REDIS_TIMEOUT):
                    await self._ping()
            except Exception:  # no answer yet (a timeout, a refused or reset connection)
                continue
            await self._restored()

    async def _restored(self) -> None:
        if self.is_suspect:
            self.is_suspect = False
            log.warning("redis link restored; asking clients to resync")
            await self._on_restored()
