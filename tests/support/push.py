"""The push side of the tests: fake APNs and FCM (real HTTP/2 over TLS, tests/fakes) and credentials
that point Herald's real clients at them; devices and notifications through the REST API; targets
for ``Pushers`` (tests/push)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from push import Pushers, Target
from tests.fakes.apns import AuthKey, FakeAPNs
from tests.fakes.fcm import FakeFCM
from tests.fakes.tls import shared_tls
from tests.support.rest import Rest

TEAM_ID, KEY_ID, TOPIC = "TEAM123456", "KEY1234567", "chat.herald.app"

IPHONE = "a1" * 32
IPAD = "b2" * 32
PIXEL = "fcm-token-pixel-" + "x" * 40


def apns_token(n: int = 1) -> str:
    """The ``n``-th APNs device token (64 hex digits)."""
    return f"{n:064x}"


def target(token: str, provider: str = "apns", environment: str = "production", **kw: str | None) -> Target:
    """A device to send to, as the workers hand it to ``Pushers`` (a new delivery id unless given)."""
    delivery_id = kw.pop("delivery_id", None) or str(uuid.uuid4())
    app_id = kw.pop("app_id", None)
    return Target(token=token, provider=provider, environment=environment, app_id=app_id, delivery_id=delivery_id)


#: The ``make_pushers`` fixture of tests/push: ``make_pushers(**overrides)`` is a new ``Pushers``.
PushersFactory = Callable[..., Pushers]


@pytest.fixture(scope="session")
def auth_key() -> AuthKey:
    return AuthKey.generate()


@pytest.fixture
async def fake_apns(auth_key: AuthKey) -> AsyncIterator[FakeAPNs]:
    async with FakeAPNs(TEAM_ID, KEY_ID, auth_key.public_pem, tls=shared_tls()) as fake:
        yield fake


@pytest.fixture
async def fake_fcm() -> AsyncIterator[FakeFCM]:
    async with FakeFCM("herald-test", tls=shared_tls()) as fake:
        yield fake


@pytest.fixture
def push_env(
    env: dict[str, str], tmp_path: Path, auth_key: AuthKey, fake_apns: FakeAPNs, fake_fcm: FakeFCM
) -> dict[str, str]:
    """The test's environment plus credentials that point the real clients at the fakes."""
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_text(auth_key.p8)
    account = tmp_path / "service-account.json"
    fake_fcm.write_service_account(account)
    return {
        **env,
        "HERALD_APNS_KEY_FILE": str(key_file),
        "HERALD_APNS_KEY_ID": KEY_ID,
        "HERALD_APNS_TEAM_ID": TEAM_ID,
        "HERALD_APNS_TOPIC": TOPIC,
        "HERALD_APNS_HOST": f"127.0.0.1:{fake_apns.port}",
        "HERALD_FCM_CREDENTIALS_FILE": str(account),
        "HERALD_FCM_ENDPOINT": fake_fcm.base_url,
        "HERALD_PUSH_CA_FILE": str(shared_tls().ca_path),
        "HERALD_PUSH_RETRY_BASE": "0.2",
        "HERALD_SWEEP_INTERVAL": "1",
        "HERALD_JOB_TIMEOUT": "10",
    }


async def register(api: dict[str, Rest], user: str, token: str, provider: str, **extra: Any) -> dict[str, Any]:
    """A device of ``user`` registered with ``api["devices"]``; the stored device."""
    platform = "ios" if provider == "apns" else "android"
    body = {"token": token, "provider": provider, "platform": platform, "user_id": user, "app_id": TOPIC, **extra}
    status, device = await api["devices"].request("POST", "/devices", body)
    assert status in (200, 201), device
    return dict(device)


async def notify(api: dict[str, Rest], to: dict[str, Any], **content: Any) -> str:
    """A notification sent with ``api["notify"]``; its id."""
    notification = {"title": "Hello", "body": "World", **content}
    status, body = await api["notify"].request("POST", "/notifications", {"to": to, "notification": notification})
    assert status == 202, body
    return str(body["id"])


async def wait_completed(db: asyncpg.Connection, notification_id: str, timeout: float = 15.0) -> dict[str, int]:
    """Wait until the notification is completed; return its counts per delivery status."""
    async with asyncio.timeout(timeout):
        while await db.fetchval("SELECT status FROM notifications WHERE id = $1", notification_id) != "completed":
            await asyncio.sleep(0.05)
    rows = await db.fetch(
        "SELECT status, count(*) AS n FROM deliveries WHERE notification_id = $1 GROUP BY status", notification_id
    )
    return {r["status"]: r["n"] for r in rows}


async def record_delivered(db: asyncpg.Connection, notification_id: str, token: str) -> None:
    """What a worker records when it has sent a notification to a device (for tests that run none)."""
    await db.execute(
        "INSERT INTO deliveries (notification_id, device_token, provider, status) VALUES ($1, $2, 'apns', 'delivered')",
        notification_id,
        token,
    )
