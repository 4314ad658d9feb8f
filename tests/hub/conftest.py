"""The access tests' shared world (tests/hub/test_access.py, tests/hub/test_access_matrix.py).

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
import pytest

from tests.support.rest import Rest


@pytest.fixture
async def world(hub_url: str, api_key: Callable[..., Awaitable[str]]) -> dict[str, Any]:
    key = await api_key("publish")
    async with aiohttp.ClientSession() as http:
        rest = Rest(hub_url, key, http=http)
        rooms = [
            {"id": "lobby", "kind": "public", "name": "lobby", "owner": "alice"},
            {"id": "secret", "kind": "private", "name": "secret", "owner": "alice", "members": ["bob", "dave"]},
            {"id": "dm", "kind": "direct", "members": ["alice", "bob"]},
        ]
        for room in rooms:
            await rest.ok("POST", "/rooms", room)
        await rest.ok("PUT", "/rooms/secret/members/dave", {"role": "admin"})
        message = await rest.ok(
            "POST", "/rooms/secret/messages", {"sender_id": "alice", "client_id": "m1", "text": "alice's words"}
        )
        status, dm = await rest.request("GET", "/users/alice/rooms")
        assert status == 200
    [dm_id] = [r["id"] for r in dm["rooms"] if r["kind"] == "direct"]
    return {"url": hub_url, "message_id": message["id"], "dm": dm_id}
