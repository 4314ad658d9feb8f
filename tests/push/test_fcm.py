"""FCM through Herald's lean HTTP v1 sender (httpx over HTTP/2, google-auth tokens) against the
fake FCM: every row of PROTOCOLS.md, Retry-After, token refresh."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from push import Outcome, Pushers, PushMessage, SendResult
from push.apps import FcmCredentials
from push.fcm import FcmHttp, FcmProvider
from push.fcm_auth import AccessTokens
from push.fcm_transport import FcmAnswer, H2Transport, HttpxTransport
from push.h2client import StreamNotProcessed
from tests.fakes.core import Reply
from tests.fakes.fcm import BAD_REQUEST, FCM_ERRORS, HTML_404, FakeFCM, fcm_error
from tests.support.push import PushersFactory, target

ALERT = PushMessage(title="Alice", body="Lunch?", collapse_key="room-r1")
#: PROTOCOLS.md's FCM table, row by row: scripted error -> (outcome, reason).
FCM_TABLE: dict[str, tuple[Outcome, str]] = {
    "UNREGISTERED": (Outcome.PRUNE, "UNREGISTERED"),
    "INVALID_ARGUMENT": (Outcome.PRUNE, "INVALID_ARGUMENT"),  # FcmError about the token
    BAD_REQUEST: (Outcome.FAIL, "INVALID_ARGUMENT (message.data[0].value)"),  # google.rpc.BadRequest
    "SENDER_ID_MISMATCH": (Outcome.FAIL, "SENDER_ID_MISMATCH"),
    "THIRD_PARTY_AUTH_ERROR": (Outcome.FAIL, "THIRD_PARTY_AUTH_ERROR"),
    "QUOTA_EXCEEDED": (Outcome.RETRY, "QUOTA_EXCEEDED"),
    "INTERNAL": (Outcome.RETRY, "INTERNAL"),
    "UNAVAILABLE": (Outcome.RETRY, "UNAVAILABLE"),
    HTML_404: (Outcome.RETRY, "HTTP 404"),  # never prune on a bare 404
}


def test_the_table_covers_every_error_the_fake_knows() -> None:
    assert set(FCM_TABLE) == {*FCM_ERRORS, BAD_REQUEST, HTML_404}


@pytest.fixture(params=["h2", "httpx"])
async def sender(request: pytest.FixtureRequest, fcm: FakeFCM, sa_file: Path) -> AsyncIterator[FcmProvider]:
    """The FCM provider over each transport: the lean HTTP/2 client, and httpx."""
    ca = fcm.tls.ca_path
    transport = (
        H2Transport(fcm.base_url, ca_file=ca) if request.param == "h2" else HttpxTransport(fcm.base_url, ca_file=ca)
    )
    http = FcmHttp(transport=transport, timeout=5.0)
    provider = FcmProvider(FcmCredentials(sa_file, fcm.project_id), tokens=AccessTokens(sa_file, ca_file=ca), http=http)
    yield provider
    await provider.close()
    await http.close()


@pytest.mark.parametrize("code", list(FCM_TABLE))
async def test_every_row(code: str, sender: FcmProvider, fcm: FakeFCM) -> None:
    outcome, reason = FCM_TABLE[code]
    retry_after = 30 if outcome is Outcome.RETRY else None
    fcm.script("device-1", fcm_error(code, retry_after=retry_after))
    result = await sender.send(target("device-1", "fcm"), ALERT)
    assert result == SendResult(outcome, reason, 30.0 if retry_after else None)
    [entry] = fcm.requests
    assert entry.status == fcm_error(code).status and entry.http2


async def test_message_shape(pushers: Pushers, fcm: FakeFCM) -> None:
    message = PushMessage(
        title="Alice", body="Lunch?", data={"room": "r1"}, collapse_key="room-r1", priority="normal", ttl=600, badge=2
    )
    assert await pushers.send(target("device-1", "fcm"), message) == SendResult(Outcome.DELIVERED)
    [entry] = fcm.requests
    assert entry.headers["authorization"].startswith("Bearer ya29.")
    sent = entry.payload["message"]
    assert sent["token"] == "device-1"
    assert sent["notification"] == {"title": "Alice", "body": "Lunch?"}
    assert sent["data"] == {"room": "r1"}
    assert sent["android"] == {
        "priority": "normal",
        "collapse_key": "room-r1",
        "ttl": "600s",
        "notification": {"tag": "room-r1", "notification_count": 2},
    }
    assert sent["apns"]["headers"]["apns-collapse-id"] == "room-r1"
    assert sent["apns"]["headers"]["apns-priority"] == "5"


async def test_one_token_exchange_for_many_sends(pushers: Pushers, fcm: FakeFCM) -> None:
    results = await asyncio.gather(*(pushers.send(target(f"device-{i}", "fcm"), ALERT) for i in range(50)))
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert len(fcm.token_requests) == 1
    assert fcm.token_requests[0]["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
    assert fcm.server.connections_made == 2  # one for the token (HTTP/1.1), one for the sends (HTTP/2)


async def test_401_renews_the_token_and_sends_again(sender: FcmProvider, fcm: FakeFCM) -> None:
    assert (await sender.send(target("device-1", "fcm"), ALERT)).outcome is Outcome.DELIVERED
    fcm.revoke_access_tokens()  # e.g. revoked or expired early
    assert (await sender.send(target("device-2", "fcm"), ALERT)).outcome is Outcome.DELIVERED
    assert [e.status for e in fcm.requests] == [200, 401, 200]
    assert len(fcm.token_requests) == 2
    assert fcm.requests[1].headers["authorization"] != fcm.requests[2].headers["authorization"]


async def test_third_party_auth_error_does_not_renew(pushers: Pushers, fcm: FakeFCM) -> None:
    fcm.script("device-1", fcm_error("THIRD_PARTY_AUTH_ERROR"))
    result = await pushers.send(target("device-1", "fcm"), ALERT)
    assert result == SendResult(Outcome.FAIL, "THIRD_PARTY_AUTH_ERROR") and result.config_error
    assert len(fcm.requests) == 1 and len(fcm.token_requests) == 1


async def test_refused_credentials_fail(fcm: FakeFCM, tmp_path: Path) -> None:
    info = fcm.service_account_info()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info["private_key"] = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "wrong-key.json"
    path.write_text(json.dumps(info))
    http = FcmHttp(fcm.base_url, ca_file=fcm.tls.ca_path)
    tokens = AccessTokens(path, ca_file=fcm.tls.ca_path)
    provider = FcmProvider(FcmCredentials(path, fcm.project_id), tokens=tokens, http=http)
    try:
        result = await provider.send(target("device-1", "fcm"), ALERT)
    finally:
        await provider.close()
        await http.close()
    assert result == SendResult(Outcome.FAIL, "auth_failed") and result.config_error
    assert fcm.requests == []


async def test_in_flight_requests_are_bounded(fcm: FakeFCM, sa_file: Path) -> None:
    http = FcmHttp(fcm.base_url, ca_file=fcm.tls.ca_path, max_in_flight=3)
    tokens = AccessTokens(sa_file, ca_file=fcm.tls.ca_path)
    provider = FcmProvider(FcmCredentials(sa_file, fcm.project_id), tokens=tokens, http=http)
    try:
        fcm.hold_after(0)
        sends = [asyncio.ensure_future(provider.send(target(f"device-{i}", "fcm"), ALERT)) for i in range(10)]
        await fcm.wait_held(3)
        await asyncio.sleep(0.1)
        assert fcm.held == 3
        fcm.release()
        assert {r.outcome for r in await asyncio.gather(*sends)} == {Outcome.DELIVERED}
    finally:
        await provider.close()
        await http.close()


async def test_timeout_and_unreachable_endpoint_retry(make_pushers: PushersFactory, fcm: FakeFCM) -> None:
    pushers = make_pushers(HERALD_PUSH_TIMEOUT="0.3")
    fcm.script("slow", Reply.delay(1.0))
    assert await pushers.send(target("slow", "fcm"), ALERT) == SendResult(Outcome.RETRY, "timeout")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pushers = make_pushers(HERALD_FCM_ENDPOINT=f"https://127.0.0.1:{port}")
    result = await pushers.send(target("device-1", "fcm"), ALERT)
    assert (result.outcome, result.reason) == (Outcome.RETRY, "network: H2ClientError")


class FlakyTransport:
    """Refuses the first request as GOAWAY would (not processed), then answers 200."""

    def __init__(self) -> None:
        self.calls = 0

    async def post(self, path: str, token: str, body: bytes) -> FcmAnswer:
        self.calls += 1
        if self.calls == 1:
            raise StreamNotProcessed("GOAWAY")
        return FcmAnswer(200, None, b'{"name": "projects/p/messages/1"}')

    async def close(self) -> None:
        return None


async def test_a_request_the_server_did_not_process_is_sent_again(fcm: FakeFCM, sa_file: Path) -> None:
    transport = FlakyTransport()
    http = FcmHttp(transport=transport)
    provider = FcmProvider(
        FcmCredentials(sa_file, fcm.project_id), tokens=AccessTokens(sa_file, ca_file=fcm.tls.ca_path), http=http
    )
    try:
        assert await provider.send(target("device-1", "fcm"), ALERT) == SendResult(Outcome.DELIVERED)
    finally:
        await provider.close()
    assert transport.calls == 2


async def test_access_token_is_refreshed_ahead_of_expiry_in_the_background(fcm: FakeFCM, sa_file: Path) -> None:
    now = [time.time()]
    tokens = AccessTokens(sa_file, ca_file=fcm.tls.ca_path, clock=lambda: now[0])
    try:
        first = await tokens.get()
        assert await tokens.get() == first and tokens.exchanges == 1  # cached
        now[0] += 3600 - 200  # within 5 minutes of expiry: the old token serves while a new one comes
        assert await tokens.get() == first
        for _ in range(500):
            if tokens.exchanges == 2:
                break
            await asyncio.sleep(0.01)
        second = await tokens.get()
        assert tokens.exchanges == 2 and second != first
        now[0] += 3600 - 10  # nearly expired and no refresh under way: wait for a new one
        assert await tokens.get() not in (first, second) and tokens.exchanges == 3
    finally:
        await tokens.close()
    assert len(fcm.token_requests) == 3
