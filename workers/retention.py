"""The retention purge, run by every worker once an hour when ``HERALD_RETENTION_DAYS`` is set."""

from __future__ import annotations

import asyncio
import logging

from store import retention
from workers.context import WorkerApp

log = logging.getLogger(__name__)

INTERVAL = 3600.0


async def purge_once(app: WorkerApp) -> dict[str, int]:
    days = app.settings.retention_days
    if days is None:
        return {}
    totals = await retention.purge(app.pool, days)
    if any(totals.values()):
        log.info("retention purge", extra={"days": days, **totals})
    return totals


async def purge_forever(app: WorkerApp) -> None:
    while True:
        try:
            await purge_once(app)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("retention purge failed", extra={"error": str(exc)})
        await asyncio.sleep(INTERVAL)
