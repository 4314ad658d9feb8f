"""The push package's one root exception.

    PushError            code: a stable string, fields: {field name: problem}
      code "invalid_payload"  a notification object breaks the schema (fields name each bad field)
      code "too_large"        the notification cannot fit in a provider's payload limit
      code "not_configured"   no provider or credentials for what was asked

Provider and network failures are never raised: `Provider.send` answers them as a `SendResult`.
"""

from __future__ import annotations


class PushError(Exception):
    """A push request Herald cannot act on; ``code`` is stable, ``fields`` names the bad fields."""

    def __init__(self, code: str, message: str, *, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields: dict[str, str] = dict(fields or {})
