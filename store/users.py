"""SQL for the users table."""

from __future__ import annotations

import asyncpg

TOUCH = """
INSERT INTO users (id, last_active_at) VALUES ($1, now())
ON CONFLICT (id) DO UPDATE SET last_active_at = now()
"""
ENSURE = "INSERT INTO users (id) VALUES ($1) ON CONFLICT (id) DO NOTHING"
ENSURE_MANY = "INSERT INTO users (id) SELECT unnest($1::text[]) ON CONFLICT (id) DO NOTHING"
EXISTS = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)"


async def touch(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> None:
    """Create the user on first sight and record activity now."""
    await conn.execute(TOUCH, user_id)


async def ensure(conn: asyncpg.Connection | asyncpg.Pool, user_ids: list[str]) -> None:
    """Create any of ``user_ids`` not yet known."""
    if user_ids:
        await conn.execute(ENSURE_MANY, user_ids)


async def exists(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> bool:
    return bool(await conn.fetchval(EXISTS, user_id))


PROFILE_COLUMNS = "id, attributes, tags, timezone, locale, marketing_opt_in, created_at, last_active_at"
# $7 / $8 say whether timezone / locale were given (null clears them); other nulls keep the value.
PUT_PROFILE = f"""
INSERT INTO users (id, attributes, tags, timezone, locale, marketing_opt_in)
VALUES ($1, coalesce($2::jsonb, '{{}}'::jsonb), coalesce($3::text[], '{{}}'::text[]), $4, $5, coalesce($6, true))
ON CONFLICT (id) DO UPDATE SET
    attributes = coalesce($2::jsonb, users.attributes),
    tags = coalesce($3::text[], users.tags),
    timezone = CASE WHEN $7 THEN $4 ELSE users.timezone END,
    locale = CASE WHEN $8 THEN $5 ELSE users.locale END,
    marketing_opt_in = coalesce($6, users.marketing_opt_in)
RETURNING {PROFILE_COLUMNS}, (xmax = 0) AS inserted
"""


async def put_profile(
    conn: asyncpg.Connection | asyncpg.Pool,
    user_id: str,
    *,
    attributes: dict[str, object] | None,
    tags: list[str] | None,
    timezone: str | None,
    locale: str | None,
    marketing_opt_in: bool | None,
    set_timezone: bool,
    set_locale: bool,
) -> asyncpg.Record:
    """Create or update a user's targeting profile; fields given as None are left as they are."""
    row = await conn.fetchrow(
        PUT_PROFILE, user_id, attributes, tags, timezone, locale, marketing_opt_in, set_timezone, set_locale
    )
    assert row is not None
    return row


# A user's profile with their newest valid device's locale (the console's personalisation preview).
PREVIEW_PROFILE = """
SELECT u.id, u.attributes, u.locale, u.timezone,
       (SELECT locale FROM devices WHERE user_id = u.id AND invalid_at IS NULL
        ORDER BY registered_at DESC LIMIT 1) AS device_locale
FROM users u WHERE u.id = $1
"""


async def preview_profile(conn: asyncpg.Connection | asyncpg.Pool, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(PREVIEW_PROFILE, user_id)
