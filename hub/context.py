"""The bundle of long-lived parts a web process hands to its handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from arq import ArqRedis

from config import Settings
from hub.auth import TokenVerifier
from hub.connections import Connections
from hub.realtime import Realtime
from rooms.messages import GroupCommit
from rooms.presence import Presence
from rooms.throttle import TokenBuckets


@dataclass
class Hub:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    verifier: TokenVerifier
    realtime: Realtime
    presence: Presence
    node_id: str
    arq: ArqRedis
    writer_pool: asyncpg.Pool | None = None  # the group commit's connections (the main pool if None)
    connections: Connections = field(default_factory=Connections)
    message_rate: TokenBuckets = field(init=False)
    message_writer: GroupCommit = field(init=False)
    typing_rate: TokenBuckets = field(default_factory=lambda: TokenBuckets(rate=0.5, burst=2))
    address_rate: TokenBuckets = field(init=False)  # REST requests and connects per client address
    caller_rate: TokenBuckets = field(init=False)  # REST requests per API key or user

    def __post_init__(self) -> None:
        self.message_rate = TokenBuckets(self.settings.message_rate, self.settings.message_burst)
        self.address_rate = TokenBuckets(self.settings.address_rate, int(self.settings.address_rate * 2))
        self.caller_rate = TokenBuckets(self.settings.key_rate, int(self.settings.key_rate * 2))
        self.message_writer = GroupCommit(self.writer_pool or self.pool)


HUB = web.AppKey("hub", Hub)
