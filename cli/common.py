"""What the commands share: the one-line error, the event loop, and reaching the configured services."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from config import Settings
from hub.preflight import reach_database, reach_redis


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` to completion on uvloop (asyncio's loop where uvloop does not build)."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.run(coro)


def new_loop() -> asyncio.AbstractEventLoop:
    """A new uvloop event loop (asyncio's where uvloop does not build)."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()


def need_database(settings: Settings) -> str:
    """DATABASE_URL, once PostgreSQL answered there (else one line naming the setting)."""
    if not settings.database_url:
        raise CliError("DATABASE_URL: not set, and no `herald up` is running in this folder")
    run(reach_database(settings.database_url))
    return settings.database_url


def need_redis(settings: Settings) -> str:
    """REDIS_URL, once Redis answered there (else one line naming the setting)."""
    if not settings.redis_url:
        raise CliError("REDIS_URL: not set, and no `herald up` is running in this folder")
    run(reach_redis(settings.redis_url))
    return settings.redis_url
