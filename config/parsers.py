"""Turning one environment variable's text into a typed value, or a one-line error naming it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def nonempty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


def secret(value: str) -> str:
    if len(value) < 32:
        raise ValueError("is too short: use at least 32 characters")
    return value


def port(value: str) -> int:
    return int_range(1, 65535)(value)


def int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a whole number") from None
        if not low <= number <= high:
            raise ValueError(f"{number} is out of range ({low} to {high})")
        return number

    return parse


def float_range(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
        if not low <= number <= high:
            raise ValueError(f"{number} is out of range ({low:g} to {high:g})")
        return number

    return parse


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if not number > 0:
        raise ValueError(f"{value} must be greater than 0")
    return number


def boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in options:
            raise ValueError(f"{value!r} is not one of {', '.join(options)}")
        return value

    return parse


def log_level(value: str) -> str:
    return choice(LOG_LEVELS)(value.upper())


def algorithms(value: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if not names:
        raise ValueError("must name at least one algorithm")
    for name in names:
        if name not in JWT_ALGORITHMS:
            raise ValueError(f"{name!r} is not one of {', '.join(JWT_ALGORITHMS)} ('none' is never allowed)")
    return names


def origins(value: str) -> tuple[str, ...]:
    origins = tuple(part.strip() for part in value.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"{origin!r} is not an origin (like https://app.example.com) or *")
    return origins


def url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in schemes or not rest:
            raise ValueError(f"is not a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return value

    return parse


def existing_file(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"{value} is not a readable file")
    return path


def apple_id(value: str) -> str:
    if len(value) != 10 or not value.isalnum():
        raise ValueError(f"{value!r} is not a 10-character Apple identifier")
    return value


def host_port(value: str) -> str:
    host, sep, number = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} is not host:port")
    port(number)
    return value
