"""/api/v1/devices: register, remove and list device tokens (a client for itself, or a devices key)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from config import bodies, payloads
from config.clock import iso
from config.errors import Code
from hub.errors import HubError
from hub.rest import spec
from hub.rest.common import Principal, hub_of, json_body, path_user_id, principal, require_self_or_scope
from push.tokens import token_problem
from store import devices as device_store
from store import users as user_store

routes = web.RouteTableDef()

PROVIDERS = ("apns", "fcm")
PLATFORMS = ("ios", "android", "web")
ENVIRONMENTS = ("sandbox", "production")


def _token(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str):
        raise HubError(Code.INVALID_PAYLOAD, f"{field}: is required", fields={field: "is required"})
    return value  # its shape is the provider's: checked with push.tokens once the provider is known


#: POST /devices, in the order its fields are checked.
DEVICE = bodies.Body(
    {
        "user_id": bodies.identifier(description="required with an API key; a client registers itself"),
        "provider": bodies.choice(PROVIDERS, required=True),
        "token": bodies.Field({"type": "string", "minLength": 32, "maxLength": 4096}, _token, required=True),
        "platform": bodies.choice(PLATFORMS, required=True),
        "app_id": bodies.text(255),
        "environment": bodies.choice(ENVIRONMENTS),
        "locale": bodies.text(35),
        "timezone": bodies.text(64),
        "app_version": bodies.text(64),
    }
)


def render(row: Any) -> dict[str, Any]:
    return {
        "token": row["token"],
        "provider": row["provider"],
        "platform": row["platform"],
        "user_id": row["user_id"],
        "app_id": row["app_id"],
        "environment": row["environment"],
        "locale": row["locale"],
        "timezone": row["timezone"],
        "app_version": row["app_version"],
        "valid": row["invalid_at"] is None,
        "invalid_reason": row["invalid_reason"],
        "registered_at": iso(row["registered_at"]),
    }


async def _devices_caller(request: web.Request) -> Principal:
    who = await principal(request)
    if who.key is not None and not who.has_scope("devices"):
        raise HubError(Code.FORBIDDEN, "this needs an API key with the devices scope")
    return who


@routes.post("/api/v1/devices")
async def register(request: web.Request) -> web.Response:
    who = await _devices_caller(request)
    body = DEVICE.parse(await json_body(request, DEVICE))
    user_id = body["user_id"]
    if who.key is None:
        user_id = user_id or who.user_id
        if user_id != who.user_id:
            raise HubError(Code.FORBIDDEN, "a client may only register its own devices")
    elif user_id is None:
        raise payloads.invalid("user_id", "is required")
    assert user_id is not None
    problem = token_problem(body["provider"], body["token"])
    if problem:
        raise HubError(Code.INVALID_PAYLOAD, f"token: {problem}", fields={"token": problem})
    hub = hub_of(request)
    await user_store.ensure(hub.pool, [user_id])
    device = {**body, "user_id": user_id, "environment": body["environment"] or "production"}
    row = await device_store.upsert(hub.pool, **device)
    return web.json_response(render(row), status=201 if row["inserted"] else 200)


@routes.delete("/api/v1/devices/{token}")
async def remove(request: web.Request) -> web.Response:
    who = await _devices_caller(request)
    if not await device_store.delete(hub_of(request).pool, request.match_info["token"], who.user_id):
        raise HubError(Code.NOT_FOUND, "no such device" + (" of yours" if who.user_id else ""))
    return web.Response(status=204)


@routes.get("/api/v1/users/{user_id}/devices")
async def list_devices(request: web.Request) -> web.Response:
    user_id = path_user_id(request)
    await require_self_or_scope(request, user_id, "devices")
    rows = await device_store.for_user(hub_of(request).pool, user_id)
    return web.json_response({"devices": [render(r) for r in rows]})


# --- OpenAPI ---

_NULLABLE_TEXT = spec.nullable({"type": "string"})
SCHEMAS: dict[str, spec.Schema] = {
    "Device": spec.strict_object(
        {
            "token": {"type": "string"},
            "provider": {"enum": list(PROVIDERS)},
            "platform": {"enum": list(PLATFORMS)},
            "user_id": spec.USER_ID,
            "app_id": _NULLABLE_TEXT,
            "environment": {"enum": list(ENVIRONMENTS)},
            "locale": _NULLABLE_TEXT,
            "timezone": _NULLABLE_TEXT,
            "app_version": _NULLABLE_TEXT,
            "valid": {"type": "boolean"},
            "invalid_reason": _NULLABLE_TEXT,
            "registered_at": spec.TIMESTAMP,
        },
        [
            "token",
            "provider",
            "platform",
            "user_id",
            "app_id",
            "environment",
            "locale",
            "timezone",
            "app_version",
            "valid",
            "invalid_reason",
            "registered_at",
        ],
    ),
    "DeviceList": spec.strict_object({"devices": {"type": "array", "items": spec.ref("Device")}}, ["devices"]),
    "NewDevice": DEVICE.schema(),
}

_TOKEN = spec.path_param("token", {"type": "string"}, "the device token")
_USER = spec.path_param("user_id", spec.ID, "the user")
PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/devices": {
        "post": spec.operation(
            "registerDevice",
            "Register or update a device token (upsert by token; a token moving to another user leaves the first)",
            "devices",
            {
                "200": spec.json_response("the token was known and is updated", spec.ref("Device")),
                "201": spec.json_response("a new token", spec.ref("Device")),
                **spec.errors(400, 401, 403, 413),
            },
            body=spec.json_body(spec.ref("NewDevice")),
        )
    },
    "/api/v1/devices/{token}": {
        "delete": spec.operation(
            "deleteDevice",
            "Remove a device token",
            "devices",
            {"204": spec.no_content("removed"), **spec.errors(401, 403, 404)},
            parameters=[_TOKEN],
        )
    },
    "/api/v1/users/{user_id}/devices": {
        "get": spec.operation(
            "listUserDevices",
            "A user's device tokens, valid or pruned",
            "devices",
            {"200": spec.json_response("the devices", spec.ref("DeviceList")), **spec.errors(401, 403, 404)},
            parameters=[_USER],
        )
    },
}
