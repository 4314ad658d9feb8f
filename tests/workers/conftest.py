"""Fixtures for the push side: fake APNs and FCM (real HTTP/2 over TLS), a real arq worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from config import Settings
from tests.fakes.apns import AuthKey, FakeAPNs
from tests.fakes.fcm import FakeFCM
from tests.fakes.tls import shared_tls
from tests.hub.test_rooms import Rest
from workers.main import create_worker

TEAM_ID, KEY_ID, TOPIC = "TEAM123456", "KEY1234567", "chat.herald.app"


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


Runner = Callable[..., Awaitable[None]]


@pytest.fixture
async def run_worker(push_env: dict[str, str]) -> AsyncIterator[Runner]:
    """``await run_worker(**overrides)``: an arq worker running in this test's loop until teardown."""
    tasks: list[tuple[Any, asyncio.Task[None]]] = []

    async def start(**overrides: str) -> None:
        worker = create_worker(Settings.from_env({**push_env, **overrides}), handle_signals=False)
        tasks.append((worker, asyncio.create_task(worker.async_run())))

    yield start
    for worker, task in tasks:
        await worker.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def wait_completed(db: asyncpg.Connection, notification_id: str, timeout: float = 15.0) -> dict[str, int]:
    """Wait until the notification is completed; return its counts per delivery status."""
    async with asyncio.timeout(timeout):
        while await db.fetchval("SELECT status FROM notifications WHERE id = $1", notification_id) != "completed":
            await asyncio.sleep(0.05)
    rows = await db.fetch(
        "SELECT status, count(*) AS n FROM deliveries WHERE notification_id = $1 GROUP BY status", notification_id
    )
    return {r["status"]: r["n"] for r in rows}


@pytest.fixture
async def api(hub_url: str, api_key) -> dict[str, Rest]:  # type: ignore[no-untyped-def]
    """REST clients holding a devices, a notify and a publish key."""
    return {
        "devices": Rest(hub_url, await api_key("devices")),
        "notify": Rest(hub_url, await api_key("notify")),
        "publish": Rest(hub_url, await api_key("publish")),
    }
