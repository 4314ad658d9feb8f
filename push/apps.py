"""Which credentials serve which app: the single-app settings, and ``HERALD_PUSH_APPS_FILE``.

The apps file (validated at start-up; a bad one raises `SettingsError` naming the file and field)::

    {"apps": [{"app_id": "com.example.chat",
               "apns": {"key_file": "AuthKey_ABC123DEFG.p8", "key_id": "ABC123DEFG",
                        "team_id": "DEF123GHIJ", "topic": "com.example.chat"},
               "fcm": {"credentials_file": "service-account.json"}}]}

Relative paths are read from the apps file's folder; ``topic`` defaults to ``app_id``. The
``HERALD_APNS_*`` / ``HERALD_FCM_CREDENTIALS_FILE`` settings form the default app, used when a
device has no ``app_id`` (and for every ``app_id`` when there is no apps file).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from config import Settings, SettingsError

APPS_FILE = "HERALD_PUSH_APPS_FILE"
SERVICE_ACCOUNT_FIELDS = ("project_id", "private_key", "client_email", "token_uri")


@dataclass(frozen=True, slots=True)
class ApnsCredentials:
    key: str = field(repr=False)  # the .p8 file's contents (aioapns takes the key, not its path)
    key_id: str
    team_id: str
    topic: str


@dataclass(frozen=True, slots=True)
class FcmCredentials:
    credentials_file: Path  # a service-account JSON
    project_id: str


@dataclass(frozen=True, slots=True)
class AppCredentials:
    app_id: str | None
    apns: ApnsCredentials | None = None
    fcm: FcmCredentials | None = None


@dataclass(frozen=True, slots=True)
class PushApps:
    default: AppCredentials | None
    apps: dict[str, AppCredentials] | None = None  # None: no apps file

    def lookup(self, app_id: str | None) -> AppCredentials | None:
        """The credentials for ``app_id``; None when that app is not configured."""
        if self.apps is None or app_id is None:
            return self.default
        if (app := self.apps.get(app_id)) is not None:
            return app
        if self.default is not None and app_id == self.default.app_id:
            return self.default
        return None

    def all(self) -> list[AppCredentials]:
        return [*([self.default] if self.default else []), *(self.apps or {}).values()]


def load_apps(settings: Settings) -> PushApps:
    """Read and check every credential the settings name; raise `SettingsError` on the first bad one."""
    apps = _load_apps_file(settings.push_apps_file) if settings.push_apps_file else None
    return PushApps(_default_app(settings), apps)


def _default_app(settings: Settings) -> AppCredentials | None:
    apns = None
    named = {
        "HERALD_APNS_KEY_FILE": settings.apns_key_file,
        "HERALD_APNS_KEY_ID": settings.apns_key_id,
        "HERALD_APNS_TEAM_ID": settings.apns_team_id,
        "HERALD_APNS_TOPIC": settings.apns_topic,
    }
    if any(v is not None for v in named.values()):
        given = next(k for k, v in named.items() if v is not None)
        for name, value in named.items():
            if value is None:
                raise SettingsError(name, f"not set, but {given} is (APNs needs all four HERALD_APNS_* settings)")
        assert settings.apns_key_file and settings.apns_key_id and settings.apns_team_id and settings.apns_topic
        try:
            key = read_p8(settings.apns_key_file)
        except ValueError as exc:
            raise SettingsError("HERALD_APNS_KEY_FILE", str(exc)) from exc
        apns = ApnsCredentials(key, settings.apns_key_id, settings.apns_team_id, settings.apns_topic)
    fcm = None
    if settings.fcm_credentials_file is not None:
        try:
            fcm = FcmCredentials(settings.fcm_credentials_file, read_project_id(settings.fcm_credentials_file))
        except ValueError as exc:
            raise SettingsError("HERALD_FCM_CREDENTIALS_FILE", str(exc)) from exc
    if apns is None and fcm is None:
        return None
    return AppCredentials(settings.apns_topic, apns, fcm)


def read_p8(path: Path) -> str:
    """The contents of an APNs auth key, checked to be an ES256 (P-256) private key."""
    try:
        text = path.read_text()
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{path} is not a readable .p8 private key ({type(exc).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{path} is not an ES256 (P-256) key, as APNs auth keys are")
    return text


def read_project_id(path: Path) -> str:
    """The project id of a service-account JSON, checked to have what an OAuth2 exchange needs."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable JSON file ({type(exc).__name__})") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ValueError(f'{path} is not a service-account JSON ("type": "service_account")')
    for name in SERVICE_ACCOUNT_FIELDS:
        if not isinstance(info.get(name), str) or not info[name]:
            raise ValueError(f"{path} has no {name}")
    return str(info["project_id"])


class _Bad(ValueError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


def _load_apps_file(path: Path) -> dict[str, AppCredentials]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SettingsError(APPS_FILE, f"{path}: not readable JSON ({exc})".replace("\n", " ")) from exc
    try:
        return _parse_apps(document, path.parent)
    except _Bad as exc:
        raise SettingsError(APPS_FILE, f"{path}: {exc}") from exc


def _parse_apps(document: Any, base: Path) -> dict[str, AppCredentials]:
    _only(document, "(top level)", {"apps"})
    entries = document.get("apps")
    if not isinstance(entries, list) or not entries:
        raise _Bad("apps", "must be a non-empty list")
    apps: dict[str, AppCredentials] = {}
    for i, entry in enumerate(entries):
        where = f"apps[{i}]"
        _only(entry, where, {"app_id", "apns", "fcm"})
        app_id = _text(entry, "app_id", where)
        if app_id in apps:
            raise _Bad(f"{where}.app_id", f"{app_id!r} appears twice")
        if entry.get("apns") is None and entry.get("fcm") is None:
            raise _Bad(where, "has neither apns nor fcm credentials")
        apns = _apns(entry["apns"], f"{where}.apns", app_id, base) if entry.get("apns") is not None else None
        fcm = _fcm(entry["fcm"], f"{where}.fcm", base) if entry.get("fcm") is not None else None
        apps[app_id] = AppCredentials(app_id, apns, fcm)
    return apps


def _apns(entry: Any, where: str, app_id: str, base: Path) -> ApnsCredentials:
    _only(entry, where, {"key_file", "key_id", "team_id", "topic"})
    key_file = base / _text(entry, "key_file", where)
    try:
        key = read_p8(key_file)
    except ValueError as exc:
        raise _Bad(f"{where}.key_file", str(exc)) from exc
    ids = {name: _text(entry, name, where) for name in ("key_id", "team_id")}
    for name, value in ids.items():
        if len(value) != 10 or not value.isalnum():
            raise _Bad(f"{where}.{name}", f"{value!r} is not a 10-character Apple identifier")
    topic = _text(entry, "topic", where) if entry.get("topic") is not None else app_id
    return ApnsCredentials(key, ids["key_id"], ids["team_id"], topic)


def _fcm(entry: Any, where: str, base: Path) -> FcmCredentials:
    _only(entry, where, {"credentials_file"})
    credentials_file = base / _text(entry, "credentials_file", where)
    try:
        return FcmCredentials(credentials_file, read_project_id(credentials_file))
    except ValueError as exc:
        raise _Bad(f"{where}.credentials_file", str(exc)) from exc


def _only(entry: Any, where: str, allowed: set[str]) -> None:
    if not isinstance(entry, Mapping):
        raise _Bad(where, "must be an object")
    if unknown := sorted(set(entry) - allowed):
        raise _Bad(f"{where}.{unknown[0]}" if where != "(top level)" else unknown[0], "unknown field")


def _text(entry: Mapping[str, Any], name: str, where: str) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{where}.{name}", "must be a non-empty string")
    return value.strip()
