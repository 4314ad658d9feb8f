"""Checks made before a process starts, so that what it cannot work without stops it with one line.

A PostgreSQL or Redis that cannot be reached at start-up, or a port that is taken, used to end a
process with a 50-70 line traceback from deep inside asyncpg, redis-py or the event loop.  Here
each is tried once, with a short timeout, and a failure becomes a :class:`StartupError` naming the
setting, the host (never the credentials in the URL) and the reason; ``herald`` prints it as
``herald: DATABASE_URL: cannot reach PostgreSQL at 127.0.0.1:5432/herald: connection refused``.
"""

from __future__ import annotations

import asyncio
import errno
from urllib.parse import urlsplit

import asyncpg
import redis.asyncio as aioredis
import redis.exceptions

TIMEOUT = 5.0  # seconds to reach each dependency


class StartupError(Exception):
    """A setting that keeps the process from starting; the message names it."""


def where(url: str) -> str:
    """``host:port/path`` of a URL, without its user name or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    path = parts.path if parts.path not in ("", "/") else ""
    return f"{host}{port}{path}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")


async def reach_database(url: str, setting: str = "DATABASE_URL") -> None:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(url, timeout=TIMEOUT), TIMEOUT + 1)
    except (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StartupError(f"{setting}: cannot reach PostgreSQL at {where(url)}: {_reason(exc)}") from None
    await conn.close()


async def reach_redis(url: str, setting: str = "REDIS_URL") -> None:
    try:
        client = aioredis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    except ValueError as exc:
        raise StartupError(f"{setting}: {_reason(exc)}") from None
    try:
        await asyncio.wait_for(client.ping(), TIMEOUT + 1)
    except (OSError, TimeoutError, redis.exceptions.RedisError) as exc:
        raise StartupError(f"{setting}: cannot reach Redis at {where(url)}: {_reason(exc)}") from None
    finally:
        await client.aclose()


def bind_error(exc: OSError, host: str, port: int) -> StartupError | None:
    """The one-line error for a failed bind of ``host:port``, or None when ``exc`` is something else."""
    if exc.errno == errno.EADDRINUSE:
        return StartupError(f"PORT: {host}:{port} is already in use (another process listens there)")
    if exc.errno in (errno.EACCES, errno.EADDRNOTAVAIL):
        problem = "not allowed" if exc.errno == errno.EACCES else "not an address of this machine (HERALD_HOST)"
        return StartupError(f"PORT: cannot listen on {host}:{port}: {problem}")
    return None
