"""Rooms and who is in them: the access rules of DESIGN.md.

- anyone authenticated may read and join a ``public`` room;
- only members may read or post in ``private`` and ``direct`` rooms;
- owners and admins manage members, roles and deletion (only an owner grants or takes ``owner``);
- a ``direct`` room has exactly two members, and the same pair always gets the same room;
- a user banned from a room (:mod:`rooms.moderation`) can neither join, read nor be added to it.

An ``actor`` of None is a backend service holding a ``publish`` key: it may manage any room.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from config.clock import iso
from config.errors import Code
from rooms.errors import ChatError
from store import moderation as moderation_store
from store import rooms as room_store
from store import users as user_store

KINDS = ("public", "private", "direct")
ROLES = ("owner", "admin", "member")
MANAGERS = ("owner", "admin")


@dataclass(frozen=True, slots=True)
class NewRoom:
    kind: str
    name: str | None
    members: list[str]
    metadata: dict[str, Any]
    room_id: str | None = None


def new_room_id() -> str:
    return "r_" + secrets.token_hex(8)


def direct_key(a: str, b: str) -> str:
    return "\n".join(sorted((a, b)))


async def create_room(pool: asyncpg.Pool, spec: NewRoom, owner: str | None) -> tuple[asyncpg.Record, bool]:
    """Create a room; return it and whether it is new (a direct pair may already have one)."""
    members = list(dict.fromkeys([*([owner] if owner else []), *spec.members]))
    key = None
    if spec.kind == "direct":
        if len(members) != 2:
            raise ChatError(
                Code.INVALID_PAYLOAD,
                "a direct room has exactly two distinct members",
                fields={"members": "must name exactly two users (with the owner)"},
            )
        key = direct_key(members[0], members[1])
    async with pool.acquire() as conn, conn.transaction():
        await user_store.ensure(conn, members)
        row = await room_store.insert_room(
            conn, spec.room_id or new_room_id(), spec.kind, spec.name, spec.metadata, key, owner
        )
        if row is None:
            existing = await room_store.get_direct_room(conn, key) if key is not None else None
            if existing is None:
                raise ChatError(Code.CONFLICT, "a room with that id already exists")
            return existing, False
        for user_id in members:
            role = "owner" if user_id == owner and spec.kind != "direct" else "member"
            await room_store.upsert_member(conn, row["id"], user_id, role, None, False)
    return row, True


async def room_or_404(conn: asyncpg.Pool | asyncpg.Connection, room_id: str) -> asyncpg.Record:
    row = await room_store.get_room(conn, room_id)
    if row is None:
        raise ChatError(Code.NOT_FOUND, f"room {room_id} does not exist")
    return row


async def refuse_banned(conn: asyncpg.Pool | asyncpg.Connection, room_id: str, user_id: str) -> None:
    """``banned`` while the user's ban from the room lasts."""
    ban = await moderation_store.active_ban(conn, room_id, user_id)
    if ban is not None:
        until = f" until {iso(ban['until'])}" if ban["until"] is not None else ""
        raise ChatError(Code.BANNED, f"{user_id} is banned from this room{until}")


async def readable_room(pool: asyncpg.Pool, room_id: str, user_id: str | None) -> asyncpg.Record:
    """The room, when ``user_id`` (None: a service) may read it."""
    row = await room_or_404(pool, room_id)
    if user_id is not None and await room_store.get_member(pool, room_id, user_id) is None:
        await refuse_banned(pool, room_id, user_id)
        if row["kind"] != "public":
            raise ChatError(Code.NOT_MEMBER, "you are not a member of this room")
    return row


async def join(pool: asyncpg.Pool, room_id: str, user_id: str) -> tuple[asyncpg.Record, bool]:
    """Join a public room (persistent); return the room and whether the user is new in it."""
    row = await room_or_404(pool, room_id)
    if await room_store.get_member(pool, room_id, user_id) is not None:
        return row, False
    if row["kind"] != "public":
        raise ChatError(Code.FORBIDDEN, "only public rooms can be joined; ask an admin of the room to add you")
    await refuse_banned(pool, room_id, user_id)
    return row, await room_store.join(pool, room_id, user_id)


async def leave(pool: asyncpg.Pool, room_id: str, user_id: str) -> asyncpg.Record:
    row = await room_or_404(pool, room_id)
    if not await room_store.remove_member(pool, room_id, user_id):
        raise ChatError(Code.NOT_MEMBER, "you are not a member of this room")
    return row


async def require_manager(conn: asyncpg.Connection | asyncpg.Pool, room_id: str, actor: str | None) -> str:
    """The actor's role when it may manage the room ('service' for a backend service)."""
    if actor is None:
        return "service"
    member = await room_store.get_member(conn, room_id, actor)
    if member is None:
        raise ChatError(Code.NOT_MEMBER, "you are not a member of this room")
    if member["role"] not in MANAGERS:
        raise ChatError(Code.FORBIDDEN, "only owners and admins of the room may do that")
    return str(member["role"])


async def put_member(
    pool: asyncpg.Pool,
    room_id: str,
    actor: str | None,
    user_id: str,
    role: str | None,
    muted_until: datetime | None,
    set_mute: bool,
) -> tuple[asyncpg.Record, bool]:
    """Add or change a member; return the member row and whether it was added."""
    async with pool.acquire() as conn, conn.transaction():
        room = await room_or_404(conn, room_id)
        actor_role = await require_manager(conn, room_id, actor)
        current = await room_store.get_member(conn, room_id, user_id)
        if current is None:
            await refuse_banned(conn, room_id, user_id)
        if room["kind"] == "direct" and current is None:
            raise ChatError(Code.FORBIDDEN, "a direct room keeps its two members")
        if actor_role == "admin" and "owner" in (role, current["role"] if current else None):
            raise ChatError(Code.FORBIDDEN, "only an owner may grant or take the owner role")
        await user_store.ensure(conn, [user_id])
        row = await room_store.upsert_member(conn, room_id, user_id, role, muted_until, set_mute)
    return row, bool(row["inserted"])


async def remove_member(pool: asyncpg.Pool, room_id: str, actor: str | None, user_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await room_or_404(conn, room_id)
        if actor != user_id:
            actor_role = await require_manager(conn, room_id, actor)
            target = await room_store.get_member(conn, room_id, user_id)
            if target is not None and target["role"] == "owner" and actor_role == "admin":
                raise ChatError(Code.FORBIDDEN, "an admin may not remove an owner")
        if not await room_store.remove_member(conn, room_id, user_id):
            raise ChatError(Code.NOT_FOUND, f"{user_id} is not a member of this room")


async def delete_room(pool: asyncpg.Pool, room_id: str, actor: str | None) -> list[str]:
    """Delete the room; return the ids of its members at that moment."""
    async with pool.acquire() as conn, conn.transaction():
        await room_or_404(conn, room_id)
        await require_manager(conn, room_id, actor)
        members = await room_store.member_ids(conn, room_id)
        await room_store.delete_room(conn, room_id)
    return members


async def mute(pool: asyncpg.Pool, room_id: str, user_id: str, until: datetime | None) -> asyncpg.Record:
    await room_or_404(pool, room_id)
    row = await room_store.set_mute(pool, room_id, user_id, until)
    if row is None:
        raise ChatError(Code.NOT_MEMBER, "you are not a member of this room")
    return row
