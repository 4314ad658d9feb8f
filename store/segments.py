"""Segments in SQL: counting and sampling the users a compiled filter selects, and saved segments.

The filter language and its compiler are the campaigns domain's (:mod:`campaigns.filters`); this
module runs the :class:`Condition` it produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from store.db import Executor, fetch_one


@dataclass(frozen=True, slots=True)
class Condition:
    """A SQL boolean over ``users u`` with its bind values for ``$start`` onwards."""

    sql: str
    args: tuple[Any, ...]


# --- Counting and sampling (the preview) ---

# One pass over the matching users: their valid devices are counted in users.valid_devices (kept by
# triggers on devices, migration 0005), not by a join with the devices table.
COUNT = """
SELECT count(*) AS users, count(*) FILTER (WHERE NOT u.marketing_opt_in) AS opted_out,
       coalesce(sum(u.valid_devices), 0) AS devices
FROM users u WHERE {}
"""
SAMPLE = """
SELECT u.id, u.attributes, u.tags, u.timezone, u.locale, u.marketing_opt_in, u.last_active_at
FROM users u WHERE {} ORDER BY u.id LIMIT {}
"""


async def count(conn: Executor, condition: Condition) -> tuple[int, int, int]:
    """(matching users, of them opted out of marketing, their valid devices: a campaign sends to
    every one of them)."""
    row = await fetch_one(conn, COUNT.format(condition.sql), *condition.args)
    assert row is not None
    return int(row["users"]), int(row["opted_out"]), int(row["devices"])


async def sample(conn: Executor, condition: Condition, limit: int) -> list[asyncpg.Record]:
    placeholder = f"${len(condition.args) + 1}"
    return list(await conn.fetch(SAMPLE.format(condition.sql, placeholder), *condition.args, limit))


# --- Saved segments ---

COLUMNS = "id, name, filter, created_at, updated_at"
INSERT = f"INSERT INTO segments (name, filter) VALUES ($1, $2) RETURNING {COLUMNS}"
SELECT_ONE = f"SELECT {COLUMNS} FROM segments WHERE id = $1"
UPDATE = f"UPDATE segments SET name = $2, filter = $3, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
DELETE = "DELETE FROM segments WHERE id = $1 RETURNING id"
PAGE = f"""
SELECT {COLUMNS} FROM segments
WHERE $1::uuid IS NULL OR (created_at, id) > (SELECT created_at, id FROM segments WHERE id = $1)
ORDER BY created_at, id LIMIT $2
"""
IN_USE = """
SELECT EXISTS (SELECT 1 FROM campaigns WHERE segment_id = $1 AND status IN ('draft', 'scheduled', 'running'))
"""


async def insert(conn: Executor, name: str, tree: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow(INSERT, name, tree)
    assert row is not None
    return row


async def get(conn: Executor, segment_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_ONE, segment_id)


async def update(conn: Executor, segment_id: str, name: str, tree: dict[str, Any]) -> asyncpg.Record | None:
    return await conn.fetchrow(UPDATE, segment_id, name, tree)


async def delete(conn: Executor, segment_id: str) -> bool:
    return await conn.fetchval(DELETE, segment_id) is not None


async def page(conn: Executor, after: str | None, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(PAGE, after, limit))


async def in_use(conn: Executor, segment_id: str) -> bool:
    """Whether a campaign not yet finished targets this segment."""
    return bool(await conn.fetchval(IN_USE, segment_id))
