"""/api/v1/users: targeting profiles, a user's rooms with unread counts, disconnecting a user everywhere."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hub.errors import HubError
from hub.rest import spec
from hub.rest.common import hub_of, json_body, path_user_id, require_scope, require_self_or_scope
from hub.rest.rooms import MEMBER_FIELDS, ROOM_FIELDS
from push.content import LOCALE
from push.schedule import zone
from rooms import render
from rooms.render import iso
from store import rooms as room_store
from store import users as user_store
from store.segments import ATTRIBUTE_KEY, MAX_TEXT

routes = web.RouteTableDef()

PROFILE_BODY = ("attributes", "tags", "timezone", "locale", "marketing_opt_in")
MAX_ATTRIBUTES = 100
MAX_TAGS = 100
MAX_TAG_LENGTH = 64


@routes.put("/api/v1/users/{user_id}")
async def put_profile(request: web.Request) -> web.Response:
    """Set what campaigns target: attributes (JSON scalars), tags, timezone, locale, marketing consent."""
    await require_scope(request, "campaigns")
    user_id = path_user_id(request)
    body = await json_body(request, PROFILE_BODY)
    for field in ("attributes", "tags", "marketing_opt_in"):  # absent leaves them as they are; null is no value
        if field in body and body[field] is None:
            raise HubError("invalid_payload", f"{field}: must not be null", fields={field: "must not be null"})
    timezone = body.get("timezone")
    if timezone is not None and (not isinstance(timezone, str) or zone(timezone) is None):
        raise HubError("invalid_payload", "timezone: must be an IANA timezone", fields={"timezone": "unknown timezone"})
    locale = body.get("locale")
    if locale is not None and (not isinstance(locale, str) or not LOCALE.match(locale)):
        raise HubError("invalid_payload", "locale: must be a locale such as fr or pt-BR", fields={"locale": "bad"})
    opt_in = body.get("marketing_opt_in")
    if opt_in is not None and not isinstance(opt_in, bool):
        raise HubError("invalid_payload", "marketing_opt_in: must be true or false", fields={"marketing_opt_in": "bad"})
    row = await user_store.put_profile(
        hub_of(request).pool,
        user_id,
        attributes=_attributes(body.get("attributes")),
        tags=_tags(body.get("tags")),
        timezone=timezone,
        locale=locale,
        marketing_opt_in=opt_in,
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


def _attributes(value: object) -> dict[str, object] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > MAX_ATTRIBUTES:
        raise HubError(
            "invalid_payload",
            f"attributes: must be an object of at most {MAX_ATTRIBUTES} attributes",
            fields={"attributes": "must be an object"},
        )
    for key, item in value.items():
        field = f"attributes.{key}"
        if not ATTRIBUTE_KEY.match(key):
            raise HubError(
                "invalid_payload", f"{field}: keys are 1 to 64 letters, digits or _", fields={field: "bad key"}
            )
        if isinstance(item, dict | list) or (isinstance(item, str) and len(item) > MAX_TEXT):
            problem = f"must be a JSON scalar (strings up to {MAX_TEXT} characters)"
            raise HubError("invalid_payload", f"{field}: {problem}", fields={field: problem})
    return value


def _tags(value: object) -> list[str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > MAX_TAGS
        or not all(isinstance(t, str) and 0 < len(t) <= MAX_TAG_LENGTH for t in value)
    ):
        problem = f"must be a list of at most {MAX_TAGS} tags of 1 to {MAX_TAG_LENGTH} characters"
        raise HubError("invalid_payload", f"tags: {problem}", fields={"tags": problem})
    return sorted(set(value))


@routes.get("/api/v1/users/{user_id}/rooms")
async def user_rooms(request: web.Request) -> web.Response:
    user_id = path_user_id(request)
    await require_self_or_scope(request, user_id, "publish")
    rows = await room_store.user_rooms(hub_of(request).pool, user_id)
    return web.json_response({"rooms": [render.user_room(r) for r in rows]})


@routes.post("/api/v1/users/{user_id}/disconnect")
async def disconnect_user(request: web.Request) -> web.Response:
    await require_scope(request, "publish")
    user_id = path_user_id(request)
    await hub_of(request).realtime.disconnect_user(user_id, "disconnected", "the server closed this session")
    return web.json_response({"user_id": user_id, "disconnected": True}, status=202)


# --- OpenAPI: merged into /api/v1/openapi.json by hub/openapi.py (tests/hub/test_openapi.py keeps it honest) ---

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
SCHEMAS: dict[str, spec.Schema] = {
    "UserProfileBody": spec.strict_object(
        {
            "attributes": _ATTRIBUTES,
            "tags": _TAGS,
            "timezone": spec.nullable({"type": "string", "description": "IANA name, e.g. Europe/Paris"}),
            "locale": spec.nullable({"type": "string", "pattern": LOCALE.pattern}),
            "marketing_opt_in": {"type": "boolean"},
        }
    ),
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
        {**ROOM_FIELDS, **MEMBER_FIELDS, "unread": spec.COUNT}, [*ROOM_FIELDS, *MEMBER_FIELDS, "unread"]
    ),
    "UserRoomList": spec.strict_object({"rooms": {"type": "array", "items": spec.ref("UserRoom")}}, ["rooms"]),
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
            "The user's rooms with unread counts",
            "users",
            {"200": spec.json_response("the rooms", spec.ref("UserRoomList")), **spec.errors(401, 403, 404)},
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
