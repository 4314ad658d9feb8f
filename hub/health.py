"""/healthz (the process answers), /readyz (PostgreSQL and Redis answer) and /metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web

from hub.context import HUB

routes = web.RouteTableDef()
CHECK_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await hub.pool.fetchval("SELECT 1")
        checks["postgres"] = "ok"
    except Exception as exc:
        checks["postgres"] = f"unavailable: {type(exc).__name__}"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await hub.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"unavailable: {type(exc).__name__}"
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        return web.json_response(
            {
                "status": "unavailable",
                "checks": checks,
                "error": {"code": "unavailable", "message": f"{', '.join(down)} not reachable"},
            },
            status=503,
        )
    return web.json_response({"status": "ok", "checks": checks})
