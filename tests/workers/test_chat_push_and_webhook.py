"""Offline chat push, and the signed webhook that tells the app's backend what happened."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.apns import FakeAPNs, apns_error
from tests.support.push import IPAD, IPHONE, PIXEL, notify, register, wait_completed

IPOD = "c3" * 32


async def test_offline_unmuted_members_get_a_push(api, run_worker, connect, db, fake_apns: FakeAPNs) -> None:  # type: ignore[no-untyped-def]
    members = ["alice", "bob", "carol", "dave"]
    await api["publish"].request(
        "POST", "/rooms", {"kind": "private", "id": "team", "name": "Team", "members": members}
    )
    await api["publish"].request("PATCH", "/rooms/team/members/carol", {"muted_until": "2099-01-01T00:00:00Z"})
    for user, token in (("alice", IPHONE), ("bob", IPAD), ("carol", IPOD), ("dave", PIXEL)):
        await register(api, user, token, "fcm" if token == PIXEL else "apns")
    await run_worker()
    alice = await connect("alice")  # the sender: online
    dave = await connect("dave")  # online: sees it live, no push
    ack = await alice.call_ok("message:send", {"room": "team", "client_id": "c1", "text": "lunch?"})
    await dave.wait_for("message:new")
    notification_id = None
    async with asyncio.timeout(10):
        while notification_id is None:
            notification_id = await db.fetchval("SELECT id::text FROM notifications")
            await asyncio.sleep(0.05)
    assert await wait_completed(db, notification_id) == {"delivered": 1}
    [push] = fake_apns.requests
    assert push.token == IPAD  # bob: offline and not muted
    assert push.payload["aps"]["alert"] == {"title": "Team", "body": "lunch?"}
    assert push.payload["message_id"] == str(ack["message"]["id"])
    await alice.call_ok("message:send", {"room": "team", "client_id": "c1", "text": "lunch?"})  # a retry
    await asyncio.sleep(0.5)
    assert await db.fetchval("SELECT count(*) FROM notifications") == 1


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP endpoint standing in for the app's backend; fails the first call."""
    received: list[dict[str, Any]] = []
    calls = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=503)
        received.append({"headers": dict(request.headers), "body": await request.read()})
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks/herald", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    yield f"http://127.0.0.1:{port}/hooks/herald", received
    await runner.cleanup()


async def test_webhook_reports_pruned_tokens_and_completion_signed(  # type: ignore[no-untyped-def]
    api, run_worker, db, fake_apns: FakeAPNs, receiver
) -> None:
    url, received = receiver
    secret = "webhook-secret-0123456789-abcdefghij"
    await register(api, "alice", IPHONE, "apns")
    fake_apns.script(IPHONE, apns_error("BadDeviceToken"))
    await run_worker(HERALD_WEBHOOK_URL=url, HERALD_WEBHOOK_SECRET=secret)
    notification_id = await notify(api, {"user_ids": ["alice"]})
    await wait_completed(db, notification_id)
    async with asyncio.timeout(15):
        while len(received) < 2:
            await asyncio.sleep(0.05)
    events = {}
    for call in received:
        stamp, digest = (part.split("=", 1)[1] for part in call["headers"]["X-Herald-Signature"].split(","))
        expected = hmac.new(secret.encode(), f"{stamp}.".encode() + call["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(digest, expected)
        event = json.loads(call["body"])
        events[event["type"]] = event
    assert events["device.pruned"]["token"] == IPHONE and events["device.pruned"]["user_id"] == "alice"
    assert events["notification.completed"]["notification_id"] == notification_id
    assert events["notification.completed"]["counts"] == {"pruned": 1}
