"""The asyncpg pool: one per process, with JSON codecs so jsonb columns come back as Python values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeAlias

import asyncpg

Pool = asyncpg.Pool
Connection = asyncpg.Connection
Record = asyncpg.Record
Executor: TypeAlias = "asyncpg.Connection | asyncpg.Pool"
Row: TypeAlias = Mapping[str, Any]  # an asyncpg.Record, or a dict of the same columns


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text")


class _Connection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection whose failed reset ends it instead of failing the work it just did.

    The pool resets a connection when it is released.  When the server ended the connection in the
    meantime (``pg_terminate_backend``, a fast shutdown, a failover), asyncpg raises from that reset
    (``InternalClientError: cannot switch to state ...``), out of ``async with pool.acquire()``,
    after the block's statements succeeded: a committed message was answered ``internal``.  The
    connection is terminated instead, as asyncpg would do, and the pool opens a new one when needed.
    """

    async def reset(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109 - asyncpg's signature
        try:
            await super().reset(timeout=timeout)
        except Exception:
            self.terminate()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A release that leaves the session as it is (asyncpg still rolls back an open transaction)."""


async def create_pool(
    database_url: str, *, size: int = 10, plain_statements: bool = False, **kwargs: Any
) -> asyncpg.Pool:
    """Open a pool of at most ``size`` connections to ``database_url``.

    By default a released connection is reset (asyncpg: advisory locks released, settings, cursors
    and LISTENs dropped), one more round trip per release. ``plain_statements`` skips it, for a pool
    whose users only run statements and transactions and never change the session.
    """
    if plain_statements:
        kwargs["reset"] = _keep_session
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min(2, size),
        max_size=size,
        init=_init_connection,
        command_timeout=30,
        connection_class=_Connection,
        **kwargs,
    )
    assert pool is not None
    return pool


async def connect(database_url: str) -> asyncpg.Connection:
    """One connection, with the same codecs as the pool's."""
    conn = await asyncpg.connect(database_url)
    await _init_connection(conn)
    return conn


async def fetch_one(conn: Executor, query: str, *args: Any) -> asyncpg.Record | None:
    """The first row of ``query``, like ``fetchrow`` but free to run in parallel.

    asyncpg's ``fetchrow`` and ``fetchval`` ask for one row with a row limit on the Execute
    message, and PostgreSQL never plans a parallel query for a portal run with a limit: a count
    over a million users took 220 ms that way and 130 ms with its two parallel workers.  Use this
    for aggregates over large tables.
    """
    rows = await conn.fetch(query, *args)
    return rows[0] if rows else None
