"""The client events of the namespace ``/`` (docs/protocol.md): one method each, answering the ack.

Each takes the sender's connection and the payload (an object), checks it, calls the chat domain
(``rooms/``) and returns ``{"ok": true, ...}``; errors raised here become the ``{"ok": false,
"error"}`` ack in :meth:`hub.sockets.ChatSockets.dispatch`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from config import payloads
from config.clock import iso
from config.errors import Code
from hub.connections import Conn
from hub.context import Hub
from hub.errors import HubError
from rooms import conversations, membership, render
from rooms import messages as chat
from rooms.errors import ChatError
from store import rooms as room_store

Handler = Callable[[Conn, dict[str, Any]], Awaitable[dict[str, Any]]]
SYNC_PAGE = 100
MAX_SYNC_ROOMS = 500


class ChatEvents:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def handlers(self) -> dict[str, Handler]:
        """Event name → handler, every client event there is."""
        return {
            "room:join": self.room_join,
            "room:leave": self.room_leave,
            "room:mute": self.room_mute,
            "message:send": self.message_send,
            "message:edit": self.message_edit,
            "message:delete": self.message_delete,
            "history": self.history,
            "sync": self.sync,
            "typing": self.typing,
            "read": self.read,
            "read:all": self.read_all,
            "rooms:list": self.rooms_list,
            "presence": self.presence,
            "auth:refresh": self.auth_refresh,
        }

    async def _member_room(self, conn: Conn, data: dict[str, Any]) -> str:
        """The payload's room, one this connection follows (``banned`` or ``not_member`` if not)."""
        room_id = payloads.required_id(data, "room")
        if room_id not in conn.rooms:
            await membership.refuse_banned(self.hub.pool, room_id, conn.user_id)
            raise ChatError(Code.NOT_MEMBER, "you are not a member of this room")
        return room_id

    async def _readable_room(self, conn: Conn, room_id: str) -> None:
        if room_id not in conn.rooms:
            await membership.readable_room(self.hub.pool, room_id, conn.user_id)

    async def room_join(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = payloads.required_id(data, "room")
        room, added = await membership.join(self.hub.pool, room_id, conn.user_id)
        await self.hub.realtime.member_added(room_id, conn.user_id, role="member" if added else None)
        return {"ok": True, "room": _room_summary(room)}

    async def room_leave(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = payloads.required_id(data, "room")
        room = await membership.leave(self.hub.pool, room_id, conn.user_id)
        await self.hub.realtime.member_removed(room_id, conn.user_id, "left")
        return {"ok": True, "room": _room_summary(room)}

    async def room_mute(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = payloads.required_id(data, "room")
        member = await membership.mute(self.hub.pool, room_id, conn.user_id, payloads.timestamp(data, "until"))
        return {"ok": True, "muted_until": iso(member["muted_until"])}

    async def message_send(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        out = chat.Outgoing(
            room_id=await self._member_room(conn, data),
            sender_id=conn.user_id,
            client_id=payloads.required_id(data, "client_id"),
            text=payloads.required_text(data, "text", self.hub.settings.max_text_length, too_long=Code.TOO_LARGE),
            meta=payloads.meta(data),
            reply_to=payloads.integer(data, "reply_to", minimum=1),
        )
        wait = self.hub.message_rate.take(conn.user_id)
        if wait:
            raise ChatError(Code.RATE_LIMITED, "too many messages; slow down", retry_after=round(wait, 3))
        row, created = await chat.send(self.hub.pool, out, batcher=self.hub.message_writer)
        message = render.message(row)
        if created:  # the ack waits for the commit and this node's sockets, never for Redis
            await self.hub.realtime.to_room_now(
                "message:new", out.room_id, {"room": out.room_id, "message": message}, skip_sid=conn.sid
            )
        return {"ok": True, "message": message}

    async def message_edit(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = await self._member_room(conn, data)  # an author who left or was removed no longer writes here
        message_id = payloads.required_integer(data, "id", minimum=1)
        text = payloads.required_text(data, "text", self.hub.settings.max_text_length, too_long=Code.TOO_LARGE)
        row = await chat.edit(self.hub.pool, room_id, message_id, conn.user_id, text)
        message = render.message(row)
        await self.hub.realtime.to_room_now("message:updated", room_id, {"room": room_id, "message": message})
        return {"ok": True, "message": message}

    async def message_delete(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = await self._member_room(conn, data)
        message_id = payloads.required_integer(data, "id", minimum=1)
        row = await chat.delete(self.hub.pool, room_id, message_id, conn.user_id)
        message = render.message(row)
        await self.hub.realtime.to_room_now("message:deleted", room_id, {"room": room_id, "message": message})
        return {"ok": True, "message": message}

    async def history(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = payloads.required_id(data, "room")
        before = payloads.integer(data, "before_seq")
        after = payloads.integer(data, "after_seq")
        if before is not None and after is not None:
            raise ChatError(
                Code.INVALID_PAYLOAD, "give before_seq or after_seq, not both", fields={"after_seq": "conflicts"}
            )
        limit = payloads.integer(data, "limit", minimum=1, maximum=chat.MAX_PAGE, default=chat.DEFAULT_PAGE)
        await self._readable_room(conn, room_id)
        rows, has_more = await chat.history(
            self.hub.pool, room_id, before_seq=before, after_seq=after, limit=limit or 1
        )
        return {"ok": True, "messages": [render.message(r) for r in rows], "has_more": has_more}

    async def sync(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        """What changed in each room since the version the client saw: new, edited and deleted
        messages in version order, and the version to send next time."""
        rooms = data.get("rooms")
        if not isinstance(rooms, dict) or len(rooms) > MAX_SYNC_ROOMS:
            raise ChatError(
                Code.INVALID_PAYLOAD,
                f"rooms must map up to {MAX_SYNC_ROOMS} room ids to the last version seen",
                fields={"rooms": "must be an object of room id to version"},
            )
        versions: dict[str, int] = {}
        for room_id, version in rooms.items():
            payloads.identifier({"room": room_id}, "room")
            versions[room_id] = payloads.integer({"version": version}, "version", default=0) or 0
        for room_id in versions:
            await self._readable_room(conn, room_id)
        found = await chat.sync(self.hub.pool, versions, SYNC_PAGE)
        return {
            "ok": True,
            "rooms": {
                room_id: {
                    "messages": [render.message(r) for r in rows],
                    "has_more": more,
                    "version": rows[-1]["version"] if rows else versions[room_id],
                }
                for room_id, (rows, more) in found.items()
            },
        }

    async def typing(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = await self._member_room(conn, data)
        is_typing = payloads.boolean(data, "typing")
        if not is_typing or not self.hub.typing_rate.take(f"{room_id}\n{conn.user_id}"):
            await self.hub.realtime.to_room(
                "typing",
                room_id,
                {"room": room_id, "user_id": conn.user_id, "typing": is_typing},
                skip_sid=conn.sid,
            )
        return {"ok": True}

    async def read(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = await self._member_room(conn, data)
        seq = payloads.integer(data, "seq")  # absent: up to the room's last message
        stored = await conversations.mark_read(self.hub.pool, room_id, conn.user_id, seq)
        await self.hub.realtime.read_moved(conn.user_id, {room_id: stored})
        return {"ok": True, "seq": stored}

    async def read_all(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        moved = await conversations.read_all(self.hub.pool, conn.user_id)
        await self.hub.realtime.read_moved(conn.user_id, moved)
        return {"ok": True, "rooms": moved}

    async def rooms_list(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        limit = payloads.integer(
            data, "limit", minimum=1, maximum=conversations.MAX_PAGE, default=conversations.DEFAULT_PAGE
        )
        cursor = payloads.text(data, "cursor", 512, required=False)
        return {"ok": True, **await conversations.room_list(self.hub.pool, conn.user_id, cursor, limit or 1)}

    async def presence(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = payloads.required_id(data, "room")
        await self._readable_room(conn, room_id)
        members = await room_store.member_ids(self.hub.pool, room_id)
        return {"ok": True, "online": sorted(await self.hub.presence.online_among(members))}

    async def auth_refresh(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        claims = self.hub.verifier.verify(data.get("token"))
        if claims.user_id != conn.user_id:
            raise HubError(Code.FORBIDDEN, "the new token is for another user")
        conn.expires_at = claims.expires_at
        self.hub.connections.watch_expiry(conn)
        return {"ok": True, "expires_at": iso(datetime.fromtimestamp(claims.expires_at, UTC))}


def _room_summary(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "last_seq": row["last_seq"],
        "version": row["version"],
    }
