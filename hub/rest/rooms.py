"""/api/v1/rooms: rooms and their members, for services (publish key) and clients (JWT).

A room's messages are in :mod:`hub.rest.messages`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from config import bodies, payloads
from config.errors import Code
from hub.errors import HubError
from hub.rest import spec
from hub.rest.common import Principal, hub_of, json_body, principal, require_scope, user_or_scope
from rooms import membership, moderation, render
from store import rooms as room_store

routes = web.RouteTableDef()

MAX_ROOM_NAME = 200

#: POST /rooms (``owner`` for API keys only).
NEW_ROOM = bodies.Body(
    {
        "kind": bodies.choice(
            membership.KINDS, required=True, description="clients may create private and direct rooms"
        ),
        "name": bodies.text(MAX_ROOM_NAME),
        "members": bodies.id_list(),
        "metadata": bodies.meta(),
        "id": bodies.identifier(),
        "owner": bodies.identifier(description="API keys only; a client is always the owner"),
    },
    description="A direct room has exactly two members counting the owner; the same pair gets the same room.",
)
#: PUT and PATCH /rooms/{id}/members/{user_id}
MEMBER = bodies.Body(
    {
        "role": bodies.choice(membership.ROLES),
        "muted_until": bodies.timestamp(),
        "post_muted_until": bodies.timestamp(),
    },
    description="PUT sets muted_until and post_muted_until (absent: none); PATCH changes only the fields "
    "given. muted_until (no offline pushes) is the member's own: a client PATCHes only its own. role and "
    "post_muted_until (may not post until then) are for a publish key or an owner or admin of the room.",
)


async def reader(request: web.Request, room_id: str) -> Principal:
    """A publish key, or a user who may read the room (404 when there is no such room)."""
    who = await principal(request)
    if who.key is not None:
        if not who.has_scope("publish"):
            raise HubError(Code.FORBIDDEN, "this needs an API key with the publish scope")
        await membership.room_or_404(hub_of(request).pool, room_id)
    else:
        await membership.readable_room(hub_of(request).pool, room_id, who.user_id)
    return who


@routes.post("/api/v1/rooms")
async def create_room(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_body(request, NEW_ROOM, without=() if who.key is not None else ("owner",))
    kind = NEW_ROOM.parse(body, only=("kind",))["kind"]
    owner: str | None
    if who.key is not None:
        if not who.has_scope("publish"):
            raise HubError(Code.FORBIDDEN, "this needs an API key with the publish scope")
        owner = NEW_ROOM.parse(body, only=("owner",))["owner"]
    else:
        if kind == "public":
            raise HubError(Code.FORBIDDEN, "clients may create private and direct rooms only")
        owner = who.user_id
    room = NEW_ROOM.parse(body, only=("name", "members", "metadata", "id"))
    spec = membership.NewRoom(
        kind=kind, name=room["name"], members=room["members"], metadata=room["metadata"], room_id=room["id"]
    )
    hub = hub_of(request)
    row, created = await membership.create_room(hub.pool, spec, owner)
    if created:
        for user_id in await room_store.member_ids(hub.pool, row["id"]):
            await hub.realtime.member_added(row["id"], user_id)
    return web.json_response(await _room_with_members(request, row), status=201 if created else 200)


async def _room_with_members(request: web.Request, row: Any) -> dict[str, Any]:
    members = await room_store.list_members(hub_of(request).pool, row["id"])
    return {**render.room(row), "members": [render.member(m) for m in members]}


@routes.get("/api/v1/rooms/{room_id}")
async def get_room(request: web.Request) -> web.Response:
    room_id = request.match_info["room_id"]
    await reader(request, room_id)
    row = await membership.room_or_404(hub_of(request).pool, room_id)
    return web.json_response(await _room_with_members(request, row))


@routes.delete("/api/v1/rooms/{room_id}")
async def delete_room(request: web.Request) -> web.Response:
    await require_scope(request, "publish")
    room_id = request.match_info["room_id"]
    hub = hub_of(request)
    members = await membership.delete_room(hub.pool, room_id, None)
    for user_id in members:
        await hub.realtime.member_removed(room_id, user_id, "room_deleted")
    return web.Response(status=204)


async def _put_member(request: web.Request, *, replace: bool) -> web.Response:
    """A publish key, or a client: an owner or admin of the room (roles and post-mutes), or any member
    changing its own ``muted_until`` (PATCH)."""
    room_id = request.match_info["room_id"]
    user_id = payloads.required_id({"user_id": request.match_info["user_id"]}, "user_id")
    who = await user_or_scope(request, "publish")
    hub = hub_of(request)
    body = await json_body(request, MEMBER)
    member = MEMBER.parse(body)
    if who.key is None and not replace and who.user_id == user_id and set(body) <= {"muted_until"}:
        return web.json_response(render.member(await _own_mute(request, room_id, user_id, body, member)))
    if who.key is None and "muted_until" in body:
        raise HubError(Code.FORBIDDEN, "muted_until is each member's own; managers set role and post_muted_until")
    actor = who.user_id  # None for a key: a service may manage any room
    row, added = await membership.put_member(
        hub.pool,
        room_id,
        actor,
        user_id,
        member["role"],
        member["muted_until"],
        set_mute=who.key is not None and (replace or "muted_until" in body),
    )
    if "post_muted_until" in body or (replace and row["post_muted_until"] is not None):
        row = await moderation.post_mute(hub.pool, room_id, actor, user_id, member["post_muted_until"])
    await hub.realtime.member_put(room_id, render.member(row), added=added)
    return web.json_response(render.member(row), status=201 if added else 200)


async def _own_mute(
    request: web.Request, room_id: str, user_id: str, body: dict[str, Any], member: dict[str, Any]
) -> Any:
    """A member's own notification mute (or, with an empty body, the member as it is)."""
    pool = hub_of(request).pool
    if "muted_until" in body:
        return await membership.mute(pool, room_id, user_id, member["muted_until"])
    await membership.room_or_404(pool, room_id)
    row = await room_store.get_member(pool, room_id, user_id)
    if row is None:
        raise HubError(Code.NOT_MEMBER, "you are not a member of this room")
    return row


@routes.put("/api/v1/rooms/{room_id}/members/{user_id}")
async def put_member(request: web.Request) -> web.Response:
    return await _put_member(request, replace=True)


@routes.patch("/api/v1/rooms/{room_id}/members/{user_id}")
async def patch_member(request: web.Request) -> web.Response:
    return await _put_member(request, replace=False)


@routes.delete("/api/v1/rooms/{room_id}/members/{user_id}")
async def remove_member(request: web.Request) -> web.Response:
    """A publish key, an owner or admin of the room (their client JWT), or the member itself (leaving)."""
    who = await user_or_scope(request, "publish")
    room_id, user_id = request.match_info["room_id"], request.match_info["user_id"]
    hub = hub_of(request)
    await membership.remove_member(hub.pool, room_id, who.user_id, user_id)
    await hub.realtime.member_removed(room_id, user_id, "left" if user_id == who.user_id else "removed")
    return web.Response(status=204)


# --- OpenAPI: merged into /api/v1/openapi.json by hub/openapi.py (tests/hub/test_openapi.py keeps it honest) ---

ROOM_FIELDS: spec.Schema = {
    "id": spec.ID,
    "kind": {"enum": list(membership.KINDS)},
    "name": spec.nullable({"type": "string"}),
    "metadata": spec.OPEN_OBJECT,
    "last_seq": spec.COUNT,
    "version": {**spec.COUNT, "description": "bumped by every send, edit and delete; what sync takes"},
    "frozen": {"type": "boolean", "description": "only owners and admins post"},
    "created_at": spec.TIMESTAMP,
}
MEMBER_FIELDS: spec.Schema = {
    "role": {"enum": list(membership.ROLES)},
    "muted_until": spec.nullable(spec.TIMESTAMP),
    "post_muted_until": spec.nullable(spec.TIMESTAMP),
    "last_read_seq": spec.COUNT,
}

SCHEMAS: dict[str, spec.Schema] = {
    "Room": spec.strict_object(ROOM_FIELDS, ROOM_FIELDS),
    "Member": spec.strict_object({"user_id": spec.USER_ID, **MEMBER_FIELDS}, ["user_id", *MEMBER_FIELDS]),
    "RoomWithMembers": spec.strict_object(
        {**ROOM_FIELDS, "members": {"type": "array", "items": spec.ref("Member")}}, [*ROOM_FIELDS, "members"]
    ),
    "NewRoom": NEW_ROOM.schema(),
    "MemberUpdate": MEMBER.schema(),
}

_ROOM_ID = spec.path_param("room_id", {"type": "string"}, "the room's id")
_MEMBER_ID = spec.path_param("user_id", spec.ID, "the member's user id")
_MEMBER_RESPONSES = {
    "200": spec.json_response("the member, changed", spec.ref("Member")),
    "201": spec.json_response("the member, added (API keys only)", spec.ref("Member")),
    **spec.errors(400, 401, 403, 404, 413),
}
PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/rooms": {
        "post": spec.operation(
            "create_room",
            "Create a room",
            "rooms",
            {
                "200": spec.json_response("the direct room this pair already has", spec.ref("RoomWithMembers")),
                "201": spec.json_response("the new room", spec.ref("RoomWithMembers")),
                **spec.errors(400, 401, 403, 409, 413),
            },
            body=spec.json_body(spec.ref("NewRoom")),
            description="API key with the publish scope: any kind. Client JWT: private or direct, owned by the caller.",
        ),
    },
    "/api/v1/rooms/{room_id}": {
        "parameters": [_ROOM_ID],
        "get": spec.operation(
            "get_room",
            "A room with its members",
            "rooms",
            {"200": spec.json_response("the room", spec.ref("RoomWithMembers")), **spec.errors(401, 403, 404)},
            description="API key with the publish scope, or a client who may read the room.",
        ),
        "delete": spec.operation(
            "delete_room",
            "Delete a room",
            "rooms",
            {"204": spec.no_content("deleted"), **spec.errors(401, 403, 404)},
            description="API key with the publish scope.",
        ),
    },
    "/api/v1/rooms/{room_id}/members/{user_id}": {
        "parameters": [_ROOM_ID, _MEMBER_ID],
        "put": spec.operation(
            "put_member",
            "Add a member or set its role and mute",
            "rooms",
            _MEMBER_RESPONSES,
            body=spec.json_body(spec.ref("MemberUpdate")),
            description="API key with the publish scope.",
        ),
        "patch": spec.operation(
            "patch_member",
            "Change a member's role or mute (or add it)",
            "rooms",
            _MEMBER_RESPONSES,
            body=spec.json_body(spec.ref("MemberUpdate")),
            description="API key with the publish scope, or a client changing its own muted_until.",
        ),
        "delete": spec.operation(
            "remove_member",
            "Remove a member",
            "rooms",
            {"204": spec.no_content("removed"), **spec.errors(401, 403, 404)},
            description="API key with the publish scope.",
        ),
    },
}
