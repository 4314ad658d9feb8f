"""Membership events and moderation (#16) with real python-socketio clients on two in-process web
nodes: owners and admins manage from their client, bans keep a user out, post-mutes and freezing
stop posting, reports reach the moderators; every refusal has its code and changes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.support.access import snapshot, snapshot_diff
from tests.support.nodes import Node
from tests.support.rest import Rest
from tests.support.sockets import Connect, wait_event
from tests.support.tokens import ApiKey, token_for


async def public_room(url: str, key: str, room_id: str, owner: str) -> None:
    status, body = await Rest(url, key).request(
        "POST", "/rooms", {"kind": "public", "id": room_id, "name": room_id, "owner": owner}
    )
    assert status == 201, body


async def lobby_with(start_node: Node, connect: Connect, api_key: ApiKey, *joiners: str) -> tuple[str, str, list[Any]]:
    """A node, a publish key, and the public room lobby owned by olivia: her client, then one client
    per joiner, each a member of lobby."""
    key = await api_key("publish")
    url = await start_node()
    await public_room(url, key, "lobby", "olivia")
    clients = [await connect("olivia", url=url)]
    for user in joiners:
        client = await connect(user, url=url)
        await client.call_ok("room:join", {"room": "lobby"})
        clients.append(client)
    return url, key, clients


def code_of(ack: Any) -> str | None:
    return ack["error"]["code"] if isinstance(ack, dict) and ack.get("ok") is False else None


async def test_members_are_told_who_joins_leaves_and_is_removed(
    start_node: Node, connect: Connect, api_key: ApiKey
) -> None:
    key = await api_key("publish")
    one, two = await start_node(), await start_node()
    await public_room(one, key, "lobby", "olivia")
    olivia = await connect("olivia", url=one)
    erin = await connect("erin", url=two)

    await erin.call_ok("room:join", {"room": "lobby"})
    joined = await wait_event(olivia, "member:joined")
    assert joined == {"room": "lobby", "user_id": "erin", "role": "member"}
    await erin.call_ok("room:leave", {"room": "lobby"})
    assert await wait_event(olivia, "member:left") == {"room": "lobby", "user_id": "erin"}

    await olivia.call_ok("member:set", {"room": "lobby", "user_id": "erin"})  # the owner adds her back
    await wait_event(olivia, "member:joined", lambda e: len(olivia.events["member:joined"]) == 2)
    await olivia.call_ok("member:set", {"room": "lobby", "user_id": "erin", "role": "admin"})
    updated = await wait_event(olivia, "member:updated")
    assert updated["member"]["user_id"] == "erin" and updated["member"]["role"] == "admin"
    await olivia.call_ok("member:remove", {"room": "lobby", "user_id": "erin"})
    removed = await wait_event(olivia, "member:removed")
    assert removed == {"room": "lobby", "user_id": "erin", "reason": "removed"}
    await wait_event(erin, "room:removed", lambda e: e["reason"] == "removed")


async def test_a_banned_user_cannot_rejoin_read_post_or_be_added(
    start_node: Node, connect: Connect, api_key: ApiKey, db: asyncpg.Connection
) -> None:
    url, key, (olivia, mallory) = await lobby_with(start_node, connect, api_key, "mallory")
    sent = await mallory.call_ok("message:send", {"room": "lobby", "client_id": "m1", "text": "spam"})

    ban = await olivia.call_ok("member:ban", {"room": "lobby", "user_id": "mallory", "reason": "spam"})
    assert (ban["ban"]["user_id"], ban["ban"]["until"], ban["ban"]["banned_by"]) == ("mallory", None, "olivia")
    assert await wait_event(olivia, "member:removed") == {"room": "lobby", "user_id": "mallory", "reason": "banned"}
    await wait_event(mallory, "room:removed", lambda e: e["reason"] == "banned")

    before = await snapshot(db)
    for event, payload in (
        ("room:join", {"room": "lobby"}),
        ("message:send", {"room": "lobby", "client_id": "m2", "text": "again"}),
        ("history", {"room": "lobby"}),
        ("message:report", {"room": "lobby", "id": sent["message"]["id"], "reason": "revenge"}),
    ):
        assert code_of(await mallory.call(event, payload)) == "banned", event
    assert code_of(await olivia.call("member:set", {"room": "lobby", "user_id": "mallory"})) == "banned"
    status, body = await Rest(url, token_for("mallory")).request("GET", "/rooms/lobby/messages")
    assert (status, body["error"]["code"]) == (403, "banned")
    assert snapshot_diff(before, await snapshot(db)) == ""

    status, listed = await Rest(url, key).request("GET", "/rooms/lobby/bans")
    assert status == 200 and [b["user_id"] for b in listed["bans"]] == ["mallory"]
    await olivia.call_ok("member:unban", {"room": "lobby", "user_id": "mallory"})
    await mallory.call_ok("room:join", {"room": "lobby"})  # the ban is lifted


async def test_a_ban_with_an_end_ends(
    start_node: Node, connect: Connect, api_key: ApiKey, db: asyncpg.Connection
) -> None:
    key = await api_key("publish")
    url = await start_node()
    await public_room(url, key, "lobby", "olivia")
    status, body = await Rest(url, key).request("PUT", "/rooms/lobby/bans/mallory", {"until": "2099-01-01T00:00:00Z"})
    assert status == 200 and body["until"] == "2099-01-01T00:00:00Z" and body["banned_by"] is None
    mallory = await connect("mallory", url=url)
    refused = await mallory.call("room:join", {"room": "lobby"})
    assert code_of(refused) == "banned" and "2099-01-01" in refused["error"]["message"]
    await db.execute("UPDATE room_bans SET until = now() - interval '1 second'")  # time passes
    await mallory.call_ok("room:join", {"room": "lobby"})


async def test_post_mute_and_freeze_stop_posting_but_not_reading(
    start_node: Node, connect: Connect, api_key: ApiKey, db: asyncpg.Connection
) -> None:
    url, key, (olivia, erin) = await lobby_with(start_node, connect, api_key, "erin")

    muted = await olivia.call_ok("member:mute", {"room": "lobby", "user_id": "erin", "until": "2099-01-01T00:00:00Z"})
    assert muted["member"]["post_muted_until"] == "2099-01-01T00:00:00Z"
    before = await snapshot(db)
    refused = await erin.call("message:send", {"room": "lobby", "client_id": "e1", "text": "hi"})
    assert code_of(refused) == "muted"
    assert snapshot_diff(before, await snapshot(db)) == ""
    await erin.call_ok("history", {"room": "lobby"})  # reading is fine
    await olivia.call_ok("member:mute", {"room": "lobby", "user_id": "erin", "until": None})
    await erin.call_ok("message:send", {"room": "lobby", "client_id": "e1", "text": "hi"})

    frozen = await olivia.call_ok("room:freeze", {"room": "lobby", "frozen": True})
    assert frozen["room"]["frozen"] is True
    updated = await wait_event(erin, "room:updated")
    assert updated["room"]["frozen"] is True
    assert code_of(await erin.call("message:send", {"room": "lobby", "client_id": "e2", "text": "x"})) == "frozen"
    await olivia.call_ok("message:send", {"room": "lobby", "client_id": "o1", "text": "announcement"})
    status, body = await Rest(url, key).request(  # a service posts in a frozen room
        "POST", "/rooms/lobby/messages", {"sender_id": "bot", "client_id": "b1", "text": "notice"}
    )
    assert status == 201, body
    listed = await erin.call_ok("rooms:list", {})
    assert listed["rooms"][0]["frozen"] is True
    status, body = await Rest(url, token_for("olivia")).request("PATCH", "/rooms/lobby", {"frozen": False})
    assert status == 200 and body["frozen"] is False
    await erin.call_ok("message:send", {"room": "lobby", "client_id": "e2", "text": "x"})


async def test_managers_manage_from_their_client_and_others_may_not(
    start_node: Node, connect: Connect, api_key: ApiKey, db: asyncpg.Connection
) -> None:
    key = await api_key("publish")
    url = await start_node()
    status, body = await Rest(url, key).request(
        "POST", "/rooms", {"kind": "private", "id": "team", "owner": "olivia", "members": ["adam", "erin"]}
    )
    assert status == 201, body
    owner, admin, member = Rest(url, token_for("olivia")), Rest(url, token_for("adam")), Rest(url, token_for("erin"))

    status, body = await owner.request("PATCH", "/rooms/team/members/adam", {"role": "admin"})
    assert (status, body["role"]) == (200, "admin")
    status, body = await admin.request("PUT", "/rooms/team/members/zoe", {"role": "member"})
    assert (status, body["user_id"]) == (201, "zoe")

    before = await snapshot(db)
    refusals = [
        (member, "PUT", "/rooms/team/members/yuri", {"role": "member"}, "forbidden"),
        (member, "DELETE", "/rooms/team/members/zoe", None, "forbidden"),
        (member, "PUT", "/rooms/team/bans/zoe", {}, "forbidden"),
        (admin, "PATCH", "/rooms/team/members/olivia", {"post_muted_until": "2099-01-01T00:00:00Z"}, "forbidden"),
        (admin, "PUT", "/rooms/team/bans/olivia", {}, "forbidden"),
        (admin, "PATCH", "/rooms/team/members/adam", {"role": "owner"}, "forbidden"),
        (owner, "PUT", "/rooms/team/bans/olivia", {}, "forbidden"),  # nobody bans themselves
        (owner, "PATCH", "/rooms/team/members/erin", {"muted_until": "2099-01-01T00:00:00Z"}, "forbidden"),
        (Rest(url, token_for("stranger")), "PATCH", "/rooms/team", {"frozen": True}, "not_member"),
        (member, "GET", "/rooms/team/reports", None, "forbidden"),
    ]
    for client, method, path, payload, code in refusals:
        status, body = await client.request(method, path, payload)
        assert body["error"]["code"] == code, (method, path, payload, status, body)
    assert snapshot_diff(before, await snapshot(db)) == ""

    status, body = await member.request("PATCH", "/rooms/team/members/erin", {"muted_until": "2099-01-01T00:00:00Z"})
    assert status == 200 and body["muted_until"] == "2099-01-01T00:00:00Z"  # a member's own mute
    status, _ = await admin.request("DELETE", "/rooms/team/members/zoe")
    assert status == 204
    status, _ = await member.request("DELETE", "/rooms/team/members/erin")  # leaving
    assert status == 204
    members = await db.fetch("SELECT user_id FROM members WHERE room_id = 'team' ORDER BY user_id")
    assert [m["user_id"] for m in members] == ["adam", "olivia"]


async def test_reports_are_listed_for_the_moderators(start_node: Node, connect: Connect, api_key: ApiKey) -> None:
    url, key, (olivia, erin) = await lobby_with(start_node, connect, api_key, "erin")
    carol = await connect("carol", url=url)
    rude = await erin.call_ok("message:send", {"room": "lobby", "client_id": "e1", "text": "rude words"})
    message_id = rude["message"]["id"]

    first = await carol.call_ok("message:report", {"room": "lobby", "id": message_id, "reason": "rude"})
    again = await carol.call_ok("message:report", {"room": "lobby", "id": message_id, "reason": "very rude"})
    assert first["report"]["id"] == again["report"]["id"]  # one report per reporter and message
    await olivia.call_ok("message:report", {"room": "lobby", "id": message_id, "reason": "agreed"})
    missing = await carol.call("message:report", {"room": "lobby", "id": 999_999, "reason": "?"})
    assert code_of(missing) == "not_found"

    status, body = await Rest(url, token_for("olivia")).request("GET", "/rooms/lobby/reports?limit=1")
    assert status == 200 and len(body["reports"]) == 1 and body["next_after"] is not None
    report = body["reports"][0]
    assert (report["reporter_id"], report["reason"], report["message"]["text"]) == ("carol", "very rude", "rude words")
    status, body = await Rest(url, key).request("GET", f"/rooms/lobby/reports?after={body['next_after']}")
    assert status == 200 and [r["reporter_id"] for r in body["reports"]] == ["olivia"] and body["next_after"] is None
