"""Settings: read once, validated, one clear line naming the bad variable."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from config import Settings, SettingsError, parsers

HERALD = str(Path(sys.executable).with_name("herald"))


def test_defaults_need_nothing() -> None:
    settings = Settings.from_env({})
    assert settings.port == 8000
    assert settings.jwt_algorithms == ("HS256",)
    assert settings.ws_compression is False
    assert (settings.ping_interval, settings.ping_timeout) == (25.0, 20.0)


@pytest.mark.parametrize(
    ("env", "name", "fragment"),
    [
        ({"PORT": "eighty"}, "PORT", "not a whole number"),
        ({"PORT": "70000"}, "PORT", "out of range"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL", "postgresql://"),
        ({"HERALD_JWT_ALGORITHMS": "HS256,none"}, "HERALD_JWT_ALGORITHMS", "'none' is never allowed"),
        ({"HERALD_JWT_SECRET": "short"}, "HERALD_JWT_SECRET", "at least 32"),
        ({"HERALD_PUSH_PROVIDER": "pigeon"}, "HERALD_PUSH_PROVIDER", "auto, outbox"),
        ({"HERALD_APNS_KEY_FILE": "/nonexistent/key.p8"}, "HERALD_APNS_KEY_FILE", "not a readable file"),
        ({"HERALD_CORS_ORIGINS": "example.com"}, "HERALD_CORS_ORIGINS", "is not an origin"),
        ({"HERALD_WS_COMPRESSION": "maybe"}, "HERALD_WS_COMPRESSION", "not a boolean"),
        ({"HERALD_PING_INTERVAL": "0.5"}, "HERALD_PING_INTERVAL", "out of range"),
        ({"HERALD_PING_TIMEOUT": "soon"}, "HERALD_PING_TIMEOUT", "not a number"),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], name: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert info.value.name == name
    assert str(info.value).startswith(f"{name}: ")
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_secrets_never_show_in_the_public_view() -> None:
    settings = Settings.from_env(
        {"HERALD_JWT_SECRET": "s" * 40, "DATABASE_URL": "postgresql://u:hunter2hunter2@db/herald"}
    )
    view = repr(settings.public_view()) + repr(settings)
    assert "s" * 40 not in view
    assert "hunter2hunter2" not in view


def test_web_without_any_jwt_setting_refuses_to_start() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x"})
    with pytest.raises(SettingsError, match=r"^HERALD_JWT_SECRET: not set"):
        settings.require_client_auth()


def test_worker_without_credentials_or_outbox_refuses_to_start() -> None:
    with pytest.raises(SettingsError, match=r"^HERALD_PUSH_PROVIDER: no APNs or FCM credentials"):
        Settings.from_env({}).require_push_provider()
    Settings.from_env({"HERALD_PUSH_PROVIDER": "outbox"}).require_push_provider()


def test_the_command_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERALD_", "DATABASE_URL", "REDIS_URL"))}
    env["PORT"] = "not-a-port"
    result = subprocess.run([HERALD, "web"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "herald: PORT: 'not-a-port' is not a whole number\n"


def _readme_settings() -> dict[str, str]:
    """README's settings table: each variable and the default it shows."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Settings", 1)[1].split("\n## ", 1)[0]
    shown: dict[str, str] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names_cell, default_cell = (cell.strip() for cell in line.strip("|").split("|")[:2])
        names = re.findall(r"`([A-Z_]+)`", names_cell)
        defaults = [d.strip() for d in default_cell.split(" / ")]
        for i, name in enumerate(names):
            shown[name] = defaults[i] if len(defaults) == len(names) else defaults[0]
    return shown


def _as_readme_shows(value: object) -> str:
    if value is None or value == ():
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def test_readme_lists_every_setting_with_its_declared_default() -> None:
    declared = {f.metadata["env"]: f.default for f in dataclasses.fields(Settings)}
    shown = _readme_settings()
    assert set(shown) == set(declared), "README's settings table and config/settings.py name different variables"
    wrong = {name: (shown[name], _as_readme_shows(default)) for name, default in declared.items()}
    assert {k: v for k, v in wrong.items() if v[0] != v[1]} == {}, "README default != declared default"


def test_every_setting_is_read_from_its_declared_variable() -> None:
    # one declaration per setting: a value set in the environment reaches the field it declares
    for f in dataclasses.fields(Settings):
        if f.metadata["parse"] is not parsers.nonempty:
            continue
        settings = Settings.from_env({f.metadata["env"]: "from-the-environment"})
        assert getattr(settings, f.name) == "from-the-environment", f.name
