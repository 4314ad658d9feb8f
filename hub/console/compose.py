"""Composing a campaign: the form for a new draft and for editing one, with a live preview (api.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from campaigns import drafts
from config.errors import Code
from hub.console.campaigns import FORM, campaign_of, page_message
from hub.console.html import Safe, join, render, tag
from hub.console.layout import error_box, page, see_other, session_of
from hub.errors import HubError
from hub.rest.common import hub_of
from store import segments as segment_store

routes = web.RouteTableDef()
SEGMENT_CHOICES = 200


def _locale_row(locale: str = "", title: str = "", body: str = "") -> Safe:
    return render("locale_row.html", locale=locale, title=title, body=body)


async def _compose(
    request: web.Request,
    values: Mapping[str, Any],
    *,
    campaign_id: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    segments = await segment_store.page(hub_of(request).pool, None, SEGMENT_CHOICES)
    chosen = values.get("segment_id") or ""
    options = [tag("option", "Choose a segment…", value="", disabled=True, selected=not chosen)]
    options += [tag("option", s["name"], value=str(s["id"]), selected=str(s["id"]) == chosen) for s in segments]
    locales = values.get("locales") or []
    body = render(
        "compose.html",
        heading="Edit draft" if campaign_id else "New campaign",
        action=f"/console/campaigns/{campaign_id}/edit" if campaign_id else "/console/campaigns",
        csrf=session_of(request).csrf,
        error=error_box(error),
        name=values.get("name", ""),
        segment_options=join(options),
        title=values.get("title", ""),
        body=values.get("body", ""),
        locale_rows=join([_locale_row(*row) for row in locales]),
        blank_locale_row=_locale_row(),
        throttle=values.get("throttle_per_minute") or "",
    )
    return page(request, "Compose", body, status=status)


def _values_of(row: Any) -> dict[str, Any]:
    content = row["content"] or {}
    default = content.get("default") or {}
    return {
        "name": row["name"],
        "segment_id": str(row["segment_id"]) if row["segment_id"] else "",
        "title": default.get("title", ""),
        "body": default.get("body", ""),
        "locales": [(k, v.get("title", ""), v.get("body", "")) for k, v in (content.get("locales") or {}).items()],
        "throttle_per_minute": row["throttle_per_minute"],
    }


def _form_values(form: FORM) -> dict[str, Any]:
    def texts(name: str) -> list[str]:
        return [v.strip() if isinstance(v, str) else "" for v in form.getall(name, [])]

    rows = zip(texts("locale"), texts("locale_title"), texts("locale_body"), strict=False)
    return {
        "name": str(form.get("name", "")).strip(),
        "segment_id": str(form.get("segment_id", "")),
        "title": str(form.get("title", "")).strip(),
        "body": str(form.get("body", "")).strip(),
        "locales": [row for row in rows if any(row)],
        "throttle_per_minute": str(form.get("throttle_per_minute", "")).strip(),
    }


def content_of(title: str, body: str, locales: list[tuple[str, str, str]] | list[list[str]]) -> dict[str, Any]:
    def variant(t: str, b: str) -> dict[str, Any]:
        return {"title": t, "body": b} if b else {"title": t}

    content: dict[str, Any] = {"default": variant(title, body)}
    if locales:
        content["locales"] = {code: variant(t, b) for code, t, b in locales}
    return content


def _body_of(values: dict[str, Any]) -> dict[str, Any]:
    throttle = values["throttle_per_minute"]
    if throttle and not str(throttle).isdigit():
        raise HubError(Code.INVALID_PAYLOAD, "The throttle must be a whole number of users per minute.")
    return {
        "name": values["name"],
        "segment_id": values["segment_id"] or None,
        "content": content_of(values["title"], values["body"], values["locales"]),
        "throttle_per_minute": int(throttle) if throttle else None,
    }


@routes.get("/campaigns/new")
async def new_page(request: web.Request) -> web.Response:
    return await _compose(request, {"segment_id": request.query.get("segment", "")})


@routes.post("/campaigns")
async def create(request: web.Request) -> web.Response:
    values = _form_values(await request.post())
    try:
        if not values["segment_id"]:
            raise HubError(Code.INVALID_PAYLOAD, "Choose a segment: the campaign's audience.")
        row = await drafts.create(hub_of(request).pool, _body_of(values))
    except Exception as exc:
        return await _compose(request, values, error=page_message(exc), status=422)
    return see_other(f"/console/campaigns/{row['id']}?notice=saved")


@routes.get("/campaigns/{campaign_id}/edit")
async def edit_page(request: web.Request) -> web.Response:
    row = await campaign_of(request)
    if row["status"] != "draft":
        return see_other(f"/console/campaigns/{row['id']}")
    return await _compose(request, _values_of(row), campaign_id=str(row["id"]))


@routes.post("/campaigns/{campaign_id}/edit")
async def update(request: web.Request) -> web.Response:
    row = await campaign_of(request)
    values = _form_values(await request.post())
    try:
        await drafts.change(hub_of(request).pool, row, _body_of(values))
    except Exception as exc:
        return await _compose(request, values, campaign_id=str(row["id"]), error=page_message(exc), status=422)
    return see_other(f"/console/campaigns/{row['id']}?notice=saved")
