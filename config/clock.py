"""The wall clock campaigns are scheduled by: the system clock, shifted when a test sets it.

Campaign scheduling (local times, quiet hours, frequency-cap windows) reads ``CLOCK.now()``
instead of ``datetime.now()``.  A test sets the time with ``CLOCK.set(when)``; the clock then keeps
running from there at real speed, so sleeps and timeouts stay real.  This is a seam, not a mock:
production never sets it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        return datetime.now(UTC) + self._offset

    def set(self, when: datetime) -> None:
        """From now on the clock reads ``when`` and runs on from there."""
        if when.tzinfo is None:
            raise ValueError("the clock needs a timezone-aware time")
        self._offset = when - datetime.now(UTC)

    def reset(self) -> None:
        self._offset = timedelta(0)


CLOCK = Clock()


def iso(value: datetime | None) -> str | None:
    """A time as the API writes it: ISO 8601, UTC as ``Z``."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
