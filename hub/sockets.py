"""The Socket.IO namespace ``/``: connect with a JWT, then the client events of DESIGN.md.

Every client event answers through its ack, ``{"ok": true, ...}`` or ``{"ok": false, "error"}``;
a bad payload never breaks the connection.  Rooms are Socket.IO rooms named ``r:<room id>``; each
socket is also in ``u:<user id>`` so a user can be reached on every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

import socketio

from config import payloads
from config.errors import Code
from hub.chat_events import ChatEvents, Handler
from hub.connections import Conn
from hub.context import Hub
from hub.errors import HubError, ack_error, as_hub_error
from hub.moderation_events import ModerationEvents
from hub.realtime import room_channel, user_channel
from hub.transport import environ as transport_environ
from rooms import conversations
from store import rooms as room_store
from store import users as user_store

log = logging.getLogger(__name__)


class ChatSockets:
    def __init__(self, hub: Hub, sio: socketio.AsyncServer) -> None:
        self.hub = hub
        self.sio = sio
        self._tasks: set[asyncio.Task[None]] = set()
        self.events: dict[str, Handler] = {**ChatEvents(hub).handlers(), **ModerationEvents(hub).handlers()}
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
        summary = await conversations.unread_summary(self.hub.pool, conn.user_id)
        ready = {"user_id": conn.user_id, "rooms": sorted(conn.rooms), **summary}
        await self.sio.emit("ready", ready, to=conn.sid, ignore_queue=True)
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
