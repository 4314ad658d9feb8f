"""rooms.messages.GroupCommit with two batches in flight, against real PostgreSQL: a room's messages
keep their order and their seqs have no gap, whatever batch each lands in, and a failing batch fails
only its own senders."""

from __future__ import annotations

import asyncio

import asyncpg

from config import Settings
from hub.app import create_app
from hub.context import HUB
from rooms import render
from rooms.messages import GroupCommit
from store import messages as message_store
from store.db import create_pool
from tests.support.nodes import serving

ROOMS = ("gc-a", "gc-b", "gc-c")


async def seed(db: asyncpg.Connection) -> None:
    await db.executemany("INSERT INTO users (id) VALUES ($1)", [(f"u-{room}",) for room in ROOMS])
    await db.executemany("INSERT INTO rooms (id, kind) VALUES ($1, 'private')", [(room,) for room in ROOMS])
    await db.executemany(
        "INSERT INTO members (room_id, user_id) VALUES ($1, $2)", [(room, f"u-{room}") for room in ROOMS]
    )


def message(room: str, n: int) -> message_store.NewMessage:
    return message_store.NewMessage(room, f"u-{room}", f"c{n}", f"text {n}", {}, None)


async def test_each_room_keeps_submission_order_across_concurrent_batches(db, database_url: str) -> None:  # type: ignore[no-untyped-def]
    await seed(db)
    pool = await create_pool(database_url, size=4)
    try:
        writer = GroupCommit(pool, max_batch=7, in_flight=2)
        sent: list[message_store.NewMessage] = []
        tasks = []
        for wave in range(30):  # submissions spread over many loop turns, so batches overlap
            for n in range(wave * 10, wave * 10 + 10):
                sent.append(message(ROOMS[(n * 7) % 3 if n % 4 else 0], n))
                tasks.append(asyncio.ensure_future(writer.insert(sent[-1])))
            await asyncio.sleep(0)
        rows = await asyncio.gather(*tasks)
    finally:
        await pool.close()
    assert all(row is not None for row in rows)
    for room in ROOMS:
        submitted = [m.client_id for m in sent if m.room_id == room]
        stored = await db.fetch("SELECT client_id, seq FROM messages WHERE room_id = $1 ORDER BY seq", room)
        assert [r["client_id"] for r in stored] == submitted, room
        assert [r["seq"] for r in stored] == list(range(1, len(submitted) + 1)), room


async def test_a_batch_that_fails_fails_its_own_senders_and_the_writer_goes_on(db, database_url: str) -> None:  # type: ignore[no-untyped-def]
    await seed(db)
    pool = await create_pool(database_url, size=4)
    try:
        writer = GroupCommit(pool, in_flight=2)
        bad = message_store.NewMessage("gc-a", "u-gc-a", "bad", "x\x00y", {}, None)  # NUL: PostgreSQL refuses it
        first = await asyncio.gather(writer.insert(bad), writer.insert(message("gc-b", 1)), return_exceptions=True)
        assert isinstance(first[0], Exception)
        after = await writer.insert(message("gc-a", 2))
    finally:
        await pool.close()
    assert after is not None and after["seq"] == 1


async def test_a_batch_answers_each_sender_with_the_row_as_stored(db, database_url: str) -> None:  # type: ignore[no-untyped-def]
    """The writer reads back only what PostgreSQL made (id, seq, created_at): each answer must still
    be the message a later read gives, meta and reply included."""
    await seed(db)
    pool = await create_pool(database_url, size=4)
    try:
        writer = GroupCommit(pool, in_flight=2)
        first = await writer.insert(message("gc-a", 1))
        assert first is not None
        sent = [
            message_store.NewMessage(
                "gc-a", "u-gc-a", "c2", "héllo ✓", {"b": [1, 2.5, None], "a": {"deep": True}}, first["id"]
            ),
            message("gc-b", 3),
            message_store.NewMessage("gc-c", "u-gc-c", "c4", "", {"n": 12345678901234567890}, None),
        ]
        rows = await asyncio.gather(*(writer.insert(m) for m in sent))
    finally:
        await pool.close()
    for row in [first, *rows]:
        assert row is not None
        stored = await db.fetchrow(f"SELECT {message_store.MESSAGE_COLUMNS} FROM messages WHERE id = $1", row["id"])
        assert render.message(row) == render.message(stored)
    assert [r["seq"] for r in rows if r is not None] == [2, 1, 1]


async def test_a_web_node_stores_messages_on_connections_that_plan_each_batch(env: dict[str, str]) -> None:
    """PostgreSQL's generic plan for the batch statement, cached while the messages table was small,
    scanned it: every batch got slower as the table grew (104 -> 345 µs a message over 40,000)."""
    app = create_app(Settings.from_env(env))
    async with serving(app):
        hub = app[HUB]
        assert hub.writer_pool is not None and hub.message_writer._pool is hub.writer_pool
        assert await hub.writer_pool.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
