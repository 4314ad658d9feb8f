"""SQL for the retention purge: old message text and old delivery records go, in bounded batches."""

from __future__ import annotations

from store import messages as message_store
from store.db import Executor

# Blanked messages take their rooms' next versions, so clients that sync see them go.
BLANK_OLD_MESSAGES = message_store.blanking(
    """
    SELECT id, room_id FROM messages
    WHERE created_at < now() - make_interval(days => $1) AND NOT (deleted AND text = '')
    LIMIT $2
    """,
    edited_at="messages.edited_at",
)
DELETE_OLD_NOTIFICATIONS = """
DELETE FROM notifications
WHERE id IN (
    SELECT id FROM notifications
    WHERE status = 'completed' AND completed_at < now() - make_interval(days => $1)
    LIMIT $2
)
"""


def _count(status: str) -> int:
    return int(status.split()[-1])


async def purge(conn: Executor, days: int, batch: int = 5000) -> dict[str, int]:
    """Blank message text and delete completed notifications (their deliveries cascade) older than ``days``."""
    totals = {"messages": 0, "notifications": 0}
    for kind, sql in (("messages", BLANK_OLD_MESSAGES), ("notifications", DELETE_OLD_NOTIFICATIONS)):
        while True:
            done = _count(await conn.execute(sql, days, batch))
            totals[kind] += done
            if done < batch:
                break
    return totals
