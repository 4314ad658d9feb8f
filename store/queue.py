"""The arq job names and how to enqueue them, shared by the web nodes and the workers.

Job ids make enqueueing idempotent: a notification has at most one live ``notify`` job.
"""

from __future__ import annotations

import json
from typing import Any

from arq import ArqRedis, create_pool
from arq.connections import RedisSettings

NOTIFY = "notify"
WEBHOOK = "webhook"
CAMPAIGN = "campaign_run"


def serialize(value: Any) -> bytes:
    return json.dumps(value).encode()


def deserialize(raw: bytes) -> Any:
    return json.loads(raw)


async def connect(redis_url: str) -> ArqRedis:
    return await create_pool(RedisSettings.from_dsn(redis_url), job_serializer=serialize, job_deserializer=deserialize)


async def enqueue_notify(arq: ArqRedis, queue: str, notification_id: str, *, defer: float | None = None) -> None:
    await arq.enqueue_job(
        NOTIFY, notification_id, _job_id=f"notify:{notification_id}", _queue_name=queue, _defer_by=defer
    )


async def enqueue_webhook(arq: ArqRedis, queue: str, event: dict[str, Any], webhook_url: str | None) -> None:
    """Queue a webhook event; nothing when no webhook is configured."""
    if webhook_url:
        await arq.enqueue_job(WEBHOOK, event, _queue_name=queue)


async def enqueue_campaign(arq: ArqRedis, queue: str, campaign_id: str, *, defer: float | None = None) -> None:
    """Queue a campaign's runner; a campaign has at most one live job (the sweeper calls this too)."""
    await arq.enqueue_job(CAMPAIGN, campaign_id, _job_id=f"campaign:{campaign_id}", _queue_name=queue, _defer_by=defer)
