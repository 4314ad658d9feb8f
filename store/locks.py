"""Job-wide PostgreSQL advisory locks: one worker at a time per notification or campaign.

The lock lives as long as the connection holding it, so a worker killed with ``kill -9`` frees
it at once (the server sees the connection close), unlike a lease in Redis.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

NOTIFICATIONS = 0x4E4F
CAMPAIGNS = 0x4341

TRY_LOCK = "SELECT pg_try_advisory_lock($1, hashtext($2))"
UNLOCK = "SELECT pg_advisory_unlock($1, hashtext($2))"


@contextlib.asynccontextmanager
async def exclusive(pool: asyncpg.Pool, namespace: int, key: str) -> AsyncIterator[bool]:
    """Hold the lock on (namespace, key) for the block; yields False when another holder has it."""
    async with pool.acquire() as conn:
        if not await conn.fetchval(TRY_LOCK, namespace, key):
            yield False
            return
        try:
            yield True
        finally:
            await conn.execute(UNLOCK, namespace, key)
