"""What every provider (APNs, FCM, outbox) offers the `Pushers`."""

from __future__ import annotations

from typing import Protocol

from push.message import PushMessage
from push.outcome import SendResult
from push.target import Target


class Provider(Protocol):
    name: str

    async def send(self, target: Target, message: PushMessage) -> SendResult:
        """Send one notification. Never raises for provider or network errors: those come back as
        RETRY (network errors, timeouts, 429, 5xx), FAIL or PRUNE with the provider's reason."""
        ...

    async def close(self) -> None: ...
