"""The web process: aiohttp app with Socket.IO, REST /api/v1, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import socketio
from aiohttp import web
from aiohttp.typedefs import Middleware

from config import Settings, bind_request_id
from config.errors import Code
from hub import console, health, openapi, redis_link
from hub.auth import TokenVerifier
from hub.context import HUB, Hub
from hub.errors import HubError, as_hub_error, http_response
from hub.fanout import HubManager
from hub.metrics import Metrics
from hub.realtime import Realtime
from hub.rest import campaigns as campaigns_routes
from hub.rest import dev as dev_routes
from hub.rest import devices as devices_routes
from hub.rest import messages as messages_routes
from hub.rest import moderation as moderation_routes
from hub.rest import notifications as notifications_routes
from hub.rest import privacy as privacy_routes
from hub.rest import rooms as rooms_routes
from hub.rest import segments as segments_routes
from hub.rest import users as users_routes
from hub.rest.common import MAX_BODY_BYTES
from hub.sockets import ChatSockets
from hub.transport import server as transport
from rooms.messages import GroupCommit
from rooms.presence import Presence
from store.db import create_pool

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METRICS = web.AppKey("metrics", Metrics)
SOCKETS = web.AppKey("sockets", ChatSockets)


def create_app(settings: Settings) -> web.Application:
    """Build the app; connections to PostgreSQL and Redis open when it starts."""
    settings.require_services()
    settings.require_client_auth()
    assert settings.redis_url is not None
    app = web.Application(
        middlewares=[cors_middleware(settings), request_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    manager = HubManager(settings.redis_url, channel=settings.socketio_channel)
    sio = transport.Server(
        async_mode="aiohttp",
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        connect_timeout=settings.connect_timeout,
        client_manager=manager,
        cors_allowed_origins=_socketio_origins(settings),
        max_http_buffer_size=settings.max_frame_bytes,
        logger=False,
        engineio_logger=False,
    )
    transport.install(sio, compress=settings.ws_compression)
    sio.attach(app, socketio_path="socket.io")
    app.add_routes(health.routes)
    app.add_routes(rooms_routes.routes)
    app.add_routes(messages_routes.routes)
    app.add_routes(moderation_routes.routes)
    app.add_routes(users_routes.routes)
    app.add_routes(devices_routes.routes)
    app.add_routes(notifications_routes.routes)
    app.add_routes(dev_routes.routes)
    app.add_routes(privacy_routes.routes)
    app.add_routes(segments_routes.routes)
    app.add_routes(campaigns_routes.routes)
    app.add_routes(openapi.routes)
    console.setup(app)
    app.router.add_get("/metrics", metrics_handler)
    app.cleanup_ctx.append(_lifespan(settings, sio, manager))
    app.on_shutdown.append(_close_sockets)
    return app


async def _close_sockets(app: web.Application) -> None:
    """On SIGTERM: tell every client why, then close its connection so that it reconnects by itself.

    aiohttp stops accepting connections before this runs.  Each socket gets ``closing {code:
    server_shutdown}``, then its Engine.IO session is closed (a CLOSE packet and, on a websocket, a
    close frame after what was queued for it).  Not a Socket.IO DISCONNECT: the official clients take
    that as final ("io server disconnect") and never reconnect, while a closed transport makes them
    reconnect (to this node once it is back, or to another) and then ``sync``.
    """
    sockets = app.get(SOCKETS)
    if sockets is None:
        return
    sids = list(sockets.hub.connections.by_sid)
    if sids:
        log.info("closing sockets for shutdown", extra={"sockets": len(sids)})
    closing = {"code": "server_shutdown", "message": "the server is restarting; reconnect"}
    await asyncio.gather(
        *(sockets.sio.emit("closing", closing, to=sid, ignore_queue=True) for sid in sids),
        return_exceptions=True,
    )
    eio = sockets.sio.eio
    await asyncio.gather(
        *(s.close(wait=False, reason=eio.reason.SERVER_DISCONNECT) for s in list(eio.sockets.values())),
        return_exceptions=True,
    )


def _socketio_origins(settings: Settings) -> str | list[str] | None:
    if "*" in settings.cors_origins:
        return "*"
    return list(settings.cors_origins) or None  # None: same origin only (non-browser clients always pass)


def _lifespan(
    settings: Settings, sio: socketio.AsyncServer, manager: HubManager
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        assert settings.database_url is not None and settings.redis_url is not None
        # plain statements: nothing on a web node changes a session, so releases skip the reset query
        pool = await create_pool(settings.database_url, size=settings.db_pool_size, plain_statements=True)
        # The group commit's own connections, one per batch in flight, planning its statement on each
        # run: PostgreSQL's generic plan, cached while the messages table was small, scanned it, and
        # each batch got slower as the table grew (104 -> 345 µs a message over 40,000 messages).
        writer_pool = await create_pool(
            settings.database_url,
            size=GroupCommit.IN_FLIGHT,
            plain_statements=True,
            server_settings={"plan_cache_mode": "force_custom_plan"},
        )
        redis = redis_link.client(settings.redis_url)  # every call bounded: a frozen Redis holds nothing
        node_id = uuid.uuid4().hex[:12]
        arq = redis_link.queue_client(settings.redis_url)
        hub = Hub(
            settings=settings,
            pool=pool,
            redis=redis,
            verifier=TokenVerifier(settings),
            realtime=Realtime(sio, manager),
            presence=Presence(redis, node_id, ttl=settings.presence_ttl),
            node_id=node_id,
            arq=arq,
            writer_pool=writer_pool,
        )
        app[HUB] = hub
        app[METRICS] = Metrics(lambda: len(hub.connections))
        sockets = ChatSockets(hub, sio)
        app[SOCKETS] = sockets
        presence_task = asyncio.create_task(sockets.presence_loop())
        log.info("web node started", extra={"node_id": node_id})
        try:
            yield
        finally:
            presence_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await presence_task
            hub.connections.close()
            await sockets.drain()
            await arq.aclose(close_connection_pool=True)
            await redis.aclose()
            await writer_pool.close()
            await pool.close()

    return lifespan


@web.middleware
def request_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Request id, error mapping and metrics for every HTTP request (Socket.IO's own path excluded).

    Not a coroutine function: Socket.IO's requests get the handler's own awaitable, so a websocket
    held for hours keeps no frame of this middleware (and of the CORS one) alive.
    """
    if request.path.startswith("/socket.io"):
        return handler(request)
    return _handle_request(request, handler)


async def _handle_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = bind_request_id(request.headers.get("X-Request-Id"))
    started = time.perf_counter()
    try:
        if request.path.startswith("/api/"):
            _limit_address(request)
        response = await handler(request)
    except web.HTTPException as exc:
        response = _http_exception(exc)
    except Exception as exc:
        response = http_response(as_hub_error(exc))
    response.headers["X-Request-Id"] = rid
    metrics = request.app.get(METRICS)
    if metrics is not None:
        route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
        metrics.http_requests.labels(request.method, route, str(response.status)).inc()
        metrics.http_latency.labels(route).observe(time.perf_counter() - started)
    return response


def _limit_address(request: web.Request) -> None:
    hub = request.app.get(HUB)
    if hub is not None:
        wait = hub.address_rate.take(request.remote or "unknown")
        if wait:
            raise HubError(Code.RATE_LIMITED, "too many requests from this address", retry_after=wait)


def _http_exception(exc: web.HTTPException) -> web.StreamResponse:
    codes = {404: Code.NOT_FOUND, 405: Code.METHOD_NOT_ALLOWED, 413: Code.TOO_LARGE}
    code = codes.get(exc.status)
    if code is None:
        return exc
    message = "no such route" if exc.status == 404 else exc.reason
    return http_response(HubError(code, message))


def cors_middleware(settings: Settings) -> Middleware:
    allowed = set(settings.cors_origins)

    @web.middleware
    def middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        origin = request.headers.get("Origin")
        if request.path.startswith("/socket.io") or not origin or not ("*" in allowed or origin in allowed):
            return handler(request)  # no frame of this middleware held (see request_middleware)
        return cors(request, handler, origin)

    async def cors(request: web.Request, handler: Handler, origin: str) -> web.StreamResponse:
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Idempotency-Key"
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        return response

    return middleware


async def metrics_handler(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), content_type="text/plain", charset="utf-8")
