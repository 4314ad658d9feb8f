"""APNs through aioapns and Herald's seam, against the fake APNs: every row of PROTOCOLS.md."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import pytest

from push import Outcome, Pushers, PushMessage, SendResult
from push.apns import ApnsProvider
from push.apns_protocol import PRODUCTION_HOST, SANDBOX_HOST
from push.apps import ApnsCredentials
from tests.fakes.apns import REASONS, AuthKey, FakeAPNs, apns_error
from tests.fakes.core import Reply
from tests.support.push import KEY_ID, TEAM_ID, TOPIC, PushersFactory, apns_token, target

ALERT = PushMessage(title="Alice", body="Lunch?", collapse_key="room-r1")
PERMANENT = [
    "BadCollapseId",
    "BadExpirationDate",
    "BadMessageId",
    "BadPriority",
    "BadTopic",
    "DuplicateHeaders",
    "InvalidPushType",
    "MissingDeviceToken",
    "MissingTopic",
    "PayloadEmpty",
    "BadCertificate",
    "BadCertificateEnvironment",
    "Forbidden",
    "InvalidProviderToken",
    "MissingProviderToken",
    "BadPath",
    "MethodNotAllowed",
    "PayloadTooLarge",
]
#: PROTOCOLS.md's APNs table, row by row: reason -> outcome.
APNS_TABLE: dict[str, Outcome] = {
    "Unregistered": Outcome.PRUNE,
    "ExpiredToken": Outcome.PRUNE,
    "BadDeviceToken": Outcome.PRUNE,
    "DeviceTokenNotForTopic": Outcome.FAIL,
    "TopicDisallowed": Outcome.FAIL,
    "TooManyRequests": Outcome.RETRY,
    "InternalServerError": Outcome.RETRY,
    "ServiceUnavailable": Outcome.RETRY,
    "Shutdown": Outcome.RETRY,
    "ExpiredProviderToken": Outcome.RETRY,
    "TooManyProviderTokenUpdates": Outcome.RETRY,
    **dict.fromkeys(PERMANENT, Outcome.FAIL),
    "IdleTimeout": Outcome.RETRY,  # not in the table; the fake knows it: the connection idled out
}


def test_the_table_covers_every_reason_the_fake_knows() -> None:
    assert set(APNS_TABLE) == set(REASONS)


@pytest.mark.parametrize("reason", list(APNS_TABLE))
async def test_every_row(reason: str, pushers: Pushers, apns: FakeAPNs) -> None:
    token = apns_token(7)
    retry_after = 9 if APNS_TABLE[reason] is Outcome.RETRY else None
    apns.script(token, apns_error(reason, retry_after=retry_after))
    result = await pushers.send(target(token), ALERT)
    assert (result.outcome, result.reason) == (APNS_TABLE[reason], reason)
    assert result.retry_after == (9.0 if retry_after else None)
    [entry] = apns.requests
    assert (entry.status, entry.reason) == (REASONS[reason], reason)


async def test_success_headers(pushers: Pushers, apns: FakeAPNs) -> None:
    delivery_id = str(uuid.uuid4())
    message = PushMessage(title="Alice", body="Lunch?", data={"room": "r1"}, collapse_key="room-r1", ttl=600, badge=2)
    before = int(time.time())
    result = await pushers.send(target(apns_token(), delivery_id=delivery_id), message)
    assert result == SendResult(Outcome.DELIVERED)
    [entry] = apns.requests
    assert entry.apns_id == entry.headers["apns-id"] == delivery_id
    assert entry.headers["apns-collapse-id"] == "room-r1"
    assert entry.headers["apns-topic"] == TOPIC
    assert (entry.headers["apns-push-type"], entry.headers["apns-priority"]) == ("alert", "10")
    assert before + 600 <= int(entry.headers["apns-expiration"]) <= int(time.time()) + 600
    assert entry.payload == {"room": "r1", "aps": {"alert": {"title": "Alice", "body": "Lunch?"}, "badge": 2}}


async def test_normal_priority_background_and_voip(pushers: Pushers, apns: FakeAPNs) -> None:
    await pushers.send(target(apns_token(1)), PushMessage(body="later", priority="normal"))
    await pushers.send(target(apns_token(2)), PushMessage(data={"sync": "1"}, push_type="background"))
    await pushers.send(target(apns_token(3)), PushMessage(body="call", push_type="voip"))
    normal, background, voip = apns.requests
    assert normal.headers["apns-priority"] == "5"
    assert (background.headers["apns-push-type"], background.headers["apns-priority"]) == ("background", "5")
    assert background.payload == {"sync": "1", "aps": {"content-available": 1}}
    assert (voip.headers["apns-push-type"], voip.headers["apns-topic"]) == ("voip", f"{TOPIC}.voip")
    assert all(e.status == 200 for e in apns.requests)


async def test_no_state_is_left_behind_per_request(pushers: Pushers, apns: FakeAPNs) -> None:
    apns.script(apns_token(2), apns_error("TooManyRequests", retry_after=5))
    for n in (1, 2, 1, 3):
        await pushers.send(target(apns_token(n)), ALERT)
    provider = pushers.provider_for(target(apns_token()))
    assert isinstance(provider, ApnsProvider)
    pool = provider.pools["production"]
    assert pool.open_connections == 1
    [connection] = pool._connections
    assert (connection.streams, connection.reserved) == ({}, 0)


async def test_unregistered_timestamp_is_surfaced(pushers: Pushers, apns: FakeAPNs) -> None:
    apns.script(apns_token(), apns_error("Unregistered", timestamp_ms=1_700_000_000_123))
    result = await pushers.send(target(apns_token()), ALERT)
    assert result == SendResult(Outcome.PRUNE, "Unregistered", None, 1_700_000_000.123)


async def test_payload_too_large_is_refused_without_a_request(pushers: Pushers, apns: FakeAPNs) -> None:
    result = await pushers.send(target(apns_token()), PushMessage(body="x" * 4100))
    assert result == SendResult(Outcome.FAIL, "PayloadTooLarge")
    result = await pushers.send(target(apns_token()), PushMessage(body="x" * 5100, push_type="voip"))
    assert result == SendResult(Outcome.FAIL, "PayloadTooLarge")
    assert apns.requests == []
    result = await pushers.send(target(apns_token()), PushMessage(body="x" * 4500, push_type="voip"))
    assert result.outcome is Outcome.DELIVERED  # VoIP allows 5120 bytes


async def test_a_retried_delivery_keeps_its_apns_id(pushers: Pushers, apns: FakeAPNs) -> None:
    apns.script(apns_token(), apns_error("ServiceUnavailable"), Reply.ok())
    again = target(apns_token())
    first = await pushers.send(again, ALERT)
    second = await pushers.send(again, ALERT)  # a retry, or a resend after a crash
    assert (first.outcome, second.outcome) == (Outcome.RETRY, Outcome.DELIVERED)
    assert [e.apns_id for e in apns.requests] == [again.delivery_id] * 2
    assert [e.headers["apns-collapse-id"] for e in apns.requests] == ["room-r1"] * 2


async def test_a_delivery_id_that_is_not_a_uuid_gets_a_stable_one(pushers: Pushers, apns: FakeAPNs) -> None:
    for _ in range(2):
        await pushers.send(target(apns_token(), delivery_id="notification-9:device-3"), ALERT)
    ids = {e.apns_id for e in apns.requests}
    assert len(ids) == 1 and uuid.UUID(ids.pop())
    assert all(e.status == 200 for e in apns.requests)


async def test_expired_provider_token_mints_a_new_jwt_once(pushers: Pushers, apns: FakeAPNs) -> None:
    assert (await pushers.send(target(apns_token(1)), ALERT)).outcome is Outcome.DELIVERED
    for n in (2, 3):
        apns.script(apns_token(n), apns_error("ExpiredProviderToken"), Reply.ok())
    results = await asyncio.gather(*(pushers.send(target(apns_token(n)), ALERT) for n in (2, 3)))
    assert {(r.outcome, r.reason) for r in results} == {(Outcome.RETRY, "ExpiredProviderToken")}
    assert (await pushers.send(target(apns_token(2)), ALERT)).outcome is Outcome.DELIVERED
    assert len(apns.provider_tokens) == 2  # one new token for both reports
    assert apns.requests[-1].headers["authorization"] == f"bearer {apns.provider_tokens[1]}"


async def test_too_many_provider_token_updates_stops_minting(pushers: Pushers, apns: FakeAPNs) -> None:
    apns.script(
        apns_token(),
        apns_error("TooManyProviderTokenUpdates", retry_after=60),
        apns_error("ExpiredProviderToken"),
        Reply.ok(),
    )
    too_many = await pushers.send(target(apns_token()), ALERT)
    assert (too_many.outcome, too_many.reason, too_many.retry_after) == (
        Outcome.RETRY,
        "TooManyProviderTokenUpdates",
        60.0,
    )
    assert (await pushers.send(target(apns_token()), ALERT)).reason == "ExpiredProviderToken"
    assert (await pushers.send(target(apns_token()), ALERT)).outcome is Outcome.DELIVERED
    assert len(apns.provider_tokens) == 1  # held: no new token minted


async def test_one_jwt_for_both_environments(pushers: Pushers, apns: FakeAPNs) -> None:
    await pushers.send(target(apns_token(1), environment="sandbox"), ALERT)
    await pushers.send(target(apns_token(2), environment="production"), ALERT)
    assert apns.server.connections_made == 2  # one client per environment
    assert len(apns.provider_tokens) == 1


@pytest.mark.parametrize(
    ("forced", "device", "expected"),
    [
        ("", "sandbox", SendResult(Outcome.PRUNE, "BadDeviceToken")),
        ("sandbox", "sandbox", SendResult(Outcome.PRUNE, "BadDeviceToken")),
        ("production", "sandbox", SendResult(Outcome.FAIL, "BadDeviceToken (environment mismatch)")),
        ("sandbox", "production", SendResult(Outcome.FAIL, "BadDeviceToken (environment mismatch)")),
    ],
)
async def test_bad_device_token_and_environments(
    forced: str, device: str, expected: SendResult, make_pushers: PushersFactory, apns: FakeAPNs
) -> None:
    pushers = make_pushers(HERALD_APNS_ENVIRONMENT=forced)
    apns.script(apns_token(), apns_error("BadDeviceToken"))
    assert await pushers.send(target(apns_token(), environment=device), ALERT) == expected


def test_hosts_per_environment(auth_key: AuthKey) -> None:
    creds = ApnsCredentials(auth_key.p8, KEY_ID, TEAM_ID, TOPIC)
    provider = ApnsProvider(creds)
    assert provider.host_for("sandbox") == (SANDBOX_HOST, 443)
    assert provider.host_for("production") == (PRODUCTION_HOST, 443)
    forced = ApnsProvider(creds, host="127.0.0.1:8443", environment="production")
    assert forced.host_for("sandbox") == forced.host_for("production") == ("127.0.0.1", 8443)
    assert forced.environment_for(target(apns_token(), environment="sandbox")) == "production"


@pytest.mark.parametrize("late", [Reply.ok(), apns_error("Shutdown")])
async def test_a_timed_out_send_retries_and_its_late_answer_harms_nothing(
    late: Reply, make_pushers: PushersFactory, apns: FakeAPNs
) -> None:
    pushers = make_pushers(HERALD_PUSH_TIMEOUT="0.3")
    apns.script(apns_token(1), Reply.hold(late))
    assert await pushers.send(target(apns_token(1)), ALERT) == SendResult(Outcome.RETRY, "timeout")
    apns.release()
    for _ in range(200):  # the late answer reaches the client, whose caller has gone
        if apns.requests[0].status is not None:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert (await pushers.send(target(apns_token(2)), ALERT)).outcome is Outcome.DELIVERED
    assert apns.server.connections_made == 1  # the connection survived


async def test_unreachable_host_retries(make_pushers: PushersFactory) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pushers = make_pushers(HERALD_APNS_HOST=f"127.0.0.1:{port}", HERALD_PUSH_TIMEOUT="0.5")
    result = await pushers.send(target(apns_token()), ALERT)
    assert result.outcome is Outcome.RETRY and result.reason in ("timeout", "network: H2ClientError")
