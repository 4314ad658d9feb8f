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
from typing import TypeVar

T = TypeVar("T")

JWT_ALGORITHMS = ("HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512")
PUSH_PROVIDERS = ("auto", "outbox")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A setting is missing or malformed; ``str()`` is one line naming the variable."""

    code = "invalid_setting"

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


def _secret_repr(value: str | None) -> str:
    return "None" if value is None else "'***'"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the hub.  Field docs name the environment variable."""

    host: str = "0.0.0.0"  # HERALD_HOST
    port: int = 8000  # PORT
    database_url: str | None = None  # DATABASE_URL
    redis_url: str | None = None  # REDIS_URL
    jwt_secret: str | None = field(default=None, repr=False)  # HERALD_JWT_SECRET
    jwt_public_key_file: Path | None = None  # HERALD_JWT_PUBLIC_KEY_FILE
    jwt_jwks_file: Path | None = None  # HERALD_JWT_JWKS_FILE
    jwt_algorithms: tuple[str, ...] = ("HS256",)  # HERALD_JWT_ALGORITHMS
    jwt_audience: str | None = None  # HERALD_JWT_AUDIENCE
    jwt_issuer: str | None = None  # HERALD_JWT_ISSUER
    cors_origins: tuple[str, ...] = ()  # HERALD_CORS_ORIGINS
    apns_key_file: Path | None = None  # HERALD_APNS_KEY_FILE
    apns_key_id: str | None = None  # HERALD_APNS_KEY_ID
    apns_team_id: str | None = None  # HERALD_APNS_TEAM_ID
    apns_topic: str | None = None  # HERALD_APNS_TOPIC
    apns_host: str | None = None  # HERALD_APNS_HOST
    fcm_credentials_file: Path | None = None  # HERALD_FCM_CREDENTIALS_FILE
    fcm_endpoint: str | None = None  # HERALD_FCM_ENDPOINT
    push_provider: str = "auto"  # HERALD_PUSH_PROVIDER
    log_level: str = "INFO"  # HERALD_LOG_LEVEL
    ws_compression: bool = False  # HERALD_WS_COMPRESSION
    ping_interval: float = 25.0  # HERALD_PING_INTERVAL (seconds between Engine.IO pings)
    ping_timeout: float = 20.0  # HERALD_PING_TIMEOUT (seconds to answer one before the socket is closed)
    connect_timeout: float = 45.0  # HERALD_CONNECT_TIMEOUT (seconds to send a Socket.IO CONNECT)
    max_text_length: int = 4000  # HERALD_MAX_TEXT_LENGTH (characters)
    max_frame_bytes: int = 64 * 1024  # HERALD_MAX_FRAME_BYTES
    message_rate: float = 20.0  # HERALD_MESSAGE_RATE (messages per second per user)
    message_burst: int = 40  # HERALD_MESSAGE_BURST
    address_rate: float = 200.0  # HERALD_ADDRESS_RATE (REST requests and connects per second per client address)
    key_rate: float = 500.0  # HERALD_KEY_RATE (REST requests per second per API key or user)
    socketio_channel: str = "herald"  # HERALD_SOCKETIO_CHANNEL
    queue_name: str = "herald:queue"  # HERALD_QUEUE_NAME
    db_pool_size: int = 10  # HERALD_DB_POOL_SIZE
    presence_ttl: float = 30.0  # HERALD_PRESENCE_TTL (seconds a dead node's users stay online)
    push_concurrency: int = 1000  # HERALD_PUSH_CONCURRENCY (requests in flight per worker process)
    push_max_attempts: int = 5  # HERALD_PUSH_MAX_ATTEMPTS (per delivery, then failed)
    push_retry_base: float = 2.0  # HERALD_PUSH_RETRY_BASE (seconds; doubles per attempt, with jitter)
    sweep_interval: float = 30.0  # HERALD_SWEEP_INTERVAL (seconds between sweeps for orphaned work)
    job_timeout: float = 300.0  # HERALD_JOB_TIMEOUT (seconds a job may run before it is cancelled)
    retention_days: int | None = None  # HERALD_RETENTION_DAYS (purge message text and deliveries older than N days)
    webhook_url: str | None = None  # HERALD_WEBHOOK_URL
    webhook_secret: str | None = field(default=None, repr=False)  # HERALD_WEBHOOK_SECRET
    data_dir: Path = Path(".herald")  # HERALD_DATA_DIR
    push_ca_file: Path | None = None  # HERALD_PUSH_CA_FILE (CA bundle to verify the APNs/FCM hosts: fakes, proxies)
    apns_environment: str = "auto"  # HERALD_APNS_ENVIRONMENT (auto = each device's own; or production, sandbox)
    push_apps_file: Path | None = None  # HERALD_PUSH_APPS_FILE (JSON credentials of several apps)
    push_timeout: float = 10.0  # HERALD_PUSH_TIMEOUT (seconds per provider request)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raise :class:`SettingsError` on the first bad one."""
        e = Environment(os.environ if env is None else env)
        default_algorithms: tuple[str, ...] = ("HS256",)
        algorithms = e.get("HERALD_JWT_ALGORITHMS", _algorithms, default_algorithms)
        settings = cls(
            host=e.get("HERALD_HOST", _nonempty, "0.0.0.0"),
            port=e.get("PORT", _port, 8000),
            database_url=e.get("DATABASE_URL", _url(("postgres", "postgresql")), None),
            redis_url=e.get("REDIS_URL", _url(("redis", "rediss", "unix")), None),
            jwt_secret=e.get("HERALD_JWT_SECRET", _secret, None),
            jwt_public_key_file=e.get("HERALD_JWT_PUBLIC_KEY_FILE", _existing_file, None),
            jwt_jwks_file=e.get("HERALD_JWT_JWKS_FILE", _existing_file, None),
            jwt_algorithms=algorithms,
            jwt_audience=e.get("HERALD_JWT_AUDIENCE", _nonempty, None),
            jwt_issuer=e.get("HERALD_JWT_ISSUER", _nonempty, None),
            cors_origins=e.get("HERALD_CORS_ORIGINS", _origins, ()),
            apns_key_file=e.get("HERALD_APNS_KEY_FILE", _existing_file, None),
            apns_key_id=e.get("HERALD_APNS_KEY_ID", _apple_id, None),
            apns_team_id=e.get("HERALD_APNS_TEAM_ID", _apple_id, None),
            apns_topic=e.get("HERALD_APNS_TOPIC", _nonempty, None),
            apns_host=e.get("HERALD_APNS_HOST", _host_port, None),
            fcm_credentials_file=e.get("HERALD_FCM_CREDENTIALS_FILE", _existing_file, None),
            fcm_endpoint=e.get("HERALD_FCM_ENDPOINT", _url(("http", "https")), None),
            push_provider=e.get("HERALD_PUSH_PROVIDER", _choice(PUSH_PROVIDERS), "auto"),
            log_level=e.get("HERALD_LOG_LEVEL", _log_level, "INFO"),
            ws_compression=e.get("HERALD_WS_COMPRESSION", _bool, False),
            ping_interval=e.get("HERALD_PING_INTERVAL", _float_range(1.0, 3600.0), 25.0),
            ping_timeout=e.get("HERALD_PING_TIMEOUT", _float_range(0.1, 3600.0), 20.0),
            connect_timeout=e.get("HERALD_CONNECT_TIMEOUT", _float_range(0.1, 3600.0), 45.0),
            max_text_length=e.get("HERALD_MAX_TEXT_LENGTH", _int_range(1, 16_000), 4000),
            max_frame_bytes=e.get("HERALD_MAX_FRAME_BYTES", _int_range(16_384, 16 * 1024 * 1024), 65_536),
            message_rate=e.get("HERALD_MESSAGE_RATE", _positive_float, 20.0),
            message_burst=e.get("HERALD_MESSAGE_BURST", _int_range(1, 100_000), 40),
            address_rate=e.get("HERALD_ADDRESS_RATE", _positive_float, 200.0),
            key_rate=e.get("HERALD_KEY_RATE", _positive_float, 500.0),
            socketio_channel=e.get("HERALD_SOCKETIO_CHANNEL", _nonempty, "herald"),
            queue_name=e.get("HERALD_QUEUE_NAME", _nonempty, "herald:queue"),
            db_pool_size=e.get("HERALD_DB_POOL_SIZE", _int_range(1, 1000), 10),
            presence_ttl=e.get("HERALD_PRESENCE_TTL", _positive_float, 30.0),
            push_concurrency=e.get("HERALD_PUSH_CONCURRENCY", _int_range(1, 10_000), 1000),
            push_max_attempts=e.get("HERALD_PUSH_MAX_ATTEMPTS", _int_range(1, 50), 5),
            push_retry_base=e.get("HERALD_PUSH_RETRY_BASE", _positive_float, 2.0),
            sweep_interval=e.get("HERALD_SWEEP_INTERVAL", _positive_float, 30.0),
            job_timeout=e.get("HERALD_JOB_TIMEOUT", _positive_float, 300.0),
            retention_days=e.get("HERALD_RETENTION_DAYS", _int_range(1, 36_500), None),
            webhook_url=e.get("HERALD_WEBHOOK_URL", _url(("http", "https")), None),
            webhook_secret=e.get("HERALD_WEBHOOK_SECRET", _secret, None),
            data_dir=e.get("HERALD_DATA_DIR", lambda v: Path(_nonempty(v)), Path(".herald")),
            push_ca_file=e.get("HERALD_PUSH_CA_FILE", _existing_file, None),
            apns_environment=e.get("HERALD_APNS_ENVIRONMENT", _choice(("auto", "production", "sandbox")), "auto"),
            push_apps_file=e.get("HERALD_PUSH_APPS_FILE", _existing_file, None),
            push_timeout=e.get("HERALD_PUSH_TIMEOUT", _positive_float, 10.0),
        )
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


class Environment:
    """Reads one variable at a time and turns a parse failure into a :class:`SettingsError`."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except (ValueError, OSError) as exc:
            raise SettingsError(name, str(exc)) from exc


def _nonempty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def _secret(value: str) -> str:
    if len(value) < 32:
        raise ValueError("is too short: use at least 32 characters")
    return value


def _port(value: str) -> int:
    return _int_range(1, 65535)(value)


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"{number} is out of range ({low} to {high})")
        return number

    return parse


def _float_range(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
        if not low <= number <= high:
            raise ValueError(f"{number} is out of range ({low:g} to {high:g})")
        return number

    return parse


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if not number > 0:
        raise ValueError(f"{value} must be greater than 0")
    return number


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}")
        return value

    return parse


def _log_level(value: str) -> str:
    return _choice(LOG_LEVELS)(value.upper())


def _algorithms(value: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names:
        raise ValueError("must name at least one algorithm")
    for name in names:
        if name not in JWT_ALGORITHMS:
            raise ValueError(f"{name!r} is not one of {', '.join(JWT_ALGORITHMS)} ('none' is never allowed)")
    return names


def _origins(value: str) -> tuple[str, ...]:
    origins = tuple(part.strip() for part in value.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"{origin!r} is not an origin (like https://app.example.com) or *")
    return origins


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in schemes or not rest:
            raise ValueError(f"is not a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value

    return parse


def _existing_file(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"{value} is not a readable file")
    return path


def _apple_id(value: str) -> str:
    if len(value) != 10 or not value.isalnum():
        raise ValueError(f"{value!r} is not a 10-character Apple identifier")
    return value


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} is not host:port")
    _port(port)
    return value
