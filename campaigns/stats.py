"""A campaign's figures: targeted, sent, delivered, failed, pruned, skipped (and why), opened,
and their progress over time (REST's stats and the console's live page)."""

from __future__ import annotations

from typing import Any

import asyncpg

from config.clock import iso
from store import campaign_runs as runs

PROGRESS_POINTS = 500


async def stats_of(pool: asyncpg.Pool, row: Any) -> dict[str, Any]:
    figures = await runs.summary(pool, str(row["id"]))
    points = await runs.progress(pool, str(row["id"]), PROGRESS_POINTS)
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "targeted": row["targeted"],
        **figures,
        "progress": [{"at": iso(p["at"]), **p["counts"]} for p in points],
    }
