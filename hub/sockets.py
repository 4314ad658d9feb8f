"""The Socket.IO namespace ``/``: connect with a JWT, then the client events of DESIGN.md.

Every client event answers through its ack, ``{"ok": true, ...}`` or ``{"ok": false, "error"}``;
a bad payload never breaks the connection.  Rooms are Socket.IO rooms named ``r:<room id>``; each
socket is also in ``u:<user id>`` so a user can be reached on every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import socketio

from config import payloads
from config.clock import iso
from config.errors import Code
from hub.connections import Conn
from hub.context import Hub
from hub.errors import HubError, ack_error, as_hub_error
from hub.realtime import room_channel, user_channel
from hub.transport import environ as transport_environ
from rooms import membership, render
from rooms import messages as chat
from rooms.errors import ChatError
from store import rooms as room_store
from store import users as user_store

log = logging.getLogger(__name__)

Handler = Callable[[Conn, dict[str, Any]], Awaitable[dict[str, Any]]]
SYNC_PAGE = 100
MAX_SYNC_ROOMS = 500


class ChatSockets:
    def __init__(self, hub: Hub, sio: socketio.AsyncServer) -> None:
        self.hub = hub
        self.sio = sio
        self._tasks: set[asyncio.Task[None]] = set()
        self.events: dict[str, Handler] = {
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
            "presence": self.presence,
            "auth:refresh": self.auth_refresh,
        }
        sio.on("connect", self.connect)
        sio.on("disconnect", self.disconnect)
        sio.on("*", self.dispatch)
        hub.realtime.manager.on_control = self.apply_control
        hub.connections.on_expired = self._expired
        hub.realtime.manager.on_reconnect = self.resync_all

    # -- connection lifecycle -------------------------------------------------------------

    async def connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is None:
            header = environ.get("HTTP_AUTHORIZATION", "")
            if header.lower().startswith("bearer "):
                token = header[7:].strip()
        try:
            wait = self.hub.address_rate.take(transport_environ.remote_address(environ))
            if wait:
                raise HubError(Code.RATE_LIMITED, "too many connection attempts from this address", retry_after=wait)
            claims = self.hub.verifier.verify(token)
            await user_store.touch(self.hub.pool, claims.user_id)
            room_ids = await room_store.user_room_ids(self.hub.pool, claims.user_id)
        except Exception as exc:
            err = as_hub_error(exc)
            raise socketio.exceptions.ConnectionRefusedError(
                err.message, {"code": err.code, "message": err.message}
            ) from None
        conn = Conn(sid=sid, user_id=claims.user_id, expires_at=claims.expires_at, rooms=set(room_ids))
        await self.sio.enter_room(sid, user_channel(conn.user_id))
        for room_id in room_ids:
            await self.sio.enter_room(sid, room_channel(room_id))
        first_here = self.hub.connections.add(conn)  # and its token's expiry: self._expired
        transport_environ.trim_environ(environ)  # the headers were read: the socket need not keep a copy
        self._spawn(self._after_connect(conn, first_here))

    async def _after_connect(self, conn: Conn, first_here: bool) -> None:
        # The CONNECT packet goes out after connect() returns; anything emitted before would overtake it.
        for _ in range(100):
            if self.sio.manager.is_connected(conn.sid, "/"):
                break
            await asyncio.sleep(0.005)
        await self.sio.emit(
            "ready", {"user_id": conn.user_id, "rooms": sorted(conn.rooms)}, to=conn.sid, ignore_queue=True
        )
        if first_here and await self.hub.presence.arrive(conn.user_id):
            await self._announce_presence(conn.user_id, list(conn.rooms), online=True, skip_sid=conn.sid)

    async def disconnect(self, sid: str, reason: object = None) -> None:
        conn, last_here = self.hub.connections.remove(sid)
        if conn is not None and last_here:
            self._spawn(self._after_disconnect(conn))

    async def _after_disconnect(self, conn: Conn) -> None:
        if await self.hub.presence.depart(conn.user_id):
            rooms = await room_store.user_room_ids(self.hub.pool, conn.user_id)
            await self._announce_presence(conn.user_id, rooms, online=False)

    async def _announce_presence(
        self, user_id: str, room_ids: list[str], *, online: bool, skip_sid: str | None = None
    ) -> None:
        for room_id in room_ids:
            await self.hub.realtime.to_room(
                "presence", room_id, {"room": room_id, "user_id": user_id, "online": online}, skip_sid=skip_sid
            )

    def _expired(self, conn: Conn) -> None:
        self._spawn(self.close(conn.sid, "token_expired", "the token has expired"))

    async def close(self, sid: str, code: str, message: str) -> None:
        """Tell the socket why, then disconnect it."""
        with contextlib.suppress(Exception):
            await self.sio.emit("closing", {"code": code, "message": message}, to=sid, ignore_queue=True)
        await self.sio.disconnect(sid, ignore_queue=True)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def drain(self, grace: float = 5.0) -> None:
        """Let background work (presence, announcements) finish before the pools close."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    # -- events ---------------------------------------------------------------------------

    async def dispatch(self, event: str, sid: str, *args: Any) -> dict[str, Any]:
        handler = self.events.get(event)
        conn = self.hub.connections.by_sid.get(sid)
        try:
            if conn is None:
                raise HubError(Code.AUTH_REQUIRED, "the connection is not authenticated")
            if handler is None:
                raise HubError(Code.INVALID_PAYLOAD, f"unknown event {event!r}")
            data = payloads.payload_dict(args[0] if args else None)
            return await handler(conn, data)
        except Exception as exc:
            return ack_error(as_hub_error(exc))

    def _member_room(self, conn: Conn, data: dict[str, Any]) -> str:
        room_id = payloads.required_id(data, "room")
        if room_id not in conn.rooms:
            raise ChatError(Code.NOT_MEMBER, "you are not a member of this room")
        return room_id

    async def _readable_room(self, conn: Conn, room_id: str) -> None:
        if room_id not in conn.rooms:
            await membership.readable_room(self.hub.pool, room_id, conn.user_id)

    async def room_join(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = payloads.required_id(data, "room")
        room, _ = await membership.join(self.hub.pool, room_id, conn.user_id)
        await self.hub.realtime.member_added(room_id, conn.user_id)
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
            room_id=self._member_room(conn, data),
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
        room_id = self._member_room(conn, data)  # an author who left or was removed no longer writes here
        message_id = payloads.required_integer(data, "id", minimum=1)
        text = payloads.required_text(data, "text", self.hub.settings.max_text_length, too_long=Code.TOO_LARGE)
        row = await chat.edit(self.hub.pool, room_id, message_id, conn.user_id, text)
        message = render.message(row)
        await self.hub.realtime.to_room_now("message:updated", room_id, {"room": room_id, "message": message})
        return {"ok": True, "message": message}

    async def message_delete(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = self._member_room(conn, data)
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
        rooms = data.get("rooms")
        if not isinstance(rooms, dict) or len(rooms) > MAX_SYNC_ROOMS:
            raise ChatError(
                Code.INVALID_PAYLOAD,
                f"rooms must map up to {MAX_SYNC_ROOMS} room ids to the last seq seen",
                fields={"rooms": "must be an object of room id to seq"},
            )
        cursors: dict[str, int] = {}
        for room_id, seq in rooms.items():
            payloads.identifier({"room": room_id}, "room")
            cursors[room_id] = payloads.integer({"seq": seq}, "seq", default=0) or 0
        for room_id in cursors:
            await self._readable_room(conn, room_id)
        found = await chat.sync(self.hub.pool, cursors, SYNC_PAGE)
        return {
            "ok": True,
            "rooms": {
                room_id: {"messages": [render.message(r) for r in rows], "has_more": more}
                for room_id, (rows, more) in found.items()
            },
        }

    async def typing(self, conn: Conn, data: dict[str, Any]) -> dict[str, Any]:
        room_id = self._member_room(conn, data)
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
        room_id = self._member_room(conn, data)
        seq = payloads.required_integer(data, "seq")
        stored = await membership.mark_read(self.hub.pool, room_id, conn.user_id, seq)
        await self.hub.realtime.to_room("read", room_id, {"room": room_id, "user_id": conn.user_id, "seq": stored})
        return {"ok": True, "seq": stored}

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

    # -- control messages from this or another node ----------------------------------------

    async def apply_control(self, message: dict[str, Any]) -> None:
        kind = message.get("herald")
        user_id = str(message.get("user"))
        for conn in self.hub.connections.of_user(user_id):
            if kind == "join":
                room_id = str(message["room"])
                conn.rooms.add(room_id)
                await self.sio.enter_room(conn.sid, room_channel(room_id))
            elif kind == "leave":
                room_id = str(message["room"])
                conn.rooms.discard(room_id)
                await self.sio.leave_room(conn.sid, room_channel(room_id))
                await self.sio.emit(
                    "room:removed",
                    {"room": room_id, "reason": message.get("reason")},
                    to=conn.sid,
                    ignore_queue=True,
                )
            elif kind == "disconnect":
                await self.close(conn.sid, str(message.get("code")), str(message.get("message")))

    async def resync_all(self) -> None:
        await self.sio.emit("resync", {}, ignore_queue=True)

    async def presence_loop(self) -> None:
        """Renew this node's presence entries and report users of dead nodes as gone."""
        interval = self.hub.presence.ttl / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.hub.presence.heartbeat(self.hub.connections.users())
                for user_id in await self.hub.presence.reap():
                    rooms = await room_store.user_room_ids(self.hub.pool, user_id)
                    await self._announce_presence(user_id, rooms, online=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("presence heartbeat failed", extra={"error": str(exc)})


def _room_summary(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "kind": row["kind"], "name": row["name"], "last_seq": row["last_seq"]}
