"""/api/v1/segments: audience preview as the marketer types, and saved segments (campaigns scope)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from aiohttp import web

from config.clock import CLOCK
from hub.errors import HubError
from hub.rest import spec
from hub.rest.common import hub_of, json_body, query_int, require_scope
from rooms import payloads
from rooms.render import iso
from store import segments as store
from store.segments import compile_filter

routes = web.RouteTableDef()

PREVIEW_BODY = ("filter", "sample_size")
SEGMENT_BODY = ("name", "filter")
DEFAULT_SAMPLE = 10
MAX_SAMPLE = 50
PAGE = 100


@routes.post("/api/v1/segments/preview")
async def preview(request: web.Request) -> web.Response:
    """Exact user and device counts of a filter, and a few users (by id) as a sample."""
    await require_scope(request, "campaigns")
    body = await json_body(request, PREVIEW_BODY)
    if "filter" not in body:
        raise HubError("invalid_payload", "filter: is required", fields={"filter": "is required"})
    size = payloads.integer(body, "sample_size", minimum=0, maximum=MAX_SAMPLE, default=DEFAULT_SAMPLE)
    assert size is not None
    return web.json_response(await audience(hub_of(request).pool, body["filter"], size))


async def audience(pool: asyncpg.Pool, tree: object, size: int) -> dict[str, Any]:
    """The preview's figures (also the console's live count): raises ``SegmentError`` for a bad filter."""
    condition = compile_filter(tree, now=CLOCK.now())
    (users, opted_out, devices), sample = await asyncio.gather(
        store.count(pool, condition), store.sample(pool, condition, size)
    )
    return {
        "users": users,
        "devices": devices,
        "opted_out": opted_out,
        "sample": [
            {
                "id": r["id"],
                "attributes": r["attributes"],
                "tags": list(r["tags"]),
                "timezone": r["timezone"],
                "locale": r["locale"],
                "marketing_opt_in": r["marketing_opt_in"],
                "last_active_at": iso(r["last_active_at"]),
            }
            for r in sample
        ],
    }


def render(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "filter": row["filter"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def _segment_body(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = payloads.text(body, "name", 200)
    assert name is not None
    tree = body.get("filter")
    if tree is None:
        raise HubError("invalid_payload", "filter: is required", fields={"filter": "is required"})
    compile_filter(tree)
    assert isinstance(tree, dict)
    return name, tree


def segment_id(request: web.Request) -> str:
    value = request.match_info["segment_id"]
    try:
        uuid.UUID(value)
    except ValueError:
        raise HubError("not_found", f"segment {value} does not exist") from None
    return value


@routes.post("/api/v1/segments")
async def create(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    name, tree = _segment_body(await json_body(request, SEGMENT_BODY))
    row = await store.insert(hub_of(request).pool, name, tree)
    return web.json_response(render(row), status=201)


@routes.get("/api/v1/segments")
async def list_segments(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    limit = query_int(request, "limit", minimum=1, maximum=PAGE) or PAGE
    after = request.query.get("cursor") or None
    if after is not None:
        try:
            uuid.UUID(after)
        except ValueError:
            raise HubError("invalid_payload", "cursor: unknown cursor", fields={"cursor": "unknown"}) from None
    rows = await store.page(hub_of(request).pool, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return web.json_response(
        {"segments": [render(r) for r in rows], "next_cursor": str(rows[-1]["id"]) if more else None}
    )


@routes.get("/api/v1/segments/{segment_id}")
async def get(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    row = await store.get(hub_of(request).pool, segment_id(request))
    if row is None:
        raise HubError("not_found", "no such segment")
    return web.json_response(render(row))


@routes.put("/api/v1/segments/{segment_id}")
async def replace(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    sid = segment_id(request)
    name, tree = _segment_body(await json_body(request, SEGMENT_BODY))
    row = await store.update(hub_of(request).pool, sid, name, tree)
    if row is None:
        raise HubError("not_found", "no such segment")
    return web.json_response(render(row))


@routes.delete("/api/v1/segments/{segment_id}")
async def delete(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    sid = segment_id(request)
    pool = hub_of(request).pool
    if await store.in_use(pool, sid):
        raise HubError("conflict", "a campaign not yet finished targets this segment")
    if not await store.delete(pool, sid):
        raise HubError("not_found", "no such segment")
    return web.Response(status=204)


# --- OpenAPI ---

FILTER: spec.Schema = {
    "type": "object",
    "description": (
        "A filter node: {all: [nodes]}, {any: [nodes]}, {not: node} or a leaf {field, op, value}; "
        "see docs/campaigns.md. Invalid filters are answered 422 invalid_filter naming the node."
    ),
}
_NULLABLE_TEXT = spec.nullable({"type": "string"})
SCHEMAS: dict[str, spec.Schema] = {
    "SegmentPreviewBody": spec.strict_object(
        {"filter": spec.ref("SegmentFilter"), "sample_size": {"type": "integer", "minimum": 0, "maximum": MAX_SAMPLE}},
        ["filter"],
    ),
    "SegmentFilter": FILTER,
    "SegmentPreview": spec.strict_object(
        {
            "users": spec.COUNT,
            "devices": spec.COUNT,
            "opted_out": spec.COUNT,
            "sample": {
                "type": "array",
                "items": spec.strict_object(
                    {
                        "id": spec.USER_ID,
                        "attributes": spec.OPEN_OBJECT,
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "timezone": _NULLABLE_TEXT,
                        "locale": _NULLABLE_TEXT,
                        "marketing_opt_in": {"type": "boolean"},
                        "last_active_at": spec.nullable(spec.TIMESTAMP),
                    },
                    ["id", "attributes", "tags", "timezone", "locale", "marketing_opt_in", "last_active_at"],
                ),
            },
        },
        ["users", "devices", "opted_out", "sample"],
    ),
    "SegmentBody": spec.strict_object(
        {"name": {"type": "string", "minLength": 1, "maxLength": 200}, "filter": spec.ref("SegmentFilter")},
        ["name", "filter"],
    ),
    "Segment": spec.strict_object(
        {
            "id": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "filter": spec.ref("SegmentFilter"),
            "created_at": spec.TIMESTAMP,
            "updated_at": spec.TIMESTAMP,
        },
        ["id", "name", "filter", "created_at", "updated_at"],
    ),
    "SegmentList": spec.strict_object(
        {"segments": {"type": "array", "items": spec.ref("Segment")}, "next_cursor": _NULLABLE_TEXT},
        ["segments", "next_cursor"],
    ),
}

_ID = spec.path_param("segment_id", {"type": "string"}, "the segment id")
_DESCRIPTION = "API key with the campaigns scope."
PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/segments/preview": {
        "post": spec.operation(
            "previewSegment",
            "Exact user and device counts of a filter, with a sample of users",
            "segments",
            {"200": spec.json_response("the audience", spec.ref("SegmentPreview")), **spec.errors(400, 401, 403, 422)},
            body=spec.json_body(spec.ref("SegmentPreviewBody")),
            description=_DESCRIPTION,
        )
    },
    "/api/v1/segments": {
        "post": spec.operation(
            "createSegment",
            "Save a filter as a segment",
            "segments",
            {"201": spec.json_response("saved", spec.ref("Segment")), **spec.errors(400, 401, 403, 413, 422)},
            body=spec.json_body(spec.ref("SegmentBody")),
            description=_DESCRIPTION,
        ),
        "get": spec.operation(
            "listSegments",
            "Saved segments, oldest first (cursor pagination)",
            "segments",
            {"200": spec.json_response("a page", spec.ref("SegmentList")), **spec.errors(400, 401, 403)},
            parameters=[
                spec.query_param("limit", {"type": "integer", "minimum": 1, "maximum": PAGE}, "page size"),
                spec.query_param("cursor", {"type": "string"}, "next_cursor of the previous page"),
            ],
            description=_DESCRIPTION,
        ),
    },
    "/api/v1/segments/{segment_id}": {
        "parameters": [_ID],
        "get": spec.operation(
            "getSegment",
            "A saved segment",
            "segments",
            {"200": spec.json_response("the segment", spec.ref("Segment")), **spec.errors(401, 403, 404)},
            description=_DESCRIPTION,
        ),
        "put": spec.operation(
            "replaceSegment",
            "Rename a segment or change its filter",
            "segments",
            {"200": spec.json_response("saved", spec.ref("Segment")), **spec.errors(400, 401, 403, 404, 413, 422)},
            body=spec.json_body(spec.ref("SegmentBody")),
            description=_DESCRIPTION,
        ),
        "delete": spec.operation(
            "deleteSegment",
            "Delete a segment (409 while a campaign not yet finished targets it)",
            "segments",
            {"204": spec.no_content("deleted"), **spec.errors(401, 403, 404, 409)},
            description=_DESCRIPTION,
        ),
    },
}
