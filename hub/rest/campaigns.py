"""/api/v1/campaigns: draft, schedule, cancel and watch campaigns (campaigns scope).

draft → scheduled → running → completed; cancelled from any state before completed.  The
worker's ``campaign_run`` job does the sending (see workers/campaigns.py).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiohttp import web

from config.clock import CLOCK
from hub.context import Hub
from hub.errors import HubError
from hub.rest import spec
from hub.rest.common import hub_of, json_body, query_int, require_scope
from hub.rest.segments import FILTER
from push import content as push_content
from push.schedule import FrequencyCap, QuietHours, Schedule
from rooms import payloads
from rooms.render import iso
from store import campaigns as store
from store import queue
from store import segments as segment_store
from store.segments import compile_filter

routes = web.RouteTableDef()

CAMPAIGN_BODY = (
    "name",
    "segment_id",
    "filter",
    "content",
    "schedule",
    "throttle_per_minute",
    "frequency_cap",
    "quiet_hours",
)
MAX_THROTTLE = 10_000_000
PAGE = 100
PROGRESS_POINTS = 500


def render(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "status": row["status"],
        "segment_id": str(row["segment_id"]) if row["segment_id"] else None,
        "filter": row["filter"],
        "content": row["content"],
        "schedule": row["schedule"],
        "throttle_per_minute": row["throttle_per_minute"],
        "frequency_cap": row["frequency_cap"],
        "quiet_hours": row["quiet_hours"],
        "targeted": row["targeted"],
        "scheduled_at": iso(row["scheduled_at"]),
        "started_at": iso(row["started_at"]),
        "completed_at": iso(row["completed_at"]),
        "cancelled_at": iso(row["cancelled_at"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


async def fields_of(request: web.Request, body: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The campaign's fields: ``base`` with the body's fields checked and laid over it."""
    fields = {**base, **{k: v for k, v in body.items() if k in CAMPAIGN_BODY}}
    name = payloads.text(fields, "name", 200)
    if fields.get("segment_id") is not None and fields.get("filter") is not None:
        raise HubError("invalid_payload", "give segment_id or filter, not both", fields={"filter": "and segment_id"})
    segment = fields.get("segment_id")
    if segment is not None:
        if not isinstance(segment, str) or not is_uuid(segment):
            raise HubError("invalid_payload", "segment_id: must be a segment id", fields={"segment_id": "not an id"})
        if "segment_id" in body and await segment_store.get(hub_of(request).pool, segment) is None:
            raise HubError("unprocessable", "segment_id: no such segment", fields={"segment_id": "no such segment"})
    if fields.get("filter") is not None:
        compile_filter(fields["filter"])
    if "content" not in fields:
        raise HubError("invalid_payload", "content: is required", fields={"content": "is required"})
    throttle = payloads.integer(fields, "throttle_per_minute", minimum=1, maximum=MAX_THROTTLE)
    return {
        "name": name,
        "segment_id": segment,
        "filter": fields.get("filter"),
        "content": push_content.validate(fields["content"]),
        "schedule": Schedule.parse(fields.get("schedule")).to_json(),
        "throttle_per_minute": throttle,
        "frequency_cap": _json(FrequencyCap.parse(fields.get("frequency_cap"))),
        "quiet_hours": _json(QuietHours.parse(fields.get("quiet_hours"))),
    }


def _json(rule: FrequencyCap | QuietHours | None) -> dict[str, Any] | None:
    return rule.to_json() if rule is not None else None


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def campaign_of(request: web.Request) -> Any:
    campaign_id = request.match_info["campaign_id"]
    row = await store.get(hub_of(request).pool, campaign_id) if is_uuid(campaign_id) else None
    if row is None:
        raise HubError("not_found", f"campaign {campaign_id} does not exist")
    return row


def stored(row: Any) -> dict[str, Any]:
    fields = {k: row[k] for k in CAMPAIGN_BODY}
    fields["segment_id"] = str(row["segment_id"]) if row["segment_id"] else None
    return fields


@routes.post("/api/v1/campaigns")
async def create(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    fields = await fields_of(request, await json_body(request, CAMPAIGN_BODY), {})
    row = await store.insert(hub_of(request).pool, fields)
    return web.json_response(render(row), status=201)


@routes.get("/api/v1/campaigns")
async def list_campaigns(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    limit = query_int(request, "limit", minimum=1, maximum=PAGE) or PAGE
    status = request.query.get("status") or None
    if status is not None and status not in store.STATUSES:
        raise HubError("invalid_payload", f"status: one of {', '.join(store.STATUSES)}", fields={"status": "unknown"})
    after = request.query.get("cursor") or None
    if after is not None and not is_uuid(after):
        raise HubError("invalid_payload", "cursor: unknown cursor", fields={"cursor": "unknown"})
    rows = await store.page(hub_of(request).pool, status, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return web.json_response(
        {"campaigns": [render(r) for r in rows], "next_cursor": str(rows[-1]["id"]) if more else None}
    )


@routes.get("/api/v1/campaigns/{campaign_id}")
async def get(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    return web.json_response(render(await campaign_of(request)))


@routes.patch("/api/v1/campaigns/{campaign_id}")
async def patch(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    row = await campaign_of(request)
    body = await json_body(request, CAMPAIGN_BODY)
    if row["status"] != "draft":
        raise HubError("conflict", f"only a draft can be changed; this campaign is {row['status']}")
    fields = await fields_of(request, body, stored(row))
    updated = await store.update_draft(hub_of(request).pool, str(row["id"]), fields)
    if updated is None:
        raise HubError("conflict", "the campaign left the draft state meanwhile")
    return web.json_response(render(updated))


@routes.delete("/api/v1/campaigns/{campaign_id}")
async def delete(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    row = await campaign_of(request)
    if not await store.delete(hub_of(request).pool, str(row["id"])):
        raise HubError("conflict", f"a {row['status']} campaign cannot be deleted; cancel it first")
    return web.Response(status=204)


@routes.post("/api/v1/campaigns/{campaign_id}/schedule")
async def schedule(request: web.Request) -> web.Response:
    """Freeze the audience and start now, at a time, or at a local time in each user's timezone."""
    await require_scope(request, "campaigns")
    row = await campaign_of(request)
    body = await json_body(request, ("schedule",), required=False)
    updated = await schedule_draft(hub_of(request), row, body["schedule"] if "schedule" in body else row["schedule"])
    return web.json_response(render(updated))


async def schedule_draft(hub: Hub, row: Any, schedule: object) -> Any:
    """Freeze the audience of a draft and schedule it (queued now when it starts within a sweep)."""
    if row["status"] != "draft":
        raise HubError("conflict", f"only a draft can be scheduled; this campaign is {row['status']}")
    plan = Schedule.parse(schedule)
    audience = row["filter"]
    if row["segment_id"] is not None:
        segment = await segment_store.get(hub.pool, str(row["segment_id"]))
        audience = segment["filter"] if segment is not None else None
    if audience is None:
        raise HubError("unprocessable", "the campaign has no audience: give it a segment_id or a filter")
    compile_filter(audience)
    now = CLOCK.now()
    start = plan.start_at(now)
    updated = await store.schedule(hub.pool, str(row["id"]), plan.to_json(), audience, start)
    if updated is None:
        raise HubError("conflict", "the campaign left the draft state meanwhile")
    wait = (start - now).total_seconds()
    if wait <= hub.settings.sweep_interval:  # later ones are queued by the workers' sweeper
        await queue.enqueue_campaign(hub.arq, hub.settings.queue_name, str(row["id"]), defer=wait or None)
    return updated


@routes.post("/api/v1/campaigns/{campaign_id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    """Stop sending: nothing more is queued, deliveries not yet sent are skipped (reason cancelled)."""
    await require_scope(request, "campaigns")
    row = await campaign_of(request)
    async with hub_of(request).pool.acquire() as conn:
        cancelled = await store.cancel(conn, str(row["id"]), CLOCK.now())
    if cancelled is None:
        raise HubError("conflict", f"a {row['status']} campaign cannot be cancelled")
    return web.json_response(render(cancelled))


@routes.get("/api/v1/campaigns/{campaign_id}/stats")
async def stats(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    return web.json_response(await stats_of(hub_of(request).pool, await campaign_of(request)))


async def stats_of(pool: asyncpg.Pool, row: Any) -> dict[str, Any]:
    """The figures of GET /campaigns/{id}/stats (also polled by the console)."""
    figures = await store.summary(pool, str(row["id"]))
    points = await store.progress(pool, str(row["id"]), PROGRESS_POINTS)
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "targeted": row["targeted"],
        **figures,
        "progress": [{"at": iso(p["at"]), **p["counts"]} for p in points],
    }


# --- OpenAPI ---

_TEXT = {"type": "string"}
_NULLABLE_TEXT = spec.nullable(_TEXT)
_VARIANT: spec.Schema = {
    "type": "object",
    "description": "a notification object (see NewNotification); title, body and data values may use {{attr|fallback}}",
}
CONTENT = spec.strict_object(
    {"default": _VARIANT, "locales": {"type": "object", "additionalProperties": _VARIANT}}, ["default"]
)
SCHEDULE = spec.strict_object(
    {
        "kind": {"enum": ["now", "at", "local"]},
        "at": {**spec.TIMESTAMP, "description": "kind at: when (with a timezone)"},
        "local_time": {"type": "string", "description": "kind local: a wall-clock time, 2026-05-01T09:00:00"},
        "fallback_timezone": {"type": "string", "description": "for users with no known timezone (UTC)"},
    }
)
CAP = spec.strict_object(
    {"max": {"type": "integer", "minimum": 1}, "window_hours": {"type": "integer", "minimum": 1}},
    ["max", "window_hours"],
)
QUIET = spec.strict_object(
    {"start": _TEXT, "end": _TEXT, "action": {"enum": ["defer", "skip"]}},
    ["start", "end"],
)
_BODY_FIELDS: dict[str, spec.Schema] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "segment_id": spec.nullable({"type": "string", "format": "uuid"}),
    "filter": spec.nullable(FILTER),
    "content": spec.ref("CampaignContent"),
    "schedule": spec.ref("CampaignSchedule"),
    "throttle_per_minute": spec.nullable({"type": "integer", "minimum": 1, "maximum": MAX_THROTTLE}),
    "frequency_cap": spec.nullable(spec.ref("FrequencyCap")),
    "quiet_hours": spec.nullable(spec.ref("QuietHours")),
}
_COUNTS: dict[str, spec.Schema] = {
    "sent": spec.COUNT,
    "skipped": spec.COUNT,
    "skipped_reasons": {"type": "object", "additionalProperties": spec.COUNT},
    "delivered": spec.COUNT,
    "failed": spec.COUNT,
    "pruned": spec.COUNT,
    "deliveries_skipped": spec.COUNT,
    "pending": spec.COUNT,
    "opened": spec.COUNT,
}
SCHEMAS: dict[str, spec.Schema] = {
    "CampaignContent": CONTENT,
    "CampaignSchedule": SCHEDULE,
    "FrequencyCap": CAP,
    "QuietHours": QUIET,
    "NewCampaign": spec.strict_object(_BODY_FIELDS, ["name", "content"]),
    "CampaignPatch": spec.strict_object(_BODY_FIELDS),
    "ScheduleBody": spec.strict_object({"schedule": spec.ref("CampaignSchedule")}),
    "Campaign": spec.strict_object(
        {
            "id": {"type": "string", "format": "uuid"},
            "name": _TEXT,
            "status": {"enum": list(store.STATUSES)},
            "segment_id": spec.nullable(_TEXT),
            "filter": spec.nullable(FILTER),
            "content": spec.ref("CampaignContent"),
            "schedule": spec.ref("CampaignSchedule"),
            "throttle_per_minute": spec.nullable({"type": "integer"}),
            "frequency_cap": spec.nullable(spec.ref("FrequencyCap")),
            "quiet_hours": spec.nullable(spec.ref("QuietHours")),
            "targeted": spec.nullable(spec.COUNT),
            "scheduled_at": spec.nullable(spec.TIMESTAMP),
            "started_at": spec.nullable(spec.TIMESTAMP),
            "completed_at": spec.nullable(spec.TIMESTAMP),
            "cancelled_at": spec.nullable(spec.TIMESTAMP),
            "created_at": spec.TIMESTAMP,
            "updated_at": spec.TIMESTAMP,
        },
        [
            "id",
            "name",
            "status",
            "segment_id",
            "filter",
            "content",
            "schedule",
            "throttle_per_minute",
            "frequency_cap",
            "quiet_hours",
            "targeted",
            "scheduled_at",
            "started_at",
            "completed_at",
            "cancelled_at",
            "created_at",
            "updated_at",
        ],
    ),
    "CampaignList": spec.strict_object(
        {"campaigns": {"type": "array", "items": spec.ref("Campaign")}, "next_cursor": _NULLABLE_TEXT},
        ["campaigns", "next_cursor"],
    ),
    "CampaignStats": spec.strict_object(
        {
            "id": {"type": "string", "format": "uuid"},
            "status": {"enum": list(store.STATUSES)},
            "targeted": spec.nullable(spec.COUNT),
            **_COUNTS,
            "progress": {
                "type": "array",
                "items": spec.strict_object({"at": spec.TIMESTAMP, **_COUNTS}, ["at", *_COUNTS]),
            },
        },
        ["id", "status", "targeted", *_COUNTS, "progress"],
    ),
}

_ID = spec.path_param("campaign_id", {"type": "string"}, "the campaign id")
_DESCRIPTION = "API key with the campaigns scope."
_ONE = {"200": spec.json_response("the campaign", spec.ref("Campaign"))}
PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/campaigns": {
        "post": spec.operation(
            "createCampaign",
            "Create a draft campaign",
            "campaigns",
            {"201": spec.json_response("created", spec.ref("Campaign")), **spec.errors(400, 401, 403, 413, 422)},
            body=spec.json_body(spec.ref("NewCampaign")),
            description=_DESCRIPTION,
        ),
        "get": spec.operation(
            "listCampaigns",
            "Campaigns, oldest first (cursor pagination), optionally of one status",
            "campaigns",
            {"200": spec.json_response("a page", spec.ref("CampaignList")), **spec.errors(400, 401, 403)},
            parameters=[
                spec.query_param("status", {"enum": list(store.STATUSES)}, "only campaigns in this state"),
                spec.query_param("limit", {"type": "integer", "minimum": 1, "maximum": PAGE}, "page size"),
                spec.query_param("cursor", _TEXT, "next_cursor of the previous page"),
            ],
            description=_DESCRIPTION,
        ),
    },
    "/api/v1/campaigns/{campaign_id}": {
        "parameters": [_ID],
        "get": spec.operation(
            "getCampaign", "A campaign", "campaigns", {**_ONE, **spec.errors(401, 403, 404)}, description=_DESCRIPTION
        ),
        "patch": spec.operation(
            "updateCampaign",
            "Change a draft (fields left out keep their value)",
            "campaigns",
            {**_ONE, **spec.errors(400, 401, 403, 404, 409, 413, 422)},
            body=spec.json_body(spec.ref("CampaignPatch")),
            description=_DESCRIPTION,
        ),
        "delete": spec.operation(
            "deleteCampaign",
            "Delete a campaign that is not under way (draft, completed or cancelled)",
            "campaigns",
            {"204": spec.no_content("deleted"), **spec.errors(401, 403, 404, 409)},
            description=_DESCRIPTION,
        ),
    },
    "/api/v1/campaigns/{campaign_id}/schedule": {
        "parameters": [_ID],
        "post": spec.operation(
            "scheduleCampaign",
            "Schedule a draft: now, at a time, or at a local time in each user's timezone",
            "campaigns",
            {**_ONE, **spec.errors(400, 401, 403, 404, 409, 413, 422)},
            body=spec.json_body(spec.ref("ScheduleBody"), "optional: a schedule replacing the draft's", required=False),
            description=_DESCRIPTION,
        ),
    },
    "/api/v1/campaigns/{campaign_id}/cancel": {
        "parameters": [_ID],
        "post": spec.operation(
            "cancelCampaign",
            "Cancel a campaign before it completes; sending stops within seconds",
            "campaigns",
            {**_ONE, **spec.errors(401, 403, 404, 409)},
            description=_DESCRIPTION,
        ),
    },
    "/api/v1/campaigns/{campaign_id}/stats": {
        "parameters": [_ID],
        "get": spec.operation(
            "campaignStats",
            "Targeted, sent, delivered, failed, pruned, skipped (and why), opened, and progress over time",
            "campaigns",
            {"200": spec.json_response("the figures", spec.ref("CampaignStats")), **spec.errors(401, 403, 404)},
            description=_DESCRIPTION,
        ),
    },
}
