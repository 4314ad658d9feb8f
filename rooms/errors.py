"""The chat domain's one root exception.

    ChatError(code, message, fields=None, retry_after=None)
        codes used: invalid_payload, too_large, not_found, not_member, forbidden, conflict, rate_limited

Nothing here knows about HTTP or Socket.IO; the hub maps codes to statuses and acks.
"""

from __future__ import annotations

from config.errors import HeraldError


class ChatError(HeraldError):
    """A chat request Herald refuses (rooms, members, messages)."""


invalid = ChatError.invalid
