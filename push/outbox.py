"""The outbox provider: records what would have been sent instead of sending it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from push.message import PushMessage
from push.outcome import Outcome, SendResult
from push.target import Target

log = logging.getLogger(__name__)

OutboxSink = Callable[[dict[str, Any]], Awaitable[None]]
RECORDED = SendResult(Outcome.DELIVERED, "outbox")


async def log_sink(record: dict[str, Any]) -> None:
    """The default sink: one log line, without the token or the message body."""
    log.info(
        "outbox push",
        extra={"provider": record["provider"], "app_id": record["app_id"], "delivery_id": record["delivery_id"]},
    )


class OutboxProvider:
    """Hands every notification to ``sink`` and reports it delivered (reason ``"outbox"``)."""

    name = "outbox"

    def __init__(self, sink: OutboxSink | None = None) -> None:
        self._sink = sink or log_sink

    async def send(self, target: Target, message: PushMessage) -> SendResult:
        try:
            await self._sink(self.record(target, message))
        except Exception as exc:  # the sink is this provider's "network": its failure is retryable
            log.exception("outbox sink failed")
            return SendResult(Outcome.RETRY, f"outbox: {type(exc).__name__}")
        return RECORDED

    @staticmethod
    def record(target: Target, message: PushMessage) -> dict[str, Any]:
        return {
            "provider": target.provider,
            "token": target.token,
            "app_id": target.app_id,
            "environment": target.environment,
            "message": message.to_json(),
            "delivery_id": target.delivery_id,
            "at": time.time(),
        }

    async def close(self) -> None:
        return None
