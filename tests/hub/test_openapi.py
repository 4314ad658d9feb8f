"""The OpenAPI document of /api/v1: it covers exactly the app's routes, it is well formed, and real
responses of a running app (successes and errors) match it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import jsonschema
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from config import Settings
from hub.app import create_app
from hub.openapi import document
from tests.support.push import record_delivered
from tests.support.rest import API, Rest
from tests.support.tokens import token_for

DOC_URI = "urn:herald:openapi"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339: a date, a time and an offset (jsonschema checks date-time only with extra packages)."""
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def _pointer(*segments: str) -> str:
    return "".join("/" + quote(s.replace("~", "~0").replace("/", "~1"), safe="~") for s in segments)


class Contract:
    """Validates requests and responses against the document, resolving every $ref within it."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.registry: Registry[Any] = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(doc))
        self.seen: set[tuple[str, str, int]] = set()

    def resolve(self, node: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...] | None]:
        """A ``$ref``'d object (response, parameter...) and its location when it was a reference."""
        ref = node.get("$ref")
        if ref is None:
            return node, None
        assert ref.startswith("#/"), ref
        parts = tuple(p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/"))
        target: Any = self.doc
        for part in parts:
            target = target[part]
        return target, parts

    def validator(self, *location: str) -> Draft202012Validator:
        return Draft202012Validator(
            {"$ref": f"{DOC_URI}#{_pointer(*location)}"}, registry=self.registry, format_checker=FORMATS
        )

    def operation(self, method: str, path: str) -> dict[str, Any]:
        item = self.doc["paths"].get(path)
        assert item is not None, f"{path} is not in the document"
        op = item.get(method.lower())
        assert op is not None, f"{method} {path} is not in the document"
        return op

    def check_request(self, method: str, path: str, body: Any) -> None:
        request_body = self.operation(method, path).get("requestBody")
        assert request_body is not None, f"{method} {path} takes no body in the document"
        self.validator("paths", path, method.lower(), "requestBody", "content", "application/json", "schema").validate(
            body
        )

    def check_response(self, method: str, path: str, status: int, content_type: str, raw: bytes) -> Any:
        responses = self.operation(method, path)["responses"]
        response = responses.get(str(status))
        assert response is not None, f"{method} {path} answered {status}, which the document does not list"
        response, location = self.resolve(response)
        if location is None:
            location = ("paths", path, method.lower(), "responses", str(status))
        self.seen.add((method.upper(), path, status))
        content = response.get("content")
        if content is None:
            assert raw == b"", f"{method} {path} {status} should have no body, got {raw[:200]!r}"
            return None
        assert content_type in content, f"{method} {path} {status}: content type {content_type}"
        body = json.loads(raw)
        self.validator(*location, "content", content_type, "schema").validate(body)
        return body


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract(document())


def _walk(node: Any, where: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*where, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*where, str(index)))


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item, item[method]


# --- (a) the app's routes and the document's paths are the same set ---


def test_the_document_covers_exactly_the_apps_routes(settings: Settings) -> None:
    app = create_app(settings)
    routes: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or not resource.canonical.startswith("/api/v1/"):
            continue
        routes.add((route.method.upper(), resource.canonical))
    gets = {path for method, path in routes if method == "GET"}
    routes = {(m, p) for m, p in routes if not (m == "HEAD" and p in gets)}  # aiohttp adds HEAD to every GET
    documented = {(method.upper(), path) for path, method, _, _ in _operations(document())}
    assert routes, "no /api/v1 routes found"
    assert routes - documented == set(), "routes missing from the document"
    assert documented - routes == set(), "documented paths the app does not serve"


# --- (b) the document is well formed ---


def test_the_document_is_well_formed(contract: Contract) -> None:
    doc = contract.doc
    assert doc["openapi"].startswith("3.1.")
    assert set(doc["components"]["schemas"]) >= {"Room", "Member", "Message", "UserRoom", "Error"}
    assert doc["components"]["securitySchemes"]["bearer"] == {
        **doc["components"]["securitySchemes"]["bearer"],
        "type": "http",
        "scheme": "bearer",
    }
    # every $ref resolves, within the document
    for where, node in _walk(doc):
        if isinstance(node, dict) and "$ref" in node:
            try:
                contract.resolve(node)
            except (KeyError, AssertionError) as exc:
                pytest.fail(f"{'/'.join(where)}: $ref {node['$ref']} does not resolve ({exc!r})")
    # every schema is a valid JSON Schema 2020-12
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for where, node in _walk(doc):
        if where and where[-1] == "schema" and isinstance(node, dict):
            Draft202012Validator.check_schema(node)
    operation_ids: list[str] = []
    for path, method, item, op in _operations(doc):
        label = f"{method.upper()} {path}"
        operation_ids.append(op["operationId"])
        assert op["responses"], label
        for status, response in op["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d", status), f"{label}: status {status}"
            response, _ = contract.resolve(response)
            assert response.get("description"), f"{label} {status}: description"
            if status == "204":
                assert "content" not in response, f"{label} 204 has content"
            else:
                assert response["content"]["application/json"]["schema"], f"{label} {status}: no schema"
        assert any(s.startswith("2") for s in op["responses"]), f"{label}: no success response"
        # the path's template parameters are declared as required path parameters, and only those
        params = [contract.resolve(p)[0] for p in [*item.get("parameters", []), *op.get("parameters", [])]]
        declared = {p["name"] for p in params if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), label
        for param in params:
            assert "schema" in param, f"{label}: parameter {param['name']}"
            if param["in"] == "path":
                assert param["required"] is True, f"{label}: parameter {param['name']}"
        if "requestBody" in op:
            assert method in ("post", "put", "patch"), label
            assert op["requestBody"]["content"]["application/json"]["schema"], label
        if op.get("security") != []:
            assert "401" in op["responses"], f"{label} needs a credential, so it may answer 401"
    assert len(operation_ids) == len(set(operation_ids)), "operationIds repeat"


def _strict_objects(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, schema in doc["components"]["schemas"].items():
        for where, node in _walk(schema):
            if isinstance(node, dict) and node.get("type") == "object" and "properties" in node:
                yield f"{name}/{'/'.join(where)}", node


def test_fixed_shapes_are_strict(contract: Contract) -> None:
    strict = list(_strict_objects(contract.doc))
    assert strict
    for where, node in strict:
        assert node.get("additionalProperties") is False, f"{where} allows unknown properties"


def test_the_validator_rejects_a_response_that_breaks_the_schema(contract: Contract) -> None:
    room = {
        "id": "r1",
        "kind": "private",
        "name": None,
        "metadata": {},
        "last_seq": 0,
        "version": 0,
        "frozen": False,
        "created_at": "2026-01-01T00:00:00Z",
        "members": [
            {"user_id": "alice", "role": "owner", "muted_until": None, "post_muted_until": None, "last_read_seq": 0}
        ],
    }
    raw = json.dumps(room).encode()
    contract.check_response("GET", "/api/v1/rooms/{room_id}", 200, "application/json", raw)
    broken = [
        {**room, "extra": 1},
        {k: v for k, v in room.items() if k != "last_seq"},
        {**room, "kind": "secret"},
        {**room, "created_at": "yesterday"},
        {**room, "members": [{**room["members"][0], "unread": 3}]},
    ]
    for body in broken:
        with pytest.raises(jsonschema.ValidationError):
            contract.check_response(
                "GET", "/api/v1/rooms/{room_id}", 200, "application/json", json.dumps(body).encode()
            )
    with pytest.raises(jsonschema.ValidationError):
        contract.check_response(
            "GET",
            "/api/v1/rooms/{room_id}",
            404,
            "application/json",
            b'{"error": {"code": "forbidden", "message": "x"}}',
        )
    with pytest.raises(AssertionError):
        contract.check_response("GET", "/api/v1/rooms/{room_id}", 418, "application/json", b"{}")


# --- (c) real responses match the document ---


async def test_a_taken_room_id_is_a_conflict(hub_url: str, api_key, contract: Contract) -> None:
    key = await api_key("publish")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        api = Api(http, hub_url, contract)
        status, _ = await api("POST", "/api/v1/rooms", auth=key, json_body={"kind": "private", "id": "taken"})
        assert status == 201
        status, body = await api("POST", "/api/v1/rooms", auth=key, json_body={"kind": "private", "id": "taken"})
        assert (status, _code(body)) == (409, "conflict")


async def test_unknown_body_fields_are_refused(hub_url: str, api_key, contract: Contract) -> None:
    key = await api_key("publish")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        api = Api(http, hub_url, contract)
        misspelt = {"kind": "private", "nmae": "team"}
        with pytest.raises(jsonschema.ValidationError):
            contract.check_request("POST", "/api/v1/rooms", misspelt)
        status, body = await api("POST", "/api/v1/rooms", auth=key, json_body=misspelt, check_request=False)
        assert (status, _code(body), set(body["error"]["fields"])) == (400, "invalid_payload", {"nmae"})


class Api:
    """Sends a request for a documented (method, path template) with ``Rest``, checks its request and
    response against the document."""

    def __init__(self, http: aiohttp.ClientSession, base: str, contract: Contract) -> None:
        self.http = http
        self.base = base
        self.contract = contract

    async def __call__(
        self,
        method: str,
        template: str,
        *,
        auth: str | None = None,
        json_body: Any = None,
        raw: bytes | None = None,
        query: dict[str, str] | None = None,
        check_request: bool = True,
        **params: str,
    ) -> tuple[int, Any]:
        path = template.format(**{k: quote(v, safe="") for k, v in params.items()})
        assert path.startswith(API), path
        headers: dict[str, str] = {}
        data: bytes | None = raw
        if json_body is not None:
            if check_request:
                self.contract.check_request(method, template, json_body)
            data = json.dumps(json_body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        rest = Rest(self.base, auth, http=self.http)
        reply = await rest.send(method, path.removeprefix(API), data=data, params=query, headers=headers)
        return reply.status, self.contract.check_response(
            method, template, reply.status, reply.content_type, reply.body
        )


def _code(body: Any) -> str:
    return str(body["error"]["code"])


async def test_real_responses_match_the_document(start_node, api_key, db, contract: Contract) -> None:  # type: ignore[no-untyped-def]
    hub_url = await start_node(HERALD_PUSH_PROVIDER="outbox")
    key = await api_key("publish")
    other_key = await api_key("notify")
    alice, bob, carol, dave = (token_for(u) for u in ("alice", "bob", "carol", "dave"))
    expired = token_for("alice", ttl=-60)
    rooms, room = "/api/v1/rooms", "/api/v1/rooms/{room_id}"
    member, messages = "/api/v1/rooms/{room_id}/members/{user_id}", "/api/v1/rooms/{room_id}/messages"
    user_rooms, disconnect = "/api/v1/users/{user_id}/rooms", "/api/v1/users/{user_id}/disconnect"

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
        api = Api(http, hub_url, contract)

        # the document itself
        status, served = await api("GET", "/api/v1/openapi.json")
        assert status == 200 and served == document()

        # rooms
        team = {
            "kind": "private",
            "name": "team",
            "members": ["alice", "bob"],
            "metadata": {"topic": "x"},
            "id": "team",
        }
        status, body = await api("POST", rooms, auth=key, json_body=team)
        assert status == 201 and [m["user_id"] for m in body["members"]] == ["alice", "bob"]
        status, body = await api("POST", rooms, auth=key, json_body={"kind": "public", "owner": "erin", "name": None})
        assert status == 201 and body["kind"] == "public"
        pair = {"kind": "direct", "members": ["alice", "carol"]}
        status, body = await api("POST", rooms, auth=key, json_body=pair)
        assert status == 201
        direct_id = body["id"]
        status, body = await api("POST", rooms, auth=key, json_body=pair)
        assert (status, body["id"]) == (200, direct_id)
        status, body = await api("POST", rooms, auth=alice, json_body={"kind": "direct", "members": ["dave"]})
        assert status == 201 and {m["role"] for m in body["members"]} == {"member"}
        status, body = await api("POST", rooms, auth=alice, json_body={"kind": "private", "name": "mine"})
        assert status == 201 and body["members"] == [
            {"user_id": "alice", "role": "owner", "muted_until": None, "post_muted_until": None, "last_read_seq": 0}
        ]
        status, body = await api("POST", rooms, auth=alice, json_body={"kind": "public"})
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("POST", rooms, auth=other_key, json_body={"kind": "public"})
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("POST", rooms, auth=key, json_body={}, check_request=False)
        assert (status, _code(body), set(body["error"]["fields"])) == (400, "invalid_payload", {"kind"})
        status, body = await api("POST", rooms, auth=key, json_body={"kind": "direct", "members": ["a"]})
        assert (status, _code(body), set(body["error"]["fields"])) == (400, "invalid_payload", {"members"})
        status, body = await api(
            "POST", rooms, auth=key, json_body={"kind": "private", "members": ["no spaces"]}, check_request=False
        )
        assert (status, set(body["error"]["fields"])) == (400, {"members"})
        status, body = await api("POST", rooms, auth=key, raw=b"{not json")
        assert (status, _code(body)) == (400, "invalid_payload")
        status, body = await api(
            "POST", rooms, auth=key, json_body={"kind": "private", "name": "x" * 201}, check_request=False
        )
        assert (status, _code(body), set(body["error"]["fields"])) == (400, "invalid_payload", {"name"})
        status, body = await api("POST", rooms, json_body={"kind": "private"})
        assert (status, _code(body)) == (401, "auth_required")
        status, body = await api("POST", rooms, auth="not-a-jwt", json_body={"kind": "private"})
        assert (status, _code(body)) == (401, "token_invalid")
        status, body = await api("POST", rooms, auth="hk_unknownkey", json_body={"kind": "private"})
        assert (status, _code(body)) == (401, "token_invalid")
        status, body = await api("POST", rooms, auth=expired, json_body={"kind": "private"})
        assert (status, _code(body)) == (401, "token_expired")

        status, body = await api("GET", room, auth=key, room_id="team")
        assert status == 200 and body["metadata"] == {"topic": "x"}
        status, body = await api("GET", room, auth=bob, room_id="team")
        assert status == 200
        status, body = await api("GET", room, auth=carol, room_id="team")
        assert (status, _code(body)) == (403, "not_member")
        status, body = await api("GET", room, auth=other_key, room_id="team")
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("GET", room, auth=key, room_id="nope")
        assert (status, _code(body)) == (404, "not_found")
        status, body = await api("GET", room, room_id="team")
        assert (status, _code(body)) == (401, "auth_required")

        # members
        status, body = await api("PUT", member, auth=key, json_body={"role": "admin"}, room_id="team", user_id="carol")
        assert (status, body["role"]) == (201, "admin")
        muted = {"role": "member", "muted_until": "2030-01-01T00:00:00Z"}
        status, body = await api("PUT", member, auth=key, json_body=muted, room_id="team", user_id="carol")
        assert (status, body["muted_until"]) == (200, "2030-01-01T00:00:00Z")
        status, body = await api(
            "PATCH", member, auth=key, json_body={"role": "admin"}, room_id="team", user_id="carol"
        )
        assert (status, body["role"], body["muted_until"]) == (200, "admin", "2030-01-01T00:00:00Z")
        status, body = await api(
            "PATCH", member, auth=key, json_body={"role": "member"}, room_id="team", user_id="erin"
        )
        assert status == 201
        status, body = await api(
            "PATCH",
            member,
            auth=bob,
            json_body={"muted_until": "2031-05-01T10:00:00+02:00"},
            room_id="team",
            user_id="bob",
        )
        assert (status, body["muted_until"]) == (200, "2031-05-01T08:00:00Z")
        status, body = await api(
            "PATCH", member, auth=bob, json_body={"muted_until": None}, room_id="team", user_id="alice"
        )
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("PUT", member, auth=bob, json_body={}, room_id="team", user_id="bob")
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("PATCH", member, auth=dave, json_body={}, room_id="team", user_id="dave")
        assert (status, _code(body)) == (403, "not_member")
        status, body = await api("PUT", member, auth=key, json_body={}, room_id="nope", user_id="carol")
        assert (status, _code(body)) == (404, "not_found")
        status, body = await api("PUT", member, auth=key, json_body={}, room_id="team", user_id="no spaces")
        assert (status, set(body["error"]["fields"])) == (400, {"user_id"})
        bad_mute = {"muted_until": "2030-01-01T00:00:00"}
        status, body = await api(
            "PUT", member, auth=key, json_body=bad_mute, room_id="team", user_id="carol", check_request=False
        )
        assert (status, set(body["error"]["fields"])) == (400, {"muted_until"})
        status, body = await api(
            "PUT", member, auth=key, json_body={"role": "king"}, room_id="team", user_id="carol", check_request=False
        )
        assert (status, set(body["error"]["fields"])) == (400, {"role"})
        status, body = await api("PUT", member, auth=key, json_body={}, room_id=direct_id, user_id="erin")
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("PUT", member, json_body={}, room_id="team", user_id="carol")
        assert status == 401

        # messages
        hello = {"sender_id": "alice", "client_id": "c1", "text": "hello", "meta": {"k": 1}}
        status, first = await api("POST", messages, auth=key, json_body=hello, room_id="team")
        assert (status, first["seq"], first["meta"], first["edited_at"], first["deleted"]) == (
            201,
            1,
            {"k": 1},
            None,
            False,
        )
        status, body = await api("POST", messages, auth=key, json_body=hello, room_id="team")
        assert (status, body) == (200, first)
        reply = {"sender_id": "bob", "client_id": "c2", "text": "hi", "reply_to": first["id"], "meta": None}
        status, body = await api("POST", messages, auth=key, json_body=reply, room_id="team")
        assert (status, body["reply_to"], body["seq"]) == (201, first["id"], 2)
        for n in range(3):
            status, _ = await api(
                "POST",
                messages,
                auth=key,
                json_body={"sender_id": "bob", "client_id": f"n{n}", "text": f"#{n}"},
                room_id="team",
            )
            assert status == 201
        status, body = await api(
            "POST", messages, auth=key, json_body={**reply, "client_id": "c3", "reply_to": 999_999}, room_id="team"
        )
        assert (status, set(body["error"]["fields"])) == (400, {"reply_to"})
        status, body = await api(
            "POST",
            messages,
            auth=key,
            json_body={"sender_id": "alice", "client_id": "c4"},
            room_id="team",
            check_request=False,
        )
        assert (status, set(body["error"]["fields"])) == (400, {"text"})
        status, body = await api(
            "POST",
            messages,
            auth=key,
            json_body={**hello, "client_id": "c5", "text": "x" * 4001},
            room_id="team",
            check_request=False,
        )
        assert (status, _code(body)) == (413, "too_large")
        status, body = await api("POST", messages, auth=key, json_body={**hello, "client_id": "c6"}, room_id="nope")
        assert (status, _code(body)) == (404, "not_found")
        status, body = await api("POST", messages, auth=alice, json_body={**hello, "client_id": "c7"}, room_id="team")
        assert (status, _code(body)) == (403, "forbidden")

        status, body = await api("GET", messages, auth=key, room_id="team")
        assert status == 200 and [m["seq"] for m in body["messages"]] == [1, 2, 3, 4, 5] and body["has_more"] is False
        status, body = await api("GET", messages, auth=alice, room_id="team", query={"limit": "2"})
        assert ([m["seq"] for m in body["messages"]], body["has_more"]) == ([4, 5], True)
        status, body = await api("GET", messages, auth=bob, room_id="team", query={"before_seq": "4", "limit": "2"})
        assert [m["seq"] for m in body["messages"]] == [2, 3]
        status, body = await api("GET", messages, auth=key, room_id="team", query={"after_seq": "3"})
        assert ([m["seq"] for m in body["messages"]], body["has_more"]) == ([4, 5], False)
        status, body = await api("GET", messages, auth=key, room_id="team", query={"after_seq": "1", "before_seq": "3"})
        assert (status, set(body["error"]["fields"])) == (400, {"after_seq"})
        status, body = await api("GET", messages, auth=key, room_id="team", query={"limit": "abc"})
        assert (status, set(body["error"]["fields"])) == (400, {"limit"})
        status, body = await api("GET", messages, auth=key, room_id="team", query={"limit": "201"})
        assert (status, set(body["error"]["fields"])) == (400, {"limit"})
        status, body = await api("GET", messages, auth=dave, room_id="team")
        assert (status, _code(body)) == (403, "not_member")
        status, body = await api("GET", messages, auth=key, room_id="nope")
        assert (status, _code(body)) == (404, "not_found")
        status, body = await api("GET", messages, auth=expired, room_id="team")
        assert (status, _code(body)) == (401, "token_expired")

        # users
        status, body = await api("GET", user_rooms, auth=key, user_id="alice")
        assert status == 200
        unread = {r["id"]: r["unread"] for r in body["rooms"]}
        assert unread["team"] == 4 and unread[direct_id] == 0  # bob's four; alice's own message is read
        status, body = await api("GET", user_rooms, auth=bob, user_id="bob")
        assert status == 200 and {r["id"] for r in body["rooms"]} == {"team"}
        status, everything = await api("GET", user_rooms, auth=key, user_id="alice")
        assert everything["total"] == len(everything["rooms"]) > 1 and everything["next_cursor"] is None
        assert everything["rooms"][0]["id"] == "team"  # the most recently active
        assert everything["rooms"][0]["last_message"]["seq"] == 5
        paged, cursor = [], None
        while True:  # one room a page: the same rooms in the same order
            query = {"limit": "1", **({"cursor": cursor} if cursor else {})}
            status, page = await api("GET", user_rooms, auth=key, user_id="alice", query=query)
            assert status == 200 and len(page["rooms"]) == 1
            paged.append(page["rooms"][0]["id"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert paged == [r["id"] for r in everything["rooms"]]
        status, body = await api("GET", user_rooms, auth=key, user_id="alice", query={"cursor": "not-a-cursor"})
        assert (status, set(body["error"]["fields"])) == (400, {"cursor"})
        status, body = await api("POST", "/api/v1/users/{user_id}/read", auth=bob, user_id="alice")
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("POST", "/api/v1/users/{user_id}/read", auth=alice, user_id="alice")
        assert (status, body) == (200, {"rooms": {"team": 5}})
        status, body = await api("GET", user_rooms, auth=alice, user_id="alice")
        assert body["unread_total"] == 0
        status, body = await api("GET", user_rooms, auth=bob, user_id="alice")
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("GET", user_rooms, auth=other_key, user_id="alice")
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("GET", user_rooms, user_id="alice")
        assert (status, _code(body)) == (401, "auth_required")
        status, body = await api("POST", disconnect, auth=key, user_id="alice")
        assert (status, body) == (202, {"user_id": "alice", "disconnected": True})
        status, body = await api("POST", disconnect, auth=alice, user_id="alice")
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("POST", disconnect, user_id="alice")
        assert status == 401

        # moderation: the owner (alice) or a publish key; bob is a plain member
        watched = {"kind": "private", "id": "watched", "owner": "alice", "members": ["bob"]}
        status, body = await api("POST", rooms, auth=key, json_body=watched)
        assert status == 201, body
        room_path, bans = "/api/v1/rooms/{room_id}", "/api/v1/rooms/{room_id}/bans"
        ban_path, reports = "/api/v1/rooms/{room_id}/bans/{user_id}", "/api/v1/rooms/{room_id}/reports"
        status, body = await api("PATCH", room_path, auth=alice, json_body={"frozen": True}, room_id="watched")
        assert status == 200 and body["frozen"] is True, (status, body)
        status, body = await api("PATCH", room_path, auth=key, json_body={"frozen": False}, room_id="watched")
        assert (status, body["frozen"]) == (200, False)
        status, body = await api("PATCH", room_path, auth=bob, json_body={"frozen": True}, room_id="watched")
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api(
            "PATCH", room_path, auth=key, json_body={"frozen": "yes"}, room_id="watched", check_request=False
        )
        assert (status, set(body["error"]["fields"])) == (400, {"frozen"})
        ban = {"until": "2099-01-01T00:00:00Z", "reason": "spam"}
        status, body = await api("PUT", ban_path, auth=alice, json_body=ban, room_id="watched", user_id="mallory")
        assert (status, body["user_id"], body["banned_by"]) == (200, "mallory", "alice")
        status, body = await api("PUT", ban_path, auth=bob, json_body={}, room_id="watched", user_id="mallory")
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("GET", bans, auth=key, room_id="watched")
        assert status == 200 and [b["user_id"] for b in body["bans"]] == ["mallory"]
        status, body = await api("GET", bans, auth=bob, room_id="watched")
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("DELETE", ban_path, auth=alice, room_id="watched", user_id="mallory")
        assert status == 204
        status, body = await api("DELETE", ban_path, auth=alice, room_id="watched", user_id="mallory")
        assert (status, _code(body)) == (404, "not_found")
        status, body = await api("GET", reports, auth=alice, room_id="watched", query={"limit": "10"})
        assert (status, body) == (200, {"reports": [], "next_after": None})
        status, body = await api("GET", reports, auth=bob, room_id="watched")
        assert (status, _code(body)) == (403, "forbidden")

        # devices
        devices_key, admin_key = await api_key("devices"), await api_key("admin")
        device, user_devices = "/api/v1/devices/{token}", "/api/v1/users/{user_id}/devices"
        iphone = {"token": "ab" * 32, "provider": "apns", "platform": "ios", "app_id": "chat.app", "locale": "en"}
        status, body = await api("POST", "/api/v1/devices", auth=alice, json_body=iphone)
        assert (status, body["user_id"], body["valid"]) == (201, "alice", True)
        pixel = {"token": "f" * 40, "provider": "fcm", "platform": "android", "user_id": "bob"}
        status, body = await api("POST", "/api/v1/devices", auth=devices_key, json_body=pixel)
        assert status == 201
        status, body = await api("POST", "/api/v1/devices", auth=devices_key, json_body={**pixel, "app_version": "2.1"})
        assert (status, body["app_version"]) == (200, "2.1")
        status, body = await api("POST", "/api/v1/devices", auth=alice, json_body={**iphone, "token": "zz" * 32})
        assert (status, set(body["error"]["fields"])) == (400, {"token"})
        status, body = await api("POST", "/api/v1/devices", auth=key, json_body=pixel)
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("GET", user_devices, auth=alice, user_id="alice")
        assert status == 200 and [d["token"] for d in body["devices"]] == ["ab" * 32]
        status, body = await api("GET", user_devices, auth=alice, user_id="bob")
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("DELETE", device, auth=alice, token="f" * 40)
        assert (status, _code(body)) == (404, "not_found")
        status, _ = await api("DELETE", device, auth=devices_key, token="f" * 40)
        assert status == 204

        # notifications
        notifications, notification = "/api/v1/notifications", "/api/v1/notifications/{notification_id}"
        push = {
            "to": {"user_ids": ["alice"]},
            "notification": {"title": "Hi", "data": {"k": "v"}, "priority": "normal"},
        }
        status, body = await api("POST", notifications, auth=other_key, json_body=push)
        assert (status, body["status"]) == (202, "queued")
        notification_id = body["id"]
        status, body = await api("POST", notifications, auth=other_key, json_body={"to": {}, "notification": {}})
        assert (status, _code(body)) == (400, "invalid_payload")
        status, body = await api("POST", notifications, auth=key, json_body=push)
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("GET", notification, auth=other_key, notification_id=notification_id)
        assert status == 200 and body["counts"]["opened"] == 0
        status, body = await api("GET", notification, auth=other_key, notification_id="not-a-uuid")
        assert (status, _code(body)) == (404, "not_found")
        opened = "/api/v1/notifications/{notification_id}/opened"
        status, body = await api("POST", opened, auth=alice, notification_id=notification_id)
        assert (status, _code(body)) == (404, "not_found")  # nothing was sent to alice yet
        await record_delivered(db, notification_id, "ab" * 32)  # sent to alice's iPhone
        status, body = await api("POST", opened, auth=alice, notification_id=notification_id)
        assert (status, body["opened"]) == (200, 1)
        status, body = await api("POST", opened, auth=alice, notification_id=notification_id)
        assert (status, body["opened"]) == (200, 1)  # once per user
        status, body = await api("POST", opened, auth=bob, notification_id=notification_id)
        assert (status, _code(body)) == (404, "not_found")  # not sent to bob
        status, body = await api("POST", opened, auth=other_key, notification_id=notification_id)
        assert (status, body["opened"]) == (200, 2)  # a backend reports for its users: each report counts
        status, body = await api("POST", opened, auth=key, notification_id=notification_id)
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("GET", "/api/v1/dev/outbox", auth=admin_key)
        assert status == 200 and body == {"pushes": []}
        status, body = await api("GET", "/api/v1/dev/outbox", auth=key)
        assert (status, _code(body)) == (403, "forbidden")

        # privacy
        export, user = "/api/v1/users/{user_id}/export", "/api/v1/users/{user_id}"
        status, body = await api("GET", export, auth=alice, user_id="alice")
        assert status == 200 and body["user"]["id"] == "alice" and body["devices"][0]["token"] == "ab" * 32
        status, body = await api("GET", export, auth=bob, user_id="alice")
        assert (status, _code(body)) == (403, "forbidden")
        status, _ = await api("DELETE", user, auth=admin_key, user_id="dave")
        assert status == 204
        status, body = await api("DELETE", user, auth=admin_key, user_id="dave")
        assert (status, _code(body)) == (404, "not_found")

        # profiles and segments
        marketing = await api_key("campaigns")
        profile = {
            "attributes": {"plan": "pro", "age": 30},
            "tags": ["beta"],
            "timezone": "Europe/Paris",
            "locale": "fr",
        }
        status, body = await api("PUT", user, auth=marketing, json_body=profile, user_id="frank")
        assert (status, body["attributes"]) == (201, {"plan": "pro", "age": 30})
        status, body = await api("PUT", user, auth=marketing, json_body={"marketing_opt_in": False}, user_id="frank")
        assert (status, body["marketing_opt_in"], body["tags"]) == (200, False, ["beta"])
        status, body = await api("PUT", user, auth=marketing, json_body={"timezone": "Nowhere/City"}, user_id="frank")
        assert (status, set(body["error"]["fields"])) == (400, {"timezone"})
        status, body = await api("PUT", user, auth=key, json_body={}, user_id="frank")
        assert (status, _code(body)) == (403, "forbidden")
        pro = {"field": "attributes.plan", "op": "eq", "value": "pro"}
        preview, segments, segment = "/api/v1/segments/preview", "/api/v1/segments", "/api/v1/segments/{segment_id}"
        status, body = await api("POST", preview, auth=marketing, json_body={"filter": {"all": [pro]}})
        assert status == 200 and (body["users"], body["opted_out"]) == (1, 1) and body["sample"][0]["id"] == "frank"
        bad_filter = {"all": [pro, {"field": "attributes.plan", "op": "nearly", "value": "x"}]}
        status, body = await api("POST", preview, auth=marketing, json_body={"filter": bad_filter})
        assert (status, _code(body), list(body["error"]["fields"])) == (422, "invalid_filter", ["filter.all[1].op"])
        status, body = await api("POST", segments, auth=marketing, json_body={"name": "Pro", "filter": pro})
        assert status == 201
        segment_id = body["id"]
        status, body = await api("POST", segments, auth=marketing, json_body={"name": "Bad", "filter": bad_filter})
        assert (status, _code(body)) == (422, "invalid_filter")
        status, body = await api("GET", segments, auth=marketing, query={"limit": "10"})
        assert status == 200 and [s["id"] for s in body["segments"]] == [segment_id]
        status, body = await api("GET", segments, auth=key)
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("GET", segment, auth=marketing, segment_id=segment_id)
        assert (status, body["filter"]) == (200, pro)
        status, body = await api("GET", segment, auth=marketing, segment_id="not-a-uuid")
        assert (status, _code(body)) == (404, "not_found")
        status, body = await api(
            "PUT", segment, auth=marketing, json_body={"name": "Pro users", "filter": pro}, segment_id=segment_id
        )
        assert (status, body["name"]) == (200, "Pro users")
        missing = "00000000-0000-0000-0000-000000000000"
        status, body = await api(
            "PUT", segment, auth=marketing, json_body={"name": "x", "filter": pro}, segment_id=missing
        )
        assert (status, _code(body)) == (404, "not_found")

        # campaigns
        campaigns, campaign = "/api/v1/campaigns", "/api/v1/campaigns/{campaign_id}"
        content = {"default": {"title": "Hi {{name|there}}"}, "locales": {"fr": {"title": "Salut {{name|toi}}"}}}
        draft = {"name": "Spring", "segment_id": segment_id, "content": content, "throttle_per_minute": 600}
        status, body = await api("POST", campaigns, auth=marketing, json_body=draft)
        assert (status, body["status"]) == (201, "draft")
        campaign_id = body["id"]
        status, body = await api("POST", campaigns, auth=marketing, json_body={**draft, "content": {"default": {}}})
        assert (status, set(body["error"]["fields"])) == (400, {"content.default.body"})
        status, body = await api(
            "PATCH", campaign, auth=marketing, json_body={"name": "Spring!"}, campaign_id=campaign_id
        )
        assert (status, body["name"], body["segment_id"]) == (200, "Spring!", segment_id)
        status, body = await api("GET", campaigns, auth=marketing, query={"status": "draft"})
        assert status == 200 and [c["id"] for c in body["campaigns"]] == [campaign_id]
        status, body = await api("GET", campaigns, auth=marketing, query={"status": "sent"}, check_request=False)
        assert (status, _code(body)) == (400, "invalid_payload")
        status, body = await api("GET", campaign, auth=marketing, campaign_id=campaign_id)
        assert (status, body["content"]) == (200, content)
        status, body = await api("GET", campaign, auth=marketing, campaign_id=missing)
        assert (status, _code(body)) == (404, "not_found")
        schedule, cancel = "/api/v1/campaigns/{campaign_id}/schedule", "/api/v1/campaigns/{campaign_id}/cancel"
        past = {"schedule": {"kind": "at", "at": "2020-01-01T00:00:00Z"}}
        status, body = await api("POST", schedule, auth=marketing, json_body=past, campaign_id=campaign_id)
        assert (status, _code(body)) == (422, "unprocessable")
        later = {"schedule": {"kind": "local", "local_time": "2099-01-01T09:00:00"}}
        status, body = await api("POST", schedule, auth=marketing, json_body=later, campaign_id=campaign_id)
        assert (status, body["status"], body["scheduled_at"]) == (200, "scheduled", "2098-12-31T19:00:00Z")
        status, body = await api("PATCH", campaign, auth=marketing, json_body={"name": "x"}, campaign_id=campaign_id)
        assert (status, _code(body)) == (409, "conflict")
        status, body = await api("DELETE", segment, auth=marketing, segment_id=segment_id)
        assert (status, _code(body)) == (409, "conflict")
        status, body = await api("DELETE", campaign, auth=marketing, campaign_id=campaign_id)
        assert (status, _code(body)) == (409, "conflict")
        status, body = await api(
            "GET", "/api/v1/campaigns/{campaign_id}/stats", auth=marketing, campaign_id=campaign_id
        )
        assert status == 200 and (body["targeted"], body["sent"], body["progress"]) == (None, 0, [])
        status, body = await api("GET", "/api/v1/campaigns/{campaign_id}/stats", auth=marketing, campaign_id=missing)
        assert (status, _code(body)) == (404, "not_found")
        status, body = await api("POST", cancel, auth=marketing, campaign_id=campaign_id)
        assert (status, body["status"]) == (200, "cancelled")
        status, body = await api("POST", cancel, auth=marketing, campaign_id=campaign_id)
        assert (status, _code(body)) == (409, "conflict")
        status, _ = await api("DELETE", campaign, auth=marketing, campaign_id=campaign_id)
        assert status == 204
        status, _ = await api("DELETE", segment, auth=marketing, segment_id=segment_id)
        assert status == 204
        status, body = await api("DELETE", segment, auth=marketing, segment_id=segment_id)
        assert (status, _code(body)) == (404, "not_found")

        # deleting
        status, _ = await api("DELETE", member, auth=key, room_id="team", user_id="carol")
        assert status == 204
        status, body = await api("DELETE", member, auth=key, room_id="team", user_id="carol")
        assert (status, _code(body)) == (404, "not_found")
        status, body = await api("DELETE", member, auth=bob, room_id="team", user_id="alice")
        assert (status, _code(body)) == (403, "forbidden")
        status, body = await api("DELETE", member, room_id="team", user_id="bob")
        assert status == 401
        status, body = await api("DELETE", room, auth=alice, room_id="team")
        assert (status, _code(body)) == (403, "forbidden")
        status, _ = await api("DELETE", room, auth=key, room_id="team")
        assert status == 204
        status, body = await api("DELETE", room, auth=key, room_id="team")
        assert (status, _code(body)) == (404, "not_found")
        status, body = await api("DELETE", room, room_id="team")
        assert status == 401

    # every documented operation was exercised with a success and with an error
    for path, method, _, op in _operations(contract.doc):
        statuses = {s for m, p, s in contract.seen if (m, p) == (method.upper(), path)}
        assert any(200 <= s < 300 for s in statuses), f"{method.upper()} {path} never succeeded here"
        if op.get("security") != []:
            assert any(s >= 400 for s in statuses), f"{method.upper()} {path} never failed here"
