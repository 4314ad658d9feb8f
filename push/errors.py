"""The push package's one root exception.

    PushError            code: a Code, fields: {field name: problem}
      invalid_payload    a notification object breaks the schema (fields name each bad field)
      too_large          the notification cannot fit in a provider's payload limit
      unprocessable      well formed, but nothing can be sent as asked

Provider and network failures are never raised: `Provider.send` answers them as a `SendResult`.
"""

from __future__ import annotations

from config.errors import HeraldError


class PushError(HeraldError):
    """A push request Herald cannot act on; ``code`` is stable, ``fields`` names the bad fields."""
