"""Signing in with an admin API key, and out."""

from __future__ import annotations

from aiohttp import web

from hub.console import sessions
from hub.console.html import render
from hub.console.layout import SIGN_IN, bare, error_box, secure_headers, see_other, session_of
from hub.rest.common import hub_of
from store import apikeys

routes = web.RouteTableDef()
HOME = "/console/campaigns"


async def root(request: web.Request) -> web.Response:
    return see_other(HOME)


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return see_other(HOME)


def _sign_in_form(request: web.Request, error: str | None = None, status: int = 200) -> web.Response:
    token = sessions.new_login_token()
    body = render("sign_in.html", login_token=token, error=error_box(error))
    response = bare(request, "Sign in", body, status=status, body_class="plain")
    sessions.set_cookie(request, response, sessions.LOGIN_COOKIE, token, sessions.LOGIN_TTL_SECONDS)
    return response


@routes.get("/sign-in")
async def sign_in_page(request: web.Request) -> web.Response:
    if await sessions.load(hub_of(request), request) is not None:
        return see_other(HOME)
    return _sign_in_form(request)


@routes.post("/sign-in")
async def sign_in(request: web.Request) -> web.Response:
    form = await request.post()
    # No session yet: the form's token must match the cookie set with it (double submit).
    token = form.get("login_token")
    if not sessions.same(request.cookies.get(sessions.LOGIN_COOKIE, ""), token if isinstance(token, str) else None):
        return _sign_in_form(request, "The sign-in form expired. Please try again.", 403)
    key_text = form.get("key")
    key_text = key_text.strip() if isinstance(key_text, str) else ""
    hub = hub_of(request)
    key = await apikeys.authenticate(hub.pool, key_text) if key_text else None
    if key is None:
        return _sign_in_form(request, "That key is unknown or revoked.", 401)
    if not key.allows("admin"):
        return _sign_in_form(request, "This key does not have the admin scope; the console needs an admin key.", 403)
    cookie, _ = await sessions.create(hub, key)
    response = see_other(HOME)
    sessions.set_cookie(request, response, sessions.COOKIE, cookie, sessions.TTL_SECONDS)
    sessions.clear_cookie(response, sessions.LOGIN_COOKIE)
    secure_headers(response)
    return response


@routes.post("/sign-out")
async def sign_out(request: web.Request) -> web.Response:
    await sessions.end(hub_of(request), session_of(request))
    response = see_other(f"{SIGN_IN}?notice=signed-out")
    sessions.clear_cookie(response, sessions.COOKIE)
    return response
