"""/api/v1/rooms/{id}/bans, /reports and freezing: moderation for a publish key, or an owner or
admin of the room with their client JWT (the rules are :mod:`rooms.moderation`'s)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from config import bodies, payloads
from hub.rest import spec
from hub.rest.common import hub_of, json_body, query_int, user_or_scope
from rooms import moderation, render

routes = web.RouteTableDef()

#: PUT /rooms/{id}/bans/{user_id}
BAN = bodies.Body(
    {"until": bodies.timestamp(), "reason": bodies.text(moderation.MAX_REASON)},
    description="until: when the ban ends (absent or null: until it is lifted).",
)
#: PATCH /rooms/{id}
ROOM_CHANGE = bodies.Body(
    {"frozen": bodies.Field({"type": "boolean"}, payloads.boolean, required=True)},
    description="frozen: only owners and admins post (others are refused with frozen).",
)


async def _actor(request: web.Request) -> str | None:
    """The acting user (None: a service with a publish key); the domain checks they manage the room."""
    return (await user_or_scope(request, "publish")).user_id


@routes.put("/api/v1/rooms/{room_id}/bans/{user_id}")
async def ban(request: web.Request) -> web.Response:
    actor = await _actor(request)
    room_id = request.match_info["room_id"]
    user_id = payloads.required_id({"user_id": request.match_info["user_id"]}, "user_id")
    values = BAN.parse(await json_body(request, BAN, required=False))
    hub = hub_of(request)
    row, removed = await moderation.ban(hub.pool, room_id, actor, user_id, values["until"], values["reason"])
    if removed:
        await hub.realtime.member_removed(room_id, user_id, "banned")
    return web.json_response(moderation.render_ban(row))


@routes.delete("/api/v1/rooms/{room_id}/bans/{user_id}")
async def unban(request: web.Request) -> web.Response:
    actor = await _actor(request)
    await moderation.unban(hub_of(request).pool, request.match_info["room_id"], actor, request.match_info["user_id"])
    return web.Response(status=204)


@routes.get("/api/v1/rooms/{room_id}/bans")
async def list_bans(request: web.Request) -> web.Response:
    actor = await _actor(request)
    rows = await moderation.bans(hub_of(request).pool, request.match_info["room_id"], actor)
    return web.json_response({"bans": [moderation.render_ban(r) for r in rows]})


@routes.patch("/api/v1/rooms/{room_id}")
async def change_room(request: web.Request) -> web.Response:
    actor = await _actor(request)
    values = ROOM_CHANGE.parse(await json_body(request, ROOM_CHANGE))
    hub = hub_of(request)
    row = await moderation.freeze(hub.pool, request.match_info["room_id"], actor, values["frozen"])
    room = render.room(row)
    await hub.realtime.room_updated(room)
    return web.json_response(room)


@routes.get("/api/v1/rooms/{room_id}/reports")
async def list_reports(request: web.Request) -> web.Response:
    actor = await _actor(request)
    after = query_int(request, "after") or 0
    limit = query_int(request, "limit", minimum=1, maximum=moderation.REPORTS_PAGE) or moderation.REPORTS_PAGE
    rows, more = await moderation.reports(hub_of(request).pool, request.match_info["room_id"], actor, after, limit)
    return web.json_response(
        {"reports": [moderation.render_report(r) for r in rows], "next_after": rows[-1]["id"] if more else None}
    )


# --- OpenAPI ---

_NULLABLE_TEXT = spec.nullable({"type": "string"})
SCHEMAS: dict[str, spec.Schema] = {
    "BanBody": BAN.schema(),
    "RoomChange": ROOM_CHANGE.schema(),
    "Ban": spec.strict_object(
        {
            "room": spec.ID,
            "user_id": spec.USER_ID,
            "until": spec.nullable(spec.TIMESTAMP),
            "reason": _NULLABLE_TEXT,
            "banned_by": {**_NULLABLE_TEXT, "description": "null: a backend service"},
            "created_at": spec.TIMESTAMP,
        },
        ["room", "user_id", "until", "reason", "banned_by", "created_at"],
    ),
    "BanList": spec.strict_object({"bans": {"type": "array", "items": spec.ref("Ban")}}, ["bans"]),
    "Report": spec.strict_object(
        {
            "id": {"type": "integer", "minimum": 1},
            "room": spec.ID,
            "message_id": {"type": "integer", "minimum": 1},
            "reporter_id": spec.USER_ID,
            "reason": {"type": "string"},
            "created_at": spec.TIMESTAMP,
            "message": spec.strict_object(
                {
                    "seq": {"type": "integer", "minimum": 1},
                    "sender_id": spec.USER_ID,
                    "text": {"type": "string"},
                    "deleted": {"type": "boolean"},
                },
                ["seq", "sender_id", "text", "deleted"],
            ),
        },
        ["id", "room", "message_id", "reporter_id", "reason", "created_at"],
    ),
    "ReportList": spec.strict_object(
        {
            "reports": {"type": "array", "items": spec.ref("Report")},
            "next_after": spec.nullable({"type": "integer"}),
        },
        ["reports", "next_after"],
    ),
}

_ROOM_ID = spec.path_param("room_id", {"type": "string"}, "the room's id")
_USER_ID = spec.path_param("user_id", spec.ID, "the banned user's id")
_WHO = "API key with the publish scope, or an owner or admin of the room (client JWT)."
PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/rooms/{room_id}": {
        "patch": spec.operation(
            "change_room",
            "Freeze or unfreeze a room",
            "rooms",
            {"200": spec.json_response("the room", spec.ref("Room")), **spec.errors(400, 401, 403, 404, 413)},
            body=spec.json_body(spec.ref("RoomChange")),
            description=_WHO,
        ),
    },
    "/api/v1/rooms/{room_id}/bans": {
        "parameters": [_ROOM_ID],
        "get": spec.operation(
            "list_bans",
            "The bans in force",
            "rooms",
            {"200": spec.json_response("the bans", spec.ref("BanList")), **spec.errors(401, 403, 404)},
            description=_WHO,
        ),
    },
    "/api/v1/rooms/{room_id}/bans/{user_id}": {
        "parameters": [_ROOM_ID, _USER_ID],
        "put": spec.operation(
            "ban",
            "Ban a user: out of the room, and unable to join, read or be added until the ban ends",
            "rooms",
            {"200": spec.json_response("the ban", spec.ref("Ban")), **spec.errors(400, 401, 403, 404, 413)},
            body=spec.json_body(spec.ref("BanBody"), "optional: until and reason", required=False),
            description=_WHO,
        ),
        "delete": spec.operation(
            "unban",
            "Lift a ban",
            "rooms",
            {"204": spec.no_content("lifted"), **spec.errors(401, 403, 404)},
            description=_WHO,
        ),
    },
    "/api/v1/rooms/{room_id}/reports": {
        "parameters": [_ROOM_ID],
        "get": spec.operation(
            "list_reports",
            "Reports of the room's messages, oldest first",
            "rooms",
            {"200": spec.json_response("a page", spec.ref("ReportList")), **spec.errors(400, 401, 403, 404)},
            parameters=[
                spec.query_param("after", {"type": "integer", "minimum": 0}, "next_after of the previous page"),
                spec.query_param(
                    "limit", {"type": "integer", "minimum": 1, "maximum": moderation.REPORTS_PAGE}, "page size"
                ),
            ],
            description=_WHO,
        ),
    },
}
