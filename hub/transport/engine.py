"""The Engine.IO server: engineio's, making :class:`Socket` objects pinged from one :class:`PingWheel`,
and answering HTTP requests by the Node server's rules (engine.io ``lib/server.ts``, ``verify``).

Every refusal is a 400 with the Node server's body, ``{"code": n, "message": "..."}`` (codes below),
and one log line (the code, what was wrong, the method and the client's address; never the sid):

- ``0`` ``Transport unknown``: no ``transport``, or one other than ``polling`` and ``websocket``;
- ``1`` ``Session ID unknown``: a ``sid`` that is not (or no longer) a session;
- ``2`` ``Bad handshake method``: a handshake (no ``sid``) other than GET;
- ``3`` ``Bad request``: anything else wrong (a method other than GET and POST on a session, a
  polling request on a session that upgraded, a body that is not a payload, a second GET poll while
  one waits; the last two close the session, as they do on the Node server);
- ``5`` ``Unsupported protocol version``: a handshake without ``EIO=4``.

A websocket for a session that already has one (or is being upgraded to one) is accepted and
closed at once, as on the Node server.  A POST is answered ``ok``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
from typing import Any

import engineio
from aiohttp import web
from engineio import exceptions
from engineio import packet as eio_packet

from hub.transport.driver import accept_and_close
from hub.transport.socket import PayloadError, PollOverlap, Socket
from hub.transport.wheel import PingWheel

log = logging.getLogger(__name__)

# The Node server's error codes (engine.io lib/server.ts, Server.errors); 4 (Forbidden) is unused.
UNKNOWN_TRANSPORT, UNKNOWN_SID, BAD_HANDSHAKE_METHOD, BAD_REQUEST, UNSUPPORTED_PROTOCOL_VERSION = 0, 1, 2, 3, 5
MESSAGES = {
    UNKNOWN_TRANSPORT: "Transport unknown",
    UNKNOWN_SID: "Session ID unknown",
    BAD_HANDSHAKE_METHOD: "Bad handshake method",
    BAD_REQUEST: "Bad request",
    UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}

Answer = Any  # engineio's response dict (status, headers, response), or an aiohttp response


def _is_upgrade(environ: dict[str, Any]) -> bool:
    connection = [token.strip() for token in environ.get("HTTP_CONNECTION", "").lower().split(",")]
    return "upgrade" in connection and environ.get("HTTP_UPGRADE", "").lower() == "websocket"


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

    def attach(self, app: web.Application, engineio_path: str = "engine.io") -> None:
        """engineio's, with one route for every method: aiohttp answered any method but GET, POST and
        OPTIONS with 405 itself, where the Node server answers 400 like any bad request."""
        app.router.add_route("*", f"/{engineio_path.strip('/')}/", self.handle_request)

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        """Handle an Engine.IO HTTP request (replaces engineio 4.15's: the checks are the Node server's,
        in its order; engineio's response making and polling compression are kept)."""
        environ = self._async["translate_request"](request)
        r = await self._answer(environ)
        if not isinstance(r, dict):
            return r  # type: ignore[no-any-return]
        if self.http_compression and len(r["response"]) >= self.compression_threshold:
            encodings = [e.split(";")[0].strip() for e in environ.get("HTTP_ACCEPT_ENCODING", "").split(",")]
            for encoding in encodings:
                if encoding in self.compression_methods:
                    r["response"] = getattr(self, "_" + encoding)(r["response"])
                    r["headers"] += [("Content-Encoding", encoding)]
                    break
        return await self._make_response(r, environ)  # type: ignore[no-any-return]

    async def _answer(self, environ: dict[str, Any]) -> Answer:
        method = environ["REQUEST_METHOD"]
        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        transport = query.get("transport", [""])[0]
        if transport not in self.transports:
            return self._refuse(environ, UNKNOWN_TRANSPORT, f"transport {transport[:20]!r}")
        origin = environ.get("HTTP_ORIGIN")
        if origin and self.cors_allowed_origins != []:
            allowed = self._cors_allowed_origins(environ)
            if allowed is not None and origin not in allowed:
                return self._refuse(environ, BAD_REQUEST, "origin not accepted")
        if method == "OPTIONS":
            return self._ok()  # a CORS preflight: its headers come with any answer
        jsonp_index = None
        if "j" in query:
            try:
                jsonp_index = int(query["j"][0])
            except ValueError:
                return self._refuse(environ, BAD_REQUEST, "JSONP index not a number")
        upgrade = method == "GET" and _is_upgrade(environ)
        sid = query.get("sid", [None])[0]
        if sid is None:
            if method != "GET":
                return self._refuse(environ, BAD_HANDSHAKE_METHOD, f"handshake method {method[:10]}")
            if transport == "websocket" and not upgrade:
                return self._refuse(environ, BAD_REQUEST, "websocket handshake without an upgrade")
            if query.get("EIO") != ["4"]:
                return self._refuse(environ, UNSUPPORTED_PROTOCOL_VERSION, "EIO not 4")
            return await self._handle_connect(environ, transport, jsonp_index)
        socket = self.sockets.get(sid)
        if socket is None or socket.closed:
            return self._refuse(environ, UNKNOWN_SID, "unknown session")
        if not socket.connected:
            return self._refuse(environ, BAD_REQUEST, "session not connected yet")
        try:
            if transport == "websocket" and upgrade:
                if socket.upgrading or socket.upgraded:
                    log.info("engine.io websocket closed: its session already has one", extra=_who(environ))
                    return await accept_and_close(environ)
                return await socket.handle_get_request(environ)  # engineio's upgrade from polling
            if transport != "polling" or socket.upgraded:
                return self._refuse(environ, BAD_REQUEST, f"{transport} request on a {_on(socket)} session")
            if method == "GET":
                return await self._poll(environ, socket, jsonp_index)
            if method == "POST":
                return await self._post(environ, socket, jsonp_index)
            return self._refuse(environ, BAD_REQUEST, f"method {method[:10]} on a session")
        finally:
            if socket.closed and self.sockets.get(sid) is socket:
                del self.sockets[sid]

    async def _poll(self, environ: dict[str, Any], socket: Socket, jsonp_index: int | None) -> Answer:
        try:
            packets = await socket.handle_poll()
        except PollOverlap:
            return self._refuse(environ, BAD_REQUEST, "a second poll while one waits (session closed)")
        except exceptions.QueueEmpty:
            return self._refuse(environ, BAD_REQUEST, "nothing to send within interval + timeout")
        return self._ok(packets, jsonp_index=jsonp_index)

    async def _post(self, environ: dict[str, Any], socket: Socket, jsonp_index: int | None) -> Answer:
        try:
            await socket.handle_post_request(environ)
        except PayloadError:
            return self._refuse(environ, BAD_REQUEST, "body not an Engine.IO payload (session closed)")
        except exceptions.EngineIOError as exc:  # over max_http_buffer_size, a packet a client may not send
            await socket.close(wait=False, reason=self.reason.TRANSPORT_ERROR)
            return self._refuse(environ, BAD_REQUEST, f"{type(exc).__name__} (session closed)")
        return self._ok(jsonp_index=jsonp_index)

    def _refuse(self, environ: dict[str, Any], code: int, why: str) -> dict[str, Any]:
        """A 400 with the Node server's body, logged in one line."""
        log.info("engine.io request refused", extra={"code": code, "why": why, **_who(environ)})
        return _error(code)

    def _bad_request(self, message: str | None = None) -> dict[str, Any]:
        """engineio's, in the Node server's shape (what engineio's own code still refuses this way)."""
        return _error(BAD_REQUEST)

    def _ok(
        self, packets: list[eio_packet.Packet] | None = None, headers: list[Any] | None = None, jsonp_index: Any = None
    ) -> dict[str, Any]:
        """engineio's; a POST (or a preflight) is answered ``ok`` as the Node server does (engineio: ``OK``)."""
        if packets is not None:
            return super()._ok(packets, headers=headers, jsonp_index=jsonp_index)  # type: ignore[no-any-return]
        return {"status": "200 OK", "headers": [("Content-Type", "text/html")], "response": b"ok"}

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
                # Herald: milliseconds exactly (engineio sent int() seconds * 1000 for the interval: 1.5 s as 1000)
                "pingTimeout": round(self.ping_timeout * 1000),
                "pingInterval": round((self.ping_interval + self.ping_interval_grace_period) * 1000),
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


def _error(code: int) -> dict[str, Any]:
    body = json.dumps({"code": code, "message": MESSAGES[code]}).encode()
    return {"status": "400 BAD REQUEST", "headers": [("Content-Type", "application/json")], "response": body}


def _who(environ: dict[str, Any]) -> dict[str, Any]:
    request = environ.get("aiohttp.request")
    return {"method": environ.get("REQUEST_METHOD"), "client": request.remote if request is not None else None}


def _on(socket: Socket) -> str:
    return "websocket" if socket.upgraded else "polling"
