"""Push tests: the real clients (aioapns, httpx + google-auth) against the local fakes over TLS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from config import Settings
from push import Pushers
from tests.fakes.apns import AuthKey, FakeAPNs
from tests.fakes.fcm import FakeFCM
from tests.support.push import KEY_ID, TEAM_ID, TOPIC, PushersFactory


@pytest.fixture(scope="module")
def auth_key() -> AuthKey:
    return AuthKey.generate()


@pytest.fixture
async def apns(auth_key: AuthKey) -> AsyncIterator[FakeAPNs]:
    async with FakeAPNs(TEAM_ID, KEY_ID, auth_key.public_pem) as fake:
        yield fake


@pytest.fixture
async def fcm() -> AsyncIterator[FakeFCM]:
    # In this test's loop: the token exchange runs in a thread (asyncio.to_thread), so the loop
    # stays free to answer it.
    async with FakeFCM("herald-test") as fake:
        yield fake


@pytest.fixture
def key_file(tmp_path: Path, auth_key: AuthKey) -> Path:
    path = tmp_path / f"AuthKey_{KEY_ID}.p8"
    path.write_text(auth_key.p8)
    return path


@pytest.fixture
def sa_file(tmp_path: Path, fcm: FakeFCM) -> Path:
    return fcm.write_service_account(tmp_path / "service-account.json")


@pytest.fixture
def push_env(apns: FakeAPNs, fcm: FakeFCM, key_file: Path, sa_file: Path) -> dict[str, str]:
    """Environment pointing Herald's push settings at both fakes."""
    return {
        "HERALD_APNS_KEY_FILE": str(key_file),
        "HERALD_APNS_KEY_ID": KEY_ID,
        "HERALD_APNS_TEAM_ID": TEAM_ID,
        "HERALD_APNS_TOPIC": TOPIC,
        "HERALD_APNS_HOST": f"127.0.0.1:{apns.port}",
        "HERALD_FCM_CREDENTIALS_FILE": str(sa_file),
        "HERALD_FCM_ENDPOINT": fcm.base_url,
        "HERALD_PUSH_CA_FILE": str(apns.tls.ca_path),
        "HERALD_PUSH_TIMEOUT": "5",
    }


@pytest.fixture
async def make_pushers(push_env: dict[str, str]) -> AsyncIterator[PushersFactory]:
    """Build `Pushers` from the fakes' settings plus overrides; all are closed after the test."""
    made: list[Pushers] = []

    def make(**overrides: str) -> Pushers:
        env = {k: v for k, v in {**push_env, **overrides}.items() if v != ""}
        pushers = Pushers.from_settings(Settings.from_env(env))
        made.append(pushers)
        return pushers

    yield make
    for pushers in made:
        await pushers.close()


@pytest.fixture
def pushers(make_pushers: PushersFactory) -> Pushers:
    return make_pushers()
