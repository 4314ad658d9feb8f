"""A user's conversations: the room list, unread counts, and read positions.

A member's read position (``last_read_seq``) only moves forward: with ``read``, with mark-all-read,
and with the member's own sends (in the statement that stores them).  A member starts at the
room's last seq when they join.  Unread is what others sent after the position that is neither
deleted nor a system message, counted up to ``store.rooms.UNREAD_CAP``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import asyncpg

from config.errors import Code
from rooms import render
from rooms.errors import ChatError
from rooms.membership import room_or_404
from store import rooms as room_store

DEFAULT_PAGE = 50
MAX_PAGE = 100
PREVIEW_LENGTH = 140


def encode_cursor(active_at: datetime, room_id: str) -> str:
    return base64.urlsafe_b64encode(f"{active_at.isoformat()}\n{room_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        active_at, room_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("\n")
        return datetime.fromisoformat(active_at), room_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ChatError(
            Code.INVALID_PAYLOAD, "cursor: not a cursor this list gave", fields={"cursor": "unknown cursor"}
        ) from None


async def room_list(pool: asyncpg.Pool, user_id: str, cursor: str | None, limit: int) -> dict[str, Any]:
    """A page of the user's rooms, the most recently active first, and the totals of all of them."""
    after = decode_cursor(cursor) if cursor else None
    rows = await room_store.user_rooms(pool, user_id, after, limit + 1, PREVIEW_LENGTH)
    unread = {r["room_id"]: r["unread"] for r in await room_store.user_unread(pool, user_id)}
    page = rows[:limit]
    more = len(rows) > limit
    return {
        "rooms": [render.user_room(r, unread.get(r["id"], 0)) for r in page],
        "next_cursor": encode_cursor(page[-1]["active_at"], page[-1]["id"]) if more else None,
        "total": len(unread),
        "unread_total": sum(unread.values()),
    }


async def unread_summary(pool: asyncpg.Pool, user_id: str) -> dict[str, Any]:
    """Unread per room, the total, and each room's version (what ``ready`` carries)."""
    every = await room_store.user_unread(pool, user_id)
    return {
        "unread": {r["room_id"]: r["unread"] for r in every},
        "unread_total": sum(r["unread"] for r in every),
        "versions": {r["room_id"]: r["version"] for r in every},
    }


async def mark_read(pool: asyncpg.Pool, room_id: str, user_id: str, seq: int | None) -> int:
    """Move the read position to ``seq`` (None: the room's last), never backwards; the position."""
    value = await room_store.set_read(pool, room_id, user_id, seq)
    if value is None:
        await room_or_404(pool, room_id)
        raise ChatError(Code.NOT_MEMBER, "you are not a member of this room")
    return value


async def read_all(pool: asyncpg.Pool, user_id: str) -> dict[str, int]:
    """Mark every room of the user read; the positions of the rooms that moved."""
    return {r["room_id"]: r["last_read_seq"] for r in await room_store.read_all(pool, user_id)}
