"""/api/v1/dev/outbox: what the outbox provider recorded instead of sending (dev only)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from config.errors import Code
from hub.errors import HubError
from hub.rest import spec
from hub.rest.common import hub_of, query_int, require_scope
from store import keys

routes = web.RouteTableDef()


@routes.get("/api/v1/dev/outbox")
async def outbox(request: web.Request) -> web.Response:
    await require_scope(request, "admin")
    hub = hub_of(request)
    if hub.settings.push_provider != "outbox":
        raise HubError(Code.NOT_FOUND, "the outbox is only kept with HERALD_PUSH_PROVIDER=outbox (herald up's default)")
    limit = query_int(request, "limit", minimum=1, maximum=keys.OUTBOX_SIZE) or 100
    raw: list[bytes] = await hub.redis.lrange(keys.OUTBOX, 0, limit - 1)  # type: ignore[misc]
    return web.json_response({"pushes": [json.loads(entry) for entry in raw]})


SCHEMAS: dict[str, spec.Schema] = {
    "OutboxPage": spec.strict_object(
        {
            "pushes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "provider, token, app_id, environment, message, delivery_id, at",
                },
            }
        },
        ["pushes"],
    )
}
PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/dev/outbox": {
        "get": spec.operation(
            "listOutbox",
            "Pushes the outbox provider recorded, newest first (only with HERALD_PUSH_PROVIDER=outbox)",
            "dev",
            {"200": spec.json_response("recorded pushes", spec.ref("OutboxPage")), **spec.errors(400, 401, 403, 404)},
            parameters=[
                spec.query_param("limit", {"type": "integer", "minimum": 1, "maximum": keys.OUTBOX_SIZE}, "how many")
            ],
        )
    }
}
