"""/healthz (the process answers), /readyz (PostgreSQL and Redis answer) and /metrics.

/readyz checks both at once, each bounded by ``CHECK_TIMEOUT``: a frozen Redis or PostgreSQL (a
stopped process, a half-open connection) is reported within that, never by a request that hangs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web

from hub.context import HUB

routes = web.RouteTableDef()
CHECK_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _check(probe: Awaitable[object]) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await probe
        return "ok"
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}"


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    postgres, redis = await asyncio.gather(_check(hub.pool.fetchval("SELECT 1")), _check(hub.redis.ping()))
    checks = {"postgres": postgres, "redis": redis}
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
