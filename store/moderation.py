"""SQL for moderation: bans, members muted from posting, frozen rooms, and reports of messages."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from store.db import Executor
from store.rooms import MEMBER_COLUMNS, ROOM_COLUMNS

BAN_COLUMNS = "room_id, user_id, until, reason, banned_by, created_at"
BAN = f"""
INSERT INTO room_bans (room_id, user_id, until, reason, banned_by) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (room_id, user_id) DO UPDATE
SET until = excluded.until, reason = excluded.reason, banned_by = excluded.banned_by, created_at = now()
RETURNING {BAN_COLUMNS}
"""
ACTIVE_BAN = f"""
SELECT {BAN_COLUMNS} FROM room_bans WHERE room_id = $1 AND user_id = $2 AND (until IS NULL OR until > now())
"""
UNBAN = "DELETE FROM room_bans WHERE room_id = $1 AND user_id = $2 RETURNING user_id"
BANS = f"""
SELECT {BAN_COLUMNS} FROM room_bans WHERE room_id = $1 AND (until IS NULL OR until > now()) ORDER BY created_at, user_id
"""
SET_FROZEN = f"UPDATE rooms SET frozen = $2 WHERE id = $1 RETURNING {ROOM_COLUMNS}"
SET_POST_MUTE = (
    f"UPDATE members SET post_muted_until = $3 WHERE room_id = $1 AND user_id = $2 RETURNING {MEMBER_COLUMNS}"
)
REPORT_COLUMNS = "id, room_id, message_id, reporter_id, reason, created_at"
REPORT = f"""
INSERT INTO message_reports (room_id, message_id, reporter_id, reason)
SELECT $1, id, $3, $4 FROM messages WHERE room_id = $1 AND id = $2
ON CONFLICT (message_id, reporter_id) DO UPDATE SET reason = excluded.reason
RETURNING {REPORT_COLUMNS}
"""
REPORTS = """
SELECT r.id, r.room_id, r.message_id, r.reporter_id, r.reason, r.created_at,
       m.seq, m.sender_id, m.text, m.deleted
FROM message_reports r JOIN messages m ON m.id = r.message_id
WHERE r.room_id = $1 AND r.id > $2
ORDER BY r.id LIMIT $3
"""


async def ban(
    conn: Executor, room_id: str, user_id: str, until: datetime | None, reason: str | None, by: str | None
) -> asyncpg.Record:
    row = await conn.fetchrow(BAN, room_id, user_id, until, reason, by)
    assert row is not None
    return row


async def active_ban(conn: Executor, room_id: str, user_id: str) -> asyncpg.Record | None:
    """The user's ban from the room while it lasts, else None."""
    return await conn.fetchrow(ACTIVE_BAN, room_id, user_id)


async def unban(conn: Executor, room_id: str, user_id: str) -> bool:
    return await conn.fetchval(UNBAN, room_id, user_id) is not None


async def bans(conn: Executor, room_id: str) -> list[asyncpg.Record]:
    """The room's bans still in force."""
    return list(await conn.fetch(BANS, room_id))


async def set_frozen(conn: Executor, room_id: str, frozen: bool) -> asyncpg.Record | None:
    return await conn.fetchrow(SET_FROZEN, room_id, frozen)


async def set_post_mute(conn: Executor, room_id: str, user_id: str, until: datetime | None) -> asyncpg.Record | None:
    return await conn.fetchrow(SET_POST_MUTE, room_id, user_id, until)


async def report(conn: Executor, room_id: str, message_id: int, reporter_id: str, reason: str) -> asyncpg.Record | None:
    """The report (one per reporter and message; reporting again replaces the reason), or None when
    the message is not in the room."""
    return await conn.fetchrow(REPORT, room_id, message_id, reporter_id, reason)


async def reports(conn: Executor, room_id: str, after_id: int, limit: int) -> list[asyncpg.Record]:
    """The room's reports after ``after_id``, oldest first, each with the reported message."""
    return list(await conn.fetch(REPORTS, room_id, after_id, limit))
