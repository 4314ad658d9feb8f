"""SQL for notifications and their deliveries (one per notification x device)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from store.db import Executor

FINAL = ("delivered", "pruned", "failed", "skipped")
NOTIFICATION_COLUMNS = (
    "id, api_key_id, idempotency_key, campaign_id, target, payload, status, opened, created_at, completed_at"
)

INSERT = f"""
INSERT INTO notifications (api_key_id, idempotency_key, campaign_id, target, payload)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING
RETURNING {NOTIFICATION_COLUMNS}
"""
BY_KEY = f"""
SELECT {NOTIFICATION_COLUMNS} FROM notifications
WHERE idempotency_key = $2 AND api_key_id IS NOT DISTINCT FROM $1
"""
SELECT_ONE = f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = $1"
SET_STATUS = "UPDATE notifications SET status = $2 WHERE id = $1 AND status <> 'completed'"
COMPLETE = """
UPDATE notifications SET status = 'completed', completed_at = now()
WHERE id = $1 AND status <> 'completed'
  AND NOT EXISTS (
      SELECT 1 FROM deliveries WHERE notification_id = $1 AND status IN ('pending', 'sending', 'retrying')
  )
RETURNING id
"""
UNFINISHED = """
SELECT id FROM notifications WHERE status <> 'completed' AND created_at < now() - make_interval(secs => $1)
ORDER BY created_at LIMIT $2
"""
OPENED = "UPDATE notifications SET opened = opened + 1 WHERE id = $1 RETURNING opened"
# A user's first open of a notification sent to one of the user's devices (the device's owner now).
USER_OPENED = """
WITH sent AS (
    SELECT 1 FROM deliveries d JOIN devices v ON v.token = d.device_token
    WHERE d.notification_id = $1 AND v.user_id = $2 LIMIT 1
), first AS (
    INSERT INTO notification_opens (notification_id, user_id)
    SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM sent)
    ON CONFLICT DO NOTHING RETURNING 1
), counted AS (
    UPDATE notifications SET opened = opened + 1 WHERE id = $1 AND EXISTS (SELECT 1 FROM first) RETURNING opened
)
SELECT EXISTS (SELECT 1 FROM sent) AS sent,
       coalesce((SELECT opened FROM counted), (SELECT opened FROM notifications WHERE id = $1)) AS opened
"""
COUNTS = "SELECT status, count(*) AS n FROM deliveries WHERE notification_id = $1 GROUP BY status"

INSERT_FOR_CAMPAIGN = """
INSERT INTO notifications (id, campaign_id, target, payload)
SELECT n.id, $1, n.target::jsonb, n.payload::jsonb
FROM unnest($2::uuid[], $3::text[], $4::text[]) AS n(id, target, payload)
"""
INSERT_DELIVERIES = """
INSERT INTO deliveries (notification_id, device_token, provider, status, reason)
SELECT $1, d.token, d.provider, d.status, d.reason
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS d(token, provider, status, reason)
ON CONFLICT (notification_id, device_token) DO NOTHING
"""
DELIVERY_COLUMNS = "device_token, provider, apns_id, status, reason, attempts, next_attempt_at, sent_at, updated_at"
LIST_DELIVERIES = f"""
SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE notification_id = $1 ORDER BY device_token LIMIT $2
"""
# What is owed now: never sent, in flight when a worker died, or retrying and due.
DUE = """
SELECT d.device_token, d.provider, d.apns_id, d.status, d.attempts,
       v.environment, v.app_id, v.registered_at, v.invalid_at
FROM deliveries d LEFT JOIN devices v ON v.token = d.device_token
WHERE d.notification_id = $1
  AND (d.status IN ('pending', 'sending') OR (d.status = 'retrying' AND d.next_attempt_at <= now()))
  AND d.device_token > $3
ORDER BY d.device_token
LIMIT $2
"""
NEXT_RETRY = """
SELECT min(next_attempt_at) FROM deliveries WHERE notification_id = $1 AND status = 'retrying'
"""
MARK_SENDING = """
UPDATE deliveries SET status = 'sending', attempts = attempts + 1, sent_at = now(), updated_at = now()
WHERE notification_id = $1 AND device_token = ANY($2::text[])
"""
RECORD = """
UPDATE deliveries SET status = o.status, reason = o.reason, next_attempt_at = o.next_attempt_at, updated_at = now()
FROM unnest($2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS o(token, status, reason, next_attempt_at)
WHERE deliveries.notification_id = $1 AND deliveries.device_token = o.token
"""


async def insert(
    conn: Executor,
    *,
    api_key_id: int | None,
    idempotency_key: str | None,
    campaign_id: str | None,
    target: dict[str, Any],
    payload: dict[str, Any],
) -> tuple[asyncpg.Record, bool]:
    """Store a notification; with an idempotency key already used, return the first one."""
    row = await conn.fetchrow(INSERT, api_key_id, idempotency_key, campaign_id, target, payload)
    if row is not None:
        return row, True
    existing = await conn.fetchrow(BY_KEY, api_key_id, idempotency_key)
    assert existing is not None, "insert conflicted without an idempotency key"
    return existing, False


async def insert_for_campaign(
    conn: Executor, campaign_id: str, notifications: list[tuple[dict[str, Any], dict[str, Any]]]
) -> list[str]:
    """Store a campaign batch's notifications, (target, payload) each, in one statement; their ids in order."""
    if not notifications:
        return []
    ids = [uuid.uuid4() for _ in notifications]
    targets = [json.dumps(target) for target, _ in notifications]
    payloads = [json.dumps(payload) for _, payload in notifications]
    await conn.execute(INSERT_FOR_CAMPAIGN, campaign_id, ids, targets, payloads)
    return [str(i) for i in ids]


async def get(conn: Executor, notification_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_ONE, notification_id)


async def set_status(conn: Executor, notification_id: str, status: str) -> None:
    await conn.execute(SET_STATUS, notification_id, status)


async def complete_if_done(conn: Executor, notification_id: str) -> bool:
    """Mark completed when every delivery is final; True when this call completed it."""
    return await conn.fetchval(COMPLETE, notification_id) is not None


async def unfinished(conn: Executor, older_than: float, limit: int) -> list[str]:
    return [str(r["id"]) for r in await conn.fetch(UNFINISHED, older_than, limit)]


async def mark_opened(conn: Executor, notification_id: str) -> int | None:
    """Count an open reported by a backend (an API key): each report counts."""
    value = await conn.fetchval(OPENED, notification_id)
    return int(value) if value is not None else None


async def mark_opened_by(conn: Executor, notification_id: str, user_id: str) -> int | None:
    """Count ``user_id``'s open once; None when the notification was not sent to that user."""
    row = await conn.fetchrow(USER_OPENED, notification_id, user_id)
    assert row is not None
    return int(row["opened"]) if row["sent"] else None


async def counts(conn: Executor, notification_id: str) -> dict[str, int]:
    return {r["status"]: int(r["n"]) for r in await conn.fetch(COUNTS, notification_id)}


async def add_deliveries(conn: Executor, notification_id: str, rows: list[tuple[str, str, str, str | None]]) -> None:
    """Create deliveries: (token, provider, status, reason); existing ones are kept as they are."""
    if not rows:
        return
    tokens, providers, statuses, reasons = (list(col) for col in zip(*rows, strict=True))
    await conn.execute(INSERT_DELIVERIES, notification_id, tokens, providers, statuses, reasons)


async def deliveries(conn: Executor, notification_id: str, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(LIST_DELIVERIES, notification_id, limit))


async def due(conn: Executor, notification_id: str, limit: int, after: str = "") -> list[asyncpg.Record]:
    """What is owed now, in token order, after the token ``after`` (keyset pagination)."""
    return list(await conn.fetch(DUE, notification_id, limit, after))


async def next_retry(conn: Executor, notification_id: str) -> datetime | None:
    value = await conn.fetchval(NEXT_RETRY, notification_id)
    return value if isinstance(value, datetime) else None


async def mark_sending(conn: Executor, notification_id: str, tokens: list[str]) -> None:
    await conn.execute(MARK_SENDING, notification_id, tokens)


async def record(
    conn: Executor, notification_id: str, outcomes: list[tuple[str, str, str | None, datetime | None]]
) -> None:
    """Write outcomes in one statement: (token, status, reason, next attempt or None)."""
    if not outcomes:
        return
    tokens, statuses, reasons, nexts = (list(col) for col in zip(*outcomes, strict=True))
    await conn.execute(RECORD, notification_id, tokens, statuses, reasons, nexts)
