"""Interop: the official JavaScript socket.io-client (tests/js, npm) against the real hub.

``tests/js/interop.mjs`` connects two users the way a web or mobile client does, sends acked
messages, disconnects and reconnects one of them and catches it up with ``sync``; it prints one
JSON line with what it observed.  ``make setup`` installs Node's side (``npm ci`` in tests/js);
without it this test fails, never skips.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import token_for
from tests.helpers import run_node_script

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_DIR = REPO_ROOT / "tests" / "js"
SCRIPT = JS_DIR / "interop.mjs"
RUN_TIMEOUT = 30.0
BEFORE, AFTER = 3, 4


def node_and_script(script: Path = SCRIPT) -> tuple[str, Path]:
    """The node executable and a script of tests/js, or a failure saying how to install them."""
    ci = os.environ.get("CI", "").lower() == "true"
    how = "run `make setup` (it runs `npm ci` in tests/js; Node.js 20 must be installed)"
    if ci:
        how = "the CI image must provide Node.js 20 and run `make setup` (npm ci in tests/js) before the tests"
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"`node` is not on PATH: {how}", pytrace=False)
    if not script.is_file():
        pytest.fail(f"{script} is missing", pytrace=False)
    if not (JS_DIR / "node_modules" / "socket.io-client" / "package.json").is_file():
        pytest.fail(f"socket.io-client is not installed in {JS_DIR / 'node_modules'}: {how}", pytrace=False)
    return node, script


async def run_script(node: str, script: Path, args: dict[str, Any]) -> dict[str, Any]:
    return await run_node_script(node, script, args, cwd=JS_DIR, timeout=RUN_TIMEOUT)


async def test_official_js_client_sends_receives_and_catches_up(hub_url, api_key, db) -> None:
    node, script = node_and_script()
    key = await api_key("publish")
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{hub_url}/api/v1/rooms",
            json={"kind": "private", "members": ["alice", "bob"], "id": "js-room"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert resp.status == 201, await resp.text()

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
    assert report["sender_ready"] == {"user_id": "alice", "rooms": ["js-room"]}
    assert report["receiver_ready"] == {"user_id": "bob", "rooms": ["js-room"]}
    assert report["receiver_ready_again"] == {"user_id": "bob", "rooms": ["js-room"]}
    assert [m["seq"] for m in report["live"]] == list(range(1, BEFORE + 1))
    assert report["resend_ack"]["seq"] == 1
    assert report["invalid_ack"]["ok"] is False
    assert report["invalid_ack"]["error"]["code"] == "invalid_payload"
    assert report["sync"]["seqs"] == list(range(BEFORE + 1, BEFORE + AFTER + 1))
    assert report["sync"]["has_more"] is False
    assert report["live_after_reconnect"] == [total]
    assert report["receiver_seqs"] == list(range(1, total + 1))

    rows = await db.fetch("SELECT seq, sender_id, text FROM messages WHERE room_id = 'js-room' ORDER BY seq")
    assert [r["seq"] for r in rows] == list(range(1, total + 1))
    assert {r["sender_id"] for r in rows} == {"alice"}
    assert [r["text"] for r in rows[BEFORE:-1]] == report["sync"]["texts"]
    assert await db.fetchval("SELECT last_seq FROM rooms WHERE id = 'js-room'") == total
