"""SQL for device tokens."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from store.db import Executor

DEVICE_COLUMNS = (
    "token, provider, platform, user_id, app_id, environment, locale, timezone, app_version, "
    "invalid_at, invalid_reason, registered_at, updated_at"
)

UPSERT = f"""
INSERT INTO devices (token, provider, platform, user_id, app_id, environment, locale, timezone, app_version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (token) DO UPDATE SET
    provider = excluded.provider, platform = excluded.platform, user_id = excluded.user_id,
    app_id = excluded.app_id, environment = excluded.environment, locale = excluded.locale,
    timezone = excluded.timezone, app_version = excluded.app_version,
    invalid_at = NULL, invalid_reason = NULL, registered_at = now(), updated_at = now()
RETURNING {DEVICE_COLUMNS}, (xmax = 0) AS inserted
"""
SELECT_ONE = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE token = $1"
DELETE = "DELETE FROM devices WHERE token = $1 AND ($2::text IS NULL OR user_id = $2) RETURNING token"
FOR_USER = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = $1 ORDER BY registered_at, token"
VALID_FOR_USERS = f"""
SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = ANY($1::text[]) AND invalid_at IS NULL ORDER BY user_id, token
"""
BY_TOKENS = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE token = ANY($1::text[])"
# Prune only tokens last registered before the provider's verdict (APNs 410 timestamp rule).
INVALIDATE = """
UPDATE devices SET invalid_at = now(), invalid_reason = d.reason, updated_at = now()
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS d(token, reason, before)
WHERE devices.token = d.token AND devices.invalid_at IS NULL
  AND (d.before IS NULL OR devices.registered_at < d.before)
RETURNING devices.token, devices.user_id, devices.app_id, devices.provider
"""


async def upsert(
    conn: Executor,
    *,
    token: str,
    provider: str,
    platform: str,
    user_id: str,
    app_id: str | None,
    environment: str,
    locale: str | None,
    timezone: str | None,
    app_version: str | None,
) -> asyncpg.Record:
    row = await conn.fetchrow(
        UPSERT, token, provider, platform, user_id, app_id, environment, locale, timezone, app_version
    )
    assert row is not None
    return row


async def get(conn: Executor, token: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_ONE, token)


async def delete(conn: Executor, token: str, user_id: str | None) -> bool:
    """Delete a token (only the user's own when ``user_id`` is given)."""
    return await conn.fetchval(DELETE, token, user_id) is not None


async def for_user(conn: Executor, user_id: str) -> list[asyncpg.Record]:
    return list(await conn.fetch(FOR_USER, user_id))


async def valid_for_users(conn: Executor, user_ids: list[str]) -> list[asyncpg.Record]:
    return list(await conn.fetch(VALID_FOR_USERS, user_ids))


async def by_tokens(conn: Executor, tokens: list[str]) -> list[asyncpg.Record]:
    return list(await conn.fetch(BY_TOKENS, tokens))


async def invalidate(conn: Executor, verdicts: list[tuple[str, str, datetime | None]]) -> list[asyncpg.Record]:
    """Mark tokens invalid: (token, reason, registered-before or None); return the rows pruned."""
    if not verdicts:
        return []
    tokens, reasons, befores = zip(*verdicts, strict=True)
    return list(await conn.fetch(INVALIDATE, list(tokens), list(reasons), list(befores)))
