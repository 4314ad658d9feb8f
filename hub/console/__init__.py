"""The marketers' console at ``/console``: server-rendered pages, a little JavaScript of our own.

Sign in with an admin API key; a session cookie (see :mod:`hub.console.sessions`) and a CSRF
token guard every page and every state-changing request.  Pages: campaigns (list, compose,
launch, cancel, live stats) and segments (a filter builder with a live audience count).  The
script's JSON endpoints live under ``/console/api/`` (session + CSRF, not part of /api/v1).

The console is a sub-application, so its middleware (sessions, CSRF, headers, HTML error pages)
covers its routes only; the rules it applies are the campaigns domain's (campaigns/), as REST's are.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hub.console import auth
from hub.console.api import routes as api_routes
from hub.console.campaigns import routes as campaign_routes
from hub.console.compose import routes as compose_routes
from hub.console.middleware import console_middleware
from hub.console.segments import routes as segment_routes

STATIC = Path(__file__).parent / "static"


def setup(app: web.Application) -> None:
    """Mount the console under /console on the hub's app."""
    console = web.Application(middlewares=[console_middleware])
    for routes in (auth.routes, compose_routes, campaign_routes, segment_routes, api_routes):  # /new before /{id}
        console.add_routes(routes)
    console.router.add_static("/static", STATIC, name="static")
    app.router.add_get("/console", auth.root)
    app.add_subapp("/console", console)
