"""Redis frozen (SIGSTOP) for 5 s under two ``herald web`` nodes while clients chat.

A frozen Redis is worse than a dead one: its port still accepts connections and takes commands,
and nothing answers.  Acknowledgements must not notice (they depend on the PostgreSQL commit
only), /readyz must say so within seconds instead of hanging, and once Redis runs again each node
tells its sockets ``resync``, after which ``sync`` returns everything, the messages whose
cross-node broadcast was lost in the freeze included.  And the timeouts that notice the freeze
leave a healthy link alone, however long the channel stays quiet.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import pytest

from hub import redis_link
from tests.support.chat import Chatter, check_nothing_lost
from tests.support.nodes import Node, RedisServer, StartWeb
from tests.support.sockets import OpenClient, is_text, send, wait_event

FREEZE = 5.0  # seconds Redis stays stopped
SEND_GAP = 0.02  # seconds between one client's sends
BEFORE = 40  # acknowledged messages in all before the freeze
AFTER = 20  # messages per client after it
READY_POLL = 0.2
FAST = {"HERALD_MESSAGE_RATE": "1000", "HERALD_MESSAGE_BURST": "1000"}


@dataclass
class Timeline:
    """When each send started and was acknowledged (loop time), and the freeze."""

    sends: list[tuple[float, float]] = field(default_factory=list)
    stopped_at: float | None = None
    resumed_at: float | None = None

    def during_freeze(self) -> list[tuple[float, float]]:
        assert self.stopped_at is not None
        return [(t0, t1) for t0, t1 in self.sends if t0 >= self.stopped_at]


async def readyz(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(f"{url}/readyz") as resp:
        return resp.status


@pytest.mark.faults
async def test_a_frozen_redis_delays_no_ack_and_clients_resync_after_it(
    private_redis: RedisServer, web_node: StartWeb, db: asyncpg.Connection
) -> None:
    n1, n2 = await asyncio.gather(
        web_node(REDIS_URL=private_redis.url, **FAST), web_node(REDIS_URL=private_redis.url, **FAST)
    )
    await db.executemany("INSERT INTO users (id) VALUES ($1)", [("alice",), ("bob",)])
    await db.execute("INSERT INTO rooms (id, kind) VALUES ('team', 'private')")
    await db.executemany("INSERT INTO members (room_id, user_id) VALUES ('team', $1)", [("alice",), ("bob",)])
    alice = Chatter("alice", "team", [n1.url])
    bob = Chatter("bob", "team", [n2.url])
    await alice.start()
    await bob.start()
    loop = asyncio.get_running_loop()
    timeline = Timeline()
    sending = asyncio.Event()
    sending.set()
    counts = {"alice": 0, "bob": 0}
    in_flight = [0]
    assert private_redis.proc is not None
    redis_pid = private_redis.proc.pid

    async def chat(chatter: Chatter) -> None:
        while True:
            await sending.wait()
            t0 = loop.time()
            in_flight[0] += 1
            await chatter.send(counts[chatter.user_id])  # retried on no answer or `unavailable`, counted
            in_flight[0] -= 1
            timeline.sends.append((t0, loop.time()))
            counts[chatter.user_id] += 1
            await asyncio.sleep(SEND_GAP)

    async def first_not_ready(http: aiohttp.ClientSession) -> float:
        assert timeline.stopped_at is not None
        while await readyz(http, n1.url) == 200:
            await asyncio.sleep(READY_POLL)
        return loop.time() - timeline.stopped_at

    chatting = [asyncio.create_task(chat(alice)), asyncio.create_task(chat(bob))]
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with asyncio.timeout(30):
                while len(timeline.sends) < BEFORE:
                    await asyncio.sleep(0.01)
            os.kill(redis_pid, signal.SIGSTOP)
            try:
                timeline.stopped_at = loop.time()
                async with asyncio.timeout(FREEZE):
                    not_ready_after = await first_not_ready(http)
                await asyncio.sleep(timeline.stopped_at + FREEZE - 1.0 - loop.time())
                sending.clear()  # no new sends in the freeze's last second: those in flight finish
                # Every send made during the freeze is acknowledged while Redis is still stopped.
                async with asyncio.timeout(timeline.stopped_at + FREEZE - loop.time()):
                    while in_flight[0]:
                        await asyncio.sleep(0.01)
                assert not [t.exception() for t in chatting if t.done()]
                in_freeze = timeline.during_freeze()
                acked_in_freeze = len(in_freeze)
                assert acked_in_freeze > 0
                assert dict(alice.errors + bob.errors) == {}, "a send was not answered ok at once"
                assert alice.resyncs == 0 and bob.resyncs == 0, "resync before Redis answers again"
                assert await readyz(http, n2.url) == 503
            finally:
                timeline.resumed_at = loop.time()
                os.kill(redis_pid, signal.SIGCONT)
            latencies = sorted(t1 - t0 for t0, t1 in in_freeze)

            async with asyncio.timeout(20):
                while not (alice.resyncs and bob.resyncs):
                    await asyncio.sleep(0.05)
                while await readyz(http, n1.url) != 200:
                    await asyncio.sleep(READY_POLL)
            resync_after = loop.time() - timeline.resumed_at
            before_after = dict(counts)
            sending.set()
            async with asyncio.timeout(30):
                while min(counts[u] - before_after[u] for u in counts) < AFTER:
                    await asyncio.sleep(0.01)
    finally:
        for task in chatting:
            task.cancel()
        await asyncio.gather(*chatting, return_exceptions=True)
    try:
        sent = len(alice.acked) + len(bob.acked)
        stored = await check_nothing_lost(db, "team", [alice, bob], sent)
        assert alice.reconnects == 0 and bob.reconnects == 0, "the sockets stay up"
        print(
            f"redis frozen {FREEZE:.0f} s: {acked_in_freeze} sends acked while frozen, ack latency "
            f"p50 {statistics.median(latencies) * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms; "
            f"/readyz 503 {not_ready_after:.2f} s after SIGSTOP; resync on both nodes and /readyz 200 "
            f"{resync_after:.2f} s after SIGCONT; {stored} messages stored, each client's view equal to the room"
        )
    finally:
        await alice.close()
        await bob.close()


async def test_a_quiet_link_stays_up(
    private_redis: RedisServer, start_node: Node, clients: OpenClient, db: asyncpg.Connection
) -> None:
    """Quiet for longer than any Redis timeout of the hub: no link lost, no resync, fan-out works."""
    await db.executemany("INSERT INTO users (id) VALUES ($1)", [("alice",), ("bob",)])
    await db.execute("INSERT INTO rooms (id, kind) VALUES ('team', 'private')")
    await db.executemany("INSERT INTO members (room_id, user_id) VALUES ('team', $1)", [("alice",), ("bob",)])
    url_a = await start_node(REDIS_URL=private_redis.url)
    url_b = await start_node(REDIS_URL=private_redis.url)
    alice = await clients(url_a, "alice")
    bob = await clients(url_b, "bob")
    await send(alice, "team", "before the quiet")
    await wait_event(bob, "message:new", is_text("before the quiet"))

    await asyncio.sleep(2 * (redis_link.REDIS_TIMEOUT + redis_link.IDLE_PING + redis_link.PONG_WITHIN))

    await send(alice, "team", "after the quiet")
    await wait_event(bob, "message:new", is_text("after the quiet"))
    await send(bob, "team", "and back")
    await wait_event(alice, "message:new", is_text("and back"))
    assert alice.events["resync"] == [] and bob.events["resync"] == []
