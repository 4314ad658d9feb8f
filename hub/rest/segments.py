"""/api/v1/segments: audience preview as the marketer types, and saved segments (campaigns scope).

The rules are the campaigns domain's (:mod:`campaigns.segments`); this module reads requests and
writes answers.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from campaigns import filters
from campaigns import segments as domain
from config.clock import iso
from config.errors import Code
from hub.errors import HubError
from hub.rest import spec
from hub.rest.common import hub_of, json_body, query_int, require_scope
from store import segments as store

routes = web.RouteTableDef()

PAGE = 100


@routes.post("/api/v1/segments/preview")
async def preview(request: web.Request) -> web.Response:
    """Exact user and device counts of a filter, and a few users (by id) as a sample."""
    await require_scope(request, "campaigns")
    body = await json_body(request, domain.PREVIEW)
    return web.json_response(await domain.preview(hub_of(request).pool, body))


def render(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "filter": row["filter"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


@routes.post("/api/v1/segments")
async def create(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    row = await domain.create(hub_of(request).pool, await json_body(request, domain.SEGMENT))
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
            raise HubError(Code.INVALID_PAYLOAD, "cursor: unknown cursor", fields={"cursor": "unknown"}) from None
    rows = await store.page(hub_of(request).pool, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return web.json_response(
        {"segments": [render(r) for r in rows], "next_cursor": str(rows[-1]["id"]) if more else None}
    )


@routes.get("/api/v1/segments/{segment_id}")
async def get(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    return web.json_response(render(await domain.get(hub_of(request).pool, request.match_info["segment_id"])))


@routes.put("/api/v1/segments/{segment_id}")
async def replace(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    segment_id = domain.checked_id(request.match_info["segment_id"])
    body = await json_body(request, domain.SEGMENT)
    return web.json_response(render(await domain.replace(hub_of(request).pool, segment_id, body)))


@routes.delete("/api/v1/segments/{segment_id}")
async def delete(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    await domain.delete(hub_of(request).pool, request.match_info["segment_id"])
    return web.Response(status=204)


# --- OpenAPI ---

_NULLABLE_TEXT = spec.nullable({"type": "string"})
SCHEMAS: dict[str, spec.Schema] = {
    "SegmentPreviewBody": domain.PREVIEW.schema(),
    "SegmentFilter": filters.SCHEMA,
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
    "SegmentBody": domain.SEGMENT.schema(),
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
