"""When a campaign may reach a user: its schedule, quiet hours and frequency cap.

    schedule       {"kind": "now"}
                   {"kind": "at", "at": "2026-05-01T09:00:00Z"}
                   {"kind": "local", "local_time": "2026-05-01T09:00:00", "fallback_timezone": "UTC"}
    quiet_hours    {"start": "22:00", "end": "08:00", "action": "defer" | "skip"}   (the user's time)
    frequency_cap  {"max": 2, "window_hours": 24}   (campaign pushes per user, every campaign counted)

A user's timezone is their own, else their newest device's, else the schedule's fallback (UTC).
Pure rules, no I/O: drafts are validated with them, the worker decides per user with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from campaigns.errors import CampaignError, invalid
from config import bodies
from config.errors import Code

KINDS = ("now", "at", "local")
QUIET_ACTIONS = ("defer", "skip")
#: Clocks run from UTC-12 to UTC+14: a local time happens somewhere within this span of it.
EARLIEST = timedelta(hours=14)
LATEST = timedelta(hours=12)
#: An "at" schedule this far in the past still counts as "now" (clock skew between callers).
GRACE = timedelta(seconds=60)
MAX_CAP_HOURS = 24 * 90


_TEXT: bodies.Schema = {"type": "string"}
#: The OpenAPI components CampaignSchedule, QuietHours and FrequencyCap (checked by the parsers below).
SCHEDULE_SCHEMA = bodies.strict_object(
    {
        "kind": {"enum": list(KINDS)},
        "at": {**bodies.TIMESTAMP, "description": "kind at: when (with a timezone)"},
        "local_time": {"type": "string", "description": "kind local: a wall-clock time, 2026-05-01T09:00:00"},
        "fallback_timezone": {"type": "string", "description": "for users with no known timezone (UTC)"},
    }
)
QUIET_HOURS_SCHEMA = bodies.strict_object(
    {"start": _TEXT, "end": _TEXT, "action": {"enum": list(QUIET_ACTIONS)}},
    ["start", "end"],
)
FREQUENCY_CAP_SCHEMA = bodies.strict_object(
    {"max": {"type": "integer", "minimum": 1}, "window_hours": {"type": "integer", "minimum": 1}},
    ["max", "window_hours"],
)


def zone(name: str | None) -> tzinfo | None:
    """The IANA timezone of that name, or None when unknown."""
    if not name or len(name) > 64:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Schedule:
    kind: str = "now"
    at: datetime | None = None
    local_time: datetime | None = None  # naive: a wall-clock time in each user's timezone
    fallback_timezone: str = "UTC"

    @classmethod
    def parse(cls, data: object, field: str = "schedule") -> Schedule:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise invalid(field, "must be an object")
        unknown = [k for k in data if k not in ("kind", "at", "local_time", "fallback_timezone")]
        if unknown:
            raise invalid(f"{field}.{unknown[0]}", "unknown field")
        kind = data.get("kind", "now")
        if kind not in KINDS:
            raise invalid(f"{field}.kind", f"must be one of {', '.join(KINDS)}")
        fallback = data.get("fallback_timezone", "UTC")
        if not isinstance(fallback, str) or zone(fallback) is None:
            raise invalid(f"{field}.fallback_timezone", "must be an IANA timezone such as Europe/Paris")
        if kind == "at":
            at = _parse_time(data.get("at"), f"{field}.at")
            if at.tzinfo is None:
                raise invalid(f"{field}.at", "must include a timezone (2026-05-01T09:00:00Z)")
            return cls("at", at=at.astimezone(UTC), fallback_timezone=fallback)
        if kind == "local":
            local = _parse_time(data.get("local_time"), f"{field}.local_time")
            if local.tzinfo is not None:
                raise invalid(f"{field}.local_time", "is a wall-clock time without a timezone (2026-05-01T09:00:00)")
            return cls("local", local_time=local, fallback_timezone=fallback)
        return cls("now", fallback_timezone=fallback)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "fallback_timezone": self.fallback_timezone}
        if self.at is not None:
            data["at"] = self.at.isoformat().replace("+00:00", "Z")
        if self.local_time is not None:
            data["local_time"] = self.local_time.isoformat()
        return data

    def start_at(self, now: datetime) -> datetime:
        """When the run starts; ``CampaignError(Code.UNPROCESSABLE)`` when the schedule is in the past."""
        if self.kind == "at":
            assert self.at is not None
            if self.at < now - GRACE:
                raise CampaignError(
                    Code.UNPROCESSABLE, "schedule.at is in the past", fields={"schedule.at": "in the past"}
                )
            return max(self.at, now)
        if self.kind == "local":
            assert self.local_time is not None
            wall = self.local_time.replace(tzinfo=UTC)
            if wall + LATEST < now - GRACE:
                raise CampaignError(
                    Code.UNPROCESSABLE,
                    "schedule.local_time has passed in every timezone",
                    fields={"schedule.local_time": "in the past everywhere"},
                )
            return max(wall - EARLIEST, now)
        return now

    def due_in(self, tz: tzinfo) -> datetime | None:
        """For a local-time schedule, the moment it is ``local_time`` in ``tz``; else None (at once)."""
        if self.local_time is None:
            return None
        return self.local_time.replace(tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    action: str = "defer"

    @classmethod
    def parse(cls, data: object, field: str = "quiet_hours") -> QuietHours | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise invalid(field, "must be an object {start, end, action} or null")
        unknown = [k for k in data if k not in ("start", "end", "action")]
        if unknown:
            raise invalid(f"{field}.{unknown[0]}", "unknown field")
        start, end = _clock_time(data.get("start"), f"{field}.start"), _clock_time(data.get("end"), f"{field}.end")
        if start == end:
            raise invalid(f"{field}.end", "must differ from start")
        action = data.get("action", "defer")
        if action not in QUIET_ACTIONS:
            raise invalid(f"{field}.action", f"must be one of {', '.join(QUIET_ACTIONS)}")
        return cls(start, end, action)

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M"), "action": self.action}

    def ends(self, now: datetime, tz: tzinfo) -> datetime | None:
        """When the quiet hours around ``now`` end in ``tz``, or None when it is not quiet there."""
        local = now.astimezone(tz)
        clock = local.time().replace(tzinfo=None)
        across_midnight = self.end < self.start
        quiet = (clock >= self.start or clock < self.end) if across_midnight else self.start <= clock < self.end
        if not quiet:
            return None
        end_day = local.date() if clock < self.end else local.date() + timedelta(days=1)
        return datetime.combine(end_day, self.end, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    max: int
    window_hours: int

    @classmethod
    def parse(cls, data: object, field: str = "frequency_cap") -> FrequencyCap | None:
        if data is None:
            return None
        if not isinstance(data, dict) or set(data) - {"max", "window_hours"}:
            raise invalid(field, "must be an object {max, window_hours} or null")
        limit, hours = data.get("max"), data.get("window_hours")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise invalid(f"{field}.max", "must be a whole number from 1 to 1000")
        if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_CAP_HOURS:
            raise invalid(f"{field}.window_hours", f"must be a whole number from 1 to {MAX_CAP_HOURS}")
        return cls(limit, hours)

    def to_json(self) -> dict[str, Any]:
        return {"max": self.max, "window_hours": self.window_hours}


@dataclass(frozen=True, slots=True)
class Timing:
    """What to do with one user now: send, wait until ``until``, or skip for ``reason``."""

    action: str  # "send" | "defer" | "skip"
    until: datetime | None = None
    reason: str | None = None


SEND = Timing("send")


def timing(schedule: Schedule, quiet: QuietHours | None, started: datetime, now: datetime, tz: tzinfo) -> Timing:
    """The rule for one user in ``tz`` of a campaign scheduled to start at ``started``.

    A local time that had passed (by more than :data:`GRACE`) when the campaign started is skipped.
    """
    due = schedule.due_in(tz)
    if due is not None:
        if due < started - GRACE:
            return Timing("skip", reason="local_time_passed")
        if due > now:
            return Timing("defer", until=due)
    if quiet is not None:
        ends = quiet.ends(now, tz)
        if ends is not None:
            return Timing("skip", reason="quiet_hours") if quiet.action == "skip" else Timing("defer", until=ends)
    return SEND


def _parse_time(value: object, field: str) -> datetime:
    if not isinstance(value, str):
        raise invalid(field, "is required: an ISO 8601 time")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(field, "must be an ISO 8601 time") from None


def _clock_time(value: object, field: str) -> time:
    if not isinstance(value, str):
        raise invalid(field, "is required: a time of day such as 22:00")
    try:
        parsed = time.fromisoformat(value)
    except ValueError:
        raise invalid(field, "must be a time of day such as 22:00") from None
    if parsed.tzinfo is not None:
        raise invalid(field, "is a time of day in the user's timezone, without an offset")
    return parsed
