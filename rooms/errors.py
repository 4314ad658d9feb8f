"""The chat domain's one root exception.

    ChatError(code, message, fields=None)
        codes used: invalid_payload, too_large, not_found, not_member, forbidden, conflict, rate_limited

Nothing here knows about HTTP or Socket.IO; the hub maps codes to statuses and acks.
"""

from __future__ import annotations


class ChatError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields
        self.retry_after = retry_after


def invalid(field: str, problem: str) -> ChatError:
    return ChatError("invalid_payload", f"{field}: {problem}", fields={field: problem})
