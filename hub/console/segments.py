"""Segment pages: the saved segments, and a filter builder with a live audience count."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from campaigns import segments as domain
from campaigns.filters import ATTRIBUTE_OPS, FIELDS
from config.errors import Code
from hub.console.html import Safe, join, json_block, render, tag
from hub.console.layout import error_box, page, see_other, session_of, when
from hub.errors import as_hub_error
from hub.rest.common import hub_of
from store import segments as store

routes = web.RouteTableDef()
PAGE = 100
EXAMPLE: dict[str, Any] = {"all": []}
SCHEMA = {"fields": {name: list(ops) for name, (_, _, ops) in FIELDS.items()}, "attribute_ops": list(ATTRIBUTE_OPS)}


@routes.get("/segments")
async def list_page(request: web.Request) -> web.Response:
    rows = await store.page(hub_of(request).pool, None, PAGE)
    items = [
        tag(
            "tr",
            join(
                [
                    tag("td", tag("a", r["name"], href=f"/console/segments/{r['id']}")),
                    tag("td", _summary(r["filter"]), class_="muted"),
                    tag("td", when(r["updated_at"])),
                    tag("td", tag("a", "Compose a campaign", href=f"/console/campaigns/new?segment={r['id']}")),
                ]
            ),
        )
        for r in rows
    ]
    table = (
        Safe(
            '<table class="table"><thead><tr><th>Name</th><th>Filter</th><th>Updated</th><th></th></tr></thead>'
            f"<tbody>{join(items)}</tbody></table>"
        )
        if items
        else Safe('<p class="empty">No segments yet. Build one to target a campaign.</p>')
    )
    body = Safe(
        '<div class="page-head"><h1>Segments</h1>'
        '<div class="head-actions"><a class="btn btn-primary" href="/console/segments/new" id="new-segment">'
        f'New segment</a></div></div><section class="card flush">{table}</section>'
    )
    return page(request, "Segments", body, nav="segments")


def _summary(tree: Any) -> str:
    if isinstance(tree, dict) and len(tree) == 1:
        ((kind, children),) = tree.items()
        if kind in ("all", "any") and isinstance(children, list):
            if not children:
                return "everyone" if kind == "all" else "nobody"
            n = len(children)
            return f"{kind} of {n} condition{'s' if n != 1 else ''}"
    return "custom filter"


def _builder(
    request: web.Request, *, sid: str | None, name: str, tree_text: str, error: str | None = None, status: int = 200
) -> web.Response:
    body = render(
        "segment.html",
        heading="Edit segment" if sid else "New segment",
        action=f"/console/segments/{sid}" if sid else "/console/segments",
        csrf=session_of(request).csrf,
        name=name,
        filter=tree_text,
        error=error_box(error),
        compose_link=(
            tag("a", "Compose a campaign", href=f"/console/campaigns/new?segment={sid}", class_="btn btn-quiet")
            if sid
            else Safe("")
        ),
        schema=json_block("segment-schema", SCHEMA),
    )
    return page(request, name or "New segment", body, nav="segments", status=status)


@routes.get("/segments/new")
async def new_page(request: web.Request) -> web.Response:
    return _builder(request, sid=None, name="", tree_text=json.dumps(EXAMPLE))


@routes.get("/segments/{segment_id}")
async def edit_page(request: web.Request) -> web.Response:
    sid = domain.checked_id(request.match_info["segment_id"])
    row = await store.get(hub_of(request).pool, sid)
    if row is None:
        return _builder(request, sid=None, name="", tree_text=json.dumps(EXAMPLE), error="No such segment.", status=404)
    return _builder(request, sid=sid, name=row["name"], tree_text=json.dumps(row["filter"], indent=1))


@routes.post("/segments")
@routes.post("/segments/{segment_id}")
async def save(request: web.Request) -> web.Response:
    sid = domain.checked_id(request.match_info["segment_id"]) if "segment_id" in request.match_info else None
    form = await request.post()
    name, tree_text = str(form.get("name", "")).strip(), str(form.get("filter", ""))
    try:
        tree = json.loads(tree_text)
    except ValueError:
        error = "The filter is not valid JSON."
        return _builder(request, sid=sid, name=name, tree_text=tree_text, error=error, status=400)
    pool = hub_of(request).pool
    try:
        name, tree = domain.checked({"name": name, "filter": tree})
        row = await (store.update(pool, sid, name, tree) if sid else store.insert(pool, name, tree))
    except Exception as exc:
        err = as_hub_error(exc)
        if err.code == Code.INTERNAL:
            raise
        return _builder(request, sid=sid, name=name, tree_text=tree_text, error=err.message, status=422)
    if row is None:
        return _builder(request, sid=None, name=name, tree_text=tree_text, error="No such segment.", status=404)
    return see_other(f"/console/segments/{row['id']}?notice=saved")
