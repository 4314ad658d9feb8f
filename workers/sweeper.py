"""The sweeper: PostgreSQL is the memory of what is owed, Redis only of what is queued.

Every ``HERALD_SWEEP_INTERVAL`` seconds each worker re-enqueues every notification that is not
completed.  Job ids make this idempotent (a live job is not queued twice), so after Redis lost its
queue (a restart without persistence) the work is picked up again and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from config.clock import CLOCK
from store import campaigns as campaign_store
from store import notifications as notification_store
from store import queue
from workers.context import WorkerApp

log = logging.getLogger(__name__)

SWEEP_LIMIT = 1000


async def sweep_once(app: WorkerApp) -> int:
    """Re-enqueue unfinished notifications older than one interval; return how many were found."""
    ids = await notification_store.unfinished(app.pool, app.settings.sweep_interval, SWEEP_LIMIT)
    for notification_id in ids:
        await queue.enqueue_notify(app.arq, app.settings.queue_name, notification_id)
    if ids:
        log.info("sweeper re-enqueued unfinished work", extra={"notifications": len(ids)})
    return len(ids)


async def sweep_campaigns(app: WorkerApp) -> int:
    """Queue the runner of every running campaign and of every scheduled one starting within an interval."""
    now = CLOCK.now()
    rows = await campaign_store.live(app.pool, now + timedelta(seconds=app.settings.sweep_interval), SWEEP_LIMIT)
    for row in rows:
        due = row["scheduled_at"]
        defer = max(0.0, (due - now).total_seconds()) if due is not None else None
        await queue.enqueue_campaign(app.arq, app.settings.queue_name, str(row["id"]), defer=defer or None)
    return len(rows)


async def sweep_forever(app: WorkerApp) -> None:
    while True:
        await asyncio.sleep(app.settings.sweep_interval)
        try:
            await sweep_once(app)
            await sweep_campaigns(app)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("sweep failed", extra={"error": str(exc)})
