"""The access tests' shared world and helpers (tests/hub/test_access.py, tests/hub/test_access_matrix.py).

The ``world`` every access case starts from (built through the REST API with a ``publish`` key):

- ``lobby``: public, members alice (owner);
- ``secret``: private, members alice (owner), bob (member), dave (admin); one message by alice;
- ``dm``: direct, alice and bob;
- carol is authenticated but a member of nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

OK = "ok"
MSG = "<id of alice's message in secret>"

#: Columns a refused request may still change: using an API key stamps its last use.
VOLATILE_COLUMNS = {("api_keys", "last_used_at")}


async def rest_call(
    http: aiohttp.ClientSession, url: str, method: str, path: str, bearer: str | None, body: Any = None
) -> tuple[int, Any]:
    """``method /api/v1<path>`` with ``bearer`` (None: no Authorization header); (status, JSON or None)."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    async with http.request(method, f"{url}/api/v1{path}", **kwargs) as resp:
        text = await resp.text()
        try:
            return resp.status, (await resp.json(content_type=None) if text else None)
        except ValueError:
            return resp.status, text


async def rest_setup(http: aiohttp.ClientSession, url: str, key: str, method: str, path: str, body: Any) -> Any:
    """A call that builds the world: it must succeed."""
    status, answer = await rest_call(http, url, method, path, key, body)
    assert status in (200, 201, 202), (method, path, status, answer)
    return answer


@pytest.fixture
async def world(hub_url: str, api_key: Callable[..., Awaitable[str]]) -> dict[str, Any]:
    key = await api_key("publish")
    async with aiohttp.ClientSession() as http:
        rooms = [
            {"id": "lobby", "kind": "public", "name": "lobby", "owner": "alice"},
            {"id": "secret", "kind": "private", "name": "secret", "owner": "alice", "members": ["bob", "dave"]},
            {"id": "dm", "kind": "direct", "members": ["alice", "bob"]},
        ]
        for room in rooms:
            await rest_setup(http, hub_url, key, "POST", "/rooms", room)
        await rest_setup(http, hub_url, key, "PUT", "/rooms/secret/members/dave", {"role": "admin"})
        message = await rest_setup(
            http,
            hub_url,
            key,
            "POST",
            "/rooms/secret/messages",
            {"sender_id": "alice", "client_id": "m1", "text": "alice's words"},
        )
        status, dm = await rest_call(http, hub_url, "GET", "/users/alice/rooms", key)
        assert status == 200
    [dm_id] = [r["id"] for r in dm["rooms"] if r["kind"] == "direct"]
    return {"url": hub_url, "message_id": message["id"], "dm": dm_id}


async def snapshot(db: asyncpg.Connection) -> dict[str, list[str]]:
    """Everything a refused request must leave untouched: every row of every table (order aside)."""
    columns: dict[str, list[str]] = {}
    for row in await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    ):
        if (row["table_name"], row["column_name"]) not in VOLATILE_COLUMNS:
            columns.setdefault(row["table_name"], []).append(row["column_name"])
    state: dict[str, list[str]] = {}
    for table, names in columns.items():
        quoted = ", ".join(f'"{name}"' for name in names)
        rows = await db.fetch(f'SELECT {quoted} FROM "{table}"')
        state[table] = sorted(repr(tuple(r)) for r in rows)
    return state


def snapshot_diff(before: dict[str, list[str]], after: dict[str, list[str]]) -> str:
    """The tables whose rows differ, with the rows gone and the rows new ("" when none)."""
    changes = []
    for table in sorted(set(before) | set(after)):
        old, new = set(before.get(table, [])), set(after.get(table, []))
        if old != new:
            changes.append(f"{table}: -{sorted(old - new)} +{sorted(new - old)}")
    return "; ".join(changes)


def assert_error(body: Any, code: str) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


def fill(value: Any, world: dict[str, Any]) -> Any:
    """Replace the placeholders of a table row with the ids of this test's world.

    ``world["placeholders"]`` may add more (a placeholder standing alone takes its value's type).
    """
    known: dict[str, Any] = {MSG: world["message_id"], "<dm>": world["dm"], **world.get("placeholders", {})}
    if isinstance(value, str) and value in known:
        return known[value]
    if isinstance(value, dict):
        return {fill(k, world): fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    if isinstance(value, str):
        for placeholder, replacement in known.items():
            value = value.replace(placeholder, str(replacement))
    return value


async def record_delivered(db: asyncpg.Connection, notification_id: str, token: str) -> None:
    """What a worker records when it has sent a notification to a device (for tests that run none)."""
    await db.execute(
        "INSERT INTO deliveries (notification_id, device_token, provider, status) VALUES ($1, $2, 'apns', 'delivered')",
        notification_id,
        token,
    )
