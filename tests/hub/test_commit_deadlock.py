"""Group commits on several web nodes never deadlock each other, and one PostgreSQL still aborts
is retried: a sender is answered with its stored message or ``unavailable``, never ``internal``.

Two real ``herald web`` processes with clients sending into the same rooms at the same instants,
in opposite room orders; a real PostgreSQL deadlock made with a raw connection that locks rooms in
the other order while a group commit holds one of them; and serialization failures raised by
PostgreSQL itself (a trigger) to reach the retry's end.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import asyncpg
import pytest

from rooms.messages import GroupCommit
from store import messages as message_store
from store.db import create_pool
from tests.support.nodes import StartWeb
from tests.support.rest import Rest
from tests.support.sockets import ChatClient, OpenClient

ROOMS = [f"lk-{n}" for n in range(8)]
PER_NODE = 4  # clients on each node, each sending one message to every room per round
ROUNDS = 25
FAST = {"HERALD_MESSAGE_RATE": "10000", "HERALD_MESSAGE_BURST": "10000"}
ACK_WITHIN = 15.0
RETRIES = 5  # the documented rule: an unanswered or `unavailable` send goes again with its client_id


async def seed(db: asyncpg.Connection, rooms: list[str], users: list[str]) -> None:
    await db.executemany("INSERT INTO users (id) VALUES ($1)", [(u,) for u in users])
    await db.executemany("INSERT INTO rooms (id, kind) VALUES ($1, 'private')", [(r,) for r in rooms])
    await db.executemany(
        "INSERT INTO members (room_id, user_id) VALUES ($1, $2)", [(r, u) for r in rooms for u in users]
    )


async def send_until_answered(client: ChatClient, room: str, client_id: str, answers: list[str]) -> dict[str, Any]:
    """Send, and again with the same client_id while the answer is ``unavailable``; record every code."""
    for _ in range(RETRIES):
        ack = await client.call("message:send", {"room": room, "client_id": client_id, "text": client_id}, ACK_WITHIN)
        answers.append("ok" if ack.get("ok") else ack["error"]["code"])
        if ack.get("ok") or ack["error"]["code"] != "unavailable":
            return dict(ack)
    return dict(ack)


async def test_two_nodes_sending_into_the_same_rooms_in_opposite_orders_store_everything_once(
    web_node: StartWeb, clients: OpenClient, db: asyncpg.Connection
) -> None:
    n1, n2 = await asyncio.gather(web_node(**FAST), web_node(**FAST))
    users = {n1.url: [f"a{i}" for i in range(PER_NODE)], n2.url: [f"b{i}" for i in range(PER_NODE)]}
    await seed(db, ROOMS, [u for us in users.values() for u in us])
    senders = [(await clients(url, user), user, url) for url, us in users.items() for user in us]
    answers: list[str] = []
    acked: dict[tuple[str, str, str], dict[str, Any]] = {}

    async def one_round(n: int) -> None:
        calls = []
        for client, user, url in senders:  # node 1 goes through the rooms forwards, node 2 backwards
            for room in ROOMS if url == n1.url else list(reversed(ROOMS)):
                calls.append(
                    (room, user, f"{user}-{room}-{n}", send_until_answered(client, room, f"{user}-{room}-{n}", answers))
                )
        results = await asyncio.gather(*(c[3] for c in calls))
        for (room, user, client_id, _), ack in zip(calls, results, strict=True):
            acked[(room, user, client_id)] = ack

    for n in range(ROUNDS):
        await one_round(n)

    assert "internal" not in answers
    assert all(ack.get("ok") for ack in acked.values()), [a for a in acked.values() if not a.get("ok")][:3]
    stored = await db.fetch("SELECT id, room_id, seq, sender_id, client_id FROM messages")
    by_key = {(r["room_id"], r["sender_id"], r["client_id"]): r for r in stored}
    assert len(by_key) == len(stored) == len(acked) == len(ROOMS) * 2 * PER_NODE * ROUNDS
    for key, ack in acked.items():
        assert by_key[key]["id"] == ack["message"]["id"] and by_key[key]["seq"] == ack["message"]["seq"]
    for room in ROOMS:
        seqs = sorted(r["seq"] for r in stored if r["room_id"] == room)
        assert seqs == list(range(1, 2 * PER_NODE * ROUNDS + 1)), room
    # Each client got every other sender's messages, and each node's in seq order per room.
    node_of = {user: url for _, user, url in senders}
    for client, user, _ in senders:
        got = await client.wait_for("message:new", len(ROOMS) * (2 * PER_NODE - 1) * ROUNDS, timeout=ACK_WITHIN)
        for room in ROOMS:
            for url in users:
                seqs = [
                    e["message"]["seq"] for e in got if e["room"] == room and node_of[e["message"]["sender_id"]] == url
                ]
                assert seqs == sorted(seqs) and len(seqs) == (PER_NODE - (url == node_of[user])) * ROUNDS, (user, room)
    # The batches locked their rooms in one order: PostgreSQL never had to break a deadlock.
    logs = n1.log.read_text() + n2.log.read_text()
    aborted = [json.loads(line) for line in logs.splitlines() if '"statement aborted' in line]
    assert [e for e in aborted if e.get("sqlstate") == "40P01"] == []
    print(f"{len(acked)} messages in {ROUNDS} rounds; answers: {dict((a, answers.count(a)) for a in set(answers))}")


def message(room: str, sender: str, client_id: str) -> message_store.NewMessage:
    return message_store.NewMessage(room, sender, client_id, client_id, {}, None)


WAITING = """
SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> $1 AND datname = current_database()
"""


async def wait_for_lock_wait(db: asyncpg.Connection, pid: int) -> None:
    """Until a backend other than ``pid`` waits for a row lock (the group commit, blocked)."""
    async with asyncio.timeout(10):
        while not await db.fetchval(WAITING, pid):
            await asyncio.sleep(0.02)


async def test_a_group_commit_aborted_as_a_deadlock_victim_is_retried_and_stored(
    db: asyncpg.Connection, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(db, ["dl-b", "dl-a"], ["alice"])  # stored in the other order than their ids
    pool = await create_pool(database_url, size=2)
    other = await asyncpg.connect(database_url)  # a session that takes the rooms in the other order
    await other.execute("SET deadlock_timeout = '30s'")  # the group commit's backend finds the cycle first
    probe = await asyncpg.connect(database_url)
    caplog.set_level(logging.INFO, logger="rooms.messages")
    try:
        writer = GroupCommit(pool)
        async with other.transaction():
            await other.execute("SELECT 1 FROM rooms WHERE id = 'dl-b' FOR UPDATE")
            # One batch, dl-b first in it: the statement still locks dl-a first, then waits for dl-b.
            sends = asyncio.gather(
                writer.insert(message("dl-b", "alice", "m1")), writer.insert(message("dl-a", "alice", "m2"))
            )
            await wait_for_lock_wait(db, other.get_server_pid())
            with pytest.raises(asyncpg.LockNotAvailableError):
                await probe.execute("SELECT 1 FROM rooms WHERE id = 'dl-a' FOR UPDATE NOWAIT")
            # Closing the cycle: PostgreSQL aborts the group commit (40P01), which frees dl-a for us.
            async with asyncio.timeout(15):
                await other.execute("SELECT 1 FROM rooms WHERE id = 'dl-a' FOR UPDATE")
            await asyncio.sleep(0.2)  # the retry now waits for us again; our commit lets it through
        async with asyncio.timeout(15):
            rows = await sends
    finally:
        await other.close()
        await probe.close()
        await pool.close()
    assert [(r["room_id"], r["seq"]) for r in rows if r is not None] == [("dl-b", 1), ("dl-a", 1)]
    stored = await db.fetch("SELECT room_id, client_id FROM messages ORDER BY room_id")
    assert [(r["room_id"], r["client_id"]) for r in stored] == [("dl-a", "m2"), ("dl-b", "m1")]
    assert [getattr(r, "sqlstate", None) for r in caplog.records if r.msg == "statement aborted; retrying"] == ["40P01"]


SERIALIZATION_FAILURES = """
CREATE SEQUENCE conflict_attempts;
CREATE FUNCTION conflict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.text = 'always' OR (NEW.text = 'twice' AND nextval('conflict_attempts') <= 2) THEN
        RAISE EXCEPTION 'could not serialize access' USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER conflict BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION conflict();
"""


async def test_serialization_failures_are_retried_then_answered_unavailable_never_internal(
    db: asyncpg.Connection, connect: Any, hub_url: str, api_key: Any
) -> None:
    await seed(db, ["sf"], ["alice"])
    await db.execute(SERIALIZATION_FAILURES)
    alice = await connect("alice")

    twice = await alice.call("message:send", {"room": "sf", "client_id": "c1", "text": "twice"})
    assert twice["ok"] is True and twice["message"]["seq"] == 1  # the third attempt went through

    always = await alice.call("message:send", {"room": "sf", "client_id": "c2", "text": "always"})
    assert always["ok"] is False and always["error"]["code"] == "unavailable", always
    assert await db.fetchval("SELECT count(*) FROM messages WHERE client_id = 'c2'") == 0

    key = await api_key("publish")
    body = {"sender_id": "alice", "client_id": "c3", "text": "always"}
    status, answer = await Rest(hub_url, key, timeout=10).request("POST", "/rooms/sf/messages", body)
    assert status == 503 and answer["error"]["code"] == "unavailable", answer

    await db.execute("DROP TRIGGER conflict ON messages")
    again = await alice.call("message:send", {"room": "sf", "client_id": "c2", "text": "always"})
    assert again["ok"] is True and again["message"]["seq"] == 2  # the same client_id, now stored once
    assert await db.fetchval("SELECT count(*) FROM messages WHERE client_id = 'c2'") == 1
