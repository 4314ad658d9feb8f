"""Pushers: the outbox, "not_configured", and several apps from HERALD_PUSH_APPS_FILE."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from config import Settings, SettingsError
from push import Outcome, Pushers, PushMessage, SendResult
from tests.fakes.apns import FakeAPNs
from tests.fakes.fcm import FakeFCM
from tests.support.push import KEY_ID, TEAM_ID, TOPIC, PushersFactory, apns_token, target

ALERT = PushMessage(title="Alice", body="Lunch?")


async def test_outbox_records_instead_of_sending() -> None:
    records: list[dict[str, Any]] = []

    async def sink(record: dict[str, Any]) -> None:
        records.append(record)

    pushers = Pushers.from_settings(Settings.from_env({"HERALD_PUSH_PROVIDER": "outbox"}), outbox_sink=sink)
    try:
        to = target(apns_token(), "apns", "sandbox", app_id="com.example.chat")
        assert await pushers.send(to, ALERT) == SendResult(Outcome.DELIVERED, "outbox")
        assert (await pushers.send(target("fcm-device", "fcm"), ALERT)).reason == "outbox"
    finally:
        await pushers.close()
    first = records[0]
    assert abs(first.pop("at") - time.time()) < 5
    assert first == {
        "provider": "apns",
        "token": to.token,
        "app_id": "com.example.chat",
        "environment": "sandbox",
        "message": ALERT.to_json(),
        "delivery_id": to.delivery_id,
    }
    assert records[1]["provider"] == "fcm"


async def test_a_failing_outbox_sink_is_a_retry() -> None:
    async def sink(record: dict[str, Any]) -> None:
        raise ConnectionError("redis down")

    pushers = Pushers.from_settings(Settings.from_env({"HERALD_PUSH_PROVIDER": "outbox"}), outbox_sink=sink)
    assert await pushers.send(target(apns_token()), ALERT) == SendResult(Outcome.RETRY, "outbox: ConnectionError")


async def test_not_configured(make_pushers: PushersFactory, apns: FakeAPNs) -> None:
    nothing = make_pushers(
        HERALD_APNS_KEY_FILE="", HERALD_APNS_KEY_ID="", HERALD_APNS_TEAM_ID="", HERALD_APNS_TOPIC="",
        HERALD_FCM_CREDENTIALS_FILE="",
    )  # fmt: skip
    assert await nothing.send(target(apns_token()), ALERT) == SendResult(Outcome.FAIL, "not_configured")
    apns_only = make_pushers(HERALD_FCM_CREDENTIALS_FILE="")
    result = await apns_only.send(target("fcm-device", "fcm"), ALERT)
    assert result == SendResult(Outcome.FAIL, "not_configured") and result.config_error
    assert (await apns_only.send(target(apns_token(), "webpush"), ALERT)).reason == "not_configured"
    # without an apps file the default app serves any app id
    assert (await apns_only.send(target(apns_token(), app_id="com.other"), ALERT)).outcome is Outcome.DELIVERED
    assert apns.requests[-1].headers["apns-topic"] == TOPIC


def write_apps(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "apps.json"
    path.write_text(json.dumps(document))
    return path


async def test_apps_file_routes_by_app_id(
    make_pushers: PushersFactory, apns: FakeAPNs, fcm: FakeFCM, key_file: Path, sa_file: Path, tmp_path: Path
) -> None:
    apps = write_apps(
        tmp_path,
        {
            "apps": [
                {
                    "app_id": "com.example.a",
                    "apns": {"key_file": key_file.name, "key_id": KEY_ID, "team_id": TEAM_ID},
                    "fcm": {"credentials_file": str(sa_file)},
                },
                {"app_id": "com.example.b", "fcm": {"credentials_file": sa_file.name}},
            ]
        },
    )
    pushers = make_pushers(HERALD_PUSH_APPS_FILE=str(apps))
    sends = {
        ("apns", "com.example.a"): Outcome.DELIVERED,
        ("apns", None): Outcome.DELIVERED,  # the default app (HERALD_APNS_*)
        ("apns", TOPIC): Outcome.DELIVERED,  # the default app by its id
        ("fcm", "com.example.b"): Outcome.DELIVERED,
        ("apns", "com.example.b"): Outcome.FAIL,  # b has no APNs credentials
        ("apns", "com.example.unknown"): Outcome.FAIL,
        ("fcm", "com.example.unknown"): Outcome.FAIL,
    }
    for (provider, app_id), outcome in sends.items():
        token = apns_token() if provider == "apns" else "fcm-device"
        result = await pushers.send(target(token, provider, app_id=app_id), ALERT)
        assert result.outcome is outcome, (provider, app_id, result)
        assert result.reason == (None if outcome is Outcome.DELIVERED else "not_configured")
    assert [e.headers["apns-topic"] for e in apns.requests] == ["com.example.a", TOPIC, TOPIC]
    assert len(apns.provider_tokens) == 1  # one JWT for the one signing key, across apps
    assert len(fcm.token_requests) == 1  # one token source per service account


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"apps": []}, "apps: must be a non-empty list"),
        ({"apps": [{"app_id": "a"}]}, "apps[0]: has neither apns nor fcm"),
        ({"apps": [{"app_id": "", "fcm": {}}]}, "apps[0].app_id: must be a non-empty string"),
        ({"apps": [{"app_id": "a", "fcm": {"credentials_file": "nope.json"}}]}, "apps[0].fcm.credentials_file:"),
        ({"apps": [{"app_id": "a", "apns": {"key_file": "k.p8", "key_id": "SHORT", "team_id": TEAM_ID}}]}, "key_id"),
        ({"apps": [{"app_id": "a", "apns": {"key_file": "missing.p8", "key_id": KEY_ID}}]}, "apps[0].apns.key_file"),
        ({"apps": [{"app_id": "a", "fcm": {"credentials_file": "sa.json"}, "colour": 1}]}, "apps[0].colour: unknown"),
        (
            {"apps": [{"app_id": "a", "fcm": {"credentials_file": "sa.json"}}] * 2},
            "apps[1].app_id: 'a' appears twice",
        ),
        ({"app": []}, "app: unknown field"),
    ],
)
def test_a_bad_apps_file_names_the_file_and_field(
    document: Any, field: str, tmp_path: Path, key_file: Path, sa_file: Path
) -> None:
    key_file.rename(tmp_path / "k.p8")
    sa_file.rename(tmp_path / "sa.json")
    path = write_apps(tmp_path, document)
    settings = Settings.from_env({"HERALD_PUSH_APPS_FILE": str(path)})
    with pytest.raises(SettingsError) as info:
        Pushers.from_settings(settings)
    message = str(info.value)
    assert message.startswith(f"HERALD_PUSH_APPS_FILE: {path}: ")
    assert field in message and "\n" not in message


def test_bad_single_app_credentials_are_named(tmp_path: Path, key_file: Path) -> None:
    with pytest.raises(SettingsError, match=r"^HERALD_APNS_TEAM_ID: not set, but HERALD_APNS_KEY_FILE is"):
        Pushers.from_settings(Settings.from_env({"HERALD_APNS_KEY_FILE": str(key_file), "HERALD_APNS_KEY_ID": KEY_ID}))
    not_a_key = tmp_path / "key.p8"
    not_a_key.write_text("hello")
    env = {"HERALD_APNS_KEY_FILE": str(not_a_key), "HERALD_APNS_KEY_ID": KEY_ID}
    with pytest.raises(SettingsError, match=r"^HERALD_APNS_KEY_FILE: .* is not a readable \.p8 private key"):
        Pushers.from_settings(Settings.from_env({**env, "HERALD_APNS_TEAM_ID": TEAM_ID, "HERALD_APNS_TOPIC": TOPIC}))
    not_json = tmp_path / "sa.json"
    not_json.write_text("{}")
    with pytest.raises(SettingsError, match=r"^HERALD_FCM_CREDENTIALS_FILE: .* is not a service-account JSON"):
        Pushers.from_settings(Settings.from_env({"HERALD_FCM_CREDENTIALS_FILE": str(not_json)}))


def test_new_settings() -> None:
    settings = Settings.from_env({})
    assert (settings.push_ca_file, settings.apns_environment, settings.push_apps_file) == (None, "auto", None)
    assert settings.push_timeout == 10.0
    with pytest.raises(SettingsError, match=r"^HERALD_APNS_ENVIRONMENT: 'dev' is not one of auto"):
        Settings.from_env({"HERALD_APNS_ENVIRONMENT": "dev"})
