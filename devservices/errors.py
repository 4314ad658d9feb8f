"""The one exception the embedded services raise, and the words its refusals as root share."""

from __future__ import annotations

REFUSED = "embedded PostgreSQL cannot run as root"
FIX = "run herald as an ordinary user, or set DATABASE_URL and REDIS_URL to servers of your own"


class EmbeddedError(RuntimeError):
    """The embedded services could not be started (the message is one line, fit for the console)."""

    code = "embedded_services"
