"""One table from error codes to HTTP statuses, and the JSON shapes errors take.

Domain packages raise their own root exceptions carrying a stable ``code``; the hub maps them
here, once, to HTTP responses and Socket.IO acks.  Anything without a known code is ``internal``.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import redis.exceptions
from aiohttp import web

log = logging.getLogger(__name__)

STATUS_BY_CODE: dict[str, int] = {
    "invalid_payload": 400,
    "auth_required": 401,
    "token_expired": 401,
    "token_invalid": 401,
    "forbidden": 403,
    "not_member": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "too_large": 413,
    "invalid_filter": 422,
    "unprocessable": 422,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
}


class HubError(Exception):
    """An error the hub answers with a stable code (and, over REST, the mapped status)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        if code not in STATUS_BY_CODE:
            raise ValueError(f"unknown error code {code!r}")
        self.code = code
        self.message = message
        self.fields = fields
        self.retry_after = retry_after


def error_body(code: str, message: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def as_hub_error(exc: BaseException) -> HubError:
    """Translate any exception into a HubError: domain errors by their code, the rest as internal."""
    if isinstance(exc, HubError):
        return exc
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code in STATUS_BY_CODE:
        return HubError(
            code,
            str(exc),
            fields=getattr(exc, "fields", None),
            retry_after=getattr(exc, "retry_after", None),
        )
    if _is_unavailable(exc):
        log.warning("dependency unavailable", extra={"error": type(exc).__name__})
        return HubError("unavailable", "a dependency of the hub is unavailable; try again shortly")
    log.error("unexpected error", exc_info=exc)
    return HubError("internal", "internal error")


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


def http_response(err: HubError) -> web.Response:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(err.retry_after)))
    return web.json_response(
        error_body(err.code, err.message, err.fields), status=STATUS_BY_CODE[err.code], headers=headers
    )


def ack_error(err: HubError) -> dict[str, Any]:
    body = {"ok": False, **error_body(err.code, err.message, err.fields)}
    if err.retry_after is not None:
        body["error"]["retry_after"] = err.retry_after
    return body
