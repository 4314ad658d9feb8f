"""Who may do what, written from DESIGN.md ("Identities and credentials", the "who | may" table and
the room rules), not from the app's code: the expected answers are spelled out below as tables.

The world every case starts from is the ``world`` fixture of tests/hub/conftest.py:

- ``lobby``: public, members alice (owner);
- ``secret``: private, members alice (owner), bob (member), dave (admin); one message by alice;
- ``dm``: direct, alice and bob;
- carol is authenticated but a member of nothing.

tests/hub/test_access_matrix.py runs every route and event against every credential; this file keeps
the finer cases (room admins, roles, mute bodies, what an allowed call stores).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.support.access import MSG, OK, assert_error, fill, snapshot
from tests.support.rest import Rest
from tests.support.sockets import ChatClient
from tests.support.tokens import token_for

# -- socket events ----------------------------------------------------------------------------------

SEND = {"room": "secret", "client_id": "c-out", "text": "let me in"}
EDIT = {"room": "secret", "id": MSG, "text": "rewritten"}
DELETE = {"room": "secret", "id": MSG}

# who, event, payload, expected ack ("ok" or the error code)
SOCKET_TABLE: list[tuple[str, str, dict[str, Any], str]] = [
    # anyone authenticated may read and join a public room
    ("carol", "room:join", {"room": "lobby"}, OK),
    ("carol", "history", {"room": "lobby"}, OK),
    ("carol", "sync", {"rooms": {"lobby": 0}}, OK),
    ("carol", "presence", {"room": "lobby"}, OK),
    # only members may read or post in private and direct rooms
    ("carol", "room:join", {"room": "secret"}, "forbidden"),
    ("carol", "history", {"room": "secret"}, "not_member"),
    ("carol", "sync", {"rooms": {"secret": 0}}, "not_member"),
    ("carol", "presence", {"room": "secret"}, "not_member"),
    ("carol", "message:send", SEND, "not_member"),
    ("carol", "history", {"room": "<dm>"}, "not_member"),
    ("carol", "message:send", {**SEND, "room": "<dm>"}, "not_member"),
    ("bob", "history", {"room": "secret"}, OK),
    ("bob", "sync", {"rooms": {"secret": 0}}, OK),
    ("bob", "presence", {"room": "secret"}, OK),
    ("bob", "message:send", SEND, OK),
    # authors (or room admins) edit and delete messages
    ("bob", "message:edit", EDIT, "forbidden"),
    ("bob", "message:delete", DELETE, "forbidden"),
    ("carol", "message:edit", EDIT, "not_member"),
    ("carol", "message:delete", DELETE, "not_member"),
    ("dave", "message:delete", DELETE, OK),
    ("dave", "message:edit", EDIT, OK),
    ("alice", "message:edit", EDIT, OK),
    ("alice", "message:delete", DELETE, OK),
]


@pytest.mark.parametrize(
    ("who", "event", "payload", "expected"),
    SOCKET_TABLE,
    ids=[f"{who}-{event}-{next(iter(p.values()))}-{exp}" for who, event, p, exp in SOCKET_TABLE],
)
async def test_socket_event_rights(
    world: dict[str, Any],
    connect: Callable[..., Awaitable[ChatClient]],
    db: asyncpg.Connection,
    who: str,
    event: str,
    payload: dict[str, Any],
    expected: str,
) -> None:
    client = await connect(who)
    before = await snapshot(db)
    ack = await client.call(event, fill(payload, world))
    if expected == OK:
        assert ack.get("ok") is True, ack
        if event == "message:delete":
            assert ack["message"]["deleted"] is True
            assert await db.fetchval("SELECT deleted FROM messages WHERE id = $1", world["message_id"]) is True
        if event == "message:edit":
            assert await db.fetchval("SELECT text FROM messages WHERE id = $1", world["message_id"]) == "rewritten"
    else:
        assert ack.get("ok") is False, ack
        assert_error({"error": ack["error"]}, expected)
        assert set(ack) == {"ok", "error"}, ack
        assert await snapshot(db) == before
    assert client.sio.connected  # a refusal never costs the connection


# -- REST with client JWTs and API keys -----------------------------------------------------------

MUTE = {"muted_until": "2031-02-03T04:05:06Z"}
NEW_PRIVATE = {"kind": "private", "name": "ops", "members": ["alice"]}
SERVICE_POST = {"sender_id": "bob", "client_id": "c-rest", "text": "from a client"}

# credential ("jwt:<user>", "key:<scope>" or None), method, path, body, status, error code (None: success)
REST_TABLE: list[tuple[str | None, str, str, Any, int, str | None]] = [
    # GET /rooms/{id} and /rooms/{id}/messages: rooms U may read
    ("jwt:carol", "GET", "/rooms/secret", None, 403, "not_member"),
    ("jwt:carol", "GET", "/rooms/secret/messages", None, 403, "not_member"),
    ("jwt:carol", "GET", "/rooms/<dm>", None, 403, "not_member"),
    ("jwt:carol", "GET", "/rooms/<dm>/messages", None, 403, "not_member"),
    ("jwt:carol", "GET", "/rooms/lobby", None, 200, None),
    ("jwt:carol", "GET", "/rooms/lobby/messages", None, 200, None),
    ("jwt:bob", "GET", "/rooms/secret", None, 200, None),
    ("jwt:bob", "GET", "/rooms/secret/messages", None, 200, None),
    # POST /rooms: private or direct rooms with U as owner, never public
    ("jwt:carol", "POST", "/rooms", {"kind": "public", "name": "town square"}, 403, "forbidden"),
    ("jwt:carol", "POST", "/rooms", NEW_PRIVATE, 201, None),
    # PATCH /rooms/{id}/members/U: own mute only
    ("jwt:bob", "PATCH", "/rooms/secret/members/bob", MUTE, 200, None),
    ("jwt:bob", "PATCH", "/rooms/secret/members/alice", MUTE, 403, "forbidden"),
    ("jwt:bob", "PATCH", "/rooms/secret/members/bob", {"role": "admin"}, 403, "forbidden"),
    # the room's owner (alice) and admin (dave) manage members from their clients; a plain member may not
    ("jwt:alice", "PUT", "/rooms/secret/members/carol", {"role": "member"}, 201, None),
    ("jwt:dave", "PUT", "/rooms/secret/members/carol", {"role": "owner"}, 403, "forbidden"),
    ("jwt:bob", "PUT", "/rooms/secret/members/carol", {"role": "member"}, 403, "forbidden"),
    ("jwt:alice", "DELETE", "/rooms/secret/members/bob", None, 204, None),
    ("jwt:bob", "DELETE", "/rooms/secret/members/dave", None, 403, "forbidden"),
    ("jwt:carol", "DELETE", "/rooms/secret/members/bob", None, 403, "not_member"),
    # GET /users/U/rooms: only U's own
    ("jwt:bob", "GET", "/users/bob/rooms", None, 200, None),
    ("jwt:bob", "GET", "/users/alice/rooms", None, 403, "forbidden"),
    # not in the client's list at all (even for the room's owner)
    ("jwt:bob", "DELETE", "/rooms/secret", None, 403, "forbidden"),
    ("jwt:alice", "DELETE", "/rooms/secret", None, 403, "forbidden"),
    ("jwt:bob", "POST", "/rooms/secret/messages", SERVICE_POST, 403, "forbidden"),
    ("jwt:bob", "POST", "/users/alice/disconnect", None, 403, "forbidden"),
    # API keys: rooms need publish (admin implies all)
    ("key:notify", "POST", "/rooms", NEW_PRIVATE, 403, "forbidden"),
    ("key:devices", "POST", "/rooms", NEW_PRIVATE, 403, "forbidden"),
    ("key:campaigns", "POST", "/rooms", NEW_PRIVATE, 403, "forbidden"),
    ("key:publish", "POST", "/rooms", NEW_PRIVATE, 201, None),
    ("key:admin", "POST", "/rooms", NEW_PRIVATE, 201, None),
    ("key:notify", "GET", "/rooms/secret", None, 403, "forbidden"),
    ("key:publish", "GET", "/rooms/secret", None, 200, None),
    # no credential
    (None, "POST", "/rooms", NEW_PRIVATE, 401, "auth_required"),
    (None, "GET", "/rooms/lobby", None, 401, "auth_required"),
    (None, "GET", "/users/alice/rooms", None, 401, "auth_required"),
]


@pytest.mark.parametrize(
    ("credential", "method", "path", "body", "status", "code"),
    REST_TABLE,
    ids=[f"{c}-{m}-{p}-{s}" for c, m, p, _, s, _ in REST_TABLE],
)
async def test_rest_rights(
    world: dict[str, Any],
    api_key: Callable[..., Awaitable[str]],
    db: asyncpg.Connection,
    credential: str | None,
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str | None,
) -> None:
    bearer: str | None = None
    if credential is not None:
        kind, _, name = credential.partition(":")
        bearer = token_for(name) if kind == "jwt" else await api_key(name)
    before = await snapshot(db)
    async with aiohttp.ClientSession() as http:
        got_status, answer = await Rest(world["url"], bearer, http=http).request(method, fill(path, world), body)
    assert got_status == status, (got_status, answer)
    if code is not None:
        assert_error(answer, code)
        assert await snapshot(db) == before


async def test_client_creates_a_private_room_as_its_owner(world: dict[str, Any], db: asyncpg.Connection) -> None:
    async with aiohttp.ClientSession() as http:
        carol = Rest(world["url"], token_for("carol"), http=http)
        status, room = await carol.request("POST", "/rooms", {"kind": "private", "members": ["erin"]})
    assert status == 201, room
    assert room["kind"] == "private"
    assert {m["user_id"]: m["role"] for m in room["members"]} == {"carol": "owner", "erin": "member"}
    roles = await db.fetch("SELECT user_id, role FROM members WHERE room_id = $1 ORDER BY user_id", room["id"])
    assert [tuple(r) for r in roles] == [("carol", "owner"), ("erin", "member")]


async def test_client_direct_room_for_the_same_pair_is_the_same_room(
    world: dict[str, Any], db: asyncpg.Connection
) -> None:
    async with aiohttp.ClientSession() as http:
        carol = Rest(world["url"], token_for("carol"), http=http)
        erin = Rest(world["url"], token_for("erin"), http=http)
        first_status, first = await carol.request("POST", "/rooms", {"kind": "direct", "members": ["erin"]})
        again_status, again = await carol.request("POST", "/rooms", {"kind": "direct", "members": ["erin"]})
        other_status, other = await erin.request("POST", "/rooms", {"kind": "direct", "members": ["carol"]})
    assert (first_status, again_status, other_status) == (201, 200, 200), (first, again, other)
    assert first["id"] == again["id"] == other["id"]
    assert first["kind"] == "direct"
    members = await db.fetch("SELECT user_id FROM members WHERE room_id = $1 ORDER BY user_id", first["id"])
    assert [r["user_id"] for r in members] == ["carol", "erin"]
    assert await db.fetchval("SELECT count(*) FROM rooms WHERE kind = 'direct'") == 2  # dm and this one


async def test_client_mutes_itself_and_it_is_stored(world: dict[str, Any], db: asyncpg.Connection) -> None:
    async with aiohttp.ClientSession() as http:
        bob = Rest(world["url"], token_for("bob"), http=http)
        status, member = await bob.request("PATCH", "/rooms/secret/members/bob", MUTE)
    assert status == 200, member
    assert member["user_id"] == "bob"
    stored = await db.fetchval("SELECT muted_until FROM members WHERE room_id = 'secret' AND user_id = 'bob'")
    assert stored == datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert datetime.fromisoformat(member["muted_until"].replace("Z", "+00:00")) == stored
