"""/api/v1/campaigns: draft, schedule, cancel and watch campaigns (campaigns scope).

draft → scheduled → running → completed; cancelled from any state before completed.  The rules
are the campaigns domain's (:mod:`campaigns.drafts`); the worker's ``campaign_run`` job does the
sending (see workers/campaigns.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from campaigns import content, drafts
from campaigns import schedule as schedules
from campaigns.stats import stats_of
from config.clock import iso
from config.errors import Code
from hub.errors import HubError
from hub.rest import spec
from hub.rest.common import hub_of, json_body, query_int, require_scope
from store import campaigns as store

routes = web.RouteTableDef()

PAGE = 100


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


async def campaign_of(request: web.Request) -> Any:
    return await drafts.get(hub_of(request).pool, request.match_info["campaign_id"])


@routes.post("/api/v1/campaigns")
async def create(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    row = await drafts.create(hub_of(request).pool, await json_body(request, drafts.DRAFT))
    return web.json_response(render(row), status=201)


@routes.get("/api/v1/campaigns")
async def list_campaigns(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    limit = query_int(request, "limit", minimum=1, maximum=PAGE) or PAGE
    status = request.query.get("status") or None
    if status is not None and status not in store.STATUSES:
        raise HubError(
            Code.INVALID_PAYLOAD, f"status: one of {', '.join(store.STATUSES)}", fields={"status": "unknown"}
        )
    after = request.query.get("cursor") or None
    if after is not None and not drafts.is_uuid(after):
        raise HubError(Code.INVALID_PAYLOAD, "cursor: unknown cursor", fields={"cursor": "unknown"})
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
    body = await json_body(request, drafts.DRAFT)
    return web.json_response(render(await drafts.change(hub_of(request).pool, row, body)))


@routes.delete("/api/v1/campaigns/{campaign_id}")
async def delete(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    await drafts.delete(hub_of(request).pool, await campaign_of(request))
    return web.Response(status=204)


@routes.post("/api/v1/campaigns/{campaign_id}/schedule")
async def schedule(request: web.Request) -> web.Response:
    """Freeze the audience and start now, at a time, or at a local time in each user's timezone."""
    await require_scope(request, "campaigns")
    row = await campaign_of(request)
    body = await json_body(request, drafts.SCHEDULE, required=False)
    hub = hub_of(request)
    updated = await drafts.schedule(
        hub.pool,
        hub.arq,
        row,
        body["schedule"] if "schedule" in body else row["schedule"],
        queue_name=hub.settings.queue_name,
        sweep_interval=hub.settings.sweep_interval,
    )
    return web.json_response(render(updated))


@routes.post("/api/v1/campaigns/{campaign_id}/cancel")
async def cancel(request: web.Request) -> web.Response:
    """Stop sending: nothing more is queued, deliveries not yet sent are skipped (reason cancelled)."""
    await require_scope(request, "campaigns")
    return web.json_response(render(await drafts.cancel(hub_of(request).pool, await campaign_of(request))))


@routes.get("/api/v1/campaigns/{campaign_id}/stats")
async def stats(request: web.Request) -> web.Response:
    await require_scope(request, "campaigns")
    return web.json_response(await stats_of(hub_of(request).pool, await campaign_of(request)))


# --- OpenAPI ---

_TEXT = {"type": "string"}
_NULLABLE_TEXT = spec.nullable(_TEXT)
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
    "CampaignContent": content.SCHEMA,
    "CampaignSchedule": schedules.SCHEDULE_SCHEMA,
    "FrequencyCap": schedules.FREQUENCY_CAP_SCHEMA,
    "QuietHours": schedules.QUIET_HOURS_SCHEMA,
    "NewCampaign": drafts.DRAFT.schema(),
    "CampaignPatch": drafts.DRAFT.schema(partial=True),
    "ScheduleBody": drafts.SCHEDULE.schema(),
    "Campaign": spec.strict_object(
        {
            "id": {"type": "string", "format": "uuid"},
            "name": _TEXT,
            "status": {"enum": list(store.STATUSES)},
            "segment_id": spec.nullable(_TEXT),
            "filter": spec.nullable(spec.ref("SegmentFilter")),
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
