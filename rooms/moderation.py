"""Moderation: what owners and admins (and services) may do to keep a room civil.

- **Ban**: the user leaves the room and can neither join, read nor be added to it again until the
  ban ends (``until``; none: until lifted); refused with ``banned``.
- **Post-mute**: a member may read but not post until a time; refused with ``muted``.
- **Freeze**: only owners and admins post in a frozen room; others are refused with ``frozen``.
- **Report**: any member (or reader of a public room) reports a message, once per message (again:
  the reason is replaced); owners, admins and services list a room's reports.

Managing follows the member rules of :mod:`rooms.membership`: an admin may not ban or mute an
owner, nobody bans or mutes themselves, and a direct room has no bans.  Each refusal changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from config.clock import iso
from config.errors import Code
from rooms.errors import ChatError
from rooms.membership import MANAGERS, readable_room, refuse_banned, require_manager, room_or_404
from store import moderation as store
from store import rooms as room_store

MAX_REASON = 500
REPORTS_PAGE = 100


async def may_post(conn: asyncpg.Pool | asyncpg.Connection, room: asyncpg.Record, user_id: str) -> None:
    """Why ``user_id`` may not post in ``room`` (a refusal), or nothing when they may."""
    member = await room_store.get_member(conn, room["id"], user_id)
    if member is None:
        await refuse_banned(conn, room["id"], user_id)
        raise ChatError(Code.NOT_MEMBER, "you are not a member of this room")
    until = member["post_muted_until"]
    if until is not None and until > datetime.now(UTC):
        raise ChatError(Code.MUTED, f"you may not post in this room until {iso(until)}")
    if room["frozen"] and member["role"] not in MANAGERS:
        raise ChatError(Code.FROZEN, "the room is frozen: only its owners and admins post")


async def _target(
    conn: asyncpg.Connection, room_id: str, actor: str | None, user_id: str, action: str
) -> asyncpg.Record | None:
    """Check that ``actor`` may ``action`` ``user_id`` in the room; the target's member row."""
    actor_role = await require_manager(conn, room_id, actor)
    if actor == user_id:
        raise ChatError(Code.FORBIDDEN, f"you cannot {action} yourself")
    target = await room_store.get_member(conn, room_id, user_id)
    if target is not None and target["role"] == "owner" and actor_role == "admin":
        raise ChatError(Code.FORBIDDEN, f"an admin may not {action} an owner")
    return target


async def ban(
    pool: asyncpg.Pool, room_id: str, actor: str | None, user_id: str, until: datetime | None, reason: str | None
) -> tuple[asyncpg.Record, bool]:
    """Ban ``user_id``; the ban and whether they were a member (and are no more)."""
    async with pool.acquire() as conn, conn.transaction():
        room = await room_or_404(conn, room_id)
        if room["kind"] == "direct":
            raise ChatError(Code.FORBIDDEN, "a direct room has no bans; leave it instead")
        await _target(conn, room_id, actor, user_id, "ban")
        row = await store.ban(conn, room_id, user_id, until, reason, actor)
        removed = await room_store.remove_member(conn, room_id, user_id)
    return row, removed


async def unban(pool: asyncpg.Pool, room_id: str, actor: str | None, user_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await room_or_404(conn, room_id)
        await require_manager(conn, room_id, actor)
        if not await store.unban(conn, room_id, user_id):
            raise ChatError(Code.NOT_FOUND, f"{user_id} is not banned from this room")


async def bans(pool: asyncpg.Pool, room_id: str, actor: str | None) -> list[asyncpg.Record]:
    await room_or_404(pool, room_id)
    await require_manager(pool, room_id, actor)
    return await store.bans(pool, room_id)


async def freeze(pool: asyncpg.Pool, room_id: str, actor: str | None, frozen: bool) -> asyncpg.Record:
    async with pool.acquire() as conn, conn.transaction():
        await room_or_404(conn, room_id)
        await require_manager(conn, room_id, actor)
        row = await store.set_frozen(conn, room_id, frozen)
    assert row is not None
    return row


async def post_mute(
    pool: asyncpg.Pool, room_id: str, actor: str | None, user_id: str, until: datetime | None
) -> asyncpg.Record:
    """Mute ``user_id`` from posting until ``until`` (None: lift it); the member row."""
    async with pool.acquire() as conn, conn.transaction():
        await room_or_404(conn, room_id)
        if await _target(conn, room_id, actor, user_id, "mute") is None:
            raise ChatError(Code.NOT_FOUND, f"{user_id} is not a member of this room")
        row = await store.set_post_mute(conn, room_id, user_id, until)
    assert row is not None
    return row


async def report(pool: asyncpg.Pool, room_id: str, message_id: int, reporter: str, reason: str) -> asyncpg.Record:
    await readable_room(pool, room_id, reporter)
    row = await store.report(pool, room_id, message_id, reporter, reason)
    if row is None:
        raise ChatError(Code.NOT_FOUND, f"message {message_id} is not in room {room_id}")
    return row


async def reports(
    pool: asyncpg.Pool, room_id: str, actor: str | None, after_id: int, limit: int
) -> tuple[list[asyncpg.Record], bool]:
    """A page of the room's reports (oldest first) and whether more follow."""
    await room_or_404(pool, room_id)
    await require_manager(pool, room_id, actor)
    rows = await store.reports(pool, room_id, after_id, limit + 1)
    return rows[:limit], len(rows) > limit


def render_ban(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "room": row["room_id"],
        "user_id": row["user_id"],
        "until": iso(row["until"]),
        "reason": row["reason"],
        "banned_by": row["banned_by"],
        "created_at": iso(row["created_at"]),
    }


def render_report(row: asyncpg.Record) -> dict[str, Any]:
    report = {
        "id": row["id"],
        "room": row["room_id"],
        "message_id": row["message_id"],
        "reporter_id": row["reporter_id"],
        "reason": row["reason"],
        "created_at": iso(row["created_at"]),
    }
    if "seq" in row:
        report["message"] = {
            "seq": row["seq"],
            "sender_id": row["sender_id"],
            "text": row["text"],
            "deleted": row["deleted"],
        }
    return report
