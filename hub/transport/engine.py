"""The Engine.IO server: engineio's, making :class:`Socket` objects pinged from one :class:`PingWheel`."""

from __future__ import annotations

import asyncio
from typing import Any

import engineio
from engineio import exceptions
from engineio import packet as eio_packet

from hub.transport.socket import Socket
from hub.transport.wheel import PingWheel


class EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """engineio's server making :class:`Socket` objects, pinging them from one :class:`PingWheel`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wheel = PingWheel(self, tick=min(1.0, max(0.01, self.ping_timeout / 10)))
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.logger.error("socket task failed", exc_info=exc)

    async def _handle_connect(self, environ: dict[str, Any], transport: str, jsonp_index: Any = None) -> Any:
        """Handle a client connection request (engineio 4.15's, making a :class:`Socket`)."""
        if self.start_service_task:  # type: ignore[has-type]
            self.start_service_task = False
            self.service_task_handle = self.start_background_task(self._service_task)

        sid = self.generate_id()
        s = Socket(self, sid)  # Herald: was async_socket.AsyncSocket
        self.sockets[sid] = s

        pkt = eio_packet.Packet(
            eio_packet.OPEN,
            {
                "sid": sid,
                "upgrades": self._upgrades(sid, transport),
                "pingTimeout": int(self.ping_timeout * 1000),
                "pingInterval": int(self.ping_interval + self.ping_interval_grace_period) * 1000,
                "maxPayload": self.max_http_buffer_size,
            },
        )
        await s.send(pkt)

        ret = await self._trigger_event("connect", sid, environ, run_async=False)
        if ret is not None and ret is not True:
            del self.sockets[sid]
            self.logger.warning("Application rejected connection")
            return self._unauthorized(ret or None)

        s.schedule_ping()

        if transport == "websocket":
            # Herald: straight to the websocket class when the request is an upgrade, without the frames
            # of handle_get_request and _upgrade_websocket held for as long as the connection lasts.
            connection = environ.get("HTTP_CONNECTION", "").lower()
            if "upgrade" in [token.strip() for token in connection.split(",")]:
                try:
                    ret = await self._async["websocket"](s._websocket_handler, self)(environ)
                except BaseException:  # a handshake aiohttp refused: no socket left behind
                    await s.close(wait=False, abort=True, reason=self.reason.TRANSPORT_ERROR)
                    self.sockets.pop(sid, None)
                    raise
            else:
                ret = await s.handle_get_request(environ)
            if s.closed and sid in self.sockets:
                del self.sockets[sid]
            return ret
        s.connected = True
        headers = None
        if self.cookie:
            cookie = (
                self.cookie if isinstance(self.cookie, dict) else {"name": self.cookie, "path": "/", "SameSite": "Lax"}
            )
            headers = [("Set-Cookie", self._generate_sid_cookie(sid, cookie))]
        try:
            return self._ok(await s.poll(), headers=headers, jsonp_index=jsonp_index)
        except exceptions.QueueEmpty:
            return self._bad_request()

    async def _service_task(self) -> None:
        """Sweep closed sockets once per ``ping_timeout``; the wheel does the ping timeouts."""
        self.service_task_event = self.create_event()
        while not self.service_task_event.is_set():
            try:
                await asyncio.wait_for(self.service_task_event.wait(), timeout=self.ping_timeout)
                break
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                break
            try:
                for sid in [sid for sid, s in self.sockets.items() if s.closed]:
                    self.sockets.pop(sid, None)
            except Exception:  # pragma: no cover
                self.logger.exception("service task exception")
