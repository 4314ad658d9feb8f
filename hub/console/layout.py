"""The page frame (header, navigation, notices), security headers and error pages of the console."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from hub.console.html import Safe, render, tag
from hub.console.sessions import Session

# aiohttp 3.13 added typed request keys; older versions take a plain string.
SESSION: Any = (
    web.RequestKey("herald_console_session", Session) if hasattr(web, "RequestKey") else "herald_console_session"
)
EMPTY = Safe("")
DASH = "\u2013"  # shown for a figure not known yet
SIGN_IN = "/console/sign-in"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
NOTICES = {
    "signed-out": "You are signed out.",
    "saved": "Saved.",
    "launched": "The campaign is launched.",
    "scheduled": "The campaign is scheduled.",
    "cancelled": "The campaign is cancelled.",
}


def session_of(request: web.Request) -> Session:
    session: Session = request[SESSION]
    return session


def page(request: web.Request, title: str, body: Safe, *, nav: str = "campaigns", status: int = 200) -> web.Response:
    """A full page for a signed-in marketer."""
    session = session_of(request)
    header = render(
        "header.html",
        csrf=session.csrf,
        key_name=session.key_name,
        campaigns_active="active" if nav == "campaigns" else "",
        segments_active="active" if nav == "segments" else "",
    )
    return bare(request, title, body, header=header, csrf=session.csrf, status=status)


def bare(
    request: web.Request,
    title: str,
    body: Safe,
    *,
    header: Safe = EMPTY,
    csrf: str = "",
    status: int = 200,
    body_class: str = "",
) -> web.Response:
    notice = NOTICES.get(request.query.get("notice", ""))
    text = render(
        "layout.html",
        title=title,
        csrf=csrf,
        header=header,
        notice=tag("div", notice, class_="notice", role="status") if notice else Safe(""),
        body=body,
        body_class=body_class,
    )
    return web.Response(text=text, content_type="text/html", status=status)


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def secure_headers(response: web.StreamResponse, *, cache: bool = False) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if not cache:
        response.headers["Cache-Control"] = "no-store"


def error_box(message: str | None) -> Safe:
    return tag("div", message, class_="alert", role="alert") if message else Safe("")


def badge(status: str) -> Safe:
    return tag("span", status, class_=f"badge badge-{status}")


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else DASH


def number(value: int | None) -> str:
    return f"{value:,}" if value is not None else DASH


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    body = Safe(
        f'<section class="card narrow"><h1>Something went wrong</h1>{error_box(message)}'
        f'<p><a href="/console/campaigns">Back to the campaigns</a></p></section>'
    )
    if SESSION in request:
        return page(request, "Error", body, status=status)
    return bare(request, "Error", body, status=status)
