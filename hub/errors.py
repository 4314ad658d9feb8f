"""One table from error codes to HTTP statuses, and the JSON shapes errors take.

Domain packages raise subclasses of :class:`config.errors.HeraldError` carrying a
:class:`config.errors.Code`; the hub maps them here, once, to HTTP responses and Socket.IO acks.
Any other exception is ``unavailable`` (a dependency down) or ``internal``.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import redis.exceptions
from aiohttp import web

from config.errors import Code, HeraldError

log = logging.getLogger(__name__)

STATUS_BY_CODE: dict[Code, int] = {
    Code.INVALID_PAYLOAD: 400,
    Code.AUTH_REQUIRED: 401,
    Code.TOKEN_EXPIRED: 401,
    Code.TOKEN_INVALID: 401,
    Code.FORBIDDEN: 403,
    Code.NOT_MEMBER: 403,
    Code.BANNED: 403,
    Code.MUTED: 403,
    Code.FROZEN: 403,
    Code.NOT_FOUND: 404,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.CONFLICT: 409,
    Code.TOO_LARGE: 413,
    Code.INVALID_FILTER: 422,
    Code.UNPROCESSABLE: 422,
    Code.RATE_LIMITED: 429,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
}
if set(STATUS_BY_CODE) != set(Code):
    raise RuntimeError(f"codes without an HTTP status: {sorted(set(Code) - set(STATUS_BY_CODE))}")


class HubError(HeraldError):
    """An error the hub itself raises (credentials, routes, limits, request bodies)."""


def error_body(code: Code, message: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def as_hub_error(exc: BaseException) -> HeraldError:
    """Any exception as the error the caller gets: Herald's own as they are, a dependency down as
    ``unavailable``, anything else as ``internal`` (logged with its stack)."""
    if isinstance(exc, HeraldError):
        return exc
    if _is_unavailable(exc):
        log.warning("dependency unavailable", extra={"error": type(exc).__name__})
        return HubError(Code.UNAVAILABLE, "a dependency of the hub is unavailable; try again shortly")
    log.error("unexpected error", exc_info=exc)
    return HubError(Code.INTERNAL, "internal error")


def _is_unavailable(exc: BaseException) -> bool:
    # The server ending a connection (a fast shutdown, pg_terminate_backend, a failover) surfaces as
    # AdminShutdownError mid-statement, or as InternalClientError ("cannot switch to state ...") when
    # a statement starts on a pooled connection whose termination notice has arrived but not yet
    # closed it: the statement never ran.  tests/faults/test_postgres_stop.py provokes both.
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.exceptions.ConnectionDoesNotExistError
        | asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.AdminShutdownError
        | asyncpg.exceptions.CrashShutdownError
        | asyncpg.exceptions.PostgresConnectionError
        | asyncpg.exceptions.InternalClientError
        | asyncpg.exceptions.InterfaceError
        | redis.exceptions.ConnectionError
        | redis.exceptions.TimeoutError,
    )


def http_response(err: HeraldError) -> web.Response:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(err.retry_after)))
    return web.json_response(
        error_body(err.code, err.message, err.fields), status=STATUS_BY_CODE[err.code], headers=headers
    )


def ack_error(err: HeraldError) -> dict[str, Any]:
    body = {"ok": False, **error_body(err.code, err.message, err.fields)}
    if err.retry_after is not None:
        body["error"]["retry_after"] = err.retry_after
    return body
