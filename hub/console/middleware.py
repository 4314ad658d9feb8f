"""Every console request: the session (or a redirect to sign in), the CSRF check, headers, errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from config.errors import Code
from hub.console import sessions
from hub.console.layout import SESSION, SIGN_IN, error_page, secure_headers, see_other
from hub.errors import STATUS_BY_CODE, HubError, as_hub_error
from hub.rest.common import hub_of

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = frozenset({SIGN_IN})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/console/static/"):
        response = await handler(request)
        secure_headers(response, cache=True)
        return response
    api = request.path.startswith("/console/api/")
    try:
        if request.path not in PUBLIC:
            session = await sessions.load(hub_of(request), request)
            if session is None:
                if api:
                    raise HubError(Code.AUTH_REQUIRED, "sign in to the console first")
                return see_other(SIGN_IN)
            request[SESSION] = session
            if request.method not in SAFE_METHODS and not await _csrf_ok(request, session.csrf):
                raise HubError(Code.FORBIDDEN, "missing or wrong CSRF token: reload the page and try again")
        response = await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        if api:
            raise  # the hub's middleware answers JSON errors
        err = as_hub_error(exc)
        response = error_page(request, STATUS_BY_CODE[err.code], err.message)
    secure_headers(response)
    return response


async def _csrf_ok(request: web.Request, expected: str) -> bool:
    given = request.headers.get(sessions.CSRF_HEADER)
    if given is None and request.content_type in FORM_TYPES:
        value = (await request.post()).get(sessions.CSRF_FIELD)
        given = value if isinstance(value, str) else None
    return sessions.same(expected, given)
