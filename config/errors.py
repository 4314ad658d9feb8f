"""The error codes of Herald's contract, and the one exception every package raises them with.

A code is the stable part of an error: clients branch on it (docs/protocol.md, "Error codes"),
REST answers carry it in ``{"error": {"code", "message", "fields"?}}`` and the hub maps it to an
HTTP status in one table (:data:`hub.errors.STATUS_BY_CODE`).  Domain packages subclass
:class:`HeraldError` (``ChatError``, ``PushError``, ``CampaignError``, ``HubError``) so each can
be caught on its own, and nothing below the hub knows about HTTP or Socket.IO.

Adding a code: a member here, its status in ``hub/errors.py`` and a row in docs/protocol.md;
``tests/hub/test_error_codes.py`` fails until all three agree.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class Code(StrEnum):
    """Every error code a client can receive (over REST, in an ack, or in ``connect_error``)."""

    INVALID_PAYLOAD = "invalid_payload"
    AUTH_REQUIRED = "auth_required"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    FORBIDDEN = "forbidden"
    NOT_MEMBER = "not_member"
    BANNED = "banned"
    MUTED = "muted"
    FROZEN = "frozen"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    INVALID_FILTER = "invalid_filter"
    UNPROCESSABLE = "unprocessable"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class HeraldError(Exception):
    """An error answered to the caller: a :class:`Code`, a human message, and optionally the bad
    fields (``{field: problem}``) and how long to wait before retrying."""

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = Code(code)  # a plain string that is not a code fails here, where it is raised
        self.message = message
        self.fields: dict[str, str] = dict(fields or {})
        self.retry_after = retry_after

    @classmethod
    def invalid(cls, field: str, problem: str) -> Self:
        """``invalid_payload`` naming one field: ``"{field}: {problem}"``, fields ``{field: problem}``."""
        return cls(Code.INVALID_PAYLOAD, f"{field}: {problem}", fields={field: problem})
