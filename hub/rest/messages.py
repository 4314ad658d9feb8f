"""/api/v1/rooms/{id}/messages: a room's history, and messages posted by services (publish key)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from config import bodies, payloads
from config.errors import Code
from hub.errors import HubError
from hub.rest import spec
from hub.rest.common import hub_of, json_body, query_int, require_scope
from hub.rest.rooms import reader
from rooms import membership, render
from rooms import messages as chat

routes = web.RouteTableDef()

#: POST /rooms/{id}/messages; ``text`` is at most HERALD_MAX_TEXT_LENGTH characters (a setting).
NEW_MESSAGE = bodies.Body(
    {
        "sender_id": bodies.identifier(required=True),
        "client_id": bodies.identifier(required=True),
        "text": bodies.Field(
            {
                "type": "string",
                "minLength": 1,
                "pattern": r"\S",
                "description": "at most HERALD_MAX_TEXT_LENGTH characters (default 4000; longer: 413)",
            },
            lambda data, name: data.get(name),
            required=True,
        ),
        "meta": bodies.meta(),
        "reply_to": bodies.integer(minimum=1),
    }
)


@routes.get("/api/v1/rooms/{room_id}/messages")
async def list_messages(request: web.Request) -> web.Response:
    room_id = request.match_info["room_id"]
    await reader(request, room_id)
    before = query_int(request, "before_seq")
    after = query_int(request, "after_seq")
    if before is not None and after is not None:
        raise HubError(
            Code.INVALID_PAYLOAD, "give before_seq or after_seq, not both", fields={"after_seq": "conflicts"}
        )
    limit = query_int(request, "limit", minimum=1, maximum=chat.MAX_PAGE) or chat.DEFAULT_PAGE
    rows, has_more = await chat.history(hub_of(request).pool, room_id, before_seq=before, after_seq=after, limit=limit)
    return web.json_response({"messages": [render.message(r) for r in rows], "has_more": has_more})


@routes.post("/api/v1/rooms/{room_id}/messages")
async def post_message(request: web.Request) -> web.Response:
    await require_scope(request, "publish")
    room_id = request.match_info["room_id"]
    hub = hub_of(request)
    body = NEW_MESSAGE.parse(await json_body(request, NEW_MESSAGE))
    out = chat.Outgoing(
        room_id=room_id,
        sender_id=body["sender_id"],
        client_id=body["client_id"],
        text=payloads.required_text(body, "text", hub.settings.max_text_length, too_long=Code.TOO_LARGE),
        meta=body["meta"],
        reply_to=body["reply_to"],
    )
    await membership.room_or_404(hub.pool, room_id)
    row, created = await chat.send(hub.pool, out, as_service=True)
    message = render.message(row)
    if created:
        await hub.realtime.to_room_now("message:new", room_id, {"room": room_id, "message": message})
    return web.json_response(message, status=201 if created else 200)


# --- OpenAPI ---

SCHEMAS: dict[str, spec.Schema] = {
    "Message": spec.strict_object(
        {
            "id": {"type": "integer", "minimum": 1},
            "room": spec.ID,
            "seq": {"type": "integer", "minimum": 1},
            "version": {"type": "integer", "minimum": 1, "description": "the room's version at its last change"},
            "sender_id": spec.USER_ID,
            "client_id": spec.ID,
            "text": {"type": "string"},
            "meta": spec.OPEN_OBJECT,
            "reply_to": spec.nullable({"type": "integer", "minimum": 1}),
            "created_at": spec.TIMESTAMP,
            "edited_at": spec.nullable(spec.TIMESTAMP),
            "deleted": {"type": "boolean"},
            "system": {"type": "boolean"},
        },
        [
            "id",
            "room",
            "seq",
            "version",
            "sender_id",
            "client_id",
            "text",
            "meta",
            "reply_to",
            "created_at",
            "edited_at",
            "deleted",
            "system",
        ],
    ),
    "MessagePage": spec.strict_object(
        {"messages": {"type": "array", "items": spec.ref("Message")}, "has_more": {"type": "boolean"}},
        ["messages", "has_more"],
    ),
    "NewMessage": NEW_MESSAGE.schema(),
}

_ROOM_ID = spec.path_param("room_id", {"type": "string"}, "the room's id")
_SEQ = {"type": "integer", "minimum": 0}

PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/rooms/{room_id}/messages": {
        "parameters": [_ROOM_ID],
        "get": spec.operation(
            "list_messages",
            "A page of a room's messages, in seq order",
            "rooms",
            {"200": spec.json_response("the page", spec.ref("MessagePage")), **spec.errors(400, 401, 403, 404)},
            parameters=[
                spec.query_param("before_seq", _SEQ, "the newest messages before this seq (default: the end)"),
                spec.query_param("after_seq", _SEQ, "the messages after this seq; not with before_seq"),
                spec.query_param(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": chat.MAX_PAGE, "default": chat.DEFAULT_PAGE},
                    "page size",
                ),
            ],
            description="API key with the publish scope, or a client who may read the room.",
        ),
        "post": spec.operation(
            "post_message",
            "Post a message as a user (idempotent per sender_id and client_id)",
            "rooms",
            {
                "200": spec.json_response("the message already stored for this client_id", spec.ref("Message")),
                "201": spec.json_response("the new message", spec.ref("Message")),
                **spec.errors(400, 401, 403, 404, 409, 413),
            },
            body=spec.json_body(spec.ref("NewMessage")),
            description="API key with the publish scope.",
        ),
    },
}
