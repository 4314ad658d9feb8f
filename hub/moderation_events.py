"""The client events with which owners and admins run their rooms (docs/protocol.md, "Moderation").

Each acts as the connection's user: the rules (who may manage whom) are :mod:`rooms.membership`'s
and :mod:`rooms.moderation`'s, the same as for the REST routes a client calls with its JWT.
"""

from __future__ import annotations

from typing import Any

from config import payloads
from hub.chat_events import Handler
from hub.connections import Conn
from hub.context import Hub
from rooms import membership, moderation, render

REASON_FIELD = "reason"


class ModerationEvents:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def handlers(self) -> dict[str, Handler]:
        return {
            "member:set": self.member_set,
            "member:remove": self.member_remove,
            "member:ban": self.member_ban,
            "member:unban": self.member_unban,
            "member:mute": self.member_mute,
            "room:freeze": self.room_freeze,
            "message:report": self.message_report,
        }

    async def member_set(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        """Add a member, or change a member's role (owners and admins)."""
        room_id = payloads.required_id(data, "room")
        user_id = payloads.required_id(data, "user_id")
        role = payloads.choice(data, "role", membership.ROLES, required=False)
        row, added = await membership.put_member(self.hub.pool, room_id, conn.user_id, user_id, role, None, False)
        await self.hub.realtime.member_put(room_id, render.member(row), added=added)
        return {"ok": True, "member": render.member(row), "added": added}

    async def member_remove(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = payloads.required_id(data, "room")
        user_id = payloads.required_id(data, "user_id")
        await membership.remove_member(self.hub.pool, room_id, conn.user_id, user_id)
        await self.hub.realtime.member_removed(room_id, user_id, "left" if user_id == conn.user_id else "removed")
        return {"ok": True}

    async def member_ban(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = payloads.required_id(data, "room")
        user_id = payloads.required_id(data, "user_id")
        until = payloads.timestamp(data, "until")
        reason = payloads.text(data, REASON_FIELD, moderation.MAX_REASON, required=False)
        ban, removed = await moderation.ban(self.hub.pool, room_id, conn.user_id, user_id, until, reason)
        if removed:
            await self.hub.realtime.member_removed(room_id, user_id, "banned")
        return {"ok": True, "ban": moderation.render_ban(ban)}

    async def member_unban(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = payloads.required_id(data, "room")
        user_id = payloads.required_id(data, "user_id")
        await moderation.unban(self.hub.pool, room_id, conn.user_id, user_id)
        return {"ok": True}

    async def member_mute(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        """Mute a member from posting until a time (``until`` null: lift it)."""
        room_id = payloads.required_id(data, "room")
        user_id = payloads.required_id(data, "user_id")
        until = payloads.timestamp(data, "until")
        row = await moderation.post_mute(self.hub.pool, room_id, conn.user_id, user_id, until)
        await self.hub.realtime.member_updated(room_id, render.member(row))
        return {"ok": True, "member": render.member(row)}

    async def room_freeze(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = payloads.required_id(data, "room")
        frozen = payloads.boolean(data, "frozen")
        row = await moderation.freeze(self.hub.pool, room_id, conn.user_id, frozen)
        await self.hub.realtime.room_updated(render.room(row))
        return {"ok": True, "room": render.room(row)}

    async def message_report(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = payloads.required_id(data, "room")
        message_id = payloads.required_integer(data, "id", minimum=1)
        reason = payloads.required_text(data, REASON_FIELD, moderation.MAX_REASON)
        row = await moderation.report(self.hub.pool, room_id, message_id, conn.user_id, reason)
        return {"ok": True, "report": moderation.render_report(row)}
