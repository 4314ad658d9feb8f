"""The whole access matrix: every REST route and every client socket event against every credential.

The expected answers are written below as data, taken from DESIGN.md ("Identities and credentials":
the "who | may" table and the room rules), never computed from the app's code:

- ``ROUTES``: for each REST route (the set is checked against the OpenAPI document, so a new route
  without a row fails), one or more concrete requests and the credentials that may make them;
  every other credential is refused with the status and code written in the row (401 for a missing
  or bad credential, else 403 ``forbidden`` unless the row says otherwise) and changes nothing in
  the database; an allowed one gets a 2xx.
- ``SOCKET_RULES``: for each room event, the ack of a plain member, an outsider (and, for edit and
  delete, the author and a former member who wrote the message) in a public, a private and a direct
  room. Connects without a valid client JWT are refused with ``connect_error`` ``{code, message}``.

The world is ``world`` of tests/hub/conftest.py (lobby, secret, dm; carol a member of nothing) plus,
for this file: erin a plain member of lobby; a message by alice in lobby and in the dm; frank, who
wrote a message in lobby, in secret and in a direct room with alice, then was removed from all
three; bob's iPhone; a queued notification to bob; a segment and a draft campaign.

tests/hub/test_access.py keeps the finer cases (room admins, roles, what an allowed call stores).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest
from aiohttp import web

from config import Settings
from hub.app import SOCKETS, create_app
from hub.openapi import document
from store import apikeys
from tests.support.access import OK, fill, snapshot, snapshot_diff
from tests.support.push import record_delivered
from tests.support.rest import Rest
from tests.support.sockets import ChatClient, connect_refusal
from tests.support.tokens import token_for

# -- credentials ------------------------------------------------------------------------------------

NONE = "no credential"
EXPIRED = "expired JWT"
MALFORMED = "malformed JWT"
FORGED = "JWT with a wrong signature"
REVOKED = "revoked admin key"
SELF = "JWT of the user"  # the user the route is about, or a member of the room (row.self_user)
OTHER = "JWT of another user"  # not that user, not a member (row.other_user)
SCOPED = (PUBLISH, NOTIFY, DEVICES, CAMPAIGNS, ADMIN) = tuple(f"{scope} key" for scope in apikeys.SCOPES)

#: A missing or bad credential is refused the same way on every route that needs one.
UNAUTHENTICATED: dict[str, str] = {
    NONE: "auth_required",
    EXPIRED: "token_expired",
    MALFORMED: "token_invalid",
    FORGED: "token_invalid",
    REVOKED: "token_invalid",
}
CREDENTIALS = (*UNAUTHENTICATED, SELF, OTHER, PUBLISH, NOTIFY, DEVICES, CAMPAIGNS, ADMIN)
EVERYONE = frozenset(CREDENTIALS)

FORBIDDEN = (403, "forbidden")
NOT_MEMBER = (403, "not_member")
NOT_FOUND = (404, "not_found")


def may(*who: str) -> frozenset[str]:
    """Those credentials, and the admin key ("admin implies all")."""
    return frozenset({*who, ADMIN})


@dataclass(frozen=True)
class Row:
    method: str
    route: str  # the path as in the OpenAPI document, without /api/v1
    params: Mapping[str, str]  # its path parameters (placeholders of the world allowed)
    allowed: frozenset[str]
    body: Any = None
    self_user: str = "bob"
    other_user: str = "carol"
    refused: Mapping[str, tuple[int, str]] = field(default_factory=dict)  # other than 403 forbidden
    fresh: str | None = None  # a FRESH setup, run before the refusals and before each allowed call

    def expected(self, credential: str) -> tuple[int, str]:
        if credential in UNAUTHENTICATED:
            return 401, UNAUTHENTICATED[credential]
        return self.refused.get(credential, FORBIDDEN)

    @property
    def path(self) -> str:
        return self.route.format(**self.params)


NEW_PRIVATE = {"kind": "private", "name": "ops", "members": ["dave"]}
NEW_PUBLIC = {"kind": "public", "name": "town square"}
MUTE = {"muted_until": "2031-02-03T04:05:06Z"}
SERVICE_MESSAGE = {"sender_id": "bob", "client_id": "c-rest", "text": "from a service"}
BOB_TOKEN = "ab" * 32
BOB_IPHONE = {"token": BOB_TOKEN, "provider": "apns", "platform": "ios", "user_id": "bob"}
PUSH = {"to": {"user_ids": ["bob"]}, "notification": {"title": "Hi", "body": "there"}}
BETA = {"field": "tags", "op": "contains", "value": "beta"}
SEGMENT = {"name": "Beta", "filter": BETA}
CAMPAIGN = {"name": "Spring", "segment_id": "<segment>", "content": {"default": {"title": "Hi", "body": "there"}}}
LATER = {"schedule": {"kind": "at", "at": "2099-01-01T00:00:00Z"}}

SECRET, DM, LOBBY = {"room_id": "secret"}, {"room_id": "<dm>"}, {"room_id": "lobby"}
BOB = {"user_id": "bob"}
ZED = {"user_id": "zed"}
NOTIFICATION = {"notification_id": "<notification>"}
SEGMENT_ID, NEW_SEGMENT_ID = {"segment_id": "<segment>"}, {"segment_id": "<new segment>"}
CAMPAIGN_ID, NEW_CAMPAIGN_ID = {"campaign_id": "<campaign>"}, {"campaign_id": "<new campaign>"}

ROWS: list[Row] = [
    # -- rooms. publish key: "rooms, members, roles, posting messages". A client: POST /rooms (private or
    # direct rooms with U as owner), GET /rooms/{id} and its messages (rooms U may read: public ones, and
    # private or direct ones U is a member of), PATCH /rooms/{id}/members/U (own mute); nothing else, even
    # for the room's owner (other_user="alice" below).
    Row("POST", "/rooms", {}, may(SELF, OTHER, PUBLISH), NEW_PRIVATE),
    Row("POST", "/rooms", {}, may(PUBLISH), NEW_PUBLIC),
    Row("GET", "/rooms/{room_id}", SECRET, may(SELF, PUBLISH), refused={OTHER: NOT_MEMBER}),
    Row("GET", "/rooms/{room_id}", DM, may(SELF, PUBLISH), refused={OTHER: NOT_MEMBER}),
    Row("GET", "/rooms/{room_id}", LOBBY, may(SELF, OTHER, PUBLISH), self_user="alice"),
    Row("DELETE", "/rooms/{room_id}", {"room_id": "doomed"}, may(PUBLISH), fresh="room doomed, owned by bob"),
    Row(  # an owner (alice) manages members from her client; a plain member (bob) may not
        "PUT",
        "/rooms/{room_id}/members/{user_id}",
        {**SECRET, **BOB},
        may(OTHER, PUBLISH),
        {"role": "member"},
        other_user="alice",
    ),
    Row("PATCH", "/rooms/{room_id}/members/{user_id}", {**SECRET, **BOB}, may(SELF, PUBLISH), MUTE, other_user="alice"),
    Row(
        "PATCH",
        "/rooms/{room_id}/members/{user_id}",
        {**LOBBY, "user_id": "carol"},
        may(PUBLISH),  # the key adds carol (201), then changes her (200)
        MUTE,
        self_user="carol",
        other_user="alice",
        refused={SELF: NOT_MEMBER},  # an own mute needs a membership
    ),
    Row(  # bob leaves, the owner removes him, a key removes him
        "DELETE",
        "/rooms/{room_id}/members/{user_id}",
        {**SECRET, **BOB},
        may(SELF, OTHER, PUBLISH),
        other_user="alice",
        fresh="bob in secret",
    ),
    # -- moderation. publish key, or an owner or admin of the room (alice owns secret); bob is a plain member
    Row("PATCH", "/rooms/{room_id}", SECRET, may(OTHER, PUBLISH), {"frozen": False}, other_user="alice"),
    Row("GET", "/rooms/{room_id}/bans", SECRET, may(OTHER, PUBLISH), other_user="alice"),
    Row("PUT", "/rooms/{room_id}/bans/{user_id}", {**SECRET, **ZED}, may(OTHER, PUBLISH), {}, other_user="alice"),
    Row(
        "DELETE",
        "/rooms/{room_id}/bans/{user_id}",
        {**SECRET, **ZED},
        may(OTHER, PUBLISH),
        other_user="alice",
        fresh="zed banned from secret",
    ),
    Row("GET", "/rooms/{room_id}/reports", SECRET, may(OTHER, PUBLISH), other_user="alice"),
    Row("GET", "/rooms/{room_id}/messages", SECRET, may(SELF, PUBLISH), refused={OTHER: NOT_MEMBER}),
    Row("GET", "/rooms/{room_id}/messages", DM, may(SELF, PUBLISH), refused={OTHER: NOT_MEMBER}),
    Row("GET", "/rooms/{room_id}/messages", LOBBY, may(SELF, OTHER, PUBLISH), self_user="alice"),
    Row("POST", "/rooms/{room_id}/messages", SECRET, may(PUBLISH), SERVICE_MESSAGE),  # clients post over the socket
    # -- users. campaigns key: "user attributes and tags"; admin key: "user export and delete"; a client:
    # GET /users/U/rooms, /users/U/devices, /users/U/export (its own only).
    Row("PUT", "/users/{user_id}", BOB, may(CAMPAIGNS), {"tags": ["beta"]}),
    Row("DELETE", "/users/{user_id}", {"user_id": "erin"}, may(), self_user="erin", fresh="erin's profile"),
    Row("GET", "/users/{user_id}/rooms", BOB, may(SELF, PUBLISH)),
    Row("POST", "/users/{user_id}/read", BOB, may(SELF, PUBLISH)),
    Row("POST", "/users/{user_id}/disconnect", BOB, may(PUBLISH)),
    Row("GET", "/users/{user_id}/export", BOB, may(SELF)),
    Row("GET", "/users/{user_id}/devices", BOB, may(SELF, DEVICES)),
    # -- devices. devices key: "devices of any user"; a client: POST /devices (for U), DELETE /devices/{token}
    # (U's devices). Another user's token is answered 404, as if it did not exist (tests/hub/test_openapi.py).
    Row("POST", "/devices", {}, may(SELF, DEVICES), BOB_IPHONE),
    Row(
        "DELETE",
        "/devices/{token}",
        {"token": BOB_TOKEN},
        may(SELF, DEVICES),
        refused={OTHER: NOT_FOUND},
        fresh="bob's iphone",
    ),
    # -- notifications. notify key: "notifications, their status".
    Row("POST", "/notifications", {}, may(NOTIFY), PUSH),
    Row("GET", "/notifications/{notification_id}", NOTIFICATION, may(NOTIFY)),
    # Not in DESIGN.md's table: the route's own contract (its OpenAPI summary) lets a client report an
    # open of a notification sent to one of its devices (bob's), not another's (404), and the notify key.
    Row(
        "POST",
        "/notifications/{notification_id}/opened",
        NOTIFICATION,
        may(SELF, NOTIFY),
        refused={OTHER: NOT_FOUND},
    ),
    # -- segments and campaigns. campaigns key: "segments, campaigns, their stats".
    Row("POST", "/segments/preview", {}, may(CAMPAIGNS), {"filter": BETA}),
    Row("POST", "/segments", {}, may(CAMPAIGNS), SEGMENT),
    Row("GET", "/segments", {}, may(CAMPAIGNS)),
    Row("GET", "/segments/{segment_id}", SEGMENT_ID, may(CAMPAIGNS)),
    Row("PUT", "/segments/{segment_id}", SEGMENT_ID, may(CAMPAIGNS), SEGMENT),
    Row("DELETE", "/segments/{segment_id}", NEW_SEGMENT_ID, may(CAMPAIGNS), fresh="new segment"),
    Row("POST", "/campaigns", {}, may(CAMPAIGNS), CAMPAIGN),
    Row("GET", "/campaigns", {}, may(CAMPAIGNS)),
    Row("GET", "/campaigns/{campaign_id}", CAMPAIGN_ID, may(CAMPAIGNS)),
    Row("PATCH", "/campaigns/{campaign_id}", CAMPAIGN_ID, may(CAMPAIGNS), {"name": "Spring!"}),
    Row("DELETE", "/campaigns/{campaign_id}", NEW_CAMPAIGN_ID, may(CAMPAIGNS), fresh="new campaign"),
    Row("POST", "/campaigns/{campaign_id}/schedule", NEW_CAMPAIGN_ID, may(CAMPAIGNS), LATER, fresh="new campaign"),
    Row("POST", "/campaigns/{campaign_id}/cancel", NEW_CAMPAIGN_ID, may(CAMPAIGNS), fresh="new campaign"),
    Row("GET", "/campaigns/{campaign_id}/stats", CAMPAIGN_ID, may(CAMPAIGNS)),
    # -- admin key: "everything" (the outbox is a developer's view of pushes; this file runs with it on).
    Row("GET", "/dev/outbox", {}, may()),
    # -- the OpenAPI document is public: no credential is needed, and a bad one is not looked at.
    Row("GET", "/openapi.json", {}, EVERYONE),
]

ROUTES: dict[tuple[str, str], list[Row]] = {}
for _row in ROWS:
    ROUTES.setdefault((_row.method, _row.route), []).append(_row)

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")

# -- socket events ----------------------------------------------------------------------------------

F, NM, NF = "forbidden", "not_member", "not_found"
KINDS = ("public", "private", "direct")

#: The ack of each event (OK or the error code) by role, in a public, a private and a direct room.
#: Room rules: anyone authenticated may read and join a public room; only members may read or post in
#: private and direct rooms (joining is for public rooms; posting, typing, receipts and mutes are for
#: members); authors (or room admins, see test_access.py) edit and delete messages, in rooms they are
#: still members of.
SOCKET_RULES: dict[str, dict[str, tuple[str, str, str]]] = {
    #  event              role                public  private direct
    "room:join": {"member": (OK, OK, OK), "outsider": (OK, F, F)},
    "room:leave": {"member": (OK, OK, OK), "outsider": (NM, NM, NM)},
    "room:mute": {"member": (OK, OK, OK), "outsider": (NM, NM, NM)},
    "message:send": {"member": (OK, OK, OK), "outsider": (NM, NM, NM)},
    "message:edit": {
        "member": (F, F, F),
        "outsider": (NM, NM, NM),
        "author": (OK, OK, OK),
        "former author": (NM, NM, NM),
    },
    "message:delete": {
        "member": (F, F, F),
        "outsider": (NM, NM, NM),
        "author": (OK, OK, OK),
        "former author": (NM, NM, NM),
    },
    "history": {"member": (OK, OK, OK), "outsider": (OK, NM, NM)},
    "sync": {"member": (OK, OK, OK), "outsider": (OK, NM, NM)},
    "typing": {"member": (OK, OK, OK), "outsider": (NM, NM, NM)},
    "read": {"member": (OK, OK, OK), "outsider": (NM, NM, NM)},
    "presence": {"member": (OK, OK, OK), "outsider": (OK, NM, NM)},
    # moderation, on zed (a plain member of lobby and secret): the owner (alice) may, except in a direct
    # room (no owner there; no bans); a plain member may not; an outsider is not a member
    "member:set": {"owner": (OK, OK, F), "member": (F, F, F), "outsider": (NM, NM, NM)},
    "member:remove": {"owner": (OK, OK, F), "member": (F, F, F), "outsider": (NM, NM, NM)},
    "member:ban": {"owner": (OK, OK, F), "member": (F, F, F), "outsider": (NM, NM, F)},
    "member:unban": {"owner": (NF, NF, F), "member": (F, F, F), "outsider": (NM, NM, NM)},  # zed is not banned
    "member:mute": {"owner": (OK, OK, F), "member": (F, F, F), "outsider": (NM, NM, NM)},
    "room:freeze": {"owner": (OK, OK, F), "member": (F, F, F), "outsider": (NM, NM, NM)},
    "message:report": {"owner": (OK, OK, OK), "member": (OK, OK, OK), "outsider": (OK, NM, NM)},
}

#: Events about the caller's own rooms, not one room: every connected user may call them, and each
#: answers about the caller only (test_user_events).
USER_EVENTS = ("read:all", "rooms:list")

#: Who plays each role, per kind of room. "member" is a plain member who did not write the message.
CAST: dict[str, dict[str, str]] = {
    "member": {"public": "erin", "private": "bob", "direct": "bob"},
    "outsider": {"public": "carol", "private": "carol", "direct": "carol"},
    "author": {"public": "alice", "private": "alice", "direct": "alice"},
    "owner": {"public": "alice", "private": "alice", "direct": "alice"},  # of lobby and secret; in the dm, a member
    "former author": {"public": "frank", "private": "frank", "direct": "frank"},
}
ROOM = {"public": "lobby", "private": "secret", "direct": "<dm>"}
FRANKS_ROOM = {**ROOM, "direct": "<frank's dm>"}


def event_payload(event: str, role: str, kind: str) -> dict[str, Any]:
    room = (FRANKS_ROOM if role == "former author" else ROOM)[kind]
    message = f"<{'frank' if role == 'former author' else 'alice'}'s message in {kind}>"
    payloads: dict[str, dict[str, Any]] = {
        "room:join": {"room": room},
        "room:leave": {"room": room},
        "room:mute": {"room": room, "until": "2031-02-03T04:05:06Z"},
        "message:send": {"room": room, "client_id": f"matrix-{role}", "text": "hello"},
        "message:edit": {"room": room, "id": message, "text": "rewritten"},
        "message:delete": {"room": room, "id": message},
        "history": {"room": room},
        "sync": {"rooms": {room: 0}},
        "typing": {"room": room, "typing": True},
        "read": {"room": room, "seq": 1},
        "presence": {"room": room},
        "member:set": {"room": room, "user_id": "zed", "role": "member"},
        "member:remove": {"room": room, "user_id": "zed"},
        "member:ban": {"room": room, "user_id": "zed", "reason": "matrix"},
        "member:unban": {"room": room, "user_id": "zed"},
        "member:mute": {"room": room, "user_id": "zed", "until": "2031-02-03T04:05:06Z"},
        "room:freeze": {"room": room, "frozen": True},
        "message:report": {"room": room, "id": message, "reason": "matrix"},
    }
    return payloads[event]


#: auth:refresh on bob's connection, by the token sent: OK or the error code.
REFRESH_RULES: dict[str, str] = {
    "bob's new token": OK,
    "carol's token": "forbidden",
    "bob's expired token": "token_expired",
    "a malformed token": "token_invalid",
    "bob's token with a wrong signature": "token_invalid",
    "no token": "auth_required",
    "an admin key": "token_invalid",
}

#: A connect with each credential: None when it is accepted, else the connect_error code.
CONNECT_RULES: dict[str, str | None] = {
    SELF: None,
    NONE: "auth_required",
    EXPIRED: "token_expired",
    MALFORMED: "token_invalid",
    FORGED: "token_invalid",
    REVOKED: "token_invalid",  # API keys are for REST: a socket needs a client JWT
    PUBLISH: "token_invalid",
    NOTIFY: "token_invalid",
    DEVICES: "token_invalid",
    CAMPAIGNS: "token_invalid",
    ADMIN: "token_invalid",
}

# -- the world --------------------------------------------------------------------------------------


def _forged(user_id: str) -> str:
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + 600}
    return jwt.encode(claims, "not-the-hub-secret-0123456789abcdef-0123", algorithm="HS256")


@dataclass
class Matrix:
    url: str
    world: dict[str, Any]
    keys: dict[str, str]  # credential name -> API key, and "setup" -> an admin key for building things

    def bearer(self, credential: str, self_user: str, other_user: str) -> str | None:
        tokens = {
            NONE: None,
            EXPIRED: token_for(self_user, ttl=-60),
            MALFORMED: "not-a-jwt",
            FORGED: _forged(self_user),
            SELF: token_for(self_user),
            OTHER: token_for(other_user),
        }
        return tokens[credential] if credential in tokens else self.keys[credential]

    def fill(self, value: Any) -> Any:
        return fill(value, self.world)

    async def fresh(self, http: aiohttp.ClientSession, what: str | None) -> None:
        """(Re)create what a destructive row acts on."""
        if what is None:
            return
        setup = Rest(self.url, self.keys["setup"], http=http)
        if what == "room doomed, owned by bob":
            room = {"id": "doomed", "kind": "private", "owner": "bob", "members": ["dave"]}
            status, answer = await setup.request("POST", "/rooms", room)
            assert status in (201, 409), answer  # 409: still there
        elif what == "bob in secret":
            await setup.ok("PUT", "/rooms/secret/members/bob", {"role": "member"})
        elif what == "zed banned from secret":
            await setup.ok("PUT", "/rooms/secret/bans/zed", {})
        elif what == "bob's iphone":
            await setup.ok("POST", "/devices", BOB_IPHONE)
        elif what == "erin's profile":
            await setup.ok("PUT", "/users/erin", {"tags": ["beta"]})
        elif what == "new segment":
            segment = await setup.ok("POST", "/segments", SEGMENT)
            self.world["placeholders"]["<new segment>"] = segment["id"]
        elif what == "new campaign":
            campaign = await setup.ok("POST", "/campaigns", self.fill(CAMPAIGN))
            self.world["placeholders"]["<new campaign>"] = campaign["id"]
        else:
            raise AssertionError(f"no fresh setup named {what!r}")


async def _keys(api_key: Callable[..., Awaitable[str]], db: asyncpg.Connection) -> dict[str, str]:
    """An API key per scope, and a revoked admin key, by credential name."""
    keys = {credential: await api_key(scope) for credential, scope in zip(SCOPED, apikeys.SCOPES, strict=True)}
    keys[REVOKED] = await api_key("admin", name="revoked")
    assert await apikeys.revoke(db, keys[REVOKED][: len(apikeys.KEY_PREFIX) + 8])
    return keys


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """The hub of these tests keeps an outbox, so GET /dev/outbox has something to answer."""
    return {**env, "HERALD_PUSH_PROVIDER": "outbox"}


@pytest.fixture
async def matrix(world: dict[str, Any], api_key: Callable[..., Awaitable[str]], db: asyncpg.Connection) -> Matrix:
    keys = await _keys(api_key, db)
    keys["setup"] = key = await api_key("admin", name="setup")
    url = world["url"]
    places: dict[str, Any] = {}
    world["placeholders"] = places
    async with aiohttp.ClientSession() as http:
        setup = Rest(url, key, http=http)

        async def post(path: str, body: Any) -> Any:
            return await setup.ok("POST", fill(path, world), fill(body, world))

        await setup.ok("PUT", "/rooms/lobby/members/erin", {"role": "member"})
        for room in ("lobby", "secret"):  # zed: whom the moderation events act on
            await setup.ok("PUT", f"/rooms/{room}/members/zed", {"role": "member"})
        places["<alice's message in private>"] = world["message_id"]
        for kind in ("public", "direct"):
            text = {"sender_id": "alice", "client_id": f"alice-{kind}", "text": "alice's words"}
            places[f"<alice's message in {kind}>"] = (await post(f"/rooms/{ROOM[kind]}/messages", text))["id"]
        franks_dm = await post("/rooms", {"kind": "direct", "members": ["alice", "frank"]})
        places["<frank's dm>"] = franks_dm["id"]
        for kind in ("public", "private"):
            await setup.ok("PUT", f"/rooms/{ROOM[kind]}/members/frank", {"role": "member"})
        for kind in KINDS:
            room = fill(FRANKS_ROOM[kind], world)
            text = {"sender_id": "frank", "client_id": f"frank-{kind}", "text": "frank's words"}
            places[f"<frank's message in {kind}>"] = (await post(f"/rooms/{room}/messages", text))["id"]
            status, answer = await setup.request("DELETE", f"/rooms/{room}/members/frank")
            assert status == 204, answer
        await post("/devices", BOB_IPHONE)
        places["<notification>"] = (await post("/notifications", PUSH))["id"]
        await record_delivered(db, places["<notification>"], BOB_TOKEN)  # sent to bob's iPhone
        places["<segment>"] = (await post("/segments", SEGMENT))["id"]
        places["<campaign>"] = (await post("/campaigns", CAMPAIGN))["id"]
    return Matrix(url=url, world=world, keys=keys)


def _code(body: Any) -> str | None:
    """The error code of a well-formed error body ({"error": {"code", "message"}}), else None."""
    if not (isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], dict)):
        return None
    error = body["error"]
    if set(error) != {"code", "message"} or not (isinstance(error["message"], str) and error["message"]):
        return None
    return str(error["code"])


def _ack_code(ack: Any) -> str | None:
    """The error code of a well-formed refusal ack ({"ok": false, "error": {"code", "message"}}), else None."""
    if not (isinstance(ack, dict) and set(ack) == {"ok", "error"} and ack["ok"] is False):
        return None
    return _code({"error": ack["error"]})


# -- the tables cover everything ----------------------------------------------------------------


def test_the_matrix_has_a_row_for_every_route() -> None:
    documented = {
        (method.upper(), path) for path, item in document()["paths"].items() for method in item if method in METHODS
    }
    in_table = {(method, f"/api/v1{route}") for method, route in ROUTES}
    assert in_table - documented == set(), "rows for routes the app does not serve"
    assert documented - in_table == set(), "routes without a row in ROUTES"


async def test_the_matrix_has_a_row_for_every_socket_event(settings: Settings) -> None:
    runner = web.AppRunner(create_app(settings), handle_signals=False)
    await runner.setup()  # runs the app's startup, which attaches the Socket.IO namespace
    try:
        events = set(runner.app[SOCKETS].events)
    finally:
        await runner.cleanup()
    assert {*SOCKET_RULES, *USER_EVENTS, "auth:refresh"} == events
    for event, rules in SOCKET_RULES.items():
        assert {"member", "outsider"} <= set(rules), event
    assert all(credential in CONNECT_RULES for credential in CREDENTIALS if credential != OTHER)


# -- REST -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "route"), list(ROUTES), ids=[f"{m} {r}" for m, r in ROUTES])
async def test_route(matrix: Matrix, db: asyncpg.Connection, method: str, route: str) -> None:
    """Refusals first (each must leave the database as it was), then the allowed calls; all mismatches
    are reported at once."""
    rows = ROUTES[(method, route)]
    mismatches: list[str] = []
    async with aiohttp.ClientSession() as http:

        async def call(row: Row, credential: str) -> tuple[int, Any]:
            bearer = matrix.bearer(credential, row.self_user, row.other_user)
            rest = Rest(matrix.url, bearer, http=http)
            return await rest.request(row.method, matrix.fill(row.path), matrix.fill(row.body))

        for row in rows:
            await matrix.fresh(http, row.fresh)
            for credential in CREDENTIALS:
                if credential in row.allowed:
                    continue
                expected = row.expected(credential)
                before = await snapshot(db)
                status, body = await call(row, credential)
                label = f"{credential} {row.method} {matrix.fill(row.path)}: expected {expected}"
                if (status, _code(body)) != expected:
                    mismatches.append(f"{label}, got {status} {body}")
                changed = snapshot_diff(before, await snapshot(db))
                if changed:
                    mismatches.append(f"{label}, but the refusal changed the database: {changed}")
        for row in rows:
            for credential in CREDENTIALS:
                if credential not in row.allowed:
                    continue
                await matrix.fresh(http, row.fresh)
                status, body = await call(row, credential)
                if not 200 <= status < 300:
                    mismatches.append(
                        f"{credential} {row.method} {matrix.fill(row.path)}: expected 2xx, got {status} {body}"
                    )
    assert not mismatches, "\n".join(["access mismatches:", *mismatches])


# -- sockets ----------------------------------------------------------------------------------------


async def test_connect_with_each_credential(
    hub_url: str, api_key: Callable[..., Awaitable[str]], db: asyncpg.Connection
) -> None:
    matrix = Matrix(url=hub_url, world={}, keys=await _keys(api_key, db))
    mismatches: list[str] = []
    before = await snapshot(db)
    for credential, expected in CONNECT_RULES.items():
        if expected is None:
            continue
        refusal = await connect_refusal(hub_url, matrix.bearer(credential, "bob", "carol"))
        if refusal["data"]["code"] != expected:
            mismatches.append(f"connect with {credential}: expected {expected}, got {refusal}")
    # A refused connect creates no user and touches nothing ("a user row is created on the first valid
    # connection").
    changed = snapshot_diff(before, await snapshot(db))
    if changed:
        mismatches.append(f"refused connects changed the database: {changed}")
    client = ChatClient(hub_url, matrix.bearer(SELF, "bob", "carol") or "")
    try:
        await client.open()
        assert client.events["ready"][0]["user_id"] == "bob"
    finally:
        await client.close()
    assert not mismatches, "\n".join(["connect mismatches:", *mismatches])


@pytest.mark.parametrize("event", list(SOCKET_RULES))
async def test_socket_event(
    matrix: Matrix, connect: Callable[..., Awaitable[ChatClient]], db: asyncpg.Connection, event: str
) -> None:
    """Each role in each kind of room: refusals first (database unchanged, connection kept), then the
    allowed calls."""
    cells = [
        (role, kind, expected)
        for role, row in SOCKET_RULES[event].items()
        for kind, expected in zip(KINDS, row, strict=True)
    ]
    clients: dict[str, ChatClient] = {}
    for role, kind, _ in cells:
        user = CAST[role][kind]
        if user not in clients:
            clients[user] = await connect(user)
    mismatches: list[str] = []
    for role, kind, expected in sorted(cells, key=lambda cell: cell[2] == OK):  # refusals first
        client = clients[CAST[role][kind]]
        payload = matrix.fill(event_payload(event, role, kind))
        label = f"{role} ({CAST[role][kind]}) {event} {payload} in the {kind} room: expected {expected}"
        before = await snapshot(db)
        ack = await client.call(event, payload)
        if expected == OK:
            if not (isinstance(ack, dict) and ack.get("ok") is True):
                mismatches.append(f"{label}, got {ack}")
            continue
        if _ack_code(ack) != expected:
            mismatches.append(f"{label}, got {ack}")
        changed = snapshot_diff(before, await snapshot(db))
        if changed:
            mismatches.append(f"{label}, but the refusal changed the database: {changed}")
        if not client.sio.connected:
            mismatches.append(f"{label}, but the refusal cost the connection")
    assert not mismatches, "\n".join(["socket mismatches:", *mismatches])


async def test_auth_refresh(
    matrix: Matrix, connect: Callable[..., Awaitable[ChatClient]], db: asyncpg.Connection
) -> None:
    tokens: dict[str, str | None] = {
        "bob's new token": token_for("bob", ttl=600),
        "carol's token": token_for("carol", ttl=600),
        "bob's expired token": token_for("bob", ttl=-60),
        "a malformed token": "not-a-jwt",
        "bob's token with a wrong signature": _forged("bob"),
        "no token": None,
        "an admin key": matrix.keys[ADMIN],
    }
    assert set(tokens) == set(REFRESH_RULES)
    bob = await connect("bob")
    mismatches: list[str] = []
    for what, expected in sorted(REFRESH_RULES.items(), key=lambda item: item[1] == OK):
        before = await snapshot(db)
        ack = await bob.call("auth:refresh", {} if tokens[what] is None else {"token": tokens[what]})
        if expected == OK:
            if not (isinstance(ack, dict) and ack.get("ok") is True and ack.get("expires_at")):
                mismatches.append(f"auth:refresh with {what}: expected ok, got {ack}")
            continue
        if _ack_code(ack) != expected:
            mismatches.append(f"auth:refresh with {what}: expected {expected}, got {ack}")
        if snapshot_diff(before, await snapshot(db)):
            mismatches.append(f"auth:refresh with {what} changed the database")
        if not bob.sio.connected:
            mismatches.append(f"auth:refresh with {what} cost the connection")
    assert not mismatches, "\n".join(["auth:refresh mismatches:", *mismatches])


async def test_user_events_answer_about_the_caller_only(
    matrix: Matrix, connect: Callable[..., Awaitable[ChatClient]], db: asyncpg.Connection
) -> None:
    """rooms:list and read:all act on the caller's own memberships: carol (in no private room of the
    fixture) sees none of bob's rooms, and her read:all moves none of bob's read positions."""
    bob, carol = await connect("bob"), await connect("carol")
    bobs = {r["id"] for r in (await bob.call_ok("rooms:list", {}))["rooms"]}
    carols = {r["id"] for r in (await carol.call_ok("rooms:list", {}))["rooms"]}
    assert matrix.fill("<dm>") in bobs and "secret" in bobs
    assert not carols & {"secret", matrix.fill("<dm>")}
    before = await db.fetch("SELECT room_id, last_read_seq FROM members WHERE user_id = 'bob' ORDER BY room_id")
    moved = (await carol.call_ok("read:all", {}))["rooms"]
    assert set(moved) <= carols
    assert await db.fetch("SELECT room_id, last_read_seq FROM members WHERE user_id = 'bob' ORDER BY room_id") == before
