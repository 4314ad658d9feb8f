"""Retention: message text and delivery records older than HERALD_RETENTION_DAYS are purged."""

from __future__ import annotations

from store import retention


async def test_old_text_and_deliveries_are_purged_and_seq_stays(db) -> None:  # type: ignore[no-untyped-def]
    await db.execute("INSERT INTO users (id) VALUES ('alice')")
    await db.execute("INSERT INTO rooms (id, kind, last_seq, version) VALUES ('r', 'public', 3, 3)")
    for seq, age in ((1, 40), (2, 40), (3, 1)):
        await db.execute(
            "INSERT INTO messages (room_id, seq, version, sender_id, client_id, text, created_at)"
            " VALUES ('r', $1, $1, 'alice', $2, 'hello', now() - make_interval(days => $3))",
            seq,
            f"c{seq}",
            age,
        )
    for age in (40, 1):
        await db.execute(
            "INSERT INTO notifications (target, payload, status, completed_at)"
            " VALUES ('{}', '{}', 'completed', now() - make_interval(days => $1))",
            age,
        )
    totals = await retention.purge(db, 30, batch=1)
    assert totals == {"messages": 2, "notifications": 1}
    rows = await db.fetch("SELECT seq, text FROM messages ORDER BY seq")
    assert [(r["seq"], r["text"]) for r in rows] == [(1, ""), (2, ""), (3, "hello")]
    # each purge is a change a syncing client gets: the purged messages took the room's next versions
    versions = await db.fetch("SELECT seq, version FROM messages ORDER BY seq")
    assert [(r["seq"], r["version"]) for r in versions] == [(1, 4), (2, 5), (3, 3)]
    assert await db.fetchval("SELECT version FROM rooms WHERE id = 'r'") == 5
    assert await db.fetchval("SELECT count(*) FROM notifications") == 1
    assert await retention.purge(db, 30) == {"messages": 0, "notifications": 0}
