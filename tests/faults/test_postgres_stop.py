"""PostgreSQL stopped (``pg_ctl stop -m fast``) under a hub node while a client sends, then started again.

The node runs on a private PostgreSQL (devservices, migrated here).  While it is down every send
is answered ``unavailable`` (never ``internal``, never left without an answer); nothing is
acknowledged that is not stored; once PostgreSQL is back the same node, without a restart, serves
sends again (asyncpg's pool opens new connections).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from devservices import EmbeddedServices, start_embedded
from devservices.postgres import start_postgres, stop_postgres
from store import apikeys
from store.migrate import migrate
from tests.support.nodes import Node
from tests.support.rest import create_room
from tests.support.sockets import ChatClient
from tests.support.tokens import token_for

DOWN_FOR = 3.0  # seconds PostgreSQL stays down while the client keeps sending
BACK_WITHIN = 30.0  # seconds for the node to serve sends again once PostgreSQL is up
CALL_TIMEOUT = 10.0
TERMINATIONS = 10
TERMINATE_OTHERS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE pid <> pg_backend_pid() AND datname = current_database()"
)
SENDERS = 6  # concurrent senders, so some sends are mid-query when the server goes


class PrivatePostgres:
    def __init__(self, services: EmbeddedServices) -> None:
        self.services = services
        self.url = services.urls.database_url

    def stop(self) -> None:
        s = self.services
        stop_postgres(s._pgdata, s._pg_bin, s._run_as)

    def start(self) -> None:
        s = self.services
        start_postgres(s._pgdata, s._pg_bin, s._run_as, s._socket_dir)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    with tempfile.TemporaryDirectory(prefix="herald-pgfault-") as tmp, start_embedded(Path(tmp)) as services:
        yield PrivatePostgres(services)


async def test_postgres_stop_answers_unavailable_and_the_node_recovers_by_itself(
    private_postgres: PrivatePostgres, start_node: Node
) -> None:
    pg = private_postgres
    conn = await asyncpg.connect(pg.url)
    try:
        await migrate(conn)
        _, key = await apikeys.create(conn, "fault", ["publish"])
    finally:
        await conn.close()
    url = await start_node(DATABASE_URL=pg.url, HERALD_MESSAGE_RATE="1000", HERALD_MESSAGE_BURST="1000")
    await create_room(url, key, "team", ["alice"])
    alice = ChatClient(url, token_for("alice"))
    await alice.open()

    outcomes: dict[str, str] = {}  # client_id -> "ok" | error code | "no answer"
    acked: dict[str, dict[str, Any]] = {}
    phase = "before"
    by_phase: dict[str, Counter[str]] = {p: Counter() for p in ("before", "terminated", "down", "back")}

    async def send(client_id: str) -> str:
        try:
            answer = await alice.call(
                "message:send", {"room": "team", "client_id": client_id, "text": client_id}, timeout=CALL_TIMEOUT
            )
        except Exception:
            outcome = "no answer"
        else:
            if answer.get("ok"):
                outcome = "ok"
                acked[client_id] = answer["message"]
            else:
                outcome = answer["error"]["code"]
        outcomes[client_id] = outcome
        by_phase[phase][outcome] += 1
        return outcome

    loop = asyncio.get_running_loop()
    running = True

    async def sender(k: int) -> None:
        i = 0
        while running:
            await send(f"w{k}-{i}")
            i += 1
            await asyncio.sleep(0.005)

    try:
        for i in range(30):
            assert await send(f"first-{i}") == "ok"
        phase = "terminated"
        senders = [asyncio.create_task(sender(k)) for k in range(SENDERS)]
        admin = await asyncpg.connect(pg.url)
        try:
            for _ in range(TERMINATIONS):  # an operator (or a failover) ends the node's connections
                await asyncio.sleep(0.1)
                await admin.fetch(TERMINATE_OTHERS)
        finally:
            await admin.close()
        await asyncio.sleep(0.3)
        phase = "down"
        await asyncio.to_thread(pg.stop)  # sends race the shutdown
        await asyncio.sleep(DOWN_FOR)
        await asyncio.to_thread(pg.start)
        phase = "back"
        back_at = loop.time()
        async with asyncio.timeout(BACK_WITHIN):
            while not by_phase["back"]["ok"]:
                await asyncio.sleep(0.01)
        recovered_after = loop.time() - back_at
        await asyncio.sleep(1)
        running = False
        await asyncio.gather(*senders)
        for i in range(20):
            assert await send(f"last-{i}") == "ok"
    finally:
        running = False
        await alice.close()

    print(f"outcomes by phase: { {k: dict(v) for k, v in by_phase.items()} }; back after {recovered_after:.1f}s")
    terminated = by_phase["terminated"]
    assert set(terminated) <= {"ok", "unavailable"}, f"answers while connections were terminated: {dict(terminated)}"
    down = by_phase["down"]
    assert down["unavailable"] > 0, "the outage was not seen"
    assert set(down) <= {"ok", "unavailable"}, f"answers while PostgreSQL was down: {dict(down)}"
    conn = await asyncpg.connect(pg.url)
    try:
        stored = await conn.fetch("SELECT id, seq, client_id FROM messages WHERE room_id = 'team' ORDER BY seq")
    finally:
        await conn.close()
    assert [r["seq"] for r in stored] == list(range(1, len(stored) + 1))
    by_client_id = {r["client_id"]: r for r in stored}
    for client_id, message in acked.items():
        row = by_client_id.get(client_id)
        assert row is not None and str(row["id"]) == str(message["id"]), f"acknowledged {client_id} is not stored"
    not_acked_stored = [c for c in by_client_id if outcomes.get(c) != "ok"]
    assert not not_acked_stored, f"stored although answered otherwise: {[(c, outcomes[c]) for c in not_acked_stored]}"
