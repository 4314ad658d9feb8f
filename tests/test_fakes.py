"""The fake push providers answer the real clients (aioapns, firebase-admin, httpx) over real TLS
and HTTP/2, with the statuses and bodies of PROTOCOLS.md."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import requests
from aioapns import NotificationRequest, PushType

from tests.fakes.apns import REASONS, AuthKey, FakeAPNs, apns_client, apns_error
from tests.fakes.core import Reply
from tests.fakes.fcm import (
    BAD_REQUEST,
    BAD_REQUEST_TYPE,
    FCM_ERROR_TYPE,
    FCM_ERRORS,
    HTML_404,
    SCOPE,
    FakeFCM,
    ca_env,
    close_firebase_app,
    fcm_error,
    firebase_app,
)
from tests.fakes.tls import make_tls

TEAM, KEY_ID, TOPIC = "TEAM123456", "KEY1234567", "chat.herald.app"
TOKEN = "a1" * 32


def note(token: str = TOKEN, **kw: Any) -> NotificationRequest:
    return NotificationRequest(token, {"aps": {"alert": "hi"}}, push_type=PushType.ALERT, **kw)


@pytest.fixture(scope="module")
def auth_key() -> AuthKey:
    return AuthKey.generate()


@pytest.fixture
async def apns(auth_key: AuthKey) -> AsyncIterator[FakeAPNs]:
    async with FakeAPNs(TEAM, KEY_ID, auth_key.public_pem) as fake:
        yield fake


@pytest.fixture
async def fcm() -> AsyncIterator[FakeFCM]:
    async with FakeFCM("herald-test") as fake:
        yield fake


def h2_client(fake: FakeAPNs | FakeFCM) -> httpx.AsyncClient:
    return httpx.AsyncClient(http2=True, verify=fake.tls.client_context(), base_url=fake.base_url)


# -- APNs through aioapns (no ALPN: HTTP/2 by prior knowledge)


async def test_aioapns_success_unregistered_and_bad_token(apns: FakeAPNs, auth_key: AuthKey) -> None:
    gone, bad = "b2" * 32, "c3" * 32
    apns.script(gone, Reply.error(410, "Unregistered", timestamp_ms=1_700_000_000_123))
    apns.script(bad, apns_error("BadDeviceToken"))
    client = apns_client(apns, key=auth_key.p8, topic=TOPIC, use_sandbox=True)
    try:
        ok = await client.send_notification(note(TOKEN, notification_id="7e2b6c3a-0000-4000-8000-000000000001"))
        unreg = await client.send_notification(note(gone))
        badtok = await client.send_notification(note(bad))
    finally:
        client.pool.close()

    assert (ok.status, ok.notification_id) == ("200", "7e2b6c3a-0000-4000-8000-000000000001")
    assert (unreg.status, unreg.description, unreg.timestamp) == ("410", "Unregistered", 1_700_000_000_123)
    assert (badtok.status, badtok.description, badtok.timestamp) == ("400", "BadDeviceToken", None)

    first, second, _ = apns.requests
    assert [e.token for e in apns.requests] == [TOKEN, gone, bad]
    assert [(e.status, e.reason) for e in apns.requests] == [
        (200, None),
        (410, "Unregistered"),
        (400, "BadDeviceToken"),
    ]
    assert first.apns_id == "7e2b6c3a-0000-4000-8000-000000000001"
    assert second.apns_id == unreg.notification_id
    assert first.payload == {"aps": {"alert": "hi"}}
    assert first.headers["apns-topic"] == TOPIC and first.headers["apns-push-type"] == "alert"
    assert first.headers["authorization"].startswith("bearer ") and first.http2
    assert len(apns.provider_tokens) == 1  # one JWT for the one connection


async def test_aioapns_sees_every_error_reason(apns: FakeAPNs, auth_key: AuthKey) -> None:
    tokens = {reason: f"{i:064x}" for i, reason in enumerate(REASONS, start=1)}
    for reason, token in tokens.items():
        apns.script(token, apns_error(reason))
    client = apns_client(apns, key=auth_key.p8, topic=TOPIC)
    try:
        results = await asyncio.gather(*(client.send_notification(note(t)) for t in tokens.values()))
    finally:
        client.pool.close()
    assert [(r.status, r.description) for r in results] == [(str(REASONS[r]), r) for r in tokens]
    unregistered = results[list(tokens).index("Unregistered")]
    assert unregistered.timestamp is not None and abs(unregistered.timestamp / 1000 - time.time()) < 60


async def test_apns_refuses_wrong_key_team_and_bad_requests(apns: FakeAPNs, auth_key: AuthKey) -> None:
    other = AuthKey.generate()
    clients = [
        apns_client(apns, key=other.p8, topic=TOPIC),  # signature does not verify
        apns_client(apns, key=auth_key.p8, topic=TOPIC, team_id="OTHERTEAM1"),
        apns_client(apns, key=auth_key.p8, topic=TOPIC, key_id="OTHERKEY12"),
    ]
    good = apns_client(apns, key=auth_key.p8, topic=TOPIC)
    try:
        for client in clients:
            r = await client.send_notification(note())
            assert (r.status, r.description) == ("403", "InvalidProviderToken")
        big = NotificationRequest(TOKEN, {"aps": {"alert": "x" * 4100}}, push_type=PushType.ALERT)
        r = await good.send_notification(big)
        assert (r.status, r.description) == ("413", "PayloadTooLarge")
        r = await good.send_notification(NotificationRequest(TOKEN, {"aps": {}}))  # no apns-push-type
        assert (r.status, r.description) == ("400", "InvalidPushType")
        r = await good.send_notification(note("zz" * 32))
        assert (r.status, r.description) == ("400", "BadDeviceToken")
    finally:
        for client in [*clients, good]:
            client.pool.close()


async def test_apns_expired_provider_token_missing_topic_and_retry_after(apns: FakeAPNs, auth_key: AuthKey) -> None:
    old = jwt.encode({"iss": TEAM, "iat": int(time.time()) - 3700}, auth_key.p8, "ES256", {"kid": KEY_ID})
    fresh = jwt.encode({"iss": TEAM, "iat": int(time.time())}, auth_key.p8, "ES256", {"kid": KEY_ID})
    apns.script(TOKEN, Reply.delay(0.2, apns_error("TooManyRequests", retry_after=7)))
    body = b'{"aps":{"alert":"hi"}}'
    headers = {"apns-topic": TOPIC, "apns-push-type": "alert"}
    async with h2_client(apns) as http:
        r = await http.post(f"/3/device/{TOKEN}", content=body, headers={**headers, "authorization": f"bearer {old}"})
        assert (r.status_code, r.json()["reason"], r.http_version) == (403, "ExpiredProviderToken", "HTTP/2")
        r = await http.post(f"/3/device/{TOKEN}", content=body, headers={"authorization": f"bearer {fresh}"})
        assert (r.status_code, r.json()) == (400, {"reason": "MissingTopic"})
        start = time.monotonic()
        r = await http.post(f"/3/device/{TOKEN}", content=body, headers={**headers, "authorization": f"bearer {fresh}"})
        assert time.monotonic() - start >= 0.2
        assert (r.status_code, r.json(), r.headers["retry-after"]) == (429, {"reason": "TooManyRequests"}, "7")
        assert r.headers["apns-id"] == apns.requests[-1].apns_id


async def test_apns_max_streams_is_advertised_and_followed(auth_key: AuthKey) -> None:
    async with FakeAPNs(TEAM, KEY_ID, auth_key.public_pem, max_streams=2, latency=0.05) as fake:
        client = apns_client(fake, key=auth_key.p8, topic=TOPIC, max_connections=1)
        try:
            await client.send_notification(note())
            assert client.pool.connections[0].free_channels.bound == 2
            start = time.monotonic()
            results = await asyncio.gather(*(client.send_notification(note()) for _ in range(6)))
        finally:
            client.pool.close()
    assert {r.status for r in results} == {"200"}
    assert time.monotonic() - start >= 0.15  # 6 requests, 2 at a time, 50 ms each
    assert fake.server.protocol_errors == 0


async def test_apns_hold_after_and_release(apns: FakeAPNs, auth_key: AuthKey) -> None:
    client = apns_client(apns, key=auth_key.p8, topic=TOPIC)
    try:
        apns.hold_after(2)
        sends = [asyncio.ensure_future(client.send_notification(note())) for _ in range(5)]
        await apns.wait_held(3)
        assert sum(s.done() for s in sends) == 2
        assert [e.status for e in apns.requests].count(None) == 3  # logged, not answered yet
        apns.release()
        assert {r.status for r in await asyncio.gather(*sends)} == {"200"}
        apns.script(TOKEN, Reply.hold(apns_error("Shutdown")), Reply.ok())
        held = asyncio.ensure_future(client.send_notification(note()))
        await apns.wait_held(1)
        assert (await client.send_notification(note())).status == "200"  # script moved on
        apns.release()
        assert ((await held).status, (await held).description) == ("503", "Shutdown")
    finally:
        client.pool.close()


async def test_apns_held_requests_die_with_their_connection(apns: FakeAPNs, auth_key: AuthKey) -> None:
    client = apns_client(apns, key=auth_key.p8, topic=TOPIC, max_connection_attempts=1)
    apns.hold_after(0)
    sends = [asyncio.ensure_future(client.send_notification(note())) for _ in range(3)]
    await apns.wait_held(3)
    client.pool.close()  # as if the worker were killed
    results = await asyncio.gather(*sends, return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results)
    for _ in range(100):
        if apns.held == 0:
            break
        await asyncio.sleep(0.01)
    assert apns.held == 0 and [e.status for e in apns.requests] == [None, None, None]


async def test_apns_as_a_process(auth_key: AuthKey, tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    (tmp_path / "key.pub").write_text(auth_key.public_pem)
    args = ["--team-id", TEAM, "--key-id", KEY_ID, "--public-key", str(tmp_path / "key.pub")]
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "tests.fakes.apns", *args, "--tls-dir", str(tls.directory), "--latency", "0.01"],
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    try:
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(proc.stdout.readline(), 20))
        fake = FakeAPNs(TEAM, KEY_ID, auth_key.public_pem, tls=tls)  # never started: gives the seam its key ids
        client = apns_client(fake, key=auth_key.p8, topic=TOPIC, port=port)
        try:
            assert (await client.send_notification(note())).status == "200"
        finally:
            client.pool.close()
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0


# -- FCM through firebase-admin


@pytest.fixture
def fcm_in_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFCM]:
    # google-auth refreshes the access token with blocking `requests` inside firebase-admin's
    # httpx auth flow, i.e. on the caller's event loop: the fake must not share that loop.
    fake = FakeFCM("herald-test")
    fake.start_in_thread()
    for name, value in ca_env(fake).items():
        monkeypatch.setenv(name, value)
    yield fake
    fake.stop_thread()


@pytest.mark.filterwarnings("ignore:Message.token is deprecated")
async def test_firebase_admin_send_each_async(fcm_in_thread: FakeFCM) -> None:
    from firebase_admin import exceptions, messaging

    fake = fcm_in_thread
    fake.script("gone-token", fcm_error("UNREGISTERED"))
    fake.script("bad-token", fcm_error("INVALID_ARGUMENT"))
    fake.script("busy-token", fcm_error("QUOTA_EXCEEDED", retry_after=30))
    app = firebase_app(fake)
    try:
        messages = [
            messaging.Message(token=t, data={"room": "r1", "seq": "42"})
            for t in ("live-token", "gone-token", "bad-token", "busy-token")
        ]
        batch = await messaging.send_each_async(messages, app=app)
    finally:
        await close_firebase_app(app)

    live, gone, bad, busy = batch.responses
    assert live.success and live.message_id.startswith("projects/herald-test/messages/")
    assert isinstance(gone.exception, messaging.UnregisteredError)
    assert isinstance(bad.exception, exceptions.InvalidArgumentError)
    assert isinstance(busy.exception, messaging.QuotaExceededError)
    assert busy.exception.http_response.headers["retry-after"] == "30"

    assert len(fake.token_requests) == 1  # one OAuth2 exchange, over HTTP/1.1 (requests)
    assert "https://www.googleapis.com/auth/firebase" in fake.token_requests[0]["scope"].split()
    by_token = {e.token: e for e in fake.requests}
    assert set(by_token) == {"live-token", "gone-token", "bad-token", "busy-token"}
    assert by_token["live-token"].payload == {"message": {"token": "live-token", "data": {"room": "r1", "seq": "42"}}}
    assert by_token["live-token"].message_id == live.message_id
    assert by_token["gone-token"].status == 404 and by_token["gone-token"].reason == "UNREGISTERED"
    assert all(e.http2 and e.headers["authorization"].startswith("Bearer ya29.") for e in fake.requests)


# -- FCM through plain httpx (HTTP/2 by ALPN) and requests (HTTP/1.1)


async def access_token(http: httpx.AsyncClient, fake: FakeFCM) -> str:
    info = fake.service_account_info()
    now = int(time.time())
    claims = {"iss": info["client_email"], "aud": info["token_uri"], "scope": SCOPE, "iat": now, "exp": now + 3600}
    assertion = jwt.encode(claims, info["private_key"], "RS256", {"kid": info["private_key_id"]})
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
    r = await http.post("/token", data=grant)
    assert r.status_code == 200 and r.json()["expires_in"] == 3600 and r.json()["token_type"] == "Bearer"
    return str(r.json()["access_token"])


async def test_fcm_refuses_bad_bearer_and_returns_retry_after(fcm: FakeFCM) -> None:
    url = f"/v1/projects/{fcm.project_id}/messages:send"
    body = {"message": {"token": "t1", "data": {"k": "v"}}}
    fcm.script("t1", fcm_error("QUOTA_EXCEEDED", retry_after=12), Reply.ok())
    async with h2_client(fcm) as http:
        r = await http.post(url, json=body, headers={"authorization": "Bearer ya29.forged"})
        assert (r.status_code, r.json()["error"]["status"], r.http_version) == (401, "UNAUTHENTICATED", "HTTP/2")
        auth = {"authorization": f"Bearer {await access_token(http, fcm)}"}
        r = await http.post(url, json=body, headers=auth)
        assert (r.status_code, r.headers["retry-after"]) == (429, "12")
        assert r.json()["error"]["details"] == [{"@type": FCM_ERROR_TYPE, "errorCode": "QUOTA_EXCEEDED"}]
        r = await http.post(url, json=body, headers=auth)
        assert r.status_code == 200 and r.json()["name"].startswith("projects/herald-test/messages/")
        for bad in (
            {"message": {"token": "t1", "data": {"n": 1}}},
            {"message": {"token": "t1", "topic": "news"}},
            {"message": {"data": {"k": "v"}}},
            {"message": {"token": "t1", "colour": "red"}},
        ):
            r = await http.post(url, json=bad, headers=auth)
            assert r.status_code == 400, bad
            assert r.json()["error"]["details"][0]["@type"] == BAD_REQUEST_TYPE
    assert [e.status for e in fcm.requests] == [401, 429, 200, 400, 400, 400, 400]
    assert [e.reason for e in fcm.requests[:3]] == ["UNAUTHENTICATED", "QUOTA_EXCEEDED", None]
    assert fcm.requests[2].payload == body


async def test_fcm_every_error_row(fcm: FakeFCM) -> None:
    codes = [*FCM_ERRORS, BAD_REQUEST, HTML_404]
    for code in codes:
        fcm.script(code, fcm_error(code, retry_after=5))
    async with h2_client(fcm) as http:
        auth = {"authorization": f"Bearer {await access_token(http, fcm)}"}
        url = f"/v1/projects/{fcm.project_id}/messages:send"
        replies = await asyncio.gather(*(http.post(url, json={"message": {"token": c}}, headers=auth) for c in codes))
    for code, r in zip(codes, replies, strict=True):
        assert r.headers["retry-after"] == "5"
        if code == HTML_404:
            assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
            continue
        error = r.json()["error"]
        assert r.status_code == error["code"] == fcm_error(code).status
        if code == BAD_REQUEST:
            assert (error["status"], error["details"][0]["@type"]) == ("INVALID_ARGUMENT", BAD_REQUEST_TYPE)
        else:
            assert error["status"] == FCM_ERRORS[code][1]
            assert error["details"] == [{"@type": FCM_ERROR_TYPE, "errorCode": code}]


async def test_fcm_token_endpoint_over_http1_and_holds(fcm: FakeFCM) -> None:
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "not.a.jwt"}
    # verify= per request: a Session.verify loses to REQUESTS_CA_BUNDLE when that is set
    r = await asyncio.to_thread(requests.post, fcm.token_uri, data=grant, verify=str(fcm.tls.ca_path))
    assert (r.status_code, r.json()["error"], r.raw.version) == (400, "invalid_grant", 11)

    fcm.hold_after(1)
    async with h2_client(fcm) as http:
        auth = {"authorization": f"Bearer {await access_token(http, fcm)}"}
        url = f"/v1/projects/{fcm.project_id}/messages:send"
        sends = [
            asyncio.ensure_future(http.post(url, json={"message": {"topic": "t"}}, headers=auth)) for _ in range(3)
        ]
        await fcm.wait_held(2)
        fcm.release()
        assert [r.status_code for r in await asyncio.gather(*sends)] == [200, 200, 200]
