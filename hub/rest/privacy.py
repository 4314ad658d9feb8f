"""/api/v1/users/{id}/export and DELETE /api/v1/users/{id}: what the hub holds on a user, and erasure."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from aiohttp import web

from config.errors import Code
from hub.errors import HubError
from hub.rest import spec
from hub.rest.common import hub_of, path_user_id, require_scope, require_self_or_scope
from store import privacy

routes = web.RouteTableDef()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, UUID):
        return str(value)
    return value


@routes.get("/api/v1/users/{user_id}/export")
async def export(request: web.Request) -> web.Response:
    user_id = path_user_id(request)
    await require_self_or_scope(request, user_id, "admin")
    found = await privacy.export(hub_of(request).pool, user_id)
    if found is None:
        raise HubError(Code.NOT_FOUND, f"user {user_id} is unknown")
    body = {kind: [{k: _plain(v) for k, v in dict(row).items()} for row in rows] for kind, rows in found.items()}
    body["user"] = body["user"][0]  # type: ignore[assignment]
    return web.json_response(body, dumps=lambda data: json.dumps(data, default=str))


@routes.delete("/api/v1/users/{user_id}")
async def erase(request: web.Request) -> web.Response:
    await require_scope(request, "admin")
    user_id = path_user_id(request)
    hub = hub_of(request)
    async with hub.pool.acquire() as conn:
        result = await privacy.erase(conn, user_id)
    if not result["deleted"]:
        raise HubError(Code.NOT_FOUND, f"user {user_id} is unknown")
    await hub.realtime.disconnect_user(user_id, "disconnected", "this account was deleted")
    return web.Response(status=204)


_ROWS = {"type": "array", "items": {"type": "object"}}
SCHEMAS: dict[str, spec.Schema] = {
    "UserExport": spec.strict_object(
        {
            "user": {"type": "object", "description": "profile: attributes, tags, timezone, locale, consent, activity"},
            "devices": _ROWS,
            "memberships": _ROWS,
            "messages": _ROWS,
            "deliveries": _ROWS,
            "opens": _ROWS,
        },
        ["user", "devices", "memberships", "messages", "deliveries", "opens"],
    )
}
_USER = spec.path_param("user_id", spec.ID, "the user")
PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/users/{user_id}/export": {
        "get": spec.operation(
            "exportUser",
            "Everything the hub holds on a user (the user's own token or an admin key)",
            "privacy",
            {"200": spec.json_response("the user's data", spec.ref("UserExport")), **spec.errors(401, 403, 404)},
            parameters=[_USER],
        )
    },
    "/api/v1/users/{user_id}": {
        "delete": spec.operation(
            "deleteUser",
            "Erase a user: devices, attributes and memberships go, message text is blanked (seq keeps no gaps)",
            "privacy",
            {"204": spec.no_content("erased"), **spec.errors(401, 403, 404)},
            parameters=[_USER],
        )
    },
}
