"""The ``notify`` job: resolve a notification's targets to devices, send, record every outcome.

PostgreSQL holds the state of every delivery (``pending`` → ``sending`` → final, or ``retrying``),
so the job can run again at any point and only does what is still owed:

- a delivery is marked ``sending`` before its request goes out;
- after a crash, ``pending`` ones are sent once and ``sending`` ones (in flight when the worker
  died) are sent again with the same ``apns-id`` and collapse id, so the device replaces the
  notification instead of showing it twice;
- ``retrying`` ones are sent when due; the job asks arq to run it again then.

One job per notification at a time: a PostgreSQL advisory lock guards it across workers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from arq import Retry

from config import Settings
from push import Outcome, PushMessage, SendResult, Target
from store import devices as device_store
from store import locks, queue
from store import notifications as store
from store import rooms as room_store
from store.coalesce import Coalescer
from workers.backoff import retry_delay
from workers.context import WorkerApp, app_of
from workers.liveness import LEASE

log = logging.getLogger(__name__)

BATCH = 2000
RECORD_BATCH = 5000


async def notify(ctx: dict[str, Any], notification_id: str) -> str:
    """arq job: deliver what is owed for one notification.

    Another worker holding the notification's lock is still running this job (its lease lapsed
    while it was alive: workers.liveness): the job stays queued and looks again one lease later.
    """
    app = app_of(ctx)
    async with locks.exclusive(app.pool, locks.NOTIFICATIONS, notification_id) as mine:
        if mine:
            return await deliver(app, notification_id)
    raise Retry(defer=LEASE)


async def deliver(app: WorkerApp, notification_id: str) -> str:
    row = await store.get(app.pool, notification_id)
    if row is None:
        return "missing"
    if row["status"] == "completed":
        return "completed"
    if row["status"] == "queued":
        await expand(app.pool, row)
    message = PushMessage.from_json(row["payload"])
    if message.collapse_key is None:
        # A resend after a crash must replace, not duplicate, what the device may already show.
        message = replace(message, collapse_key=notification_id)
    while await send_due(app, notification_id, message):
        pass  # another pass: retries that fell due meanwhile
    if await store.complete_if_done(app.pool, notification_id):
        counts = await store.counts(app.pool, notification_id)
        log.info("notification completed", extra={"notification_id": notification_id, "counts": counts})
        await queue.enqueue_webhook(
            app.arq,
            app.settings.queue_name,
            {"type": "notification.completed", "notification_id": notification_id, "counts": counts},
            app.settings.webhook_url,
        )
        return "completed"
    next_at = await store.next_retry(app.pool, notification_id)
    if next_at is None:  # another delivery became final meanwhile
        return "completed" if await store.complete_if_done(app.pool, notification_id) else "pending"
    raise Retry(defer=max(0.0, (next_at - datetime.now(UTC)).total_seconds()))


async def expand(pool: asyncpg.Pool, row: asyncpg.Record) -> None:
    """Create one delivery per target device (skipped ones say why), then mark the notification sending."""
    target: dict[str, Any] = row["target"]
    user_ids = list(target.get("user_ids") or [])
    muted: set[str] = set()
    if target.get("room_id"):
        now = datetime.now(UTC)
        for member in await room_store.list_members(pool, target["room_id"]):
            user_ids.append(member["user_id"])
            if member["muted_until"] is not None and member["muted_until"] > now:
                muted.add(member["user_id"])
    rows: list[tuple[str, str, str, str | None]] = []
    for device in await device_store.valid_for_users(pool, list(dict.fromkeys(user_ids))):
        muted_user = device["user_id"] in muted
        rows.append(
            (
                device["token"],
                device["provider"],
                "skipped" if muted_user else "pending",
                "muted" if muted_user else None,
            )
        )
    tokens = list(dict.fromkeys(target.get("device_tokens") or []))
    known = {d["token"]: d for d in await device_store.by_tokens(pool, tokens)}
    for token in tokens:
        device = known.get(token)
        if device is None:
            rows.append((token, "unknown", "skipped", "unknown_token"))
        elif device["invalid_at"] is not None:
            rows.append((token, device["provider"], "skipped", "token_invalid"))
        else:
            rows.append((token, device["provider"], "pending", None))
    async with pool.acquire() as conn, conn.transaction():
        await store.add_deliveries(conn, str(row["id"]), rows)
        await store.set_status(conn, str(row["id"]), "sending")


NewState = tuple[str, str, str | None, datetime | None]
Verdict = tuple[str, str, datetime | None]


async def send_due(app: WorkerApp, notification_id: str, message: PushMessage) -> int:
    """One pass over what is owed now, in token order; the number of deliveries handled.

    Pages of ``BATCH`` rows are read ahead (keyset on the token) into a bounded queue while
    ``push_concurrency`` senders take rows from it, each first taking one of the process's request
    slots (``app.push_slots``, shared by every job), so requests stay in flight across pages
    instead of draining at the end of each one. Each delivery is marked ``sending`` right before its
    own request goes out and its outcome is written as soon as it is known; writes of the same
    moment share one statement, so after a crash only the requests really in flight are sent again.
    """
    settings = app.settings
    rows: asyncio.Queue[asyncpg.Record | None] = asyncio.Queue(maxsize=BATCH)

    async def mark(tokens: list[str]) -> None:
        await store.mark_sending(app.state_pool, notification_id, tokens)

    async def write(results: list[tuple[NewState, Verdict | None]]) -> None:
        await record_outcomes(app, notification_id, results)

    marker: Coalescer[str] = Coalescer(mark)
    recorder: Coalescer[tuple[NewState, Verdict | None]] = Coalescer(write, max_batch=RECORD_BATCH)
    send = app.pushers.send
    slots = app.push_slots
    assert slots is not None

    async def sender() -> None:
        while (row := await rows.get()) is not None:
            token = row["device_token"]
            target = Target(token, row["provider"], row["environment"], row["app_id"], str(row["apns_id"]))
            async with slots:  # a request slot of the process first: only then is the delivery started
                await marker.add(token)
                result = await send(target, message)
            # Written at once, with the answers of the same moment; the sender goes on meanwhile.
            recorder.add_nowait(classify(settings, row, result))

    first = await store.due(app.pool, notification_id, BATCH)
    if not first:
        return 0
    # A small notification (a chat push, a campaign's group of users) needs few senders.
    senders = settings.push_concurrency if len(first) == BATCH else min(settings.push_concurrency, len(first))
    handled = 0

    async def producer() -> None:
        nonlocal handled
        after, batch = "", first
        while batch:
            handled += len(batch)
            after = batch[-1]["device_token"]
            skipped: list[NewState] = []
            for row in batch:
                if row["environment"] is None:
                    skipped.append((row["device_token"], "skipped", "device_deleted", None))
                elif row["invalid_at"] is not None:
                    skipped.append((row["device_token"], "skipped", "token_invalid", None))
                else:
                    await rows.put(row)
            await store.record(app.pool, notification_id, skipped)
            batch = await store.due(app.pool, notification_id, BATCH, after) if len(batch) == BATCH else []
        for _ in range(senders):
            await rows.put(None)

    tasks = [asyncio.ensure_future(producer())]
    tasks += [asyncio.ensure_future(sender()) for _ in range(senders)]
    try:
        await asyncio.gather(*tasks)  # the first failure cancels the rest (below): nothing waits forever
        await recorder.drain()
    finally:
        for task in tasks:
            task.cancel()
    return handled


def classify(settings: Settings, row: asyncpg.Record, result: SendResult) -> tuple[NewState, Verdict | None]:
    """The delivery's new state for a provider's answer, and the prune verdict if any."""
    token = row["device_token"]
    attempt = row["attempts"] + 1
    if result.outcome is Outcome.DELIVERED:
        return (token, "delivered", result.reason, None), None
    if result.outcome is Outcome.PRUNE:
        before = datetime.fromtimestamp(result.unregistered_at, UTC) if result.unregistered_at else None
        if before is not None and row["registered_at"] >= before:
            return (token, "failed", f"{result.reason} (token registered again since)", None), None
        return (token, "pruned", result.reason, None), (token, result.reason or "pruned", before)
    if result.outcome is Outcome.RETRY and attempt < settings.push_max_attempts:
        delay = retry_delay(attempt, settings.push_retry_base, result.retry_after)
        return (token, "retrying", result.reason, datetime.now(UTC) + timedelta(seconds=delay)), None
    if result.outcome is Outcome.RETRY:
        return (token, "failed", f"{result.reason} (gave up after {attempt} attempts)", None), None
    return (token, "failed", result.reason, None), None


async def record_outcomes(app: WorkerApp, notification_id: str, results: list[tuple[NewState, Verdict | None]]) -> None:
    """Write outcomes and prune dead tokens in one transaction; tell the webhook what was pruned."""
    verdicts = [verdict for _, verdict in results if verdict is not None]
    if not verdicts:  # the common case: one statement, no transaction around it
        await store.record(app.state_pool, notification_id, [outcome for outcome, _ in results])
        return
    async with app.state_pool.acquire() as conn, conn.transaction():
        await store.record(conn, notification_id, [outcome for outcome, _ in results])
        pruned = await device_store.invalidate(conn, verdicts)
    for device in pruned:
        log.info("device pruned", extra={"provider": device["provider"], "user_id": device["user_id"]})
        await queue.enqueue_webhook(
            app.arq,
            app.settings.queue_name,
            {
                "type": "device.pruned",
                "token": device["token"],
                "user_id": device["user_id"],
                "app_id": device["app_id"],
                "provider": device["provider"],
            },
            app.settings.webhook_url,
        )
