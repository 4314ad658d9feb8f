"""SQL for rooms and their members."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from store.db import Executor

ROOM_COLUMNS = "id, kind, name, metadata, last_seq, version, last_message_at, frozen, created_by, created_at"
MEMBER_COLUMNS = "room_id, user_id, role, muted_until, post_muted_until, last_read_seq"

INSERT_ROOM = f"""
INSERT INTO rooms (id, kind, name, metadata, direct_key, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING {ROOM_COLUMNS}
"""
SELECT_ROOM = f"SELECT {ROOM_COLUMNS} FROM rooms WHERE id = $1"
SELECT_DIRECT = f"SELECT {ROOM_COLUMNS} FROM rooms WHERE direct_key = $1"
DELETE_ROOM = "DELETE FROM rooms WHERE id = $1 RETURNING id"

SELECT_MEMBER = f"SELECT {MEMBER_COLUMNS} FROM members WHERE room_id = $1 AND user_id = $2"
SELECT_MEMBERS = f"SELECT {MEMBER_COLUMNS} FROM members WHERE room_id = $1 ORDER BY joined_at, user_id"
SELECT_MEMBER_IDS = "SELECT user_id FROM members WHERE room_id = $1"
# A new member's read position starts at the room's last seq: what came before they joined is not
# unread to them.
UPSERT_MEMBER = f"""
INSERT INTO members (room_id, user_id, role, muted_until, last_read_seq)
SELECT $1, $2, $3, $4, last_seq FROM rooms WHERE id = $1
ON CONFLICT (room_id, user_id) DO UPDATE
SET role = coalesce($5, members.role), muted_until = CASE WHEN $6 THEN $4 ELSE members.muted_until END
RETURNING {MEMBER_COLUMNS}, (xmax = 0) AS inserted
"""
JOIN_MEMBER = """
INSERT INTO members (room_id, user_id, role, last_read_seq)
SELECT $1, $2, 'member', last_seq FROM rooms WHERE id = $1
ON CONFLICT (room_id, user_id) DO NOTHING
"""
DELETE_MEMBER = "DELETE FROM members WHERE room_id = $1 AND user_id = $2 RETURNING user_id"
SET_MUTE = f"""
UPDATE members SET muted_until = $3 WHERE room_id = $1 AND user_id = $2
RETURNING {MEMBER_COLUMNS}
"""
SET_READ = """
UPDATE members SET last_read_seq = greatest(last_read_seq, least(coalesce($3, r.last_seq), r.last_seq))
FROM rooms r
WHERE members.room_id = $1 AND members.user_id = $2 AND r.id = members.room_id
RETURNING members.last_read_seq
"""
USER_ROOM_IDS = "SELECT room_id FROM members WHERE user_id = $1"
#: Unread counts stop here (a client shows "999+"): counting walks the messages after the position.
UNREAD_CAP = 1000
# A member's unread messages: after their read position, sent by others, not deleted, not system.
_UNREAD = f"""(
    SELECT count(*) FROM (
        SELECT 1 FROM messages x
        WHERE x.room_id = m.room_id AND x.seq > m.last_read_seq AND x.sender_id <> m.user_id
          AND NOT x.deleted AND NOT x.system
        LIMIT {UNREAD_CAP}
    ) u
)"""
# A user's rooms, the most recently active first (its last message, else its creation), keyset-paged
# by (activity, id) after the cursor ($2, $3), each with the member's state and the last message
# (unread comes from USER_UNREAD, which the list reads anyway for its totals).
USER_ROOMS = """
SELECT r.id, r.kind, r.name, r.metadata, r.last_seq, r.version, r.last_message_at, r.frozen, r.created_by,
       r.created_at, coalesce(r.last_message_at, r.created_at) AS active_at,
       m.role, m.muted_until, m.post_muted_until, m.last_read_seq,
       lm.id AS last_id, lm.sender_id AS last_sender_id, lm.text AS last_text,
       lm.created_at AS last_created_at, lm.deleted AS last_deleted, lm.system AS last_system
FROM members m JOIN rooms r ON r.id = m.room_id
LEFT JOIN LATERAL (
    SELECT id, sender_id, left(text, $5) AS text, created_at, deleted, system FROM messages
    WHERE room_id = r.id AND seq = r.last_seq
) lm ON true
WHERE m.user_id = $1
  AND ($2::timestamptz IS NULL OR (coalesce(r.last_message_at, r.created_at), r.id) < ($2, $3))
ORDER BY coalesce(r.last_message_at, r.created_at) DESC, r.id DESC
LIMIT $4
"""
# Every room of the user with its unread count (``ready``, and the room list's totals).
USER_UNREAD = f"""
SELECT m.room_id, r.version, {_UNREAD} AS unread
FROM members m JOIN rooms r ON r.id = m.room_id WHERE m.user_id = $1
"""
# Mark-all-read: every position moves to its room's last seq; the rooms that changed are returned.
# The member rows are locked in room order, as a group commit locks its senders' (store/messages.py),
# so the two never wait for each other in a cycle.
READ_ALL = """
WITH behind AS MATERIALIZED (
    SELECT m.room_id, r.last_seq FROM members m JOIN rooms r ON r.id = m.room_id
    WHERE m.user_id = $1 AND m.last_read_seq < r.last_seq
    ORDER BY m.room_id FOR NO KEY UPDATE OF m
)
UPDATE members m SET last_read_seq = greatest(m.last_read_seq, behind.last_seq) FROM behind
WHERE m.user_id = $1 AND m.room_id = behind.room_id
RETURNING m.room_id, m.last_read_seq
"""


async def insert_room(
    conn: Executor,
    room_id: str,
    kind: str,
    name: str | None,
    metadata: dict[str, Any],
    direct_key: str | None,
    created_by: str | None,
) -> asyncpg.Record | None:
    """The new room, or None when the id is taken or a direct room for that pair already exists."""
    return await conn.fetchrow(INSERT_ROOM, room_id, kind, name, metadata, direct_key, created_by)


async def get_room(conn: Executor, room_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_ROOM, room_id)


async def get_direct_room(conn: Executor, direct_key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_DIRECT, direct_key)


async def delete_room(conn: Executor, room_id: str) -> bool:
    return await conn.fetchval(DELETE_ROOM, room_id) is not None


async def get_member(conn: Executor, room_id: str, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_MEMBER, room_id, user_id)


async def list_members(conn: Executor, room_id: str) -> list[asyncpg.Record]:
    return list(await conn.fetch(SELECT_MEMBERS, room_id))


async def member_ids(conn: Executor, room_id: str) -> list[str]:
    return [row["user_id"] for row in await conn.fetch(SELECT_MEMBER_IDS, room_id)]


async def upsert_member(
    conn: Executor,
    room_id: str,
    user_id: str,
    role: str | None,
    muted_until: datetime | None,
    set_mute: bool,
) -> asyncpg.Record:
    """Add or update a member; ``role`` None keeps the current one (new members get 'member')."""
    row = await conn.fetchrow(UPSERT_MEMBER, room_id, user_id, role or "member", muted_until, role, set_mute)
    assert row is not None
    return row


async def join(conn: Executor, room_id: str, user_id: str) -> bool:
    """Make the user a member; False when already one."""
    return str(await conn.execute(JOIN_MEMBER, room_id, user_id)).endswith(" 1")


async def remove_member(conn: Executor, room_id: str, user_id: str) -> bool:
    return await conn.fetchval(DELETE_MEMBER, room_id, user_id) is not None


async def set_mute(conn: Executor, room_id: str, user_id: str, until: datetime | None) -> asyncpg.Record | None:
    return await conn.fetchrow(SET_MUTE, room_id, user_id, until)


async def set_read(conn: Executor, room_id: str, user_id: str, seq: int | None) -> int | None:
    """Raise the member's last read seq (never past the room's last; None: to the room's last);
    None when not a member."""
    value = await conn.fetchval(SET_READ, room_id, user_id, seq)
    return int(value) if value is not None else None


async def user_room_ids(conn: Executor, user_id: str) -> list[str]:
    return [row["room_id"] for row in await conn.fetch(USER_ROOM_IDS, user_id)]


async def user_rooms(
    conn: Executor, user_id: str, after: tuple[datetime, str] | None, limit: int, preview: int
) -> list[asyncpg.Record]:
    """A page of the user's rooms, most recently active first, after the (activity, room id) cursor;
    the last message's text is cut to ``preview`` characters."""
    active_at, room_id = after if after is not None else (None, None)
    return list(await conn.fetch(USER_ROOMS, user_id, active_at, room_id, limit, preview))


async def user_unread(conn: Executor, user_id: str) -> list[asyncpg.Record]:
    """(room_id, version, unread) of every room the user is in."""
    return list(await conn.fetch(USER_UNREAD, user_id))


async def read_all(conn: Executor, user_id: str) -> list[asyncpg.Record]:
    """Mark every room of the user read; (room_id, last_read_seq) of those that changed."""
    return list(await conn.fetch(READ_ALL, user_id))
