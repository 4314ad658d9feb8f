"""Checks for the fields of incoming payloads (socket events and REST bodies alike).

Each helper returns the typed value or raises ``invalid_payload`` naming the field.  Used by the
hub (REST bodies, socket events) and the domains alike, so they live at the bottom layer.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from config.errors import Code, HeraldError

invalid = HeraldError.invalid


MAX_INTEGER = 2**62  # the largest whole number a field takes unless it says less

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:@\-]{1,128}$")
MAX_META_BYTES = 2048


def payload_dict(data: object) -> dict[str, Any]:
    """The payload as an object whose text PostgreSQL can store (see ``storable``)."""
    if not isinstance(data, dict):
        raise HeraldError(Code.INVALID_PAYLOAD, "the payload must be an object")
    return storable(data)


def storable(data: dict[str, Any]) -> dict[str, Any]:
    """Refuse text PostgreSQL cannot store, naming the field: a NUL character, or a lone surrogate
    (``"\\ud800"`` in JSON decodes to one; it has no UTF-8 form)."""
    for field, value in data.items():
        if _unstorable(field) or _unstorable(value):
            raise invalid(field, "text must be valid Unicode without NUL characters")
    return data


def _unstorable(value: object) -> bool:
    if isinstance(value, str):
        if "\x00" in value:
            return True
        if value.isascii():
            return False
        try:
            value.encode()
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


def only(data: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """Refuse fields outside ``allowed`` (strict request bodies): a misspelt field is an error."""
    unknown = [name for name in data if name not in allowed]
    if unknown:
        raise HeraldError(
            Code.INVALID_PAYLOAD,
            f"unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}",
            fields={name: "unknown field" for name in unknown},
        )
    return data


def identifier(data: dict[str, Any], field: str, *, required: bool = True) -> str | None:
    value = data.get(field)
    if value is None:
        if required:
            raise invalid(field, "is required")
        return None
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise invalid(field, "must be 1 to 128 letters, digits or _ . : @ -")
    return value


def required_id(data: dict[str, Any], field: str) -> str:
    value = identifier(data, field)
    assert value is not None
    return value


def text(
    data: dict[str, Any], field: str, max_length: int, *, required: bool = True, too_long: Code = Code.INVALID_PAYLOAD
) -> str | None:
    """A non-blank string of at most ``max_length`` characters. Too long is ``invalid_payload`` (the
    field's schema says so), or ``too_long`` where the contract names another code (message text).
    """
    value = data.get(field)
    if value is None:
        if required:
            raise invalid(field, "is required")
        return None
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    if not value.strip():
        raise invalid(field, "must not be empty")
    if len(value) > max_length:
        raise HeraldError(too_long, f"{field} is longer than {max_length} characters", fields={field: "too long"})
    return value


def required_text(data: dict[str, Any], field: str, max_length: int, *, too_long: Code = Code.INVALID_PAYLOAD) -> str:
    value = text(data, field, max_length, too_long=too_long)
    assert value is not None
    return value


def required_integer(data: dict[str, Any], field: str, *, minimum: int = 0) -> int:
    value = integer(data, field, minimum=minimum)
    if value is None:
        raise invalid(field, "is required")
    return value


def integer(
    data: dict[str, Any], field: str, *, minimum: int = 0, maximum: int = MAX_INTEGER, default: int | None = None
) -> int | None:
    value = data.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(field, "must be a whole number")
    if not minimum <= value <= maximum:
        raise invalid(field, f"must be between {minimum} and {maximum}")
    return value


def boolean(data: dict[str, Any], field: str) -> bool:
    value = data.get(field)
    if not isinstance(value, bool):
        raise invalid(field, "must be true or false")
    return value


def meta(data: dict[str, Any], field: str = "meta") -> dict[str, Any]:
    value = data.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(field, "must be an object")
    if len(json.dumps(value)) > MAX_META_BYTES:
        raise HeraldError(Code.TOO_LARGE, f"{field} is larger than {MAX_META_BYTES} bytes", fields={field: "too large"})
    return value


def timestamp(data: dict[str, Any], field: str) -> datetime | None:
    """An ISO 8601 time with a timezone, or None when the field is null or absent."""
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(field, "must be an ISO 8601 time or null")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(field, "must be an ISO 8601 time or null") from None
    if parsed.tzinfo is None:
        raise invalid(field, "must include a timezone (e.g. 2026-01-01T12:00:00Z)")
    return parsed


def choice(data: dict[str, Any], field: str, options: tuple[str, ...], *, required: bool = True) -> str | None:
    value = data.get(field)
    if value is None and not required:
        return None
    if value not in options:
        raise invalid(field, f"must be one of {', '.join(options)}")
    assert isinstance(value, str)
    return value


def id_list(data: dict[str, Any], field: str, *, max_items: int = 1000) -> list[str]:
    value = data.get(field, [])
    if not isinstance(value, list) or len(value) > max_items:
        raise invalid(field, f"must be a list of at most {max_items} user ids")
    for item in value:
        if not isinstance(item, str) or not ID_PATTERN.match(item):
            raise invalid(field, "must hold user ids of 1 to 128 letters, digits or _ . : @ -")
    return list(dict.fromkeys(value))
