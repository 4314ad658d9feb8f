"""Messages: ordering without gaps, idempotency, limits, edits, history and sync."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.support.rest import Rest
from tests.support.tokens import token_for


@pytest.fixture
async def team(hub_url: str, api_key) -> Rest:  # type: ignore[no-untyped-def]
    service = Rest(hub_url, await api_key("publish"))
    status, _ = await service.request(
        "POST", "/rooms", {"kind": "private", "id": "team", "members": ["alice", "bob", "carol"]}
    )
    assert status == 201
    return service


async def test_concurrent_senders_get_gap_free_seqs(connect, team: Rest, db) -> None:  # type: ignore[no-untyped-def]
    clients = [await connect(user) for user in ("alice", "bob", "carol")]
    acks = await asyncio.gather(
        *(
            client.call_ok("message:send", {"room": "team", "client_id": f"{i}-{n}", "text": f"{i}/{n}"})
            for n in range(20)
            for i, client in enumerate(clients)
        )
    )
    seqs = sorted(ack["message"]["seq"] for ack in acks)
    assert seqs == list(range(1, 61))
    stored = [r["seq"] for r in await db.fetch("SELECT seq FROM messages WHERE room_id = 'team' ORDER BY seq")]
    assert stored == list(range(1, 61))


async def test_same_client_id_sent_concurrently_is_stored_once(connect, team: Rest, db) -> None:  # type: ignore[no-untyped-def]
    alice = await connect("alice")
    acks = await asyncio.gather(
        *(alice.call_ok("message:send", {"room": "team", "client_id": "retry-me", "text": "once"}) for _ in range(8))
    )
    assert len({ack["message"]["id"] for ack in acks}) == 1
    assert await db.fetchval("SELECT count(*) FROM messages") == 1
    assert await db.fetchval("SELECT last_seq FROM rooms WHERE id = 'team'") == 1


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"room": "team", "client_id": "a"}, "invalid_payload", "text"),
        ({"room": "team", "client_id": "a", "text": "   "}, "invalid_payload", "text"),
        ({"room": "team", "text": "no client id"}, "invalid_payload", "client_id"),
        ({"room": "team", "client_id": "a", "text": 42}, "invalid_payload", "text"),
        ({"room": "team", "client_id": "a", "text": "x" * 4001}, "too_large", "text"),
        ({"room": "team", "client_id": "a", "text": "hi", "meta": "not an object"}, "invalid_payload", "meta"),
        ({"room": "team", "client_id": "a", "text": "hi", "reply_to": 999}, "invalid_payload", "reply_to"),
        ({"room": "../etc", "client_id": "a", "text": "hi"}, "invalid_payload", "room"),
    ],
)
async def test_bad_messages_get_a_clear_error_and_the_socket_stays(  # type: ignore[no-untyped-def]
    connect, team: Rest, db, payload, code, field
) -> None:
    alice = await connect("alice")
    answer = await alice.call("message:send", payload)
    assert answer["ok"] is False
    assert answer["error"]["code"] == code
    assert field in answer["error"].get("fields", {}) or field in answer["error"]["message"]
    assert await db.fetchval("SELECT count(*) FROM messages") == 0
    assert await db.fetchval("SELECT last_seq FROM rooms WHERE id = 'team'") == 0
    await alice.call_ok("message:send", {"room": "team", "client_id": "fine", "text": "still connected"})


async def test_non_object_payloads_and_unknown_events_are_answered(connect, team: Rest) -> None:  # type: ignore[no-untyped-def]
    alice = await connect("alice")
    for payload in (None, "text", 12, ["room"]):
        answer = await alice.call("message:send", payload)
        assert answer["error"]["code"] == "invalid_payload"
    answer = await alice.call("no:such:event", {})
    assert answer["error"] == {"code": "invalid_payload", "message": "unknown event 'no:such:event'"}


async def test_rate_limit_answers_rate_limited_with_retry_after(start_node, connect, api_key) -> None:  # type: ignore[no-untyped-def]
    url = await start_node(HERALD_MESSAGE_RATE="1", HERALD_MESSAGE_BURST="3")
    service = Rest(url, await api_key("publish"))
    await service.request("POST", "/rooms", {"kind": "private", "id": "team", "members": ["alice"]})
    alice = await connect("alice", url=url)
    answers = [
        await alice.call("message:send", {"room": "team", "client_id": f"m{i}", "text": "spam"}) for i in range(5)
    ]
    assert [a["ok"] for a in answers] == [True, True, True, False, False]
    assert answers[3]["error"]["code"] == "rate_limited"
    assert 0 < answers[3]["error"]["retry_after"] <= 1


async def test_edit_and_delete_broadcast_and_keep_seq(connect, team: Rest) -> None:  # type: ignore[no-untyped-def]
    alice = await connect("alice")
    bob = await connect("bob")
    sent = (await alice.call_ok("message:send", {"room": "team", "client_id": "e1", "text": "helo"}))["message"]
    edited = await alice.call_ok("message:edit", {"room": "team", "id": sent["id"], "text": "hello"})
    assert edited["message"]["text"] == "hello" and edited["message"]["edited_at"] is not None
    [update] = await bob.wait_for("message:updated")
    assert update["message"]["text"] == "hello" and update["message"]["seq"] == sent["seq"]
    refused = await bob.call("message:edit", {"room": "team", "id": sent["id"], "text": "hijack"})
    assert refused["error"]["code"] == "forbidden"
    deleted = await alice.call_ok("message:delete", {"room": "team", "id": sent["id"]})
    assert deleted["message"]["deleted"] is True and deleted["message"]["text"] == ""
    [gone] = await bob.wait_for("message:deleted")
    assert gone["message"]["id"] == sent["id"]
    history = await bob.call_ok("history", {"room": "team"})
    assert [(m["seq"], m["deleted"]) for m in history["messages"]] == [(1, True)]
    again = await alice.call("message:edit", {"room": "team", "id": sent["id"], "text": "undelete?"})
    assert again["error"]["code"] == "conflict"


async def test_history_pages_backwards_and_forwards(connect, team: Rest) -> None:  # type: ignore[no-untyped-def]
    alice = await connect("alice")
    for i in range(1, 26):
        await alice.call_ok("message:send", {"room": "team", "client_id": f"h{i}", "text": f"#{i}"})
    latest = await alice.call_ok("history", {"room": "team", "limit": 10})
    assert [m["seq"] for m in latest["messages"]] == list(range(16, 26)) and latest["has_more"] is True
    older = await alice.call_ok("history", {"room": "team", "before_seq": 16, "limit": 10})
    assert [m["seq"] for m in older["messages"]] == list(range(6, 16)) and older["has_more"] is True
    oldest = await alice.call_ok("history", {"room": "team", "before_seq": 6, "limit": 10})
    assert [m["seq"] for m in oldest["messages"]] == [1, 2, 3, 4, 5] and oldest["has_more"] is False
    forward = await alice.call_ok("history", {"room": "team", "after_seq": 20})
    assert [m["seq"] for m in forward["messages"]] == [21, 22, 23, 24, 25] and forward["has_more"] is False


async def test_sync_returns_what_was_missed_per_room_in_pages(connect, team: Rest) -> None:  # type: ignore[no-untyped-def]
    await team.request("POST", "/rooms", {"kind": "private", "id": "other", "members": ["alice", "bob"]})
    for i in range(1, 131):
        await team.request(
            "POST", "/rooms/team/messages", {"sender_id": "alice", "client_id": f"t{i}", "text": f"t{i}"}
        )
    await team.request("POST", "/rooms/other/messages", {"sender_id": "alice", "client_id": "o1", "text": "o1"})
    bob = await connect("bob")
    first = await bob.call_ok("sync", {"rooms": {"team": 10, "other": 0}})
    team_page = first["rooms"]["team"]
    assert [m["seq"] for m in team_page["messages"]] == list(range(11, 111)) and team_page["has_more"] is True
    assert [m["text"] for m in first["rooms"]["other"]["messages"]] == ["o1"]
    second = await bob.call_ok("sync", {"rooms": {"team": 110}})
    assert [m["seq"] for m in second["rooms"]["team"]["messages"]] == list(range(111, 131))
    assert second["rooms"]["team"]["has_more"] is False
    bad = await bob.call("sync", {"rooms": ["team"]})
    assert bad["error"]["code"] == "invalid_payload"


async def test_services_post_through_the_same_path(hub_url: str, connect, team: Rest) -> None:  # type: ignore[no-untyped-def]
    alice = await connect("alice")
    body = {"sender_id": "billing-bot", "client_id": "invoice-7", "text": "Your invoice is ready"}
    status, message = await team.request("POST", "/rooms/team/messages", body)
    assert status == 201 and message["seq"] == 1 and message["sender_id"] == "billing-bot"
    [event] = await alice.wait_for("message:new")
    assert event == {"room": "team", "message": message}
    status, again = await team.request("POST", "/rooms/team/messages", body)
    assert status == 200 and again["id"] == message["id"]
    status, listing = await team.request("GET", "/rooms/team/messages?limit=5")
    assert status == 200 and [m["id"] for m in listing["messages"]] == [message["id"]]
    status, error = await team.request("POST", "/rooms/team/messages", {"client_id": "x", "text": "who?"})
    assert status == 400 and error["error"]["fields"] == {"sender_id": "is required"}


async def test_typing_is_relayed_to_others_and_throttled(connect, team: Rest) -> None:  # type: ignore[no-untyped-def]
    alice = await connect("alice")
    bob = await connect("bob")
    for _ in range(5):
        await alice.call_ok("typing", {"room": "team", "typing": True})
    await alice.call_ok("typing", {"room": "team", "typing": False})
    events = await bob.wait_for("typing", count=3)
    await asyncio.sleep(0.2)
    assert bob.events["typing"][-1] == {"room": "team", "user_id": "alice", "typing": False}
    assert sum(1 for e in bob.events["typing"] if e["typing"]) == 2  # burst of 2, then throttled
    assert "typing" not in alice.events
    assert len(events) == 3


async def test_presence_tracks_users_and_tells_the_room(connect, team: Rest) -> None:  # type: ignore[no-untyped-def]
    alice = await connect("alice")
    bob = await connect("bob")
    [arrived] = await alice.wait_for("presence")
    assert arrived == {"room": "team", "user_id": "bob", "online": True}
    online = await alice.call_ok("presence", {"room": "team"})
    assert online["online"] == ["alice", "bob"]
    second_bob = await connect("bob")
    await second_bob.close()
    await asyncio.sleep(0.2)
    assert (await alice.call_ok("presence", {"room": "team"}))["online"] == ["alice", "bob"]
    await bob.close()
    events = await alice.wait_for("presence", count=2)
    assert events[-1] == {"room": "team", "user_id": "bob", "online": False}
    assert (await alice.call_ok("presence", {"room": "team"}))["online"] == ["alice"]


async def test_disconnect_user_closes_every_connection(hub_url: str, connect, team: Rest) -> None:  # type: ignore[no-untyped-def]
    phone = await connect("bob")
    laptop = await connect("bob")
    alice = await connect("alice")
    status, _ = await team.request("POST", "/users/bob/disconnect")
    assert status == 202
    for client in (phone, laptop):
        [closing] = await client.wait_for("closing")
        assert closing["code"] == "disconnected"
        await asyncio.wait_for(client.disconnected.wait(), 5)
    assert alice.sio.connected


async def test_compression_is_off_by_default_and_a_setting(start_node) -> None:  # type: ignore[no-untyped-def]
    plain = await start_node()
    compressed = await start_node(HERALD_WS_COMPRESSION="true")
    offered = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
    results = {}
    for name, base in (("plain", plain), ("compressed", compressed)):
        async with aiohttp.ClientSession() as http:
            url = f"{base}/socket.io/?EIO=4&transport=websocket"
            async with http.ws_connect(url, headers=offered, compress=15) as ws:
                results[name] = ws.compress
                await ws.receive_str(timeout=5)  # Engine.IO OPEN
                await ws.send_str("40" + json.dumps({"token": token_for("alice")}))
                while not (await ws.receive_str(timeout=5)).startswith('42["ready"'):
                    pass  # served either way: by Herald's websocket, or by aiohttp's when compressed
    assert results == {"plain": 0, "compressed": 15}
