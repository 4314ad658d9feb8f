"""SQL for a user's data export and erasure."""

from __future__ import annotations

from typing import Any

import asyncpg

from store import messages as message_store
from store.db import Executor

USER = """
SELECT id, attributes, tags, timezone, locale, marketing_opt_in, created_at, last_active_at FROM users WHERE id = $1
"""
DEVICES = """
SELECT token, provider, platform, app_id, environment, locale, timezone, app_version, invalid_at, invalid_reason,
       registered_at
FROM devices WHERE user_id = $1 ORDER BY registered_at
"""
MEMBERSHIPS = """
SELECT room_id, role, muted_until, last_read_seq, joined_at FROM members WHERE user_id = $1 ORDER BY joined_at
"""
MESSAGES = """
SELECT id, room_id, seq, client_id, text, meta, reply_to, created_at, edited_at, deleted
FROM messages WHERE sender_id = $1 ORDER BY created_at, id
"""
DELIVERIES = """
SELECT d.notification_id, d.device_token, d.status, d.reason, d.updated_at
FROM deliveries d JOIN devices v ON v.token = d.device_token
WHERE v.user_id = $1 ORDER BY d.updated_at
"""
OPENS = "SELECT notification_id, opened_at FROM notification_opens WHERE user_id = $1 ORDER BY opened_at"
# Erasure keeps room history consistent: the messages stay (seq has no gaps) with their text blanked,
# each taking its room's next version so that clients which sync see it go.
BLANK_MESSAGES = message_store.blanking("SELECT id, room_id FROM messages WHERE sender_id = $1")
DELETE_USER = "DELETE FROM users WHERE id = $1 RETURNING id"  # members, devices and opens cascade


async def export(conn: Executor, user_id: str) -> dict[str, list[asyncpg.Record]] | None:
    """Every row the hub holds about the user, by kind; None when the user is unknown."""
    user = await conn.fetchrow(USER, user_id)
    if user is None:
        return None
    found: dict[str, list[asyncpg.Record]] = {"user": [user]}
    for name, sql in (
        ("devices", DEVICES),
        ("memberships", MEMBERSHIPS),
        ("messages", MESSAGES),
        ("deliveries", DELIVERIES),
        ("opens", OPENS),
    ):
        found[name] = list(await conn.fetch(sql, user_id))
    return found


async def erase(conn: asyncpg.Connection, user_id: str) -> dict[str, Any]:
    """Blank the user's messages and delete the user with devices, attributes and memberships."""
    async with conn.transaction():
        blanked = await conn.execute(BLANK_MESSAGES, user_id)
        deleted = await conn.fetchval(DELETE_USER, user_id)
    return {"deleted": deleted is not None, "messages_blanked": int(str(blanked).split()[-1])}
