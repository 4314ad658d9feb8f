"""Settings read once from the environment into a frozen, typed object.

Nothing is read at import time: call :meth:`Settings.from_env` at start-up (it takes the
environment as an argument so tests can pass their own).  A bad value raises
:class:`SettingsError`, whose message is one line naming the variable and what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from config.parsers import (
    PUSH_PROVIDERS,
    Environment,
    SettingsError,
    algorithms,
    apple_id,
    boolean,
    choice,
    existing_file,
    float_range,
    host_port,
    int_range,
    log_level,
    nonempty,
    origins,
    port,
    positive_float,
    secret,
    url,
)

T = TypeVar("T")

DEFAULT_ALGORITHMS: tuple[str, ...] = ("HS256",)
NO_ORIGINS: tuple[str, ...] = ()

__all__ = ["Settings", "SettingsError", "setting"]


def setting(env: str, parse: Callable[[str], T], default: T, doc: str = "", *, secret: bool = False) -> Any:
    """One setting: the environment variable, how its text is parsed, the default when unset, a
    short description; ``secret`` keeps the value out of ``repr``."""
    return field(default=default, repr=not secret, metadata={"env": env, "parse": parse, "doc": doc})


def _secret_repr(value: str | None) -> str:
    return "None" if value is None else "'***'"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the hub, each declared once: its variable, parser, default (README's
    settings table is checked against these by tests/config/test_settings.py)."""

    host: str = setting("HERALD_HOST", nonempty, "0.0.0.0")
    port: int = setting("PORT", port, 8000)
    database_url: str | None = setting("DATABASE_URL", url(("postgres", "postgresql")), None)
    redis_url: str | None = setting("REDIS_URL", url(("redis", "rediss", "unix")), None)
    jwt_secret: str | None = setting("HERALD_JWT_SECRET", secret, None, secret=True)
    jwt_public_key_file: Path | None = setting("HERALD_JWT_PUBLIC_KEY_FILE", existing_file, None)
    jwt_jwks_file: Path | None = setting("HERALD_JWT_JWKS_FILE", existing_file, None)
    jwt_algorithms: tuple[str, ...] = setting("HERALD_JWT_ALGORITHMS", algorithms, DEFAULT_ALGORITHMS)
    jwt_audience: str | None = setting("HERALD_JWT_AUDIENCE", nonempty, None)
    jwt_issuer: str | None = setting("HERALD_JWT_ISSUER", nonempty, None)
    cors_origins: tuple[str, ...] = setting("HERALD_CORS_ORIGINS", origins, NO_ORIGINS)
    apns_key_file: Path | None = setting("HERALD_APNS_KEY_FILE", existing_file, None)
    apns_key_id: str | None = setting("HERALD_APNS_KEY_ID", apple_id, None)
    apns_team_id: str | None = setting("HERALD_APNS_TEAM_ID", apple_id, None)
    apns_topic: str | None = setting("HERALD_APNS_TOPIC", nonempty, None)
    apns_host: str | None = setting("HERALD_APNS_HOST", host_port, None)
    fcm_credentials_file: Path | None = setting("HERALD_FCM_CREDENTIALS_FILE", existing_file, None)
    fcm_endpoint: str | None = setting("HERALD_FCM_ENDPOINT", url(("http", "https")), None)
    push_provider: str = setting("HERALD_PUSH_PROVIDER", choice(PUSH_PROVIDERS), "auto")
    log_level: str = setting("HERALD_LOG_LEVEL", log_level, "INFO")
    ws_compression: bool = setting("HERALD_WS_COMPRESSION", boolean, False)
    ping_interval: float = setting(
        "HERALD_PING_INTERVAL", float_range(1.0, 3600.0), 25.0, "seconds between Engine.IO pings"
    )
    ping_timeout: float = setting(
        "HERALD_PING_TIMEOUT", float_range(0.1, 3600.0), 20.0, "seconds to answer one before the socket is closed"
    )
    connect_timeout: float = setting(
        "HERALD_CONNECT_TIMEOUT", float_range(0.1, 3600.0), 45.0, "seconds to send a Socket.IO CONNECT"
    )
    max_text_length: int = setting("HERALD_MAX_TEXT_LENGTH", int_range(1, 16_000), 4000, "characters")
    max_frame_bytes: int = setting("HERALD_MAX_FRAME_BYTES", int_range(16_384, 16 * 1024 * 1024), 65_536)
    message_rate: float = setting("HERALD_MESSAGE_RATE", positive_float, 20.0, "messages per second per user")
    message_burst: int = setting("HERALD_MESSAGE_BURST", int_range(1, 100_000), 40)
    address_rate: float = setting(
        "HERALD_ADDRESS_RATE", positive_float, 200.0, "REST requests and connects per second per client address"
    )
    key_rate: float = setting("HERALD_KEY_RATE", positive_float, 500.0, "REST requests per second per API key or user")
    socketio_channel: str = setting("HERALD_SOCKETIO_CHANNEL", nonempty, "herald")
    queue_name: str = setting("HERALD_QUEUE_NAME", nonempty, "herald:queue")
    db_pool_size: int = setting("HERALD_DB_POOL_SIZE", int_range(1, 1000), 10)
    presence_ttl: float = setting(
        "HERALD_PRESENCE_TTL", positive_float, 30.0, "seconds a dead node's users stay online"
    )
    push_concurrency: int = setting(
        "HERALD_PUSH_CONCURRENCY", int_range(1, 10_000), 1000, "requests in flight per worker process"
    )
    push_max_attempts: int = setting("HERALD_PUSH_MAX_ATTEMPTS", int_range(1, 50), 5, "per delivery, then failed")
    push_retry_base: float = setting(
        "HERALD_PUSH_RETRY_BASE", positive_float, 2.0, "seconds; doubles per attempt, with jitter"
    )
    sweep_interval: float = setting(
        "HERALD_SWEEP_INTERVAL", positive_float, 30.0, "seconds between sweeps for orphaned work"
    )
    job_timeout: float = setting(
        "HERALD_JOB_TIMEOUT", positive_float, 300.0, "seconds a job may run before it is cancelled"
    )
    retention_days: int | None = setting(
        "HERALD_RETENTION_DAYS", int_range(1, 36_500), None, "purge message text and deliveries older than N days"
    )
    webhook_url: str | None = setting("HERALD_WEBHOOK_URL", url(("http", "https")), None)
    webhook_secret: str | None = setting("HERALD_WEBHOOK_SECRET", secret, None, secret=True)
    data_dir: Path = setting("HERALD_DATA_DIR", lambda v: Path(nonempty(v)), Path(".herald"))
    push_ca_file: Path | None = setting(
        "HERALD_PUSH_CA_FILE", existing_file, None, "CA bundle to verify the APNs/FCM hosts: fakes, proxies"
    )
    apns_environment: str = setting(
        "HERALD_APNS_ENVIRONMENT",
        choice(("auto", "production", "sandbox")),
        "auto",
        "auto = each device's own; or production, sandbox",
    )
    push_apps_file: Path | None = setting(
        "HERALD_PUSH_APPS_FILE", existing_file, None, "JSON credentials of several apps"
    )
    push_timeout: float = setting("HERALD_PUSH_TIMEOUT", positive_float, 10.0, "seconds per provider request")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raise :class:`SettingsError` on the first bad one."""
        e = Environment(os.environ if env is None else env)
        values: dict[str, Any] = {f.name: e.get(f.metadata["env"], f.metadata["parse"], f.default) for f in fields(cls)}
        settings = cls(**values)
        settings._check_frame_limit()
        if settings.webhook_url and not settings.webhook_secret:
            raise SettingsError(
                "HERALD_WEBHOOK_SECRET", "not set, but HERALD_WEBHOOK_URL is: webhooks are always signed"
            )
        return settings

    def _check_frame_limit(self) -> None:
        # A text of max_text_length characters is at most 4 bytes each in UTF-8, plus the envelope.
        if self.max_text_length * 4 + 4096 > self.max_frame_bytes:
            raise SettingsError(
                "HERALD_MAX_TEXT_LENGTH",
                f"{self.max_text_length} characters may not fit in a frame of HERALD_MAX_FRAME_BYTES="
                f"{self.max_frame_bytes}; keep 4 x length + 4096 under it",
            )

    def require_client_auth(self) -> None:
        """Raise unless some way of verifying client JWTs is configured (the web process needs one)."""
        symmetric = [a for a in self.jwt_algorithms if a.startswith("HS")]
        asymmetric = [a for a in self.jwt_algorithms if not a.startswith("HS")]
        if symmetric and not self.jwt_secret:
            raise SettingsError("HERALD_JWT_SECRET", f"not set, but HERALD_JWT_ALGORITHMS allows {symmetric[0]}")
        if asymmetric and not (self.jwt_public_key_file or self.jwt_jwks_file):
            raise SettingsError(
                "HERALD_JWT_PUBLIC_KEY_FILE",
                f"not set (nor HERALD_JWT_JWKS_FILE), but HERALD_JWT_ALGORITHMS allows {asymmetric[0]}",
            )

    def require_push_provider(self) -> None:
        """Raise unless the worker has provider credentials or was told to use the outbox."""
        if self.push_provider == "outbox":
            return
        if not self.has_push_credentials:
            raise SettingsError(
                "HERALD_PUSH_PROVIDER",
                "no APNs or FCM credentials are set (HERALD_APNS_KEY_FILE, HERALD_FCM_CREDENTIALS_FILE); "
                "set them, or set HERALD_PUSH_PROVIDER=outbox to record pushes instead of sending them",
            )

    @property
    def has_push_credentials(self) -> bool:
        return bool(self.apns_key_file or self.fcm_credentials_file or self.push_apps_file)

    def require_services(self) -> None:
        """Raise unless both service URLs are set (``web``, ``worker`` and ``migrate`` need them)."""
        if not self.database_url:
            raise SettingsError("DATABASE_URL", "not set (or run `herald up` for the embedded default)")
        if not self.redis_url:
            raise SettingsError("REDIS_URL", "not set (or run `herald up` for the embedded default)")

    def __repr__(self) -> str:
        fields_text = ", ".join(f"{k}={v!r}" for k, v in self.public_view().items())
        return f"Settings({fields_text})"

    def public_view(self) -> dict[str, object]:
        """The settings with secrets masked, fit for a log line."""
        view: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("jwt_secret", "webhook_secret"):
                view[f.name] = _secret_repr(value)
            elif f.name in ("database_url", "redis_url") and value:
                view[f.name] = _mask_url_password(value)
            else:
                view[f.name] = str(value) if isinstance(value, Path) else value
        return view


def _mask_url_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{hostpart}"
