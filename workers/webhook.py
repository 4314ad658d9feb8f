"""The ``webhook`` job: tell the app's backend about pruned tokens and completed notifications.

Each POST is signed: ``X-Herald-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">``
with ``HERALD_WEBHOOK_SECRET``; the receiver recomputes it and checks the time is recent.
Failures are retried with backoff (arq's try count) up to ``MAX_TRIES``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import aiohttp
from arq import Retry

from workers.backoff import retry_delay
from workers.context import app_of

log = logging.getLogger(__name__)

MAX_TRIES = 8
TIMEOUT = aiohttp.ClientTimeout(total=10)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


async def webhook(ctx: dict[str, Any], event: dict[str, Any]) -> str:
    app = app_of(ctx)
    url, secret = app.settings.webhook_url, app.settings.webhook_secret
    if not url or not secret:
        return "not configured"
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Herald-Event": str(event.get("type")),
        "X-Herald-Signature": signature(secret, int(time.time()), body),
    }
    tries = int(ctx.get("job_try", 1))
    try:
        async with app.http.post(url, data=body, headers=headers, timeout=TIMEOUT) as resp:
            if resp.status < 300:
                return f"{resp.status}"
            problem = f"HTTP {resp.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        problem = type(exc).__name__
    if tries >= MAX_TRIES:
        log.error("webhook gave up", extra={"event": event.get("type"), "tries": tries, "error": problem})
        return f"gave up: {problem}"
    log.warning("webhook failed; retrying", extra={"event": event.get("type"), "tries": tries, "error": problem})
    raise Retry(defer=retry_delay(tries, 1.0))
