"""The provider-neutral content of one notification, and its validation.

`PushMessage.from_json` takes the REST ``notification`` object (DESIGN.md) and raises
``PushError(Code.INVALID_PAYLOAD, fields=...)`` naming every bad field, or ``PushError(Code.TOO_LARGE)``
when the APNs payload built from it would exceed Apple's limit (FCM's is the same 4 KB).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from config.errors import Code
from push.errors import PushError
from push.payload import apns_payload_bytes, apns_payload_limit

PRIORITIES = ("high", "normal")
PUSH_TYPES = ("alert", "background", "voip")
MAX_TTL = 28 * 24 * 3600  # FCM's maximum
MAX_COLLAPSE_BYTES = 64  # APNs apns-collapse-id limit
#: Data keys the providers reserve: APNs' ``aps``, FCM's ``from``, ``notification``, ``message_type``
#: and anything starting with ``google`` or ``gcm``.
RESERVED_DATA_KEYS = frozenset(["aps", "from", "notification", "message_type"])
RESERVED_DATA_PREFIXES = ("google", "gcm")
FIELDS = ("title", "body", "data", "badge", "sound", "collapse_key", "priority", "ttl", "push_type")


@dataclass(frozen=True, slots=True)
class PushMessage:
    """What to show or deliver; `Target` says where. Build with `from_json` for untrusted input."""

    title: str | None = None
    body: str | None = None
    data: dict[str, str] = field(default_factory=dict)  # string values only (FCM rule)
    badge: int | None = None
    sound: str | None = None
    collapse_key: str | None = None  # apns-collapse-id; FCM android.collapse_key and notification tag
    priority: str = "high"  # "high" | "normal"
    ttl: int | None = None  # seconds; None = the provider's default
    push_type: str = "alert"  # "alert" | "background" | "voip"

    @classmethod
    def from_json(cls, data: object) -> PushMessage:
        """Validate a REST ``notification`` object; raise `PushError` naming every bad field."""
        if not isinstance(data, Mapping):
            raise PushError(
                Code.INVALID_PAYLOAD, "notification must be an object", fields={"notification": "not an object"}
            )
        problems: dict[str, str] = {f"notification.{k}": "unknown field" for k in data if k not in FIELDS}
        checked = _Checker(data, problems)
        message = cls(
            title=checked.text("title"),
            body=checked.text("body"),
            data=checked.data(),
            badge=checked.integer("badge", 0, 999_999),
            sound=checked.text("sound", empty=False),
            collapse_key=checked.collapse_key(),
            priority=checked.choice("priority", PRIORITIES, "high"),
            ttl=checked.integer("ttl", 0, MAX_TTL),
            push_type=checked.choice("push_type", PUSH_TYPES, "alert"),
        )
        if not problems:
            _check_kind(message, problems)
        if problems:
            first = next(iter(problems))
            raise PushError(Code.INVALID_PAYLOAD, f"{first}: {problems[first]}", fields=problems)
        size, limit = len(apns_payload_bytes(message)), apns_payload_limit(message)
        if size > limit:
            problem = f"the APNs payload would be {size} bytes; the limit is {limit}"
            raise PushError(Code.TOO_LARGE, f"notification: {problem}", fields={"notification": problem})
        return message

    def to_json(self) -> dict[str, Any]:
        """The inverse of `from_json` (every field, ``None`` included)."""
        return {
            "title": self.title,
            "body": self.body,
            "data": dict(self.data),
            "badge": self.badge,
            "sound": self.sound,
            "collapse_key": self.collapse_key,
            "priority": self.priority,
            "ttl": self.ttl,
            "push_type": self.push_type,
        }

    @property
    def has_alert(self) -> bool:
        """Whether there is something for the device to show."""
        return self.push_type != "background" and (self.title is not None or self.body is not None)


class _Checker:
    """Reads one field at a time, recording a problem instead of raising."""

    def __init__(self, data: Mapping[Any, Any], problems: dict[str, str]) -> None:
        self._data = data
        self.problems = problems

    def _bad(self, name: str, problem: str) -> None:
        self.problems[f"notification.{name}"] = problem

    def text(self, name: str, *, empty: bool = True) -> str | None:
        value = self._data.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or (not empty and not value):
            self._bad(name, "must be a non-empty string" if not empty else "must be a string")
            return None
        return value

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self._data.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self._bad(name, f"must be a whole number from {low} to {high}")
            return None
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self._data.get(name)
        if value is None:
            return default
        if value not in options:
            self._bad(name, f"must be one of {', '.join(options)}")
            return default
        return str(value)

    def collapse_key(self) -> str | None:
        value = self.text("collapse_key", empty=False)
        if value is not None and len(value.encode()) > MAX_COLLAPSE_BYTES:
            self._bad("collapse_key", f"must be at most {MAX_COLLAPSE_BYTES} bytes")
            return None
        return value

    def data(self) -> dict[str, str]:
        value = self._data.get("data")
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self._bad("data", "must be an object of strings")
            return {}
        result: dict[str, str] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                self._bad("data", "keys must be non-empty strings")
            elif key in RESERVED_DATA_KEYS or key.startswith(RESERVED_DATA_PREFIXES):
                self._bad(f"data.{key}", "is a key reserved by the push providers")
            elif not isinstance(item, str):
                self._bad(f"data.{key}", "must be a string (FCM carries string values only)")
            else:
                result[key] = item
        return result


def _check_kind(message: PushMessage, problems: dict[str, str]) -> None:
    """Rules across fields: what a push type may carry."""
    if message.push_type == "background":
        for name in ("title", "body", "sound", "badge"):
            if getattr(message, name) is not None:
                problems[f"notification.{name}"] = "not allowed with push_type background (nothing is shown)"
    elif message.push_type == "alert" and all(
        v is None for v in (message.title, message.body, message.badge, message.sound)
    ):
        problems["notification.body"] = "an alert needs a title, body, badge or sound (or use push_type background)"
