"""The values a filter leaf may compare with: each checker returns the value or raises
:class:`campaigns.errors.SegmentError` naming the node."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from campaigns.errors import SegmentError

MAX_LIST = 100
MAX_TEXT = 1024
MAX_DAYS = 36_500
VERSION = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")

Scalar = str | int | float | bool | None


def boolean(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise SegmentError(path, "must be true or false")
    return value


def text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise SegmentError(path, f"must be a string of 1 to {MAX_TEXT} characters")
    return value


def scalar(value: object, path: str) -> Scalar:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise SegmentError(path, f"strings are at most {MAX_TEXT} characters")
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise SegmentError(path, "must be a JSON scalar (string, number, boolean or null)")


def orderable(value: object, path: str) -> str | int | float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SegmentError(path, "must be a number or a string (ISO 8601 dates compare as strings)")
    if isinstance(value, str):
        return text(value, path)
    return value


def listed(value: object, path: str, item: Any) -> list[Any]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_LIST:
        raise SegmentError(path, f"must be a list of 1 to {MAX_LIST} values")
    return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]


def pair(value: object, path: str, item: Any) -> tuple[Any, Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise SegmentError(path, "must be a list of two values [low, high]")
    return item(value[0], f"{path}[0]"), item(value[1], f"{path}[1]")


def days(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAYS:
        raise SegmentError(path, f"must be a whole number of days from 0 to {MAX_DAYS}")
    return value


def time_of(value: object, path: str) -> datetime:
    if not isinstance(value, str):
        raise SegmentError(path, "must be an ISO 8601 time (2026-01-31T12:00:00Z) or date (2026-01-31)")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SegmentError(path, "must be an ISO 8601 time (2026-01-31T12:00:00Z) or date (2026-01-31)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def version(value: object, path: str) -> list[int]:
    if not isinstance(value, str) or not VERSION.match(value):
        raise SegmentError(path, "must be a version such as 2.10 or 3.1.4")
    return [int(p) for p in value.split(".")]
