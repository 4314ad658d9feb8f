"""Rooms: creation, joining, leaving, kicking, deleting and muting, seen on live sockets."""

from __future__ import annotations

import pytest

from tests.support.rest import Rest
from tests.support.tokens import token_for


@pytest.fixture
async def service(hub_url: str, api_key) -> Rest:  # type: ignore[no-untyped-def]
    return Rest(hub_url, await api_key("publish"))


async def test_public_room_join_is_persistent_and_survives_reconnect(connect, service: Rest) -> None:  # type: ignore[no-untyped-def]
    status, room = await service.request("POST", "/rooms", {"kind": "public", "name": "Lobby", "id": "lobby"})
    assert status == 201 and room["members"] == []
    alice = await connect("alice")
    assert alice.events["ready"][0]["rooms"] == []
    ack = await alice.call_ok("room:join", {"room": "lobby"})
    assert ack["room"] == {"id": "lobby", "kind": "public", "name": "Lobby", "last_seq": 0, "version": 0}
    await alice.close()
    again = await connect("alice")
    assert again.events["ready"][0]["rooms"] == ["lobby"]
    await again.call_ok("message:send", {"room": "lobby", "client_id": "m1", "text": "hi"})


async def test_joining_a_missing_room_is_not_found(connect) -> None:  # type: ignore[no-untyped-def]
    alice = await connect("alice")
    answer = await alice.call("room:join", {"room": "nowhere"})
    assert answer["ok"] is False and answer["error"]["code"] == "not_found"


async def test_leave_ends_membership_and_tells_the_users_other_sockets(connect, service: Rest, db) -> None:  # type: ignore[no-untyped-def]
    await service.request("POST", "/rooms", {"kind": "public", "id": "lobby"})
    phone = await connect("alice")
    laptop = await connect("alice")
    await phone.call_ok("room:join", {"room": "lobby"})
    await phone.call_ok("room:leave", {"room": "lobby"})
    [removed] = await laptop.wait_for("room:removed")
    assert removed == {"room": "lobby", "reason": "left"}
    assert await db.fetchval("SELECT count(*) FROM members WHERE room_id = 'lobby'") == 0
    answer = await laptop.call("message:send", {"room": "lobby", "client_id": "x", "text": "still here?"})
    assert answer["error"]["code"] == "not_member"


async def test_kick_removes_a_live_socket_from_the_room_at_once(connect, service: Rest) -> None:  # type: ignore[no-untyped-def]
    await service.request("POST", "/rooms", {"kind": "private", "id": "team", "members": ["alice", "bob"]})
    alice = await connect("alice")
    bob = await connect("bob")
    status, _ = await service.request("DELETE", "/rooms/team/members/bob")
    assert status == 204
    [removed] = await bob.wait_for("room:removed")
    assert removed == {"room": "team", "reason": "removed"}
    await alice.call_ok("message:send", {"room": "team", "client_id": "after-kick", "text": "bob is gone"})
    answer = await bob.call("history", {"room": "team"})
    assert answer["error"]["code"] == "not_member"
    assert "message:new" not in bob.events


async def test_adding_a_member_subscribes_their_live_socket(connect, service: Rest) -> None:  # type: ignore[no-untyped-def]
    await service.request("POST", "/rooms", {"kind": "private", "id": "team", "members": ["alice"]})
    alice = await connect("alice")
    bob = await connect("bob")
    status, member = await service.request("PUT", "/rooms/team/members/bob", {"role": "member"})
    assert status == 201 and member["role"] == "member"
    await alice.call_ok("message:send", {"room": "team", "client_id": "welcome", "text": "welcome bob"})
    [event] = await bob.wait_for("message:new")
    assert event["message"]["text"] == "welcome bob"


async def test_deleting_a_room_tells_every_member(connect, service: Rest, db) -> None:  # type: ignore[no-untyped-def]
    await service.request("POST", "/rooms", {"kind": "private", "id": "tmp", "members": ["alice", "bob"]})
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.call_ok("message:send", {"room": "tmp", "client_id": "1", "text": "soon gone"})
    status, _ = await service.request("DELETE", "/rooms/tmp")
    assert status == 204
    for client in (alice, bob):
        [removed] = await client.wait_for("room:removed")
        assert removed == {"room": "tmp", "reason": "room_deleted"}
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    status, body = await service.request("GET", "/rooms/tmp")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_direct_room_is_one_per_pair(hub_url: str, service: Rest) -> None:
    status, first = await service.request("POST", "/rooms", {"kind": "direct", "members": ["alice", "bob"]})
    assert status == 201
    status, second = await service.request("POST", "/rooms", {"kind": "direct", "members": ["bob", "alice"]})
    assert status == 200 and second["id"] == first["id"]
    client = Rest(hub_url, token_for("alice"))
    status, third = await client.request("POST", "/rooms", {"kind": "direct", "members": ["bob"]})
    assert status == 200 and third["id"] == first["id"]
    status, bad = await service.request("POST", "/rooms", {"kind": "direct", "members": ["alice"]})
    assert status == 400 and bad["error"]["code"] == "invalid_payload" and "members" in bad["error"]["fields"]


async def test_mute_is_stored_for_the_push_side(connect, service: Rest, db) -> None:  # type: ignore[no-untyped-def]
    await service.request("POST", "/rooms", {"kind": "private", "id": "team", "members": ["alice"]})
    alice = await connect("alice")
    ack = await alice.call_ok("room:mute", {"room": "team", "until": "2030-01-01T00:00:00Z"})
    assert ack["muted_until"] == "2030-01-01T00:00:00Z"
    stored = await db.fetchval("SELECT muted_until FROM members WHERE room_id = 'team' AND user_id = 'alice'")
    assert stored.isoformat() == "2030-01-01T00:00:00+00:00"
    await alice.call_ok("room:mute", {"room": "team", "until": None})
    assert await db.fetchval("SELECT muted_until FROM members WHERE user_id = 'alice'") is None
    bad = await alice.call("room:mute", {"room": "team", "until": "tomorrow"})
    assert bad["error"]["code"] == "invalid_payload" and "until" in bad["error"]["fields"]


async def test_unread_counts_follow_read_receipts(hub_url: str, connect, service: Rest) -> None:  # type: ignore[no-untyped-def]
    await service.request("POST", "/rooms", {"kind": "private", "id": "team", "members": ["alice", "bob"]})
    alice = await connect("alice")
    bob = await connect("bob")
    for i in range(5):
        await alice.call_ok("message:send", {"room": "team", "client_id": f"m{i}", "text": f"message {i}"})
    bob_rest = Rest(hub_url, token_for("bob"))
    status, listing = await bob_rest.request("GET", "/users/bob/rooms")
    assert status == 200
    [room] = listing["rooms"]
    assert (room["id"], room["unread"], room["last_seq"]) == ("team", 5, 5)
    ack = await bob.call_ok("read", {"room": "team", "seq": 3})
    assert ack["seq"] == 3
    [receipt] = await alice.wait_for("read")
    assert receipt == {"room": "team", "user_id": "bob", "seq": 3}
    _, listing = await bob_rest.request("GET", "/users/bob/rooms")
    assert listing["rooms"][0]["unread"] == 2
    await bob.call_ok("read", {"room": "team", "seq": 1})  # receipts never move backwards
    await bob.call_ok("read", {"room": "team", "seq": 99})  # nor past the end
    _, listing = await bob_rest.request("GET", "/users/bob/rooms")
    assert (listing["rooms"][0]["unread"], listing["rooms"][0]["last_read_seq"]) == (0, 5)
