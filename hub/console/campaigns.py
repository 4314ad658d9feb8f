"""Campaign pages: the list, one campaign (launch, cancel, live stats); composing is in compose.py."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from campaigns import drafts
from campaigns.errors import CampaignError
from campaigns.preview import personalised, sample_user
from campaigns.schedule import zone
from campaigns.segments import audience
from campaigns.stats import stats_of
from config.errors import Code
from hub.console.html import Safe, join, json_block, render, tag
from hub.console.layout import DASH, EMPTY, badge, error_box, number, page, see_other, session_of, when
from hub.errors import HubError, as_hub_error
from hub.rest.common import hub_of
from store import campaigns as store
from store import segments as segment_store

routes = web.RouteTableDef()
LIST_SIZE = 100
FORM = MultiDictProxy[Any]  # what request.post() gives


# --- the list ---


@routes.get("/campaigns")
async def list_page(request: web.Request) -> web.Response:
    rows = await store.recent(hub_of(request).pool, LIST_SIZE)
    items = [
        tag(
            "tr",
            join(
                [
                    tag("td", tag("a", r["name"], href=f"/console/campaigns/{r['id']}")),
                    tag("td", badge(r["status"])),
                    tag("td", number(r["targeted"]), class_="num"),
                    tag("td", number(r["sent"]), class_="num"),
                    tag("td", number(r["delivered"]), class_="num"),
                    tag("td", when(r["scheduled_at"] or r["created_at"])),
                ]
            ),
            data_status=r["status"],
        )
        for r in rows
    ]
    table = (
        Safe(
            '<table class="table" id="campaigns"><thead><tr><th>Name</th><th>Status</th><th class="num">Targeted</th>'
            '<th class="num">Users sent</th><th class="num">Delivered</th><th>Scheduled / created</th></tr></thead>'
            f"<tbody>{join(items)}</tbody></table>"
        )
        if items
        else Safe('<p class="empty">No campaigns yet. Build a segment, then compose a campaign for it.</p>')
    )
    body = Safe(
        '<div class="page-head"><h1>Campaigns</h1><div class="head-actions">'
        '<a class="btn btn-quiet" href="/console/segments/new">New segment</a>'
        '<a class="btn btn-primary" href="/console/campaigns/new" id="new-campaign">New campaign</a>'
        f'</div></div><section class="card flush">{table}</section>'
    )
    return page(request, "Campaigns", body)


def page_message(exc: Exception) -> str:
    """A domain error's message for the page; anything unexpected goes on to the error page."""
    err = as_hub_error(exc)
    if err.code in (Code.INTERNAL, Code.UNAVAILABLE):
        raise exc
    return err.message


# --- one campaign: launch, cancel, stats ---


async def campaign_of(request: web.Request) -> Any:
    return await drafts.get(hub_of(request).pool, request.match_info["campaign_id"])


def _phone(preview: Mapping[str, Any]) -> Safe:
    return Safe(
        '<div class="phone"><div class="push"><div class="push-app"><span class="brand-mark small">H</span>HERALD '
        f'<span class="push-when">now</span></div>{tag("div", preview["title"], class_="push-title")}'
        f"{tag('div', preview['body'], class_='push-body')}</div></div>"
        + tag("p", f"Locale {preview['locale'] or 'unknown'}: the {preview['variant']} variant.", class_="muted small")
    )


def _content_table(content: Mapping[str, Any]) -> Safe:
    variants = [("default", content.get("default") or {})]
    variants += list((content.get("locales") or {}).items())
    rows = [
        tag("tr", join([tag("td", tag("code", k)), tag("td", v.get("title", "")), tag("td", v.get("body", ""))]))
        for k, v in variants
    ]
    return Safe(
        '<table class="table compact"><thead><tr><th>Variant</th><th>Title</th><th>Body</th></tr></thead>'
        f"<tbody>{join(rows)}</tbody></table>"
    )


async def _campaign_page(
    request: web.Request, row: Any, *, error: str | None = None, status: int = 200
) -> web.Response:
    pool = hub_of(request).pool
    csrf = session_of(request).csrf
    campaign_id = str(row["id"])
    segment = await segment_store.get(pool, str(row["segment_id"])) if row["segment_id"] else None
    tree = row["audience"] or (segment["filter"] if segment is not None else row["filter"])
    user_id = request.query.get("user") or await sample_user(pool, tree)
    if user_id:
        try:
            preview = _phone(await personalised(pool, row["content"], user_id))
        except Exception as exc:
            preview = error_box(page_message(exc))
    else:
        preview = tag("p", "The audience is empty: nobody to preview with.", class_="muted")
    actions: list[Safe] = []
    if row["status"] == "draft":
        actions.append(tag("a", "Edit", href=f"/console/campaigns/{campaign_id}/edit", class_="btn btn-quiet"))
    if row["status"] in store.LIVE:
        actions.append(
            Safe(
                f'<form method="post" action="/console/campaigns/{campaign_id}/cancel" class="inline-form">'
                f'<input type="hidden" name="csrf_token" value="{csrf}">'
                '<button type="submit" class="btn btn-danger" id="cancel" data-confirm="Cancel this campaign?">'
                "Cancel campaign</button></form>"
            )
        )
    launch = EMPTY
    if row["status"] == "draft":
        size = (await audience(pool, tree, 0))["users"] if tree is not None else 0
        launch = render("launch.html", campaign_id=campaign_id, csrf=csrf, audience=number(size))
    moments = [
        ("completed", row["completed_at"]),
        ("cancelled", row["cancelled_at"]),
        ("started", row["started_at"]),
        ("scheduled for", row["scheduled_at"]),
        ("created", row["created_at"]),
    ]
    label, moment = next((m for m in moments if m[1] is not None), moments[-1])
    body = render(
        "campaign.html",
        name=row["name"],
        status=row["status"],
        segment=segment["name"] if segment is not None else "inline filter",
        when=f"{label} {when(moment)}",
        actions=join(actions),
        error=error_box(error),
        launch=launch,
        content=_content_table(row["content"]),
        preview_user=user_id or DASH,
        preview=preview,
        campaign_id=campaign_id,
        stats=json_block("stats-data", await stats_of(pool, row)),
    )
    return page(request, row["name"], body, status=status)


@routes.get("/campaigns/{campaign_id}")
async def campaign_page(request: web.Request) -> web.Response:
    return await _campaign_page(request, await campaign_of(request))


def schedule_of(form: FORM) -> dict[str, Any]:
    """The schedule the launch form describes (REST's shape; campaigns.schedule checks it)."""
    kind = str(form.get("kind", "now"))
    if kind == "at":
        tz_name = str(form.get("at_timezone", "UTC")).strip() or "UTC"
        tz = zone(tz_name)
        if tz is None:
            raise HubError(Code.INVALID_PAYLOAD, f"{tz_name} is not a timezone such as Europe/Paris.")
        try:
            at = datetime.fromisoformat(str(form.get("at", ""))).replace(tzinfo=tz)
        except ValueError:
            raise HubError(Code.INVALID_PAYLOAD, "Give the time to start at.") from None
        return {"kind": "at", "at": at.isoformat()}
    if kind == "local":
        local = str(form.get("local_time", ""))
        fallback = str(form.get("fallback_timezone", "UTC")).strip() or "UTC"
        if len(local) == len("2026-05-01T09:00"):
            local += ":00"
        return {"kind": "local", "local_time": local, "fallback_timezone": fallback}
    return {"kind": "now"}


@routes.post("/campaigns/{campaign_id}/schedule")
async def schedule(request: web.Request) -> web.Response:
    row = await campaign_of(request)
    try:
        plan = schedule_of(await request.post())
        hub = hub_of(request)
        await drafts.schedule(
            hub.pool,
            hub.arq,
            row,
            plan,
            queue_name=hub.settings.queue_name,
            sweep_interval=hub.settings.sweep_interval,
        )
    except Exception as exc:
        message = page_message(exc)
        return await _campaign_page(request, await campaign_of(request), error=message, status=422)
    notice = "launched" if plan["kind"] == "now" else "scheduled"
    return see_other(f"/console/campaigns/{row['id']}?notice={notice}")


@routes.post("/campaigns/{campaign_id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    row = await campaign_of(request)
    try:
        await drafts.cancel(hub_of(request).pool, row)
    except CampaignError as exc:
        return await _campaign_page(request, row, error=f"{exc.message[:1].upper()}{exc.message[1:]}.", status=409)
    return see_other(f"/console/campaigns/{row['id']}?notice=cancelled")
