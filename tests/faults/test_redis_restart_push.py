"""Redis killed and started again (empty) while a real ``herald worker`` sends a notification and a
campaign through the fake APNs.

The hub and the worker share a private redis-server.  Its restart loses arq's queue and in-progress
keys; PostgreSQL still knows what is owed, and the sweeper queues it again.  At the end every device
got the push, all requests to one device carry one apns-id (DESIGN.md: only a push in flight at the
fault may go again, with the same apns-id), and nothing is left unfinished.

A worker keeps running through the outage (``workers.main.ResilientWorker`` waits and polls
again); ``Supervisor`` would start it again like a process manager, and counts restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from tests.fakes.apns import FakeAPNs
from tests.fakes.tls import shared_tls
from tests.support.campaigns import Marketer, wait_status
from tests.support.nodes import RedisServer
from tests.support.push import KEY_ID, TEAM_ID, apns_token, notify, register
from tests.support.rest import Rest
from tests.support.workers import worker_env, worker_logs

Spawn = Callable[[dict[str, str]], "subprocess.Popen[bytes]"]
DEVICES = 60
CONCURRENCY = 4
LATENCY = 0.1  # seconds per APNs answer: the send takes DEVICES * LATENCY / CONCURRENCY = 1.5 s
DOWN_FOR = 0.5
RECOVERY_WITHIN = 40.0


@pytest.fixture
def env(env: dict[str, str], private_redis: RedisServer) -> dict[str, str]:
    """Hub, worker and queue on the test's own redis-server."""
    return {**env, "REDIS_URL": private_redis.url}


@pytest.fixture
async def fake_apns(auth_key) -> AsyncIterator[FakeAPNs]:  # type: ignore[no-untyped-def]
    async with FakeAPNs(TEAM_ID, KEY_ID, auth_key.public_pem, latency=LATENCY, tls=shared_tls()) as fake:
        yield fake


async def restart_redis_after(redis: RedisServer, fake: FakeAPNs, requests: int) -> int:
    async with asyncio.timeout(30):
        while len(fake.requests) < requests:
            await asyncio.sleep(0.01)
    seen = len(fake.requests)
    await redis.kill()
    await asyncio.sleep(DOWN_FOR)
    await redis.start()
    return seen


class Supervisor:
    """Start a worker, and start it again whenever it exits (as a process manager would)."""

    def __init__(self, spawn: Spawn, env: dict[str, str]) -> None:
        self.spawn = spawn
        self.env = env
        self.restarts = 0
        self.proc = spawn(env)
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            if self.proc.poll() is not None:
                self.restarts += 1
                self.proc = self.spawn(self.env)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def apns_ids(fake: FakeAPNs) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = defaultdict(list)
    for request in fake.requests:
        assert request.apns_id is not None
        ids[request.token].append(request.apns_id)
    return ids


async def test_redis_restart_mid_notification_sends_every_device_once(  # type: ignore[no-untyped-def]
    hub_url: str,
    api_key,
    db: asyncpg.Connection,
    fake_apns: FakeAPNs,
    push_env: dict[str, str],
    private_redis: RedisServer,
    spawn: Spawn,
    tmp_path: Path,
) -> None:
    api = {"devices": Rest(hub_url, await api_key("devices")), "notify": Rest(hub_url, await api_key("notify"))}
    tokens = [apns_token(n) for n in range(DEVICES)]
    for n, token in enumerate(tokens):
        await register(api, f"user{n % 20}", token, "apns")
    worker = Supervisor(spawn, worker_env(push_env, HERALD_PUSH_CONCURRENCY=str(CONCURRENCY), HERALD_JOB_TIMEOUT="30"))
    notification_id = await notify(api, {"user_ids": [f"user{n}" for n in range(20)]}, collapse_key="news")
    seen = await restart_redis_after(private_redis, fake_apns, DEVICES // 4)
    try:
        async with asyncio.timeout(RECOVERY_WITHIN):
            while await db.fetchval("SELECT status FROM notifications WHERE id = $1", notification_id) != "completed":
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"not completed {RECOVERY_WITHIN}s after the Redis restart\n{worker_logs(tmp_path)}")
    await worker.stop()

    stored = {
        r["device_token"]: (r["apns_id"], r["status"])
        for r in await db.fetch(
            "SELECT device_token, apns_id::text, status FROM deliveries WHERE notification_id = $1", notification_id
        )
    }
    ids = apns_ids(fake_apns)
    assert set(ids) == set(tokens), "every device got the notification"
    for token, sent in ids.items():
        assert set(sent) == {stored[token][0]}, f"{token[:10]}…: one apns-id, the delivery's"
    assert {status for _, status in stored.values()} == {"delivered"}
    again = sorted(len(sent) for sent in ids.values() if len(sent) > 1)
    assert len(again) <= CONCURRENCY, f"more devices sent twice than were in flight: {again}"
    print(
        f"redis restarted after {seen} requests; devices sent again (same apns-id): {len(again)}; "
        f"worker restarts: {worker.restarts}"
    )


async def test_redis_restart_mid_campaign_sends_nobody_twice(  # type: ignore[no-untyped-def]
    marketer: Marketer,
    db: asyncpg.Connection,
    fake_apns: FakeAPNs,
    push_env: dict[str, str],
    private_redis: RedisServer,
    spawn: Spawn,
    tmp_path: Path,
) -> None:
    users = 40
    for n in range(users):
        await marketer.user(f"user{n:03}")
        await marketer.device(f"user{n:03}", apns_token(n))
    worker = Supervisor(spawn, worker_env(push_env, HERALD_JOB_TIMEOUT="30"))
    campaign = await marketer.campaign(filter={"all": []}, throttle_per_minute=600)  # 10 a second
    await marketer.schedule(campaign["id"])
    seen = await restart_redis_after(private_redis, fake_apns, 12)
    at_restart = await db.fetchval("SELECT count(*) FROM campaign_sends WHERE campaign_id = $1", campaign["id"])
    try:
        await wait_status(db, campaign["id"], "completed", timeout=RECOVERY_WITHIN)
    except TimeoutError:
        pytest.fail(f"campaign not completed {RECOVERY_WITHIN}s after the Redis restart\n{worker_logs(tmp_path)}")
    await worker.stop()
    assert 0 < at_restart < users, "the restart should land mid-campaign"
    ids = apns_ids(fake_apns)
    assert set(ids) == {apns_token(n) for n in range(users)}, "everyone got the campaign"
    assert all(len(set(v)) == 1 for v in ids.values()), "nobody got it twice"
    again = sum(1 for v in ids.values() if len(v) > 1)
    stats = await marketer.stats(campaign["id"])
    assert (stats["targeted"], stats["sent"], stats["delivered"]) == (users, users, users)
    print(
        f"redis restarted after {seen} requests ({at_restart} sends recorded); resent same apns-id: {again}; "
        f"worker restarts: {worker.restarts}"
    )


async def test_worker_outlives_a_redis_outage(  # type: ignore[no-untyped-def]
    push_env: dict[str, str], private_redis: RedisServer, spawn: Spawn, tmp_path: Path
) -> None:
    worker = spawn(worker_env(push_env))
    await asyncio.sleep(2)  # started and polling
    assert worker.poll() is None, worker_logs(tmp_path)
    await private_redis.kill()
    await asyncio.sleep(2)  # several polls (every 0.5 s) find Redis down
    await private_redis.start()
    await asyncio.sleep(2)
    assert worker.poll() is None, f"the worker exited with Redis down\n{worker_logs(tmp_path)}"
