"""The typed bundle every job receives (``ctx["app"]``), built once per worker process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from arq import ArqRedis

from config import Settings
from push import Pushers
from rooms.presence import Presence


@dataclass
class WorkerApp:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    arq: ArqRedis
    pushers: Pushers
    presence: Presence
    http: aiohttp.ClientSession
    #: connections with ``synchronous_commit = off`` for delivery state changes only (marked
    #: sending, outcomes): what creates work (notifications, deliveries with their apns-id,
    #: campaign sends) goes through ``pool`` and is durable before any push goes out
    bookkeeping: asyncpg.Pool | None = field(default=None)
    #: provider requests in flight in this process, whatever job they belong to
    #: (``HERALD_PUSH_CONCURRENCY``); made from the settings when not given
    push_slots: asyncio.Semaphore | None = field(default=None)

    @property
    def state_pool(self) -> asyncpg.Pool:
        return self.bookkeeping or self.pool

    def __post_init__(self) -> None:
        if self.push_slots is None:
            self.push_slots = asyncio.Semaphore(self.settings.push_concurrency)


def app_of(ctx: dict[str, Any]) -> WorkerApp:
    app = ctx["app"]
    assert isinstance(app, WorkerApp)
    return app
