"""The ``campaign_run`` job: walk a campaign's audience and hand its users to the notify path.

The audience is walked in user-id order, a batch at a time (keyset pagination).  Per batch, in
one transaction: every user handled is logged in ``campaign_sends`` (sent, or skipped with the
reason), the notifications for those sent are created (one per distinct rendered content: locale
variant and personalisation), and the cursor moves past the batch.  ``campaign_sends`` is unique
per (campaign, user) and the walk only takes users not in it, so a run that dies mid-batch does
the batch again and a user is never sent one campaign twice; the notify jobs then follow
DESIGN.md's crash rules per device.

Users not due yet (a local-time schedule, quiet hours with ``defer``) are left out of the log; when
a pass ends with some waiting, the next pass starts from the first user once the earliest is due.
The job works in slices (it re-queues itself with ``Retry``), sleeps between batches to keep the
throttle, and re-reads the status before each batch, so a cancel stops it within a batch.
One job per campaign at a time: a PostgreSQL advisory lock guards it across workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from arq import Retry

from campaigns import content
from campaigns.filters import compile_filter
from campaigns.schedule import FrequencyCap, QuietHours, Schedule, timing, zone
from config.clock import CLOCK
from push import PushError
from store import campaign_runs as runs
from store import campaigns as store
from store import locks, queue
from store import notifications as notification_store
from store.segments import Condition
from workers.context import WorkerApp, app_of
from workers.liveness import LEASE

log = logging.getLogger(__name__)

BATCH = 5000  # users per batch: each batch makes one notification per distinct content (fewer, larger jobs)
MAX_SLICE = 20.0  # seconds of work before the job re-queues itself
SNAPSHOT_EVERY = 5.0  # seconds between progress snapshots
WAIT_FOR_NOTIFICATIONS = 1.0


async def campaign_run(ctx: dict[str, Any], campaign_id: str) -> str:
    """arq job: do what is owed now for one campaign (held elsewhere: look again one lease later)."""
    app = app_of(ctx)
    async with locks.exclusive(app.pool, locks.CAMPAIGNS, campaign_id) as mine:
        if mine:
            return await run(app, campaign_id)
    raise Retry(defer=LEASE)


@dataclass(frozen=True, slots=True)
class Plan:
    """A running campaign's rules, read from its row."""

    id: str
    content: dict[str, Any]
    schedule: Schedule
    quiet: QuietHours | None
    cap: FrequencyCap | None
    throttle: int | None
    condition: Condition
    started: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Plan:
        started: datetime = row["scheduled_at"] or row["started_at"]
        return cls(
            id=str(row["id"]),
            content=row["content"],
            schedule=Schedule.parse(row["schedule"]),
            quiet=QuietHours.parse(row["quiet_hours"]),
            cap=FrequencyCap.parse(row["frequency_cap"]),
            throttle=row["throttle_per_minute"],
            condition=audience(row, row["started_at"]),
            started=started,
        )

    @property
    def batch_size(self) -> int:
        """With a throttle, about one second's worth of users per batch."""
        return BATCH if self.throttle is None else max(1, min(BATCH, self.throttle // 60))


def audience(row: asyncpg.Record, now: datetime) -> Condition:
    """The audience condition; relative times (within_days) count from the run's start."""
    return compile_filter(row["audience"], start=runs.AUDIENCE_START, now=now)


async def run(app: WorkerApp, campaign_id: str) -> str:
    now = CLOCK.now()
    row = await store.get(app.pool, campaign_id)
    if row is None:
        return "missing"
    if row["status"] in ("draft", "completed", "cancelled"):
        return str(row["status"])
    if row["status"] == "scheduled":
        if row["scheduled_at"] > now:
            return "not due"  # the sweeper queues it again when it is
        targeted = await runs.count_audience(app.pool, compile_filter(row["audience"], now=now))
        started = await store.start(app.pool, campaign_id, now, targeted)
        if started is None:
            return "not scheduled"
        row = started
        log.info("campaign started", extra={"campaign_id": campaign_id, "targeted": targeted})
    if row["cursor"] is None and row["next_due_at"] is not None and row["next_due_at"] > now:
        raise Retry(defer=_wait(app, row["next_due_at"] - now))
    return await walk(app, Plan.from_row(row), row["cursor"])


async def walk(app: WorkerApp, plan: Plan, cursor: str | None) -> str:
    began = time.monotonic()
    slice_ends = began + min(MAX_SLICE, app.settings.job_timeout / 3)
    snapshot_at = began + SNAPSHOT_EVERY
    sent = 0
    # The next batch is read while this one is handled (the keyset after this batch's last user).
    ahead: asyncio.Future[list[asyncpg.Record]] | None = None
    try:
        while True:
            status = await store.status(app.pool, plan.id)
            if status != "running":
                await snapshot(app, plan.id)
                return status or "missing"
            if ahead is None:
                ahead = _read_batch(app, plan, cursor)
            users = await ahead
            ahead = None
            if not users:
                return await end_pass(app, plan)
            ahead = _read_batch(app, plan, users[-1]["id"])
            outcome = await handle(app, plan, users)
            if outcome is None:
                continue  # cancelled meanwhile: the status check says so
            cursor = users[-1]["id"]
            sent += outcome
            now = time.monotonic()
            if now >= snapshot_at:
                await snapshot(app, plan.id)
                snapshot_at = now + SNAPSHOT_EVERY
            wait = 0.0
            if plan.throttle:
                wait = max(0.0, sent * 60.0 / plan.throttle - (now - began))
            if now + wait >= slice_ends:
                await snapshot(app, plan.id)
                raise Retry(defer=wait)
            if wait:
                await asyncio.sleep(wait)
    finally:
        if ahead is not None:
            ahead.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ahead


def _read_batch(app: WorkerApp, plan: Plan, cursor: str | None) -> asyncio.Future[list[asyncpg.Record]]:
    return asyncio.ensure_future(runs.audience_batch(app.pool, plan.id, plan.condition, cursor, plan.batch_size))


async def end_pass(app: WorkerApp, plan: Plan) -> str:
    next_due = await store.end_pass(app.pool, plan.id)
    await snapshot(app, plan.id)
    if next_due is not None:
        raise Retry(defer=_wait(app, next_due - CLOCK.now()))
    if await store.complete(app.pool, plan.id, CLOCK.now()):
        figures = await snapshot(app, plan.id)
        log.info("campaign completed", extra={"campaign_id": plan.id})
        await queue.enqueue_webhook(
            app.arq,
            app.settings.queue_name,
            {"type": "campaign.completed", "campaign_id": plan.id, "counts": figures},
            app.settings.webhook_url,
        )
        return "completed"
    if await store.status(app.pool, plan.id) != "running":
        return "cancelled"
    raise Retry(defer=WAIT_FOR_NOTIFICATIONS)  # its notifications are still being delivered


async def handle(app: WorkerApp, plan: Plan, users: list[asyncpg.Record]) -> int | None:
    """Log the batch, create its notifications, move the cursor; the number of users sent to.

    None when the campaign stopped running before the batch was committed (nothing is logged).
    """
    now = CLOCK.now()
    rows: list[tuple[str, str, str | None, str | None]] = []
    waiting_until: datetime | None = None
    ready: list[asyncpg.Record] = []
    for user in users:
        if not user["marketing_opt_in"]:
            rows.append((user["id"], "skipped", "opted_out", None))
            continue
        if not user["reachable"]:
            rows.append((user["id"], "skipped", "no_devices", None))
            continue
        tz = zone(user["timezone"]) or zone(user["device_timezone"]) or zone(plan.schedule.fallback_timezone) or UTC
        decision = timing(plan.schedule, plan.quiet, plan.started, now, tz)
        if decision.action == "skip":
            rows.append((user["id"], "skipped", decision.reason, None))
        elif decision.action == "defer":
            assert decision.until is not None
            waiting_until = decision.until if waiting_until is None else min(waiting_until, decision.until)
        else:
            ready.append(user)
    if plan.cap is not None and ready:
        since = now - timedelta(hours=plan.cap.window_hours)
        recent = await runs.recent_sends(app.pool, [u["id"] for u in ready], since)
        capped = {user_id for user_id, n in recent.items() if n >= plan.cap.max}
        rows.extend((user_id, "skipped", "frequency_cap", None) for user_id in capped)
        ready = [u for u in ready if u["id"] not in capped]
    groups: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for user in ready:
        try:
            message = content.message(plan.content, user["locale"] or user["device_locale"], user["attributes"])
        except PushError:
            rows.append((user["id"], "skipped", "render_failed", None))
            continue
        payload = message.to_json()
        groups.setdefault(json.dumps(payload, sort_keys=True), (payload, []))[1].append(user["id"])
    async with app.pool.acquire() as conn, conn.transaction():
        if await store.lock_status(conn, plan.id) != "running":
            return None
        # One statement for the batch's notifications (one per distinct content), ids made here.
        created = await notification_store.insert_for_campaign(
            conn, plan.id, [({"user_ids": user_ids}, payload) for payload, user_ids in groups.values()]
        )
        for notification_id, (_, user_ids) in zip(created, groups.values(), strict=True):
            rows.extend((user_id, "sent", None, notification_id) for user_id in user_ids)
        await runs.record_sends(conn, plan.id, rows, now)
        await store.advance(conn, plan.id, users[-1]["id"], waiting_until)
    await asyncio.gather(
        *(queue.enqueue_notify(app.arq, app.settings.queue_name, notification_id) for notification_id in created)
    )
    return sum(len(user_ids) for _, user_ids in groups.values())


async def snapshot(app: WorkerApp, campaign_id: str) -> dict[str, Any]:
    """Record the campaign's figures now (its progress over time)."""
    figures = await runs.summary(app.pool, campaign_id)
    await runs.snapshot(app.pool, campaign_id, CLOCK.now(), figures)
    return figures


def _wait(app: WorkerApp, delta: timedelta) -> float:
    """Seconds to sleep before looking again: never longer than a sweep interval (clocks can be set)."""
    return min(max(0.0, delta.total_seconds()), app.settings.sweep_interval)
