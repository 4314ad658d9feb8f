"""Export and erasure: all the hub holds on a user, and deleting it without breaking room history."""

from __future__ import annotations

from tests.support.rest import Rest
from tests.support.tokens import token_for

IPHONE = "d4" * 32


async def test_export_holds_everything_and_delete_erases_it(hub_url: str, connect, api_key, db) -> None:  # type: ignore[no-untyped-def]
    service = Rest(hub_url, await api_key("publish"))
    admin = Rest(hub_url, await api_key("admin"))
    await service.request("POST", "/rooms", {"kind": "private", "id": "team", "members": ["alice", "bob"]})
    alice_rest = Rest(hub_url, token_for("alice"))
    await alice_rest.request("POST", "/devices", {"token": IPHONE, "provider": "apns", "platform": "ios"})
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call_ok("message:send", {"room": "team", "client_id": "1", "text": "my secret"})
    await bob.call_ok("message:send", {"room": "team", "client_id": "2", "text": "reply"})
    await alice.call_ok("message:send", {"room": "team", "client_id": "3", "text": "another secret"})

    status, data = await alice_rest.request("GET", "/users/alice/export")
    assert status == 200
    assert data["user"]["id"] == "alice"
    assert [d["token"] for d in data["devices"]] == [IPHONE]
    assert [m["room_id"] for m in data["memberships"]] == ["team"]
    assert [m["text"] for m in data["messages"]] == ["my secret", "another secret"]

    status, _ = await admin.request("DELETE", "/users/alice")
    assert status == 204
    [closing] = await alice.wait_for("closing")
    assert closing["code"] == "disconnected"
    rows = await db.fetch("SELECT seq, sender_id, text, deleted FROM messages WHERE room_id = 'team' ORDER BY seq")
    assert [(r["seq"], r["text"], r["deleted"]) for r in rows] == [(1, "", True), (2, "reply", False), (3, "", True)]
    assert await db.fetchval("SELECT count(*) FROM devices") == 0
    assert await db.fetchval("SELECT count(*) FROM members WHERE user_id = 'alice'") == 0
    assert await db.fetchval("SELECT count(*) FROM users WHERE id = 'alice'") == 0
    history = await bob.call_ok("history", {"room": "team"})
    assert [m["seq"] for m in history["messages"]] == [1, 2, 3]
    status, _ = await admin.request("GET", "/users/alice/export")
    assert status == 404
    status, body = await service.request("DELETE", "/users/bob")
    assert status == 403 and body["error"]["code"] == "forbidden"
