"""/api/v1/notifications: post a notify job (202 at once), read its status, report opens."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from config import bodies
from config.clock import iso
from config.errors import Code
from hub.errors import HubError
from hub.rest import spec
from hub.rest.common import hub_of, json_body, principal, require_scope
from push import PushMessage
from store import notifications as store
from store import queue

routes = web.RouteTableDef()

MAX_TARGETS = 10_000
DELIVERY_PAGE = 1000
STATUSES = ("pending", "sending", "retrying", "delivered", "pruned", "failed", "skipped")


def _tokens(to: dict[str, Any], field: str) -> list[str]:
    value = to.get(field, [])
    if (
        not isinstance(value, list)
        or len(value) > MAX_TARGETS
        or not all(isinstance(t, str) and 0 < len(t) <= 4096 for t in value)
    ):
        raise HubError(
            Code.INVALID_PAYLOAD,
            f"to.device_tokens: must be a list of at most {MAX_TARGETS} tokens",
            fields={"to.device_tokens": "must be a list of tokens"},
        )
    return list(dict.fromkeys(value))


#: The ``to`` object of a notification: at least one of its fields names someone.
TARGET = bodies.Body(
    {
        "user_ids": bodies.id_list(max_items=MAX_TARGETS),
        "device_tokens": bodies.Field({"type": "array", "items": {"type": "string"}, "maxItems": MAX_TARGETS}, _tokens),
        "room_id": bodies.identifier(),
    }
)


def _target(body: dict[str, Any], field: str) -> dict[str, Any]:
    to = body.get(field)
    if not isinstance(to, dict):
        raise HubError(Code.INVALID_PAYLOAD, "to: must be an object", fields={"to": "must be an object"})
    target = TARGET.parse(TARGET.refuse_unknown(to))
    if not (target["user_ids"] or target["device_tokens"] or target["room_id"]):
        raise HubError(
            Code.INVALID_PAYLOAD, "to: name user_ids, device_tokens or a room_id", fields={"to": "has no target"}
        )
    return target


def _message(body: dict[str, Any], field: str) -> PushMessage:
    content = body.get(field)
    if not isinstance(content, dict):
        raise HubError(
            Code.INVALID_PAYLOAD, "notification: must be an object", fields={"notification": "must be an object"}
        )
    return PushMessage.from_json(content)


_NOTIFICATION: spec.Schema = spec.strict_object(
    {
        "title": spec.nullable({"type": "string"}),
        "body": spec.nullable({"type": "string"}),
        "data": {"type": "object", "additionalProperties": {"type": "string"}},
        "badge": spec.nullable({"type": "integer", "minimum": 0}),
        "sound": spec.nullable({"type": "string"}),
        "collapse_key": spec.nullable({"type": "string", "maxLength": 64}),
        "priority": {"enum": ["high", "normal"]},
        "ttl": spec.nullable({"type": "integer", "minimum": 0}),
        "push_type": {"enum": ["alert", "background", "voip"]},
    }
)
#: POST /notifications
NOTIFY = bodies.Body(
    {
        "to": bodies.Field(TARGET.schema(), _target, required=True),
        "notification": bodies.Field(_NOTIFICATION, _message, required=True),
    }
)


@routes.post("/api/v1/notifications")
async def create(request: web.Request) -> web.Response:
    who = await require_scope(request, "notify")
    assert who.key is not None
    body = NOTIFY.parse(await json_body(request, NOTIFY))
    target, message = body["to"], body["notification"]
    idempotency_key = request.headers.get("Idempotency-Key")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
        raise HubError(Code.INVALID_PAYLOAD, "Idempotency-Key must be 1 to 255 characters")
    hub = hub_of(request)
    row, created = await store.insert(
        hub.pool,
        api_key_id=who.key.id,
        idempotency_key=idempotency_key,
        campaign_id=None,
        target=target,
        payload=message.to_json(),
    )
    if created:
        await queue.enqueue_notify(hub.arq, hub.settings.queue_name, str(row["id"]))
    return web.json_response({"id": str(row["id"]), "status": row["status"]}, status=202 if created else 200)


@routes.get("/api/v1/notifications/{notification_id}")
async def status(request: web.Request) -> web.Response:
    await require_scope(request, "notify")
    hub = hub_of(request)
    row = await _notification(request)
    counts = await store.counts(hub.pool, str(row["id"]))
    deliveries = await store.deliveries(hub.pool, str(row["id"]), DELIVERY_PAGE + 1)
    return web.json_response(
        {
            "id": str(row["id"]),
            "status": row["status"],
            "created_at": iso(row["created_at"]),
            "completed_at": iso(row["completed_at"]),
            "counts": {**{s: counts.get(s, 0) for s in STATUSES}, "opened": row["opened"]},
            "deliveries": [
                {
                    "token": d["device_token"],
                    "provider": d["provider"],
                    "status": d["status"],
                    "reason": d["reason"],
                    "attempts": d["attempts"],
                    "updated_at": iso(d["updated_at"]),
                }
                for d in deliveries[:DELIVERY_PAGE]
            ],
            "deliveries_truncated": len(deliveries) > DELIVERY_PAGE,
        }
    )


@routes.post("/api/v1/notifications/{notification_id}/opened")
async def opened(request: web.Request) -> web.Response:
    who = await principal(request)
    if who.key is not None and not who.has_scope("notify"):
        raise HubError(Code.FORBIDDEN, "this needs a client token or an API key with the notify scope")
    row = await _notification(request)
    pool, notification_id = hub_of(request).pool, str(row["id"])
    if who.user_id is None:
        count = await store.mark_opened(pool, notification_id)
    else:  # a client counts once, and only for a notification sent to one of its devices
        count = await store.mark_opened_by(pool, notification_id, who.user_id)
        if count is None:
            raise HubError(Code.NOT_FOUND, f"notification {notification_id} was not sent to you")
    return web.json_response({"id": notification_id, "opened": count})


async def _notification(request: web.Request) -> Any:
    notification_id = request.match_info["notification_id"]
    try:
        uuid.UUID(notification_id)
    except ValueError:
        raise HubError(Code.NOT_FOUND, f"notification {notification_id} does not exist") from None
    row = await store.get(hub_of(request).pool, notification_id)
    if row is None:
        raise HubError(Code.NOT_FOUND, f"notification {notification_id} does not exist")
    return row


# --- OpenAPI ---

_COUNT = spec.COUNT
SCHEMAS: dict[str, spec.Schema] = {
    "NewNotification": NOTIFY.schema(),
    "NotificationAccepted": spec.strict_object(
        {"id": {"type": "string", "format": "uuid"}, "status": {"enum": ["queued", "sending", "completed"]}},
        ["id", "status"],
    ),
    "NotificationStatus": spec.strict_object(
        {
            "id": {"type": "string", "format": "uuid"},
            "status": {"enum": ["queued", "sending", "completed"]},
            "created_at": spec.TIMESTAMP,
            "completed_at": spec.nullable(spec.TIMESTAMP),
            "counts": spec.strict_object({s: _COUNT for s in (*STATUSES, "opened")}, [*STATUSES, "opened"]),
            "deliveries": {
                "type": "array",
                "items": spec.strict_object(
                    {
                        "token": {"type": "string"},
                        "provider": {"type": "string"},
                        "status": {"enum": list(STATUSES)},
                        "reason": spec.nullable({"type": "string"}),
                        "attempts": _COUNT,
                        "updated_at": spec.TIMESTAMP,
                    },
                    ["token", "provider", "status", "reason", "attempts", "updated_at"],
                ),
            },
            "deliveries_truncated": {"type": "boolean"},
        },
        ["id", "status", "created_at", "completed_at", "counts", "deliveries", "deliveries_truncated"],
    ),
    "Opened": spec.strict_object({"id": {"type": "string"}, "opened": _COUNT}, ["id", "opened"]),
}

_ID = spec.path_param("notification_id", {"type": "string"}, "the notification id")
PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/notifications": {
        "post": spec.operation(
            "createNotification",
            "Queue a push to users, device tokens or a room's members; Idempotency-Key is honoured",
            "notifications",
            {
                "202": spec.json_response("queued", spec.ref("NotificationAccepted")),
                "200": spec.json_response(
                    "the Idempotency-Key was used before: the first one", spec.ref("NotificationAccepted")
                ),
                **spec.errors(400, 401, 403, 413),
            },
            body=spec.json_body(spec.ref("NewNotification")),
        )
    },
    "/api/v1/notifications/{notification_id}": {
        "get": spec.operation(
            "getNotification",
            "Status, counts per outcome and per-device outcomes with the provider's reason",
            "notifications",
            {
                "200": spec.json_response("the notification", spec.ref("NotificationStatus")),
                **spec.errors(401, 403, 404),
            },
            parameters=[_ID],
        )
    },
    "/api/v1/notifications/{notification_id}/opened": {
        "post": spec.operation(
            "reportNotificationOpened",
            "A client reports that the user opened the notification (counted once per user, and only"
            " for a notification sent to one of the user's devices); a notify key reports for its users",
            "notifications",
            {"200": spec.json_response("counted", spec.ref("Opened")), **spec.errors(401, 403, 404)},
            parameters=[_ID],
        )
    },
}
