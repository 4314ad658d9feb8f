"""aiohttp's HTTP server, answering what its parser refuses in Herald's error shape, with no echo.

aiohttp answers a request its parser refuses (a header or the request line over its limit, too many
headers, bytes that are not HTTP) inside its ``RequestHandler``, before any middleware runs: a
text/plain 400 that quotes the first 100 bytes of the offending line, logged at ERROR with that
text, so an oversize ``Authorization: Bearer ...`` put the start of the credential in the answer
and in the logs.  Here :meth:`RequestHandler.handle_error` answers ``{"error": {"code", "message"}}``
instead, with a message of Herald's own (never the request's bytes), and logs one line naming the
kind of refusal and the client's address:

- a header field or the request line over ``MAX_FIELD_BYTES``, or more than ``MAX_HEADERS`` headers:
  431 ``too_large``;
- anything else the parser refuses: 400 ``invalid_payload``;
- a handler's unexpected exception (Socket.IO's routes, which Herald's middleware leaves alone):
  500 ``internal``, logged with its stack as every unexpected error is; a timeout: 503 ``unavailable``.

aiohttp makes its ``RequestHandler`` in ``Server.__call__`` and its ``Server`` in
``AppRunner._make_server``, so both are subclassed here to reach it; :func:`serve` runs an app
with them (``herald web``).  Pinned to aiohttp 3.14 (tests/test_library_fences.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, LineTooLong

from config.errors import Code
from hub.errors import HubError, as_hub_error, error_body, http_response

log = logging.getLogger(__name__)

MAX_FIELD_BYTES = 8190  # a header field (name and value) or the request line; aiohttp's default
MAX_HEADERS = 128  # aiohttp's default
TOO_MANY_HEADERS = "Too many headers received"  # aiohttp's parser's message for it (C and Python)


def refusal(exc: BaseException | None) -> tuple[int, Code, str]:
    """(status, code, message) for a request aiohttp's parser refused with ``exc``."""
    if isinstance(exc, LineTooLong):
        return 431, Code.TOO_LARGE, f"a header field or the request line is longer than {MAX_FIELD_BYTES} bytes"
    if isinstance(exc, BadHttpMessage) and exc.message == TOO_MANY_HEADERS:
        return 431, Code.TOO_LARGE, f"the request has more than {MAX_HEADERS} headers"
    return 400, Code.INVALID_PAYLOAD, "the request is not well-formed HTTP/1.1"


class RequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering errors in Herald's shape (see the module docstring)."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Replaces aiohttp's: the same contract (a response that closes the connection; a
        ConnectionError when part of a response went out already), Herald's body and log line;
        ``message`` (aiohttp's text, which quotes the request) is never used."""
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        if status >= 500:  # from a handler: an exception (logged with its stack) or a timeout
            err = as_hub_error(exc) if exc is not None else HubError(Code.UNAVAILABLE, "the request timed out")
            response = http_response(err)
        else:  # from the parser
            status, code, text = refusal(exc)
            level = logging.DEBUG if isinstance(exc, BadHttpMethod) else logging.INFO  # port scans, TLS probes
            log.log(level, "refused an HTTP request", extra={"status": status, "code": code, "remote": request.remote})
            response = web.json_response(error_body(code, text), status=status)
        response.force_close()
        return response


class Server(web.Server):
    """aiohttp's low-level server, making :class:`RequestHandler` for each connection."""

    def __call__(self) -> RequestHandler:
        # aiohttp 3.14's Server.__call__, without its fallback that drops unknown handler arguments
        return RequestHandler(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """aiohttp's app runner serving with :class:`Server`; the parser's limits are Herald's."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("max_line_size", MAX_FIELD_BYTES)
        kwargs.setdefault("max_field_size", MAX_FIELD_BYTES)
        kwargs.setdefault("max_headers", MAX_HEADERS)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        stock = await super()._make_server()  # starts the app, then makes aiohttp's Server
        return Server(
            stock.request_handler,
            request_factory=stock.request_factory,
            handler_cancellation=stock.handler_cancellation,
            **stock._kwargs,
        )


async def serve(app: web.Application, host: str, port: int, *, shutdown_timeout: float) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT or SIGTERM, then shut it down gracefully: no new
    connections, the app's shutdown hooks, ``shutdown_timeout`` seconds for requests in flight."""
    runner = AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
