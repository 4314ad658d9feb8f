"""Socket.IO's Redis manager, extended with Herald's control messages and resync.

python-socketio publishes every broadcast on one Redis channel that every web node reads.  Two
things are added on that same channel and connection:

- *control messages* (``{"herald": kind, ...}``) that make every node act on its own sockets:
  a member added or removed, a user to disconnect.  The node that sends one applies it at once;
  the others apply it when it arrives.
- *resync*: when the subscription comes back after a failure, or Redis answers again after a
  publish failed or timed out, broadcasts may have been missed, so every local socket is sent
  ``resync`` and will call ``sync``.

Redis is never on the way to a chat acknowledgement: :meth:`HubManager.broadcast` reaches this
node's sockets at once and only queues the event for the other nodes (``emit`` still waits for
its pipeline, which paces other callers), and each pipeline is bounded by ``PUBLISH_TIMEOUT``.
Every call on the link has a socket timeout, and the subscriber pings a quiet link, so a frozen
Redis is noticed within seconds (``hub.redis_link``, which also keeps the link's health).

Publishing is pipelined: the messages published while one pipeline is on its way (or within a
millisecond, ``PUBLISH_LINGER``) go out together in the next one, one write and one read for all
of them, in the order they were published.  One ``PUBLISH`` round trip per chat message was a
quarter of a web node's CPU under persisted chat (docs/benchmarks.md).

And the local part of every broadcast (this node's sockets in the room) is done once, not per
recipient: the Socket.IO packet, the Engine.IO packet and the websocket frame are encoded once,
and the same bytes are written to each recipient's transport when its order allows
(``hub.transport.server``), with no task per recipient; the others get the packet the normal way.

Pinned to python-socketio 5.18 (``_redis_listen_with_retries`` replaces its own, and
``_handle_emit`` follows its message format).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from hub import redis_link
from hub.websocket import text_frame

log = logging.getLogger(__name__)

ControlHandler = Callable[[dict[str, Any]], Awaitable[None]]
ReconnectHandler = Callable[[], Awaitable[None]]
CONTROL_PREFIX = b'{"herald"'
EMIT_PREFIX = b'{"method": "emit"'  # python-socketio's emit messages, host_id last
#: A pipeline with fewer messages waits this long for more: at thousands of messages a second a
#: pipeline per loop turn carried one or two, each its own write and read (the write alone was a
#: tenth of a web node's CPU); a millisecond more on the way to other nodes (and on an ack) buys it.
PUBLISH_LINGER = 0.001
LINGER_BELOW = 32
#: Seconds one pipeline of publishes may take, both attempts together; then it is given up.
PUBLISH_TIMEOUT = 2.0
#: Messages waiting for a pipeline beyond this are dropped (the link is suspect: resync follows).
MAX_OUTGOING = 20_000


class HubManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    def __init__(self, url: str, channel: str, *, write_only: bool = False) -> None:
        super().__init__(url, channel=channel, write_only=write_only, redis_options=dict(redis_link.CLIENT_OPTIONS))
        self.on_control: ControlHandler | None = None
        self.on_reconnect: ReconnectHandler | None = None
        self.link = redis_link.LinkHealth(lambda: self.redis.ping(), self._resync, subscriber=not write_only)
        self._outgoing: list[tuple[str, asyncio.Future[None] | None]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """python-socketio 5.18's ``emit`` for a broadcast without callback or binary data, checked
        for binary by the server's packet class: python-socketio's module-level check walked every
        broadcast with a list and a ``reduce`` per level.  Anything else is python-socketio's."""
        room = to or room
        args = list(data) if isinstance(data, tuple) else [data]
        if (
            callback is not None
            or kwargs.get("ignore_queue")
            or self.server is None
            or self.server.packet_class.data_is_binary(args)
        ):
            await super().emit(event, data, namespace, room, skip_sid, callback, **kwargs)
            return
        message = self._emit_message(event, args, namespace or "/", room, skip_sid)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(message, done)  # the other nodes', in call order (before anything can wait)
        await self._handle_emit(message)  # this node's sockets
        await done  # the pipeline went out or was given up on

    async def broadcast(self, event: str, data: dict[str, Any], room: str, skip_sid: str | None = None) -> None:
        """A room event sent to this node's sockets at once and queued for the other nodes, not
        waited for: what a chat acknowledgement follows, so that it depends on the commit alone.
        Queued in call order, so one room's events still leave this node in seq order."""
        if self.server is None or self.server.packet_class.data_is_binary([data]):
            await self.emit(event, data, "/", room, skip_sid)
            return
        message = self._emit_message(event, [data], "/", room, skip_sid)
        self._enqueue(message, None)
        await self._handle_emit(message)

    def _emit_message(self, event: str, args: list[Any], namespace: str, room: Any, skip_sid: Any) -> dict[str, Any]:
        return {  # the keys in python-socketio's order: host_id last (see _listen)
            "method": "emit",
            "event": event,
            "data": args,
            "binary": False,
            "namespace": namespace,
            "room": room,
            "skip_sid": skip_sid,
            "callback": None,
            "host_id": self.host_id,
        }

    async def _publish(self, data: Any) -> None:
        """Publish ``data`` on the channel with the next pipeline; return once it went out (or
        was given up on, as python-socketio's own ``_publish`` does, within ``PUBLISH_TIMEOUT``)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(data, done)
        await done  # a caller cancelled meanwhile cancels only its wait: the message still goes out

    def _enqueue(self, data: Any, done: asyncio.Future[None] | None) -> None:
        if len(self._outgoing) >= MAX_OUTGOING:  # Redis has not taken a pipeline for a while
            dropped = self._outgoing[: len(self._outgoing) - MAX_OUTGOING + 1]
            del self._outgoing[: len(dropped)]
            for _, waiting in dropped:
                if waiting is not None and not waiting.done():
                    waiting.set_result(None)
            self.link.suspect("publish queue full")
        self._outgoing.append((self.json.dumps(data), done))
        if self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        batch: list[tuple[str, asyncio.Future[None] | None]] = []
        try:
            while self._outgoing:
                if len(self._outgoing) < LINGER_BELOW:
                    await asyncio.sleep(PUBLISH_LINGER)  # a pipeline of a message or two: wait for more
                batch, self._outgoing = self._outgoing, []
                await self._publish_many([message for message, _ in batch])
                for _, done in batch:
                    if done is not None and not done.done():
                        done.set_result(None)
                batch = []
        finally:
            self._flusher = None
            for _, done in [*batch, *self._outgoing]:  # only when cancelled (shutdown)
                if done is not None:
                    done.cancel()
            self._outgoing = []

    async def _publish_many(self, messages: list[str]) -> None:
        """One pipeline, tried twice within ``PUBLISH_TIMEOUT``; given up on, the link is suspect."""
        error: BaseException | None = None
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                for retries_left in (1, 0):
                    try:
                        await self._pipeline(messages)
                        return
                    except Exception as exc:  # redis-py's errors, and anything else: the next pipeline goes on
                        error = exc
                        if retries_left:
                            log.warning("cannot publish to redis; retrying", extra={"error": type(exc).__name__})
        except TimeoutError as exc:
            error = exc
        log.error(
            "cannot publish to redis; giving up",
            extra={"error": type(error).__name__, "messages": len(messages), "timeout": PUBLISH_TIMEOUT},
        )
        self.link.suspect("publish failed")

    async def _pipeline(self, messages: list[str]) -> None:
        if self.redis is None:
            self._redis_connect()
        # A connection that failed or timed out is dropped by redis-py; the pool opens another.
        async with self.redis.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(self.channel, message)
            await pipe.execute()

    async def _resync(self) -> None:
        if self.on_reconnect is not None:
            await self.on_reconnect()

    async def publish_control(self, kind: str, **fields: Any) -> None:
        """Apply a control message here and send it to every other node."""
        message = {"herald": kind, "host_id": self.host_id, **fields}
        if self.on_control is not None:
            await self.on_control(message)
        await self._publish(message)

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        callback = message.get("callback")
        if (callback is not None and len(callback) == 3) or message.get("binary") or self.server is None:
            await super()._handle_emit(message)
            return
        await self.emit_local(
            message["event"],
            message["data"],
            message.get("namespace") or "/",
            message.get("room"),
            message.get("skip_sid"),
        )

    async def emit_local(
        self, event: str, args: list[Any], namespace: str, room: str | list[str] | None, skip_sid: Any
    ) -> None:
        """Send an event (no ack, no binary) to this node's sockets in ``room``, encoded once."""
        if namespace not in self.rooms:
            return
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        recipients = [eio_sid for sid, eio_sid in self.get_participants(namespace, room) if sid not in skip]
        if not recipients:
            return  # nobody here (often: a sender alone in its room on this node): nothing to encode
        encoded = self.server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args]).encode()
        pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        frame = text_frame(pkt.encode().encode())
        sockets = self.server.eio.sockets
        slow = []
        for eio_sid in recipients:
            ws = getattr(sockets.get(eio_sid), "herald_ws", None)
            if ws is None or not ws.write_frame(frame):
                slow.append(self.server._send_eio_packet(eio_sid, pkt))
        if slow:
            await asyncio.gather(*slow, return_exceptions=True)

    async def _listen(self) -> AsyncIterator[Any]:
        # This node's own broadcasts come back on the channel; python-socketio would parse each one
        # to find its host_id and drop it. An emit ends with its host_id, so they are dropped here
        # unparsed (callbacks, which are addressed by host_id, start otherwise and are kept).
        own_emit = f'"host_id": "{self.host_id}"}}'.encode()
        async for data in super()._listen():
            if isinstance(data, bytes):
                if data.startswith(CONTROL_PREFIX):
                    await self._dispatch_control(data)
                    continue
                if data.startswith(EMIT_PREFIX) and data.endswith(own_emit):
                    continue
            yield data

    async def _dispatch_control(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if message.get("host_id") == self.host_id or self.on_control is None:
            return
        try:
            await self.on_control(message)
        except Exception:
            log.exception("control message failed", extra={"kind": message.get("herald")})

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        """The channel's messages, across failures: a lost link is subscribed again with backoff,
        and the sockets are told to resync once the new subscription is confirmed."""
        retry_sleep = 1.0
        while True:
            pubsub: aioredis.client.PubSub | None = None
            try:
                if self.redis is None:
                    self._redis_connect()
                # Subscribe confirmations are kept: one proves that Redis took the subscription.
                pubsub = self.pubsub = self.redis.pubsub()
                await pubsub.subscribe(self.channel)
                async for message in redis_link.read(pubsub):
                    if message["type"] == "subscribe":
                        retry_sleep = 1.0
                        await self.link.subscribed()
                    else:
                        yield message
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("redis link lost; retrying", extra={"error": type(exc).__name__, "retry_in": retry_sleep})
                self.link.lost()
                await redis_link.close(pubsub)
                await asyncio.sleep(retry_sleep)
                retry_sleep = min(retry_sleep * 2, 10.0)
