"""Interop: the official JavaScript socket.io-client (tests/js, npm) against the real hub.

``tests/js/interop.mjs`` connects two users the way a web or mobile client does, sends acked
messages, disconnects and reconnects one of them and catches it up with ``sync``; it prints one
JSON line with what it observed.  ``make setup`` installs Node's side (``npm ci`` in tests/js);
without it this test fails, never skips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.js import JS_DIR, node_and_script, run_node_script
from tests.support.rest import Rest
from tests.support.tokens import token_for

SCRIPT = JS_DIR / "interop.mjs"
RUN_TIMEOUT = 30.0
BEFORE, AFTER = 3, 4


async def run_script(node: str, script: Path, args: dict[str, Any]) -> dict[str, Any]:
    return await run_node_script(node, script, args, cwd=JS_DIR, timeout=RUN_TIMEOUT)


async def test_official_js_client_sends_receives_and_catches_up(hub_url, api_key, db) -> None:
    node, script = node_and_script(SCRIPT)
    key = await api_key("publish")
    status, body = await Rest(hub_url, key).request(
        "POST", "/rooms", {"kind": "private", "members": ["alice", "bob"], "id": "js-room"}
    )
    assert status == 201, body

    report = await run_script(
        node,
        script,
        {
            "url": hub_url,
            "room": "js-room",
            "sender_token": token_for("alice"),
            "receiver_token": token_for("bob"),
            "before": BEFORE,
            "after": AFTER,
        },
    )

    total = BEFORE + AFTER + 1
    assert report["client_version"].startswith("4.8."), report["client_version"]
    assert report["refused"]["data"]["code"] == "token_invalid"
    fresh = {"unread": {"js-room": 0}, "unread_total": 0, "versions": {"js-room": 0}}
    assert report["sender_ready"] == {"user_id": "alice", "rooms": ["js-room"], **fresh}
    assert report["receiver_ready"] == {"user_id": "bob", "rooms": ["js-room"], **fresh}
    missed = BEFORE + AFTER  # all alice's, none read by bob yet
    assert report["receiver_ready_again"] == {
        "user_id": "bob",
        "rooms": ["js-room"],
        "unread": {"js-room": missed},
        "unread_total": missed,
        "versions": {"js-room": missed},
    }
    assert [m["seq"] for m in report["live"]] == list(range(1, BEFORE + 1))
    assert report["resend_ack"]["seq"] == 1
    assert report["invalid_ack"]["ok"] is False
    assert report["invalid_ack"]["error"]["code"] == "invalid_payload"
    assert report["sync"]["seqs"] == list(range(BEFORE + 1, BEFORE + AFTER + 1))
    assert report["sync"]["has_more"] is False
    assert (report["sync"]["after_version"], report["sync"]["version"]) == (BEFORE, BEFORE + AFTER)
    assert report["live_after_reconnect"] == [total]
    assert report["receiver_seqs"] == list(range(1, total + 1))
    assert (report["unread_before_read"], report["last_message_seq"]) == (total, total)
    assert report["update"] == {"id": report["resend_ack"]["id"], "text": "edited by js", "version": total + 1}
    assert report["read_seq"] == total and report["unread_after_read"] == 0
    assert report["receipt"] == {"room": "js-room", "user_id": "bob", "seq": total}

    rows = await db.fetch("SELECT seq, sender_id, text FROM messages WHERE room_id = 'js-room' ORDER BY seq")
    assert [r["seq"] for r in rows] == list(range(1, total + 1))
    assert {r["sender_id"] for r in rows} == {"alice"}
    assert [r["text"] for r in rows[BEFORE:-1]] == report["sync"]["texts"]
    assert await db.fetchval("SELECT last_seq FROM rooms WHERE id = 'js-room'") == total
