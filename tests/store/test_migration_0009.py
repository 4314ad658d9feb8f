"""Migration 0009 (#16) on a database with data: existing rooms, messages and members, written as
the 0008 schema had them, come out with the versions, activity times and read positions Herald now
relies on, and the app's own statements carry on from there.

The data (all times from ``T0``)::

    private room "team", last_seq 5          public room "lobby", no messages
      alice  joined +1m, read up to 2           dave  joined +2m, read 0
      bob    joined +1m, read 0
      erin   joined +1m, read up to 4 (never sent)
      carol  joined +30m (after seq 5), read 0

      seq 1  alice  +10m
      seq 2  bob    +11m
      seq 3  bob    +12m  edited at +13m (text changed)
      seq 4  alice  +14m
      seq 5  alice  +15m  deleted at +16m (text blanked, as 0008's delete left it)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from store import messages as message_store
from store import rooms as room_store
from store.db import connect
from store.migrate import load_migrations, migrate
from tests.support.urls import database_url_with

pytestmark = pytest.mark.embedded

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PRIVATE = "team"
PUBLIC = "lobby"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


#: (seq, sender, client_id, text, created_at, edited_at, deleted)
MESSAGES = [
    (1, "alice", "a-1", "hi bob", at(10), None, False),
    (2, "bob", "b-1", "hi alice", at(11), None, False),
    (3, "bob", "b-2", "lunch at 1?", at(12), at(13), False),  # sent as "lunch at 12?"
    (4, "alice", "a-2", "1 works", at(14), None, False),
    (5, "alice", "a-3", "", at(15), at(16), True),
]

# The 0008 schema, in plain SQL: no version, last_message_at or system columns yet.
FILL_0008 = [
    "INSERT INTO users (id) VALUES ('alice'), ('bob'), ('carol'), ('dave'), ('erin')",
    f"""INSERT INTO rooms (id, kind, name, last_seq, created_by, created_at) VALUES
        ('{PRIVATE}', 'private', 'Team', 5, 'alice', '{T0.isoformat()}'),
        ('{PUBLIC}', 'public', 'Lobby', 0, 'dave', '{T0.isoformat()}')""",
    f"""INSERT INTO members (room_id, user_id, role, last_read_seq, joined_at) VALUES
        ('{PRIVATE}', 'alice', 'owner', 2, '{at(1).isoformat()}'),
        ('{PRIVATE}', 'bob', 'member', 0, '{at(1).isoformat()}'),
        ('{PRIVATE}', 'carol', 'member', 0, '{at(30).isoformat()}'),
        ('{PRIVATE}', 'erin', 'member', 4, '{at(1).isoformat()}'),
        ('{PUBLIC}', 'dave', 'owner', 0, '{at(2).isoformat()}')""",
]
INSERT_MESSAGE_0008 = """
INSERT INTO messages (room_id, seq, sender_id, client_id, text, meta, created_at, edited_at, deleted, push_pending)
VALUES ($1, $2, $3, $4, $5, '{}'::jsonb, $6, $7, $8, false)
"""


async def _admin(service_urls: tuple[str, str]) -> asyncpg.Connection:
    return await asyncpg.connect(service_urls[0])


@pytest.fixture
async def at_0008(service_urls: tuple[str, str]) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a database of its own, migrated to 0008 and filled as that release left it."""
    name = f"herald_m0009_{uuid.uuid4().hex[:12]}"
    admin = await _admin(service_urls)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await connect(database_url_with(service_urls[0], name))
    try:
        assert await migrate(conn, up_to=8) == [1, 2, 3, 4, 5, 6, 7, 8]
        columns = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_name IN ('rooms', 'messages') AND column_name IN ('version', 'last_message_at', 'system')"
        )
        assert columns == [], "up_to=8 stopped after 0008"
        for statement in FILL_0008:
            await conn.execute(statement)
        for seq, sender, client_id, text, created_at, edited_at, deleted in MESSAGES:
            await conn.execute(
                INSERT_MESSAGE_0008, PRIVATE, seq, sender, client_id, text, created_at, edited_at, deleted
            )
        yield conn
    finally:
        await conn.close()
        admin = await _admin(service_urls)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _migrate_rest(conn: asyncpg.Connection) -> None:
    assert await migrate(conn) == [m.version for m in load_migrations() if m.version > 8]


async def _positions(conn: asyncpg.Connection) -> dict[tuple[str, str], int]:
    rows = await conn.fetch("SELECT room_id, user_id, last_read_seq FROM members")
    return {(r["room_id"], r["user_id"]): r["last_read_seq"] for r in rows}


async def _unread(conn: asyncpg.Connection, user_id: str) -> dict[str, tuple[int, int]]:
    """{room: (version, unread)} as Herald computes them for ``ready`` and the room list."""
    return {r["room_id"]: (r["version"], r["unread"]) for r in await room_store.user_unread(conn, user_id)}


async def test_existing_rooms_messages_and_members_come_out_right(at_0008: asyncpg.Connection) -> None:
    conn = at_0008
    await _migrate_rest(conn)

    messages = await conn.fetch(
        "SELECT seq, version, sender_id, text, edited_at, deleted, system FROM messages WHERE room_id = $1"
        " ORDER BY seq",
        PRIVATE,
    )
    # Every existing message's version is its seq: a client keeping seqs as cursors misses nothing.
    assert [(m["seq"], m["version"]) for m in messages] == [(s, s) for s in range(1, 6)]
    assert [m["system"] for m in messages] == [False] * 5
    # The edit and the delete are still there as they were.
    assert (messages[2]["text"], messages[2]["edited_at"]) == ("lunch at 1?", at(13))
    assert (messages[4]["deleted"], messages[4]["text"]) == (True, "")

    rooms = {r["id"]: r for r in await conn.fetch("SELECT id, last_seq, version, last_message_at FROM rooms")}
    assert (rooms[PRIVATE]["last_seq"], rooms[PRIVATE]["version"]) == (5, 5)
    assert rooms[PRIVATE]["last_message_at"] == at(15)  # the newest message, deleted or not
    assert (rooms[PUBLIC]["last_seq"], rooms[PUBLIC]["version"], rooms[PUBLIC]["last_message_at"]) == (0, 0, None)

    assert await _positions(conn) == {
        (PRIVATE, "alice"): 5,  # read up to 2, then sent 4 and 5: her own last message
        (PRIVATE, "bob"): 3,  # read nothing; his own last message is 3
        (PRIVATE, "carol"): 5,  # joined after the last message: nothing was unread to her
        (PRIVATE, "erin"): 4,  # already past anything the migration would move her to
        (PUBLIC, "dave"): 0,  # no messages
    }

    # Unread: others' messages after the position, not deleted.  Without the move of read positions
    # these would be alice 1 (bob's 3), bob 2 (alice's 1 and 4) and carol 4 (1 to 4); erin's at 0, 4.
    assert await _unread(conn, "alice") == {PRIVATE: (5, 0)}
    assert await _unread(conn, "bob") == {PRIVATE: (5, 1)}  # alice's 4; her 5 is deleted
    assert await _unread(conn, "carol") == {PRIVATE: (5, 0)}
    assert await _unread(conn, "erin") == {PRIVATE: (5, 0)}  # only alice's 5 is after 4, and it is deleted
    assert await _unread(conn, "dave") == {PUBLIC: (0, 0)}

    # A client that synced up to seq 2 before the upgrade sends 2 as its version and gets 3, 4, 5.
    changed = await message_store.changed_since(conn, {PRIVATE: 2, PUBLIC: 0}, 100)
    assert [(m["room_id"], m["seq"], m["version"]) for m in changed] == [(PRIVATE, s, s) for s in (3, 4, 5)]


async def test_sends_and_edits_carry_on_from_the_migrated_versions(at_0008: asyncpg.Connection) -> None:
    conn = at_0008
    await _migrate_rest(conn)
    edited_id = await conn.fetchval("SELECT id FROM messages WHERE room_id = $1 AND seq = 3", PRIVATE)

    sent = await message_store.insert(conn, PRIVATE, "carol", "c-1", "sorry, late", {}, None)
    assert sent is not None
    assert (sent["seq"], sent["version"], sent["system"]) == (6, 6, False)
    room = await room_store.get_room(conn, PRIVATE)
    assert room is not None
    assert (room["last_seq"], room["version"]) == (6, 6)
    assert room["last_message_at"] == sent["created_at"]
    assert room["last_message_at"] > at(15)

    assert await _positions(conn) == {
        (PRIVATE, "alice"): 5,
        (PRIVATE, "bob"): 3,
        (PRIVATE, "carol"): 6,  # her own send moved hers
        (PRIVATE, "erin"): 4,
        (PUBLIC, "dave"): 0,
    }
    assert await _unread(conn, "alice") == {PRIVATE: (6, 1)}  # carol's 6
    assert await _unread(conn, "bob") == {PRIVATE: (6, 2)}  # alice's 4 and carol's 6
    assert await _unread(conn, "carol") == {PRIVATE: (6, 0)}

    edited = await message_store.update_text(conn, PRIVATE, edited_id, "lunch at 2?")
    assert edited is not None
    assert (edited["seq"], edited["version"], edited["text"]) == (3, 7, "lunch at 2?")
    room = await room_store.get_room(conn, PRIVATE)
    assert room is not None
    assert (room["last_seq"], room["version"]) == (6, 7)  # an edit is a change, not a message
    assert await _unread(conn, "bob") == {PRIVATE: (7, 2)}

    # A client that had version 5 gets the new message, then the edit, each once.
    changed = await message_store.changed_since(conn, {PRIVATE: 5}, 100)
    assert [(m["seq"], m["version"]) for m in changed] == [(6, 6), (3, 7)]
