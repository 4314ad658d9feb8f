"""Offline chat push: room members who are offline and have not muted the room get a push.

New messages are marked ``push_pending`` when they are stored; workers claim them from
PostgreSQL in batches (``FOR UPDATE SKIP LOCKED``, so several workers share the work), create
one notification per message for the members offline at that moment, and clear the mark in the
same transaction.  The web nodes do nothing per message for this, and a crash loses nothing:
unclaimed messages stay pending, and a notification created before the crash is found again by
its idempotency key (``chat:<message id>``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg

from push import PushMessage
from store import messages as message_store
from store import notifications as notification_store
from store import queue
from store import rooms as room_store
from workers.context import WorkerApp

log = logging.getLogger(__name__)

BATCH = 500
INTERVAL = 0.5
PREVIEW_LENGTH = 180


def preview(text: str) -> str:
    return text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1] + "…"


async def push_pending_once(app: WorkerApp) -> int:
    """Claim a batch of new messages and queue their pushes; return how many messages were handled."""
    created: list[str] = []
    async with app.pool.acquire() as conn, conn.transaction():
        pending = await message_store.claim_push_pending(conn, BATCH)
        if not pending:
            return 0
        by_room: dict[str, list[asyncpg.Record]] = {}
        for message in pending:
            by_room.setdefault(message["room_id"], []).append(message)
        now = datetime.now(UTC)
        for room_id, messages in by_room.items():
            room = await room_store.get_room(conn, room_id)
            members = await room_store.list_members(conn, room_id)
            listening = [m["user_id"] for m in members if not (m["muted_until"] is not None and m["muted_until"] > now)]
            online = set(await app.presence.online_among(listening)) if listening else set()
            for message in messages:
                offline = [u for u in listening if u != message["sender_id"] and u not in online]
                if not offline:
                    continue
                content = PushMessage(
                    title=(room["name"] if room else None) or message["sender_id"],
                    body=preview(message["text"]),
                    data={"room": room_id, "message_id": str(message["id"]), "seq": str(message["seq"])},
                    collapse_key=f"chat-{room_id}"[:64],
                    priority="high",
                )
                row, new = await notification_store.insert(
                    conn,
                    api_key_id=None,
                    idempotency_key=f"chat:{message['id']}",
                    campaign_id=None,
                    target={"user_ids": offline},
                    payload=content.to_json(),
                )
                if new:
                    created.append(str(row["id"]))
        await message_store.clear_push_pending(conn, [m["id"] for m in pending])
    for notification_id in created:
        await queue.enqueue_notify(app.arq, app.settings.queue_name, notification_id)
    if created:
        log.info("chat pushes queued", extra={"messages": len(pending), "notifications": len(created)})
    return len(pending)


async def push_pending_forever(app: WorkerApp) -> None:
    while True:
        try:
            while await push_pending_once(app) == BATCH:
                pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("chat push failed; will retry", extra={"error": str(exc)})
        await asyncio.sleep(INTERVAL)
