"""A ``herald worker`` process killed with SIGKILL mid-campaign: a second worker resumes where the
first stopped, and the fake APNs log shows no user sent the campaign twice (a push in flight at the
kill may go again, with the same apns-id, which the device treats as the same notification)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict

import asyncpg

from tests.fakes.apns import FakeAPNs
from tests.support.campaigns import Marketer, wait_status
from tests.support.push import apns_token
from tests.support.workers import Spawn

USERS = 40
#: another worker starts a killed worker's job once its lease lapses (workers.liveness: within 10 s).
RECOVERY_WITHIN = 75.0


async def test_a_killed_runner_resumes_without_sending_anyone_twice(
    marketer: Marketer, push_env: dict[str, str], spawn: Spawn, db: asyncpg.Connection, fake_apns: FakeAPNs
) -> None:
    for n in range(USERS):
        await marketer.user(f"user{n:03}")
        await marketer.device(f"user{n:03}", apns_token(n))
    env = {**push_env, "HERALD_JOB_TIMEOUT": "3", "HERALD_SWEEP_INTERVAL": "1", "HERALD_LOG_LEVEL": "WARNING"}
    first = spawn(env)
    campaign = await marketer.campaign(filter={"all": []}, throttle_per_minute=600)  # 10 a second
    await marketer.schedule(campaign["id"])
    async with asyncio.timeout(30):
        while len(fake_apns.requests) < 15:
            await asyncio.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    at_kill = await db.fetchval("SELECT count(*) FROM campaign_sends WHERE campaign_id = $1", campaign["id"])
    assert 0 < at_kill < USERS, "the kill should land mid-campaign"
    spawn(env)
    await wait_status(db, campaign["id"], "completed", timeout=RECOVERY_WITHIN)
    ids: dict[str, set[str]] = defaultdict(set)
    for request in fake_apns.requests:
        assert request.apns_id is not None
        ids[request.token].add(request.apns_id)
    assert set(ids) == {apns_token(n) for n in range(USERS)}, "everyone got the campaign"
    assert all(len(v) == 1 for v in ids.values()), "nobody got it twice"
    stats = await marketer.stats(campaign["id"])
    assert (stats["targeted"], stats["sent"], stats["delivered"], stats["skipped"]) == (USERS, USERS, USERS, 0)
