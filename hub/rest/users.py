"""/api/v1/users: targeting profiles, a user's rooms with unread counts, disconnecting a user everywhere."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from campaigns.content import LOCALE
from campaigns.filter_values import MAX_TEXT
from campaigns.filters import ATTRIBUTE_KEY
from campaigns.schedule import zone
from config import bodies
from config.clock import iso
from config.errors import Code
from hub.errors import HubError
from hub.rest import spec
from hub.rest.common import hub_of, json_body, path_user_id, query_int, require_scope, require_self_or_scope
from hub.rest.rooms import MEMBER_FIELDS, ROOM_FIELDS
from rooms import conversations
from store import rooms as room_store
from store import users as user_store

routes = web.RouteTableDef()

MAX_ATTRIBUTES = 100
MAX_TAGS = 100
MAX_TAG_LENGTH = 64


def _present(data: dict[str, Any], field: str) -> object:
    """The field's value; absent leaves it as it is (None), null is refused (it is no value)."""
    if field in data and data[field] is None:
        raise HubError(Code.INVALID_PAYLOAD, f"{field}: must not be null", fields={field: "must not be null"})
    return data.get(field)


def _attributes(data: dict[str, Any], field: str) -> dict[str, object] | None:
    value = _present(data, field)
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_ATTRIBUTES:
        raise HubError(
            Code.INVALID_PAYLOAD,
            f"attributes: must be an object of at most {MAX_ATTRIBUTES} attributes",
            fields={"attributes": "must be an object"},
        )
    for key, item in value.items():
        name = f"attributes.{key}"
        if not ATTRIBUTE_KEY.match(key):
            raise HubError(
                Code.INVALID_PAYLOAD, f"{name}: keys are 1 to 64 letters, digits or _", fields={name: "bad key"}
            )
        if isinstance(item, dict | list) or (isinstance(item, str) and len(item) > MAX_TEXT):
            problem = f"must be a JSON scalar (strings up to {MAX_TEXT} characters)"
            raise HubError(Code.INVALID_PAYLOAD, f"{name}: {problem}", fields={name: problem})
    return value


def _tags(data: dict[str, Any], field: str) -> list[str] | None:
    value = _present(data, field)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > MAX_TAGS
        or not all(isinstance(t, str) and 0 < len(t) <= MAX_TAG_LENGTH for t in value)
    ):
        problem = f"must be a list of at most {MAX_TAGS} tags of 1 to {MAX_TAG_LENGTH} characters"
        raise HubError(Code.INVALID_PAYLOAD, f"tags: {problem}", fields={"tags": problem})
    return sorted(set(value))


def _timezone(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is not None and (not isinstance(value, str) or zone(value) is None):
        raise HubError(Code.INVALID_PAYLOAD, "timezone: must be an IANA timezone", fields={field: "unknown timezone"})
    return value


def _locale(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    if value is not None and (not isinstance(value, str) or not LOCALE.match(value)):
        raise HubError(Code.INVALID_PAYLOAD, "locale: must be a locale such as fr or pt-BR", fields={field: "bad"})
    return value


def _opt_in(data: dict[str, Any], field: str) -> bool | None:
    value = _present(data, field)
    if value is not None and not isinstance(value, bool):
        raise HubError(Code.INVALID_PAYLOAD, f"{field}: must be true or false", fields={field: "bad"})
    return value


_SCALAR: spec.Schema = {"type": ["string", "number", "boolean", "null"]}
_ATTRIBUTES: spec.Schema = {
    "type": "object",
    "propertyNames": {"pattern": ATTRIBUTE_KEY.pattern},
    "additionalProperties": _SCALAR,
    "maxProperties": MAX_ATTRIBUTES,
}
_TAGS: spec.Schema = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_LENGTH},
    "maxItems": MAX_TAGS,
}
#: PUT /users/{id}: fields left out keep their value.
PROFILE = bodies.Body(
    {
        "attributes": bodies.Field(_ATTRIBUTES, _attributes),
        "tags": bodies.Field(_TAGS, _tags),
        "timezone": bodies.Field(
            spec.nullable({"type": "string", "description": "IANA name, e.g. Europe/Paris"}), _timezone
        ),
        "locale": bodies.Field(spec.nullable({"type": "string", "pattern": LOCALE.pattern}), _locale),
        "marketing_opt_in": bodies.Field({"type": "boolean"}, _opt_in),
    }
)


@routes.put("/api/v1/users/{user_id}")
async def put_profile(request: web.Request) -> web.Response:
    """Set what campaigns target: attributes (JSON scalars), tags, timezone, locale, marketing consent."""
    await require_scope(request, "campaigns")
    user_id = path_user_id(request)
    body = await json_body(request, PROFILE)
    profile = PROFILE.parse(body)
    row = await user_store.put_profile(
        hub_of(request).pool,
        user_id,
        **profile,
        set_timezone="timezone" in body,
        set_locale="locale" in body,
    )
    return web.json_response(render_profile(row), status=201 if row["inserted"] else 200)


def render_profile(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "attributes": row["attributes"],
        "tags": list(row["tags"]),
        "timezone": row["timezone"],
        "locale": row["locale"],
        "marketing_opt_in": row["marketing_opt_in"],
        "created_at": iso(row["created_at"]),
        "last_active_at": iso(row["last_active_at"]),
    }


@routes.get("/api/v1/users/{user_id}/rooms")
async def user_rooms(request: web.Request) -> web.Response:
    user_id = path_user_id(request)
    await require_self_or_scope(request, user_id, "publish")
    limit = query_int(request, "limit", minimum=1, maximum=conversations.MAX_PAGE) or conversations.DEFAULT_PAGE
    cursor = request.query.get("cursor") or None
    return web.json_response(await conversations.room_list(hub_of(request).pool, user_id, cursor, limit))


@routes.post("/api/v1/users/{user_id}/read")
async def read_all(request: web.Request) -> web.Response:
    """Mark every room of the user read (the user's own client, or a publish key)."""
    user_id = path_user_id(request)
    await require_self_or_scope(request, user_id, "publish")
    hub = hub_of(request)
    moved = await conversations.read_all(hub.pool, user_id)
    await hub.realtime.read_moved(user_id, moved)
    return web.json_response({"rooms": moved})


@routes.post("/api/v1/users/{user_id}/disconnect")
async def disconnect_user(request: web.Request) -> web.Response:
    await require_scope(request, "publish")
    user_id = path_user_id(request)
    await hub_of(request).realtime.disconnect_user(user_id, "disconnected", "the server closed this session")
    return web.json_response({"user_id": user_id, "disconnected": True}, status=202)


# --- OpenAPI: merged into /api/v1/openapi.json by hub/openapi.py (tests/hub/test_openapi.py keeps it honest) ---

_LAST_MESSAGE: dict[str, spec.Schema] = {
    "id": {"type": "integer", "minimum": 1},
    "seq": {"type": "integer", "minimum": 1},
    "sender_id": spec.USER_ID,
    "text": {"type": "string", "description": f"the first {conversations.PREVIEW_LENGTH} characters"},
    "created_at": spec.TIMESTAMP,
    "deleted": {"type": "boolean"},
    "system": {"type": "boolean"},
}
_USER_ROOM_FIELDS: dict[str, spec.Schema] = {
    "active_at": {**spec.TIMESTAMP, "description": "the last message's time, else the room's creation"},
    "unread": {
        **spec.COUNT,
        "maximum": room_store.UNREAD_CAP,
        "description": "messages others sent after last_read_seq, not deleted, not system",
    },
    "last_message": spec.nullable(spec.ref("LastMessage")),
}
SCHEMAS: dict[str, spec.Schema] = {
    "UserProfileBody": PROFILE.schema(),
    "UserProfile": spec.strict_object(
        {
            "id": spec.USER_ID,
            "attributes": _ATTRIBUTES,
            "tags": _TAGS,
            "timezone": spec.nullable({"type": "string"}),
            "locale": spec.nullable({"type": "string"}),
            "marketing_opt_in": {"type": "boolean"},
            "created_at": spec.TIMESTAMP,
            "last_active_at": spec.nullable(spec.TIMESTAMP),
        },
        ["id", "attributes", "tags", "timezone", "locale", "marketing_opt_in", "created_at", "last_active_at"],
    ),
    "UserRoom": spec.strict_object(
        {**ROOM_FIELDS, **MEMBER_FIELDS, **_USER_ROOM_FIELDS}, [*ROOM_FIELDS, *MEMBER_FIELDS, *_USER_ROOM_FIELDS]
    ),
    "LastMessage": spec.strict_object(_LAST_MESSAGE, list(_LAST_MESSAGE)),
    "UserRoomList": spec.strict_object(
        {
            "rooms": {"type": "array", "items": spec.ref("UserRoom")},
            "next_cursor": spec.nullable({"type": "string"}),
            "total": {**spec.COUNT, "description": "the rooms the user is in"},
            "unread_total": {**spec.COUNT, "description": "unread messages in all of them"},
        },
        ["rooms", "next_cursor", "total", "unread_total"],
    ),
    "ReadPositions": spec.strict_object(
        {"rooms": {"type": "object", "additionalProperties": spec.COUNT, "description": "room id: new position"}},
        ["rooms"],
    ),
    "Disconnected": spec.strict_object(
        {"user_id": spec.USER_ID, "disconnected": {"const": True}}, ["user_id", "disconnected"]
    ),
}

_USER_ID = spec.path_param("user_id", spec.USER_ID, "the user's id")

PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/users/{user_id}": {
        "put": spec.operation(
            "putUserProfile",
            "Create or update a user's targeting profile (fields left out keep their value)",
            "users",
            {
                "200": spec.json_response("updated", spec.ref("UserProfile")),
                "201": spec.json_response("a new user", spec.ref("UserProfile")),
                **spec.errors(400, 401, 403, 404, 413),
            },
            body=spec.json_body(spec.ref("UserProfileBody")),
            parameters=[spec.path_param("user_id", spec.ID, "the user")],
            description="API key with the campaigns scope. attributes and tags replace the stored ones.",
        ),
    },
    "/api/v1/users/{user_id}/rooms": {
        "parameters": [_USER_ID],
        "get": spec.operation(
            "user_rooms",
            "The user's rooms, the most recently active first, with unread counts and last messages",
            "users",
            {"200": spec.json_response("a page", spec.ref("UserRoomList")), **spec.errors(400, 401, 403, 404)},
            parameters=[
                spec.query_param(
                    "limit", {"type": "integer", "minimum": 1, "maximum": conversations.MAX_PAGE}, "page size"
                ),
                spec.query_param("cursor", {"type": "string"}, "next_cursor of the previous page"),
            ],
            description="API key with the publish scope, or the user's own client JWT.",
        ),
    },
    "/api/v1/users/{user_id}/read": {
        "parameters": [_USER_ID],
        "post": spec.operation(
            "read_all",
            "Mark every room of the user read",
            "users",
            {
                "200": spec.json_response("the rooms that moved", spec.ref("ReadPositions")),
                **spec.errors(401, 403, 404),
            },
            description="API key with the publish scope, or the user's own client JWT.",
        ),
    },
    "/api/v1/users/{user_id}/disconnect": {
        "parameters": [_USER_ID],
        "post": spec.operation(
            "disconnect_user",
            "Close every socket of the user, on every node",
            "users",
            {"202": spec.json_response("disconnecting", spec.ref("Disconnected")), **spec.errors(401, 403, 404)},
            description="API key with the publish scope.",
        ),
    },
}
