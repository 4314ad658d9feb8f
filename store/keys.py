"""Every Redis key name Herald uses, in one place (arq's own ``arq:`` keys are fixed by arq)."""

from __future__ import annotations

PREFIX = "herald:"


def presence_user(user_id: str) -> str:
    """Sorted set of the node ids holding a connection of the user, scored by expiry."""
    return f"{PREFIX}presence:user:{user_id}"


def rate_limit(scope: str, subject: str) -> str:
    return f"{PREFIX}rate:{scope}:{subject}"


def typing_throttle(room_id: str, user_id: str) -> str:
    return f"{PREFIX}typing:{room_id}:{user_id}"


PRESENCE_ALL = f"{PREFIX}presence"
"""Sorted set of ``<node>\\x1f<user>`` scored by expiry: what the reaper scans for dead nodes."""

OUTBOX = f"{PREFIX}outbox"
"""List of the newest pushes the outbox provider recorded (newest first, capped)."""
OUTBOX_SIZE = 1000


def console_session(token_hash: str) -> str:
    """JSON of a console session (API key id, CSRF token), keyed by the sha256 of its cookie; with a TTL."""
    return f"{PREFIX}console:session:{token_hash}"
