"""SQL for a campaign run: the audience walked in batches, the per-user send log
(``campaign_sends``), and the figures and progress snapshots (``campaign_progress``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from store.db import Executor, fetch_one
from store.segments import Condition

# The next users of a pass, in id order: not yet recorded, after the cursor (keyset pagination).
# Placeholders $1-$3 are ours; the audience condition's start at $4.
AUDIENCE_BATCH = """
SELECT u.id, u.attributes, u.timezone, u.locale, u.marketing_opt_in,
       nd.locale AS device_locale, nd.timezone AS device_timezone, nd.token IS NOT NULL AS reachable
FROM users u
LEFT JOIN LATERAL (
    SELECT token, locale, timezone FROM devices
    WHERE user_id = u.id AND invalid_at IS NULL ORDER BY registered_at DESC LIMIT 1
) nd ON true
WHERE u.id > $1
  AND NOT EXISTS (SELECT 1 FROM campaign_sends s WHERE s.campaign_id = $2 AND s.user_id = u.id)
  AND ({})
ORDER BY u.id LIMIT $3
"""
AUDIENCE_START = 4
COUNT_AUDIENCE = "SELECT count(*) FROM users u WHERE {}"
CAPPED = """
SELECT user_id, count(*) AS n FROM campaign_sends
WHERE user_id = ANY($1::text[]) AND status = 'sent' AND sent_at > $2
GROUP BY user_id
"""
RECORD_SENDS = """
INSERT INTO campaign_sends (campaign_id, user_id, status, reason, notification_id, sent_at)
SELECT $1, s.user_id, s.status, s.reason, s.notification_id, $6
FROM unnest($2::text[], $3::text[], $4::text[], $5::uuid[]) AS s(user_id, status, reason, notification_id)
ON CONFLICT (campaign_id, user_id) DO NOTHING
"""

SEND_COUNTS = """
SELECT status, coalesce(reason, '') AS reason, count(*) AS n FROM campaign_sends WHERE campaign_id = $1 GROUP BY 1, 2
"""
DELIVERY_COUNTS = """
SELECT d.status, count(*) AS n FROM deliveries d JOIN notifications n ON n.id = d.notification_id
WHERE n.campaign_id = $1 GROUP BY d.status
"""
OPENED = "SELECT coalesce(sum(opened), 0) FROM notifications WHERE campaign_id = $1"
SNAPSHOT = """
INSERT INTO campaign_progress (campaign_id, at, counts) VALUES ($1, $2, $3)
ON CONFLICT (campaign_id, at) DO UPDATE SET counts = excluded.counts
"""
PROGRESS = """
SELECT at, counts FROM (
    SELECT at, counts FROM campaign_progress WHERE campaign_id = $1 ORDER BY at DESC LIMIT $2
) newest ORDER BY at
"""


async def audience_batch(
    conn: Executor, campaign_id: str, condition: Condition, cursor: str | None, limit: int
) -> list[asyncpg.Record]:
    sql = AUDIENCE_BATCH.format(condition.sql)
    return list(await conn.fetch(sql, cursor or "", campaign_id, limit, *condition.args))


async def count_audience(conn: Executor, condition: Condition) -> int:
    row = await fetch_one(conn, COUNT_AUDIENCE.format(condition.sql), *condition.args)
    assert row is not None
    return int(row[0])


async def recent_sends(conn: Executor, user_ids: list[str], since: datetime) -> dict[str, int]:
    """Campaign pushes each user got since ``since`` (for the frequency cap)."""
    return {r["user_id"]: int(r["n"]) for r in await conn.fetch(CAPPED, user_ids, since)}


async def record_sends(
    conn: Executor, campaign_id: str, rows: list[tuple[str, str, str | None, str | None]], at: datetime
) -> None:
    """Log users handled: (user id, "sent" | "skipped", reason, notification id)."""
    if not rows:
        return
    users, statuses, reasons, notifications = (list(col) for col in zip(*rows, strict=True))
    await conn.execute(RECORD_SENDS, campaign_id, users, statuses, reasons, notifications, at)


async def summary(conn: Executor, campaign_id: str) -> dict[str, Any]:
    """Users sent and skipped (with why), deliveries by outcome, opens: the figures of the stats."""
    users = {"sent": 0, "skipped": 0}
    reasons: dict[str, int] = {}
    for r in await conn.fetch(SEND_COUNTS, campaign_id):
        users[r["status"]] += int(r["n"])
        if r["status"] == "skipped":
            reason = r["reason"] or "unknown"
            reasons[reason] = reasons.get(reason, 0) + int(r["n"])
    deliveries = {r["status"]: int(r["n"]) for r in await conn.fetch(DELIVERY_COUNTS, campaign_id)}
    return {
        "sent": users["sent"],
        "skipped": users["skipped"],
        "skipped_reasons": reasons,
        "delivered": deliveries.get("delivered", 0),
        "failed": deliveries.get("failed", 0),
        "pruned": deliveries.get("pruned", 0),
        "deliveries_skipped": deliveries.get("skipped", 0),
        "pending": sum(deliveries.get(s, 0) for s in ("pending", "sending", "retrying")),
        "opened": int(await conn.fetchval(OPENED, campaign_id)),
    }


async def snapshot(conn: Executor, campaign_id: str, at: datetime, values: dict[str, Any]) -> None:
    await conn.execute(SNAPSHOT, campaign_id, at, values)


async def progress(conn: Executor, campaign_id: str, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(PROGRESS, campaign_id, limit))
