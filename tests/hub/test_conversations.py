"""Conversations (#16): read positions and unread counts, the room list, and sync that carries edits
and deletes — with real python-socketio clients on two in-process web nodes sharing the database and
Redis, and the REST routes a client or a service calls."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.support.nodes import Node
from tests.support.rest import Rest, create_room
from tests.support.sockets import Connect, wait_event
from tests.support.tokens import ApiKey, token_for


async def post(client: Any, room: str, client_id: str, text: str | None = None) -> dict[str, Any]:
    ack = await client.call_ok("message:send", {"room": room, "client_id": client_id, "text": text or client_id})
    return dict(ack["message"])


async def unread_of(client: Any, room: str) -> int:
    listed = await client.call_ok("rooms:list", {})
    return next(int(r["unread"]) for r in listed["rooms"] if r["id"] == room)


async def test_unread_counts_what_others_sent_after_the_read_position(
    start_node: Node, connect: Connect, api_key: ApiKey
) -> None:
    key = await api_key("publish")
    one, two = await start_node(), await start_node()
    await create_room(one, key, "team", ["alice", "bob"])
    alice = await connect("alice", url=one)
    bob = await connect("bob", url=two)

    for n in range(3):
        await post(bob, "team", f"b{n}")
    assert await unread_of(alice, "team") == 3
    assert await unread_of(bob, "team") == 0  # their own messages are never unread to them

    await post(alice, "team", "a0")  # answering reads the conversation
    assert await unread_of(alice, "team") == 0
    doomed = await post(bob, "team", "b3")
    await post(bob, "team", "b4")
    assert await unread_of(alice, "team") == 2
    await bob.call_ok("message:delete", {"room": "team", "id": doomed["id"]})
    assert await unread_of(alice, "team") == 1  # a deleted message does not count

    again = await connect("alice", url=two)
    [ready] = again.events["ready"]
    assert (ready["unread"], ready["unread_total"]) == ({"team": 1}, 1)
    status, body = await Rest(one, token_for("alice")).request("GET", "/users/alice/rooms")
    assert status == 200 and body["unread_total"] == 1 and body["rooms"][0]["unread"] == 1


async def test_a_late_joiner_has_nothing_unread_and_read_never_moves_back(
    start_node: Node, connect: Connect, api_key: ApiKey
) -> None:
    key = await api_key("publish")
    url = await start_node()
    status, body = await Rest(url, key).request("POST", "/rooms", {"kind": "public", "id": "lobby", "name": "Lobby"})
    assert status == 201, body
    alice = await connect("alice", url=url)
    await alice.call_ok("room:join", {"room": "lobby"})
    for n in range(5):
        await post(alice, "lobby", f"old{n}")

    carol = await connect("carol", url=url)
    await carol.call_ok("room:join", {"room": "lobby"})
    assert await unread_of(carol, "lobby") == 0  # the five old ones came before she joined
    await post(alice, "lobby", "new")
    assert await unread_of(carol, "lobby") == 1

    assert (await carol.call_ok("read", {"room": "lobby", "seq": 6}))["seq"] == 6
    assert (await carol.call_ok("read", {"room": "lobby", "seq": 2}))["seq"] == 6  # never backwards
    await post(alice, "lobby", "newer")
    assert (await carol.call_ok("read", {"room": "lobby"}))["seq"] == 7  # no seq: up to the last
    assert await unread_of(carol, "lobby") == 0
    # alice sees carol's receipts
    await wait_event(alice, "read", lambda e: e == {"room": "lobby", "user_id": "carol", "seq": 7})


async def test_mark_all_read_over_the_socket_and_over_rest(start_node: Node, connect: Connect, api_key: ApiKey) -> None:
    key = await api_key("publish")
    url = await start_node()
    for room in ("r1", "r2", "r3"):
        await create_room(url, key, room, ["alice", "bob"])
    bob = await connect("bob", url=url)
    alice = await connect("alice", url=url)
    for room in ("r1", "r2"):
        await post(bob, room, f"{room}-hi")
    listed = await alice.call_ok("rooms:list", {})
    assert listed["unread_total"] == 2

    moved = await alice.call_ok("read:all", {})
    assert moved["rooms"] == {"r1": 1, "r2": 1}  # r3 had nothing to read
    assert (await alice.call_ok("rooms:list", {}))["unread_total"] == 0
    await wait_event(bob, "read", lambda e: e == {"room": "r2", "user_id": "alice", "seq": 1})

    await post(bob, "r3", "r3-hi")
    status, body = await Rest(url, key).request("POST", "/users/alice/read")
    assert (status, body) == (200, {"rooms": {"r3": 1}})
    assert (await alice.call_ok("rooms:list", {}))["unread_total"] == 0


async def test_the_room_list_is_ordered_by_activity_with_the_last_message(
    start_node: Node, connect: Connect, api_key: ApiKey
) -> None:
    key = await api_key("publish")
    url = await start_node()
    for room in ("quiet", "busy", "latest"):
        await create_room(url, key, room, ["alice", "bob"])
    bob = await connect("bob", url=url)
    alice = await connect("alice", url=url)
    await post(bob, "busy", "b-1")
    await post(bob, "latest", "l-1")
    await post(bob, "busy", "b-2", "x" * 500)

    listed = await alice.call_ok("rooms:list", {})
    assert [r["id"] for r in listed["rooms"]] == ["busy", "latest", "quiet"]  # quiet: by its creation
    busy, latest, quiet = listed["rooms"]
    assert busy["last_message"]["sender_id"] == "bob" and busy["last_message"]["text"] == "x" * 140
    assert (busy["unread"], latest["unread"], quiet["unread"]) == (2, 1, 0)
    assert quiet["last_message"] is None and busy["role"] == "member" and busy["muted_until"] is None
    assert (listed["total"], listed["unread_total"], listed["next_cursor"]) == (3, 3, None)

    first = await alice.call_ok("rooms:list", {"limit": 2})
    assert [r["id"] for r in first["rooms"]] == ["busy", "latest"] and first["next_cursor"]
    rest = await alice.call_ok("rooms:list", {"limit": 2, "cursor": first["next_cursor"]})
    assert [r["id"] for r in rest["rooms"]] == ["quiet"] and rest["next_cursor"] is None
    bad = await alice.call("rooms:list", {"cursor": "garbage"})
    assert bad["ok"] is False and bad["error"]["code"] == "invalid_payload"


async def test_sync_brings_back_sends_edits_and_deletes_made_while_away(
    start_node: Node, connect: Connect, api_key: ApiKey, db: asyncpg.Connection
) -> None:
    key = await api_key("publish")
    one, two = await start_node(), await start_node()
    await create_room(one, key, "team", ["alice", "bob"])
    alice = await connect("alice", url=one)
    bob = await connect("bob", url=two)
    first = await post(bob, "team", "first")
    second = await post(bob, "team", "second")
    await wait_event(alice, "message:new", lambda e: e["message"]["id"] == second["id"])
    seen = max(e["message"]["version"] for e in alice.events["message:new"])
    await alice.close()

    # while alice is away: a new message, an edit of an old one, a delete of another
    third = await post(bob, "team", "third")
    await bob.call_ok("message:edit", {"room": "team", "id": first["id"], "text": "first, edited"})
    await bob.call_ok("message:delete", {"room": "team", "id": second["id"]})

    back = await connect("alice", url=two)
    synced = (await back.call_ok("sync", {"rooms": {"team": seen}}))["rooms"]["team"]
    got = [(m["id"], m["text"], m["deleted"]) for m in synced["messages"]]
    assert got == [(third["id"], "third", False), (first["id"], "first, edited", False), (second["id"], "", True)]
    versions = [m["version"] for m in synced["messages"]]
    assert versions == sorted(versions) and synced["has_more"] is False
    assert synced["version"] == versions[-1] == await db.fetchval("SELECT version FROM rooms WHERE id = 'team'")
    again = (await back.call_ok("sync", {"rooms": {"team": synced["version"]}}))["rooms"]["team"]
    assert (again["messages"], again["version"]) == ([], synced["version"])  # nothing twice


async def test_sync_pages_in_version_order(start_node: Node, connect: Connect, api_key: ApiKey) -> None:
    key = await api_key("publish")
    url = await start_node(HERALD_MESSAGE_BURST="1000")
    await create_room(url, key, "big", ["alice", "bob"])
    bob = await connect("bob", url=url)
    sent = [await post(bob, "big", f"m{n}") for n in range(130)]
    await bob.call_ok("message:edit", {"room": "big", "id": sent[0]["id"], "text": "m0 again"})

    alice = await connect("alice", url=url)
    collected: list[dict[str, Any]] = []
    version = 0
    while True:
        page = (await alice.call_ok("sync", {"rooms": {"big": version}}))["rooms"]["big"]
        collected += page["messages"]
        version = page["version"]
        if not page["has_more"]:
            break
    by_id = {m["id"]: m for m in collected}
    assert len(collected) == len(by_id) == 130  # each message once, as it is now
    assert by_id[sent[0]["id"]]["text"] == "m0 again"
    assert [m["version"] for m in collected] == list(range(2, 132))  # m0's first version was superseded
