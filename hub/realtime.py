"""What the hub tells live sockets, on this node and every other: one place for both the
Socket.IO event handlers and the REST handlers to announce changes."""

from __future__ import annotations

from typing import Any

import socketio

from hub.fanout import HubManager


def room_channel(room_id: str) -> str:
    return f"r:{room_id}"


def user_channel(user_id: str) -> str:
    return f"u:{user_id}"


#: Why a member may be taken out of a room by someone else (``member:removed``'s ``reason``).
REMOVALS = ("removed", "banned")


class Realtime:
    def __init__(self, sio: socketio.AsyncServer, manager: HubManager) -> None:
        self.sio = sio
        self.manager = manager

    async def to_room(self, event: str, room_id: str, data: dict[str, Any], *, skip_sid: str | None = None) -> None:
        await self.sio.emit(event, data, room=room_channel(room_id), skip_sid=skip_sid)

    async def to_room_now(self, event: str, room_id: str, data: dict[str, Any], *, skip_sid: str | None = None) -> None:
        """As :meth:`to_room`, returning once this node's sockets have it: the other nodes get it
        with the next Redis pipeline, which nothing waits for (a chat ack must not wait on Redis)."""
        await self.manager.broadcast(event, data, room_channel(room_id), skip_sid)

    async def to_user(self, event: str, user_id: str, data: dict[str, Any]) -> None:
        await self.sio.emit(event, data, room=user_channel(user_id))

    async def read_moved(self, user_id: str, moved: dict[str, int]) -> None:
        """``read`` to each room whose read position of ``user_id`` moved (room id: new position)."""
        for room_id, seq in moved.items():
            await self.to_room("read", room_id, {"room": room_id, "user_id": user_id, "seq": seq})

    async def member_added(self, room_id: str, user_id: str, *, role: str | None = None) -> None:
        """Subscribe the user's live sockets, on every node, to the room; with ``role`` (a member who
        is new), tell the room ``member:joined``."""
        await self.manager.publish_control("join", room=room_id, user=user_id)
        if role is not None:
            await self.to_room("member:joined", room_id, {"room": room_id, "user_id": user_id, "role": role})

    async def member_removed(self, room_id: str, user_id: str, reason: str) -> None:
        """Unsubscribe the user's live sockets from the room and tell them why (``room:removed``);
        tell the room's other members ``member:left`` or ``member:removed`` (not when the room is
        deleted: every member gets ``room:removed`` then)."""
        await self.manager.publish_control("leave", room=room_id, user=user_id, reason=reason)
        if reason == "left":
            await self.to_room("member:left", room_id, {"room": room_id, "user_id": user_id})
        elif reason in REMOVALS:
            await self.to_room("member:removed", room_id, {"room": room_id, "user_id": user_id, "reason": reason})

    async def member_put(self, room_id: str, member: dict[str, Any], *, added: bool) -> None:
        """A member added (subscribed, and ``member:joined``) or changed (``member:updated``)."""
        if added:
            await self.member_added(room_id, member["user_id"], role=member["role"])
        else:
            await self.member_updated(room_id, member)

    async def member_updated(self, room_id: str, member: dict[str, Any]) -> None:
        """``member:updated`` (a role or post-mute changed) to the room."""
        await self.to_room("member:updated", room_id, {"room": room_id, "member": member})

    async def room_updated(self, room: dict[str, Any]) -> None:
        """``room:updated`` (frozen or not) to the room."""
        await self.to_room("room:updated", room["id"], {"room": room})

    async def disconnect_user(self, user_id: str, code: str, message: str) -> None:
        """Close every connection of the user, on every node."""
        await self.manager.publish_control("disconnect", user=user_id, code=code, message=message)
