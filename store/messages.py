"""SQL for chat messages.  ``seq`` is per room, gap-free: it is taken from ``rooms.last_seq``
in the same statement that inserts the message, so a failed insert gives its number back.

``version`` is the room's change counter (migration 0009): every send, edit and delete takes the
room's next one, so the messages with a version above a client's are exactly what changed since.

Lock order: every statement that bumps ``rooms.last_seq`` or ``rooms.version`` locks its rooms
before anything else, in room id order (:data:`INSERT` and the edits lock one room;
:data:`INSERT_MANY` locks its rooms sorted by id), then message rows, then member rows, so two
group commits on different web nodes never wait for each other in a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from store.db import Executor, Row

MESSAGE_COLUMNS = (
    "id, room_id, seq, version, sender_id, client_id, text, meta, reply_to, created_at, edited_at, deleted, system"
)

# A member row (``members``) whose user may post in the room ``{room}``: not muted from posting, and
# an owner or admin when the room is frozen (migration 0010).  Services (as_service) skip it.
MAY_POST = (
    "(post_muted_until IS NULL OR post_muted_until <= now())"
    " AND (role IN ('owner', 'admin') OR NOT (SELECT frozen FROM rooms f WHERE f.id = {room}))"
)
# One round trip: bump the room's seq and version only when the sender is a member, the client_id
# is new and reply_to (if any) is a message of the same room; then insert with them, and move the
# sender's read position to their own message.  The room's row is the statement's first lock and
# its only one on rooms; the member's row comes after it, as in every statement that takes both.
INSERT = f"""
WITH bump AS (
    UPDATE rooms SET last_seq = last_seq + 1, version = version + 1, last_message_at = now()
    WHERE id = $1
      AND ($7 OR EXISTS (
          SELECT 1 FROM members WHERE room_id = $1 AND user_id = $2 AND {MAY_POST.format(room="rooms.id")}
      ))
      AND NOT EXISTS (SELECT 1 FROM messages WHERE room_id = $1 AND sender_id = $2 AND client_id = $3)
      AND ($6::bigint IS NULL OR EXISTS (SELECT 1 FROM messages WHERE id = $6 AND room_id = $1))
    RETURNING last_seq, version
),
stored AS (
    INSERT INTO messages (room_id, seq, version, sender_id, client_id, text, meta, reply_to)
    SELECT $1, last_seq, version, $2, $3, $4, $5, $6 FROM bump
    RETURNING {MESSAGE_COLUMNS}
),
own AS (
    UPDATE members SET last_read_seq = greatest(members.last_read_seq, stored.seq) FROM stored
    WHERE members.room_id = $1 AND members.user_id = $2
)
SELECT * FROM stored
"""
# Group commit: many messages in one statement (one round trip, one commit).  Each input row must
# pass the same checks as INSERT; the rooms touched get their seq bumped once by the number of
# their rows, and the rows take base + 1, base + 2, ... in input order, so seq stays gap-free and
# in arrival order.  The caller leaves at most one row per (room, sender, client_id) in a batch.
# The batch goes as one JSON array of rows (one encode in C), not as seven arrays, which asyncpg
# encodes element by element (about 4 µs per message); and it returns only what PostgreSQL made
# (the rest is the input), where reading back text and meta cost a JSON decode in Python per row.
# ``locked`` takes the rooms' row locks in id order (LockRows above the Sort) before ``bump``
# updates them: UPDATE ... FROM locks rows in whatever order its join yields them, and two nodes'
# batches over the same rooms deadlocked ("while updating tuple ... in relation rooms").  FOR NO
# KEY UPDATE is the lock the UPDATE takes anyway, so it waits for nothing the UPDATE would not.
INSERT_MANY = f"""
WITH input AS (
    SELECT e->>0 AS room_id, e->>1 AS sender_id, e->>2 AS client_id, e->>3 AS text, (e->4)::jsonb AS meta,
           (e->>5)::bigint AS reply_to, (e->>6)::bool AS as_service, ord
    FROM json_array_elements($1::json) WITH ORDINALITY AS a(e, ord)
),
ok AS (
    SELECT i.*, row_number() OVER (PARTITION BY i.room_id ORDER BY i.ord) AS rn FROM input i
    WHERE (i.as_service OR EXISTS (
        SELECT 1 FROM members
        WHERE room_id = i.room_id AND user_id = i.sender_id AND {MAY_POST.format(room="i.room_id")}
    ))
      AND NOT EXISTS (
          SELECT 1 FROM messages WHERE room_id = i.room_id AND sender_id = i.sender_id AND client_id = i.client_id
      )
      AND (i.reply_to IS NULL OR EXISTS (SELECT 1 FROM messages WHERE id = i.reply_to AND room_id = i.room_id))
),
locked AS MATERIALIZED (
    SELECT rooms.id, c.n FROM rooms
    JOIN (SELECT room_id, count(*) AS n FROM ok GROUP BY room_id) c ON c.room_id = rooms.id
    ORDER BY rooms.id FOR NO KEY UPDATE OF rooms
),
bump AS (
    UPDATE rooms SET last_seq = rooms.last_seq + l.n, version = rooms.version + l.n, last_message_at = now()
    FROM locked l WHERE rooms.id = l.id
    RETURNING rooms.id, rooms.last_seq - l.n AS base, rooms.version - l.n AS version_base
),
stored AS (
    INSERT INTO messages (room_id, seq, version, sender_id, client_id, text, meta, reply_to)
    SELECT ok.room_id, bump.base + ok.rn, bump.version_base + ok.rn, ok.sender_id, ok.client_id, ok.text, ok.meta,
           ok.reply_to
    FROM ok JOIN bump ON bump.id = ok.room_id
    ORDER BY ok.ord
    RETURNING id, room_id, sender_id, client_id, seq, version, created_at
),
senders AS MATERIALIZED (  -- their member rows locked in (room, user) order, as READ_ALL locks a user's
    SELECT m.room_id, m.user_id, s.seq FROM members m
    JOIN (SELECT room_id, sender_id, max(seq) AS seq FROM stored GROUP BY room_id, sender_id) s
      ON m.room_id = s.room_id AND m.user_id = s.sender_id
    ORDER BY m.room_id, m.user_id FOR NO KEY UPDATE OF m
),
own AS (
    UPDATE members SET last_read_seq = greatest(members.last_read_seq, senders.seq) FROM senders
    WHERE members.room_id = senders.room_id AND members.user_id = senders.user_id
)
SELECT * FROM stored
"""
SELECT_BY_CLIENT_ID = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND sender_id = $2 AND client_id = $3"
SELECT_ONE = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND id = $2"
# An edit or a delete takes the room's next version (the room's row first, as a send does).
_CHANGED = "messages." + MESSAGE_COLUMNS.replace(", ", ", messages.")
UPDATE_TEXT = f"""
WITH bump AS (
    UPDATE rooms SET version = version + 1
    WHERE id = $1 AND EXISTS (SELECT 1 FROM messages WHERE room_id = $1 AND id = $2 AND NOT deleted)
    RETURNING version AS new_version
)
UPDATE messages SET text = $3, edited_at = now(), version = bump.new_version FROM bump
WHERE room_id = $1 AND id = $2 AND NOT deleted
RETURNING {_CHANGED}
"""
MARK_DELETED = f"""
WITH bump AS (
    UPDATE rooms SET version = version + 1
    WHERE id = $1 AND EXISTS (SELECT 1 FROM messages WHERE room_id = $1 AND id = $2)
    RETURNING version AS new_version
)
UPDATE messages SET deleted = true, text = '', meta = '{{}}'::jsonb, edited_at = now(), version = bump.new_version
FROM bump
WHERE room_id = $1 AND id = $2
RETURNING {_CHANGED}
"""


def blanking(target: str, *, edited_at: str = "coalesce(messages.edited_at, now())") -> str:
    """A statement blanking the messages ``target`` selects (``id, room_id``; parameters are the
    caller's): each takes its room's next version, the rooms locked in id order first."""
    return f"""
WITH target AS MATERIALIZED ({target}),
locked AS MATERIALIZED (
    SELECT rooms.id, c.n FROM rooms
    JOIN (SELECT room_id, count(*) AS n FROM target GROUP BY room_id) c ON c.room_id = rooms.id
    ORDER BY rooms.id FOR NO KEY UPDATE OF rooms
),
bump AS (
    UPDATE rooms SET version = rooms.version + l.n FROM locked l WHERE rooms.id = l.id
    RETURNING rooms.id, rooms.version - l.n AS version_base
),
numbered AS (
    SELECT t.id, b.version_base + row_number() OVER (PARTITION BY t.room_id ORDER BY t.id) AS new_version
    FROM target t JOIN bump b ON b.id = t.room_id
)
UPDATE messages SET text = '', meta = '{{}}'::jsonb, deleted = true, edited_at = {edited_at},
    version = numbered.new_version
FROM numbered WHERE messages.id = numbered.id
"""


BEFORE = f"""
SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3
"""
AFTER = f"""
SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3
"""
CHANGED_MANY = f"""
SELECT m.* FROM unnest($1::text[], $2::bigint[]) AS s(room_id, after_version)
CROSS JOIN LATERAL (
    SELECT {MESSAGE_COLUMNS} FROM messages
    WHERE room_id = s.room_id AND version > s.after_version ORDER BY version LIMIT $3
) m
ORDER BY m.room_id, m.version
"""


async def insert(
    conn: Executor,
    room_id: str,
    sender_id: str,
    client_id: str,
    text: str,
    meta: dict[str, Any],
    reply_to: int | None,
    *,
    as_service: bool = False,
) -> asyncpg.Record | None:
    """The inserted row, or None when a precondition failed (see :func:`by_client_id` and friends).

    ``as_service`` lets a backend service post as ``sender_id`` without that user being a member.
    """
    try:
        return await conn.fetchrow(INSERT, room_id, sender_id, client_id, text, meta, reply_to, as_service)
    except asyncpg.UniqueViolationError:
        # A concurrent send with the same client_id won the race; the caller finds its row.
        return None


@dataclass(frozen=True, slots=True)
class NewMessage:
    room_id: str
    sender_id: str
    client_id: str
    text: str
    meta: dict[str, Any]
    reply_to: int | None
    as_service: bool = False


async def insert_many(conn: Executor, batch: list[NewMessage]) -> list[Row | None]:
    """Insert a batch in one statement; per input, its row (the columns of ``MESSAGE_COLUMNS``) or
    None (a precondition failed).

    At most one input per (room, sender, client_id).  Raises ``UniqueViolationError`` when a
    concurrent insert took one of the client_ids: the caller retries those one by one.
    """
    rows = await conn.fetch(
        INSERT_MANY, [(m.room_id, m.sender_id, m.client_id, m.text, m.meta, m.reply_to, m.as_service) for m in batch]
    )
    made = {(r["room_id"], r["sender_id"], r["client_id"]): r for r in rows}
    return [_stored(m, made.get((m.room_id, m.sender_id, m.client_id))) for m in batch]


def _stored(m: NewMessage, made: asyncpg.Record | None) -> Row | None:
    """The row of an inserted message: what PostgreSQL made (id, seq, created_at) and the input."""
    if made is None:
        return None
    return {
        "id": made["id"],
        "room_id": m.room_id,
        "seq": made["seq"],
        "version": made["version"],
        "sender_id": m.sender_id,
        "client_id": m.client_id,
        "text": m.text,
        "meta": m.meta,
        "reply_to": m.reply_to,
        "created_at": made["created_at"],
        "edited_at": None,
        "deleted": False,
        "system": False,
    }


async def by_client_id(conn: Executor, room_id: str, sender_id: str, client_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_BY_CLIENT_ID, room_id, sender_id, client_id)


async def get(conn: Executor, room_id: str, message_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_ONE, room_id, message_id)


async def update_text(conn: Executor, room_id: str, message_id: int, text: str) -> asyncpg.Record | None:
    return await conn.fetchrow(UPDATE_TEXT, room_id, message_id, text)


async def mark_deleted(conn: Executor, room_id: str, message_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(MARK_DELETED, room_id, message_id)


async def before(conn: Executor, room_id: str, before_seq: int, limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` messages with seq < before_seq, newest first."""
    return list(await conn.fetch(BEFORE, room_id, before_seq, limit))


async def after(conn: Executor, room_id: str, after_seq: int, limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` messages with seq > after_seq, oldest first."""
    return list(await conn.fetch(AFTER, room_id, after_seq, limit))


async def changed_since(conn: Executor, versions: dict[str, int], limit: int) -> list[asyncpg.Record]:
    """Up to ``limit`` messages per room sent, edited or deleted after each room's version, ordered
    by room then version (each message once, as it is now)."""
    room_ids = list(versions)
    return list(await conn.fetch(CHANGED_MANY, room_ids, [versions[r] for r in room_ids], limit))


CLAIM_PUSH_PENDING = """
SELECT id, room_id, seq, sender_id, text FROM messages
WHERE push_pending AND NOT deleted
ORDER BY id LIMIT $1
FOR UPDATE SKIP LOCKED
"""
CLEAR_PUSH_PENDING = "UPDATE messages SET push_pending = false WHERE id = ANY($1::bigint[])"


async def claim_push_pending(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Lock up to ``limit`` messages still owed an offline push (others' locked rows are skipped)."""
    return list(await conn.fetch(CLAIM_PUSH_PENDING, limit))


async def clear_push_pending(conn: asyncpg.Connection, ids: list[int]) -> None:
    await conn.execute(CLEAR_PUSH_PENDING, ids)
