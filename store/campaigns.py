"""SQL for campaigns, their per-user send log (``campaign_sends``) and progress snapshots.

State changes are guarded in SQL (``WHERE status IN ...``), so two callers racing (a cancel and
the runner) cannot both win: draft → scheduled → running → completed; cancelled before completed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from store.db import Executor

STATUSES = ("draft", "scheduled", "running", "completed", "cancelled")
LIVE = ("draft", "scheduled", "running")
COLUMNS = (
    "id, name, status, segment_id, filter, content, schedule, throttle_per_minute, frequency_cap, quiet_hours, "
    "audience, targeted, scheduled_at, started_at, completed_at, cancelled_at, created_at, updated_at, "
    "cursor, pass_next_due, next_due_at"
)

INSERT = f"""
INSERT INTO campaigns (name, segment_id, filter, content, schedule, throttle_per_minute, frequency_cap, quiet_hours)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING {COLUMNS}
"""
SELECT_ONE = f"SELECT {COLUMNS} FROM campaigns WHERE id = $1"
STATUS = "SELECT status FROM campaigns WHERE id = $1"
PAGE = f"""
SELECT {COLUMNS} FROM campaigns
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::uuid IS NULL OR (created_at, id) > (SELECT created_at, id FROM campaigns WHERE id = $2))
ORDER BY created_at, id LIMIT $3
"""
UPDATE_DRAFT = f"""
UPDATE campaigns SET name = $2, segment_id = $3, filter = $4, content = $5, schedule = $6,
    throttle_per_minute = $7, frequency_cap = $8, quiet_hours = $9, updated_at = now()
WHERE id = $1 AND status = 'draft'
RETURNING {COLUMNS}
"""
DELETE = "DELETE FROM campaigns WHERE id = $1 AND status IN ('draft', 'completed', 'cancelled') RETURNING id"
SCHEDULE = f"""
UPDATE campaigns SET status = 'scheduled', schedule = $2, audience = $3, scheduled_at = $4, updated_at = now()
WHERE id = $1 AND status = 'draft'
RETURNING {COLUMNS}
"""
CANCEL = f"""
UPDATE campaigns SET status = 'cancelled', cancelled_at = $2, updated_at = now()
WHERE id = $1 AND status IN ('draft', 'scheduled', 'running')
RETURNING {COLUMNS}
"""
# Whatever of a cancelled campaign is not yet on its way stops here: queued notifications are
# closed (their users recorded as skipped), pending deliveries skipped, notifications completed.
STOP_QUEUED = """
WITH closed AS (
    UPDATE notifications SET status = 'completed', completed_at = now()
    WHERE campaign_id = $1 AND status = 'queued' RETURNING id
)
UPDATE campaign_sends SET status = 'skipped', reason = 'cancelled'
WHERE campaign_id = $1 AND notification_id IN (SELECT id FROM closed)
"""
STOP_DELIVERIES = """
UPDATE deliveries SET status = 'skipped', reason = 'cancelled', updated_at = now()
FROM notifications n
WHERE n.campaign_id = $1 AND deliveries.notification_id = n.id AND deliveries.status IN ('pending', 'retrying')
"""
STOP_SENDING = """
UPDATE notifications SET status = 'completed', completed_at = now()
WHERE campaign_id = $1 AND status = 'sending'
  AND NOT EXISTS (
      SELECT 1 FROM deliveries d
      WHERE d.notification_id = notifications.id AND d.status IN ('pending', 'sending', 'retrying')
  )
"""
START = f"""
UPDATE campaigns SET status = 'running', started_at = $2, targeted = $3, updated_at = now()
WHERE id = $1 AND status = 'scheduled'
RETURNING {COLUMNS}
"""
LOCK_RUNNING = "SELECT status FROM campaigns WHERE id = $1 FOR UPDATE"
ADVANCE = """
UPDATE campaigns SET cursor = $2, pass_next_due = LEAST(pass_next_due, $3), updated_at = now() WHERE id = $1
"""
END_PASS = """
UPDATE campaigns SET cursor = NULL, next_due_at = pass_next_due, pass_next_due = NULL, updated_at = now()
WHERE id = $1 RETURNING next_due_at
"""
COMPLETE = """
UPDATE campaigns SET status = 'completed', completed_at = $2, updated_at = now()
WHERE id = $1 AND status = 'running'
  AND NOT EXISTS (SELECT 1 FROM notifications WHERE campaign_id = $1 AND status <> 'completed')
RETURNING id
"""
LIVE_IDS = """
SELECT id, scheduled_at FROM campaigns
WHERE status = 'running' OR (status = 'scheduled' AND scheduled_at <= $1)
ORDER BY scheduled_at NULLS FIRST LIMIT $2
"""


async def insert(conn: Executor, fields: dict[str, Any]) -> asyncpg.Record:
    row = await conn.fetchrow(
        INSERT,
        fields["name"],
        fields["segment_id"],
        fields["filter"],
        fields["content"],
        fields["schedule"],
        fields["throttle_per_minute"],
        fields["frequency_cap"],
        fields["quiet_hours"],
    )
    assert row is not None
    return row


async def get(conn: Executor, campaign_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SELECT_ONE, campaign_id)


async def status(conn: Executor, campaign_id: str) -> str | None:
    value = await conn.fetchval(STATUS, campaign_id)
    return str(value) if value is not None else None


async def page(conn: Executor, status: str | None, after: str | None, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(PAGE, status, after, limit))


async def update_draft(conn: Executor, campaign_id: str, fields: dict[str, Any]) -> asyncpg.Record | None:
    return await conn.fetchrow(
        UPDATE_DRAFT,
        campaign_id,
        fields["name"],
        fields["segment_id"],
        fields["filter"],
        fields["content"],
        fields["schedule"],
        fields["throttle_per_minute"],
        fields["frequency_cap"],
        fields["quiet_hours"],
    )


async def delete(conn: Executor, campaign_id: str) -> bool:
    """Delete a campaign that is not under way (draft, completed or cancelled)."""
    return await conn.fetchval(DELETE, campaign_id) is not None


async def schedule(
    conn: Executor, campaign_id: str, schedule: dict[str, Any], audience: dict[str, Any], at: datetime
) -> asyncpg.Record | None:
    return await conn.fetchrow(SCHEDULE, campaign_id, schedule, audience, at)


async def cancel(conn: asyncpg.Connection, campaign_id: str, now: datetime) -> asyncpg.Record | None:
    """Cancel and stop what is not yet on its way; None when the campaign is already final."""
    async with conn.transaction():
        row = await conn.fetchrow(CANCEL, campaign_id, now)
        if row is None:
            return None
        await conn.execute(STOP_QUEUED, campaign_id)
        await conn.execute(STOP_DELIVERIES, campaign_id)
        await conn.execute(STOP_SENDING, campaign_id)
    return row


async def start(conn: Executor, campaign_id: str, now: datetime, targeted: int) -> asyncpg.Record | None:
    return await conn.fetchrow(START, campaign_id, now, targeted)


async def lock_status(conn: asyncpg.Connection, campaign_id: str) -> str | None:
    """The status, with the row locked until the transaction ends (a cancel waits for the batch)."""
    value = await conn.fetchval(LOCK_RUNNING, campaign_id)
    return str(value) if value is not None else None


async def advance(conn: Executor, campaign_id: str, cursor: str, next_due: datetime | None) -> None:
    await conn.execute(ADVANCE, campaign_id, cursor, next_due)


async def end_pass(conn: Executor, campaign_id: str) -> datetime | None:
    """Start the next pass from the first user; return when it is due (None: nobody is waiting)."""
    value = await conn.fetchval(END_PASS, campaign_id)
    return value if isinstance(value, datetime) else None


async def complete(conn: Executor, campaign_id: str, now: datetime) -> bool:
    """Completed once every notification it made is completed; True when this call completed it."""
    return await conn.fetchval(COMPLETE, campaign_id, now) is not None


async def live(conn: Executor, until: datetime, limit: int) -> list[asyncpg.Record]:
    """Running campaigns, and scheduled ones starting by ``until``."""
    return list(await conn.fetch(LIVE_IDS, until, limit))


# The console's list: newest first, with users sent and devices delivered per campaign.
RECENT = f"""
SELECT {COLUMNS},
       (SELECT count(*) FROM campaign_sends s WHERE s.campaign_id = c.id AND s.status = 'sent') AS sent,
       (SELECT count(*) FROM deliveries d JOIN notifications n ON n.id = d.notification_id
        WHERE n.campaign_id = c.id AND d.status = 'delivered') AS delivered
FROM campaigns c ORDER BY created_at DESC, id DESC LIMIT $1
"""


async def recent(conn: Executor, limit: int) -> list[asyncpg.Record]:
    return list(await conn.fetch(RECENT, limit))
