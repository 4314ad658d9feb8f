"""Notify end to end: REST → arq worker → real aioapns / FCM sender → fake providers → outcomes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.fakes.apns import FakeAPNs, apns_error
from tests.fakes.core import Reply
from tests.fakes.fcm import FakeFCM, fcm_error
from tests.support.push import IPAD, IPHONE, PIXEL, notify, register, wait_completed
from tests.support.rest import Rest
from tests.support.tokens import token_for


async def test_user_devices_on_both_providers_get_it_once(
    api, run_worker, db, fake_apns: FakeAPNs, fake_fcm: FakeFCM
) -> None:  # type: ignore[no-untyped-def]
    await register(api, "alice", IPHONE, "apns")
    await register(api, "alice", PIXEL, "fcm")
    await run_worker()
    notification_id = await notify(api, {"user_ids": ["alice"]}, collapse_key="greeting", data={"k": "v"})
    assert await wait_completed(db, notification_id) == {"delivered": 2}
    [apns_request] = fake_apns.requests
    stored_id = await db.fetchval("SELECT apns_id::text FROM deliveries WHERE device_token = $1", IPHONE)
    assert apns_request.apns_id == stored_id
    assert apns_request.headers["apns-collapse-id"] == "greeting"
    assert apns_request.payload["aps"]["alert"] == {"title": "Hello", "body": "World"}
    [fcm_request] = fake_fcm.requests
    message = fcm_request.payload["message"]
    assert message["token"] == PIXEL and message["data"] == {"k": "v"}
    status, report = await api["notify"].request("GET", f"/notifications/{notification_id}")
    assert status == 200 and report["status"] == "completed"
    assert report["counts"]["delivered"] == 2
    assert {d["token"]: d["status"] for d in report["deliveries"]} == {IPHONE: "delivered", PIXEL: "delivered"}


@pytest.mark.parametrize(
    ("reply", "status", "reason", "pruned"),
    [
        (apns_error("Unregistered", timestamp_ms=int(time.time() * 1000) + 86_400_000), "pruned", "Unregistered", True),
        (apns_error("ExpiredToken"), "pruned", "ExpiredToken", True),
        (apns_error("BadDeviceToken"), "pruned", "BadDeviceToken", True),
        (apns_error("DeviceTokenNotForTopic"), "failed", "DeviceTokenNotForTopic", False),
        (apns_error("TopicDisallowed"), "failed", "TopicDisallowed", False),
        (apns_error("PayloadEmpty"), "failed", "PayloadEmpty", False),
        (apns_error("InternalServerError"), "failed", "InternalServerError", False),  # retried, then gave up
    ],
)
async def test_apns_outcomes_are_recorded_and_dead_tokens_pruned(  # type: ignore[no-untyped-def]
    api, run_worker, db, fake_apns: FakeAPNs, reply: Reply, status: str, reason: str, pruned: bool
) -> None:
    await register(api, "alice", IPHONE, "apns")
    fake_apns.script(IPHONE, reply)
    await run_worker(HERALD_PUSH_MAX_ATTEMPTS="2")
    notification_id = await notify(api, {"user_ids": ["alice"]})
    assert await wait_completed(db, notification_id) == {status: 1}
    stored_reason = await db.fetchval("SELECT reason FROM deliveries WHERE notification_id = $1", notification_id)
    assert stored_reason.startswith(reason)
    invalid = await db.fetchval("SELECT invalid_at IS NOT NULL FROM devices WHERE token = $1", IPHONE)
    assert invalid is pruned


async def test_unregistered_before_the_last_registration_does_not_prune(
    api, run_worker, db, fake_apns: FakeAPNs
) -> None:  # type: ignore[no-untyped-def]
    await register(api, "alice", IPHONE, "apns")
    an_hour_ago = int((time.time() - 3600) * 1000)
    fake_apns.script(IPHONE, apns_error("Unregistered", timestamp_ms=an_hour_ago))
    await run_worker()
    notification_id = await notify(api, {"user_ids": ["alice"]})
    assert await wait_completed(db, notification_id) == {"failed": 1}
    assert await db.fetchval("SELECT invalid_at FROM devices WHERE token = $1", IPHONE) is None


@pytest.mark.parametrize(
    ("reply", "status", "pruned"),
    [
        (fcm_error("UNREGISTERED"), "pruned", True),
        (fcm_error("INVALID_ARGUMENT"), "pruned", True),
        (fcm_error("BAD_REQUEST"), "failed", False),
        (fcm_error("SENDER_ID_MISMATCH"), "failed", False),
        (fcm_error("THIRD_PARTY_AUTH_ERROR"), "failed", False),
        (fcm_error("HTML_404"), "failed", False),  # retried, never pruned
        (fcm_error("UNAVAILABLE"), "failed", False),  # retried, then gave up
    ],
)
async def test_fcm_outcomes_are_recorded_and_dead_tokens_pruned(  # type: ignore[no-untyped-def]
    api, run_worker, db, fake_fcm: FakeFCM, reply: Reply, status: str, pruned: bool
) -> None:
    await register(api, "bob", PIXEL, "fcm")
    fake_fcm.script(PIXEL, reply)
    await run_worker(HERALD_PUSH_MAX_ATTEMPTS="2")
    notification_id = await notify(api, {"user_ids": ["bob"]})
    assert await wait_completed(db, notification_id) == {status: 1}
    invalid = await db.fetchval("SELECT invalid_at IS NOT NULL FROM devices WHERE token = $1", PIXEL)
    assert invalid is pruned


async def test_transient_errors_are_retried_honouring_retry_after(api, run_worker, db, fake_fcm: FakeFCM) -> None:  # type: ignore[no-untyped-def]
    await register(api, "bob", PIXEL, "fcm")
    fake_fcm.script(PIXEL, fcm_error("QUOTA_EXCEEDED", retry_after=2), Reply.ok())
    await run_worker()
    notification_id = await notify(api, {"user_ids": ["bob"]})
    assert await wait_completed(db, notification_id) == {"delivered": 1}
    first, second = fake_fcm.requests
    assert second.time - first.time >= 2.0
    assert await db.fetchval("SELECT attempts FROM deliveries WHERE notification_id = $1", notification_id) == 2


async def test_a_pruned_token_is_never_sent_to_again(api, run_worker, db, fake_apns: FakeAPNs) -> None:  # type: ignore[no-untyped-def]
    await register(api, "alice", IPHONE, "apns")
    fake_apns.script(IPHONE, apns_error("BadDeviceToken"))
    await run_worker()
    first = await notify(api, {"user_ids": ["alice"]})
    assert await wait_completed(db, first) == {"pruned": 1}
    second = await notify(api, {"user_ids": ["alice"], "device_tokens": [IPHONE]})
    assert await wait_completed(db, second) == {"skipped": 1}
    assert len(fake_apns.requests) == 1
    status, devices = await api["devices"].request("GET", "/users/alice/devices")
    assert status == 200 and devices["devices"][0]["valid"] is False


async def test_idempotency_key_returns_the_first_notification(api, run_worker, db, fake_apns: FakeAPNs) -> None:  # type: ignore[no-untyped-def]
    await register(api, "alice", IPHONE, "apns")
    await run_worker()
    body = {"to": {"user_ids": ["alice"]}, "notification": {"title": "Once"}}
    api["notify"].headers["Idempotency-Key"] = "order-42-shipped"
    status, first = await api["notify"].request("POST", "/notifications", body)
    assert status == 202
    status, again = await api["notify"].request("POST", "/notifications", body)
    assert status == 200 and again["id"] == first["id"]
    await wait_completed(db, first["id"])
    assert await db.fetchval("SELECT count(*) FROM notifications") == 1
    assert len(fake_apns.requests) == 1


async def test_sweeper_recovers_work_lost_with_redis(api, run_worker, db, redis_url: str, fake_apns: FakeAPNs) -> None:  # type: ignore[no-untyped-def]
    await register(api, "alice", IPHONE, "apns")
    notification_id = await notify(api, {"user_ids": ["alice"]})
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()  # the queued job is gone, as after a restart without persistence
    await client.aclose()
    await asyncio.sleep(1.1)  # older than one sweep interval
    await run_worker()
    assert await wait_completed(db, notification_id) == {"delivered": 1}
    assert len(fake_apns.requests) == 1


async def test_room_target_skips_muted_members(api, run_worker, db, fake_apns: FakeAPNs) -> None:  # type: ignore[no-untyped-def]
    await api["publish"].request("POST", "/rooms", {"kind": "private", "id": "team", "members": ["alice", "bob"]})
    await api["publish"].request("PATCH", "/rooms/team/members/bob", {"muted_until": "2099-01-01T00:00:00Z"})
    await register(api, "alice", IPHONE, "apns")
    await register(api, "bob", IPAD, "apns")
    await run_worker()
    notification_id = await notify(api, {"room_id": "team"})
    assert await wait_completed(db, notification_id) == {"delivered": 1, "skipped": 1}
    assert [r.token for r in fake_apns.requests] == [IPHONE]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": {}, "notification": {"title": "x"}}, "to"),
        ({"to": {"user_ids": "alice"}, "notification": {"title": "x"}}, "user_ids"),
        ({"to": {"user_ids": ["alice"]}, "notification": {"priority": "urgent"}}, "priority"),
        ({"to": {"user_ids": ["alice"]}, "notification": {"data": {"n": 1}}}, "data"),
        ({"to": {"user_ids": ["alice"]}}, "notification"),
        ({"to": {"user_ids": ["alice"]}, "notification": {}, "extra": 1}, "extra"),
    ],
)
async def test_bad_notify_bodies_get_field_errors(api, db, body: dict[str, Any], field: str) -> None:  # type: ignore[no-untyped-def]
    status, answer = await api["notify"].request("POST", "/notifications", body)
    assert status == 400 and answer["error"]["code"] == "invalid_payload"
    assert any(field in name for name in answer["error"].get("fields", {})), answer
    assert await db.fetchval("SELECT count(*) FROM notifications") == 0


async def test_device_registry(hub_url: str, api, db) -> None:  # type: ignore[no-untyped-def]
    alice = Rest(hub_url, token_for("alice"))
    status, device = await alice.request("POST", "/devices", {"token": IPHONE, "provider": "apns", "platform": "ios"})
    assert status == 201 and device["user_id"] == "alice" and device["environment"] == "production"
    status, bad = await alice.request("POST", "/devices", {"token": "not-hex", "provider": "apns", "platform": "ios"})
    assert status == 400 and "token" in bad["error"]["fields"]
    status, _ = await alice.request(
        "POST", "/devices", {"token": IPAD, "provider": "apns", "platform": "ios", "user_id": "bob"}
    )
    assert status == 403
    # The token moves to bob: alice no longer has it.
    await register(api, "bob", IPHONE, "apns", environment="sandbox")
    _, alices = await alice.request("GET", "/users/alice/devices")
    assert alices["devices"] == []
    status, _ = await alice.request("GET", "/users/bob/devices")
    assert status == 403
    status, _ = await alice.request("DELETE", f"/devices/{IPHONE}")
    assert status == 404
    status, _ = await api["devices"].request("DELETE", f"/devices/{IPHONE}")
    assert status == 204
    assert await db.fetchval("SELECT count(*) FROM devices") == 0
