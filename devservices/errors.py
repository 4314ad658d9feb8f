"""The one exception the embedded services raise."""

from __future__ import annotations


class EmbeddedError(RuntimeError):
    """The embedded services could not be started (the message is one line, fit for the console)."""

    code = "embedded_services"
