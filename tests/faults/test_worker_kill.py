"""``kill -9`` of a real ``herald worker`` mid-notification and mid-campaign, with the default job
timeout and sweep interval: the next worker resumes the killed worker's jobs once their leases run
out (workers.liveness: at most 10 s), not when arq's in-progress key would have expired (310 s).

The fakes answer each request after ``LATENCY``, the worker sends ``CONCURRENCY`` at a time, so the
kill lands mid-send.  PostgreSQL records each delivery's state: what was answered is not sent again,
what was in flight (``sending`` at the kill) is sent again with the same apns-id and collapse id (FCM:
the same message, tag and collapse key), what was not started is sent once.  Each test prints its
figures (time from the kill to the first request of the next worker, and to completion).

And without a kill: a notification sending for longer than a lease, beside a second worker, keeps
its lease (renewed) and is sent once to every device.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.fakes.apns import AuthKey, FakeAPNs
from tests.fakes.core import FakeProvider, LogEntry
from tests.fakes.fcm import FakeFCM
from tests.fakes.tls import shared_tls
from tests.support.campaigns import Marketer, wait_status
from tests.support.push import KEY_ID, TEAM_ID, apns_token, notify, register
from tests.support.rest import Rest
from tests.support.workers import worker_logs
from workers.liveness import LEASE

pytestmark = pytest.mark.faults

Spawn = Callable[[dict[str, str]], "subprocess.Popen[bytes]"]
LATENCY = 0.1  # seconds per provider answer
CONCURRENCY = 8
APNS_DEVICES, FCM_DEVICES, USERS = 160, 80, 40  # 240 devices: 3 s of sending at 8 in flight
KILL_AFTER = 80  # provider requests before the kill
RESUME_WITHIN = 15.0  # seconds from the kill to the next worker's first request
COMPLETE_WITHIN = 20.0  # seconds from the kill to the notification's completion


@pytest.fixture
async def fake_apns(auth_key: AuthKey) -> AsyncIterator[FakeAPNs]:
    async with FakeAPNs(TEAM_ID, KEY_ID, auth_key.public_pem, latency=LATENCY, tls=shared_tls()) as fake:
        yield fake


@pytest.fixture
async def fake_fcm() -> AsyncIterator[FakeFCM]:
    async with FakeFCM("herald-test", latency=LATENCY, tls=shared_tls()) as fake:
        yield fake


@pytest.fixture
def defaults_env(push_env: dict[str, str]) -> dict[str, str]:
    """A worker's environment with the default job timeout (300 s), sweep interval (30 s) and retry base."""
    env = {k: v for k, v in push_env.items() if k not in ("HERALD_JOB_TIMEOUT", "HERALD_SWEEP_INTERVAL")}
    env.pop("HERALD_PUSH_RETRY_BASE", None)
    return {**env, "HERALD_PUSH_CONCURRENCY": str(CONCURRENCY), "HERALD_LOG_LEVEL": "INFO"}


def fcm_token(n: int) -> str:
    return f"fcm-kill-{n:03}-" + "k" * 40


def requests(*fakes: FakeProvider) -> list[LogEntry]:
    return [entry for fake in fakes for entry in fake.requests]


async def wait_requests(fakes: tuple[FakeProvider, ...], n: int) -> None:
    async with asyncio.timeout(60):
        while len(requests(*fakes)) < n:
            await asyncio.sleep(0.005)


async def kill(proc: subprocess.Popen[bytes]) -> float:
    """SIGKILL the worker; the wall-clock time of the kill (the fakes log wall-clock times)."""
    at = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    await asyncio.to_thread(proc.wait, 10)
    assert proc.returncode == -signal.SIGKILL
    return at


def whole_logs(tmp_path: Path) -> str:
    """Every worker's log, whole (worker_logs keeps the end of each)."""
    return "".join(log.read_text(errors="replace") for log in sorted(tmp_path.glob("worker-*.log")))


def resumed_after(fakes: tuple[FakeProvider, ...], killed_at: float) -> float:
    later = [entry.time for entry in requests(*fakes) if entry.time > killed_at]
    assert later, "no request after the kill"
    return min(later) - killed_at


async def delivery_rows(db: asyncpg.Connection, notification_ids: list[str]) -> dict[str, asyncpg.Record]:
    rows = await db.fetch(
        "SELECT device_token, provider, status, apns_id::text AS apns_id, notification_id::text AS nid "
        "FROM deliveries WHERE notification_id = ANY($1::uuid[])",
        notification_ids,
    )
    return {r["device_token"]: r for r in rows}


def check_resends(
    fakes: tuple[FakeProvider, ...], stored: dict[str, asyncpg.Record], sending_at_kill: set[str]
) -> dict[str, int]:
    """Every device got it; only deliveries ``sending`` at the kill went twice, with the same ids."""
    sent: dict[str, list[LogEntry]] = defaultdict(list)
    for entry in requests(*fakes):
        sent[entry.token].append(entry)
    assert set(sent) == set(stored), "every device got the notification"
    twice = {token for token, entries in sent.items() if len(entries) > 1}
    assert twice <= sending_at_kill, f"sent twice though not in flight at the kill: {sorted(twice - sending_at_kill)}"
    for token, entries in sent.items():
        assert len(entries) <= 2, f"{token[:12]}…: {len(entries)} requests"
        row = stored[token]
        if row["provider"] == "apns":
            assert {e.apns_id for e in entries} == {row["apns_id"]}, f"{token[:12]}…: one apns-id, the delivery's"
            collapse = {e.headers.get("apns-collapse-id") for e in entries}
            assert collapse == {row["nid"]}, f"{token[:12]}…: collapse id is the notification id: {collapse}"
        else:
            messages: list[dict[str, Any]] = [e.payload["message"] for e in entries]
            assert all(m == messages[0] for m in messages), f"{token[:12]}…: a resend is the same message"
            assert messages[0]["android"]["collapse_key"] == row["nid"]
            assert messages[0]["android"]["notification"]["tag"] == row["nid"]
    return {"devices": len(sent), "sent twice": len(twice), "sending at the kill": len(sending_at_kill)}


async def test_kill_9_mid_notification_resumes_within_one_lease_with_default_settings(  # type: ignore[no-untyped-def]
    hub_url: str,
    api_key,
    db: asyncpg.Connection,
    arq: aioredis.Redis,
    fake_apns: FakeAPNs,
    fake_fcm: FakeFCM,
    defaults_env: dict[str, str],
    spawn: Spawn,
    tmp_path: Path,
) -> None:
    api = {"devices": Rest(hub_url, await api_key("devices")), "notify": Rest(hub_url, await api_key("notify"))}
    devices = [(apns_token(n), "apns") for n in range(APNS_DEVICES)]
    devices += [(fcm_token(n), "fcm") for n in range(FCM_DEVICES)]
    for start in range(0, len(devices), 20):
        await asyncio.gather(
            *(
                register(api, f"user{(start + i) % USERS}", token, provider)
                for i, (token, provider) in enumerate(devices[start : start + 20])
            )
        )
    fakes = (fake_apns, fake_fcm)
    first = spawn(defaults_env)
    notification_id = await notify(api, {"user_ids": [f"user{n}" for n in range(USERS)]})
    await wait_requests(fakes, KILL_AFTER)
    key = f"arq:in-progress:notify:{notification_id}"
    lease_left = await arq.pttl(key)
    killed_at = await kill(first)
    killed_mono = time.monotonic()
    assert 0 < lease_left <= LEASE * 1000, f"the running job's lease: {lease_left} ms"
    at_kill = {token: row["status"] for token, row in (await delivery_rows(db, [notification_id])).items()}
    counts_at_kill = {s: list(at_kill.values()).count(s) for s in set(at_kill.values())}
    assert {"delivered", "pending"} <= set(counts_at_kill), f"the kill should land mid-send: {counts_at_kill}"
    sending_at_kill = {token for token, status in at_kill.items() if status == "sending"}

    spawn(defaults_env)
    try:
        async with asyncio.timeout(COMPLETE_WITHIN + 20):
            while await db.fetchval("SELECT status FROM notifications WHERE id = $1", notification_id) != "completed":
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"not completed 40 s after the kill\n{worker_logs(tmp_path)}")
    completed_after = time.monotonic() - killed_mono
    resumed = resumed_after(fakes, killed_at)

    stored = await delivery_rows(db, [notification_id])
    assert {row["status"] for row in stored.values()} == {"delivered"}
    figures = check_resends(fakes, stored, sending_at_kill)
    print(
        f"notification, {len(devices)} devices ({APNS_DEVICES} APNs, {FCM_DEVICES} FCM), {CONCURRENCY} in flight, "
        f"{LATENCY * 1000:.0f} ms per answer, default job timeout and sweep interval: killed after "
        f"{KILL_AFTER} requests (deliveries then {counts_at_kill}, lease left {lease_left / 1000:.1f} s); "
        f"next worker's first request {resumed:.1f} s after the kill, completed {completed_after:.1f} s after it; "
        f"{figures}"
    )
    assert resumed < RESUME_WITHIN, f"resumed {resumed:.1f} s after the kill"
    assert completed_after < COMPLETE_WITHIN, f"completed {completed_after:.1f} s after the kill"


async def test_kill_9_mid_campaign_resumes_within_one_lease_with_default_settings(  # type: ignore[no-untyped-def]
    marketer: Marketer,
    db: asyncpg.Connection,
    fake_apns: FakeAPNs,
    defaults_env: dict[str, str],
    spawn: Spawn,
    tmp_path: Path,
) -> None:
    """The campaign's runner and its notifications' jobs were all on the killed worker."""
    users = 60
    for start in range(0, users, 20):
        await asyncio.gather(*(marketer.user(f"user{n:03}") for n in range(start, start + 20)))
        await asyncio.gather(*(marketer.device(f"user{n:03}", apns_token(n)) for n in range(start, start + 20)))
    first = spawn(defaults_env)
    campaign = await marketer.campaign(filter={"all": []}, throttle_per_minute=600)  # 10 a second
    await marketer.schedule(campaign["id"])
    await wait_requests((fake_apns,), 20)
    killed_at = await kill(first)
    killed_mono = time.monotonic()
    at_kill = await db.fetchval("SELECT count(*) FROM campaign_sends WHERE campaign_id = $1", campaign["id"])
    assert 0 < at_kill < users, "the kill should land mid-campaign"

    spawn(defaults_env)
    try:
        await wait_status(db, campaign["id"], "completed", timeout=COMPLETE_WITHIN + 20)
    except TimeoutError:
        pytest.fail(f"campaign not completed 40 s after the kill\n{worker_logs(tmp_path)}")
    completed_after = time.monotonic() - killed_mono
    resumed = resumed_after((fake_apns,), killed_at)

    ids: dict[str, list[str]] = defaultdict(list)
    for request in fake_apns.requests:
        assert request.apns_id is not None
        ids[request.token].append(request.apns_id)
    assert set(ids) == {apns_token(n) for n in range(users)}, "everyone got the campaign"
    assert all(len(set(v)) == 1 for v in ids.values()), "nobody got it twice (a resend has the same apns-id)"
    stats = await marketer.stats(campaign["id"])
    assert (stats["targeted"], stats["sent"], stats["delivered"]) == (users, users, users)
    again = sum(1 for v in ids.values() if len(v) > 1)
    # With the throttle, the rest of the campaign takes (users - at_kill) / 10 s after the resume.
    print(
        f"campaign, {users} users throttled to 10/s, default job timeout and sweep interval: killed after 20 "
        f"requests ({at_kill} sends recorded); next worker's first request {resumed:.1f} s after the kill, "
        f"completed {completed_after:.1f} s after it; resent with the same apns-id: {again}"
    )
    assert resumed < RESUME_WITHIN, f"resumed {resumed:.1f} s after the kill"
    rest = (users - at_kill) / 10
    assert completed_after < RESUME_WITHIN + rest + 5, f"completed {completed_after:.1f} s after the kill"


async def test_a_notification_longer_than_the_lease_is_sent_once_beside_a_second_worker(  # type: ignore[no-untyped-def]
    hub_url: str,
    api_key,
    db: asyncpg.Connection,
    arq: aioredis.Redis,
    fake_apns: FakeAPNs,
    defaults_env: dict[str, str],
    spawn: Spawn,
    tmp_path: Path,
) -> None:
    """No kill: a job running longer than the lease keeps it (renewed), the other worker never starts it."""
    api = {"devices": Rest(hub_url, await api_key("devices")), "notify": Rest(hub_url, await api_key("notify"))}
    devices, in_flight, latency = 100, 2, 0.25  # 12.5 s of sending: more than one lease
    fake_apns.latency = latency
    for start in range(0, devices, 20):
        await asyncio.gather(
            *(register(api, f"user{n % USERS}", apns_token(n), "apns") for n in range(start, start + 20))
        )
    env = {**defaults_env, "HERALD_PUSH_CONCURRENCY": str(in_flight)}
    spawn(env)
    spawn(env)
    began = time.monotonic()
    notification_id = await notify(api, {"user_ids": [f"user{n}" for n in range(USERS)]})
    key = f"arq:in-progress:notify:{notification_id}"
    ttls: list[int] = []  # the job's lease, every 0.2 s while it runs
    async with asyncio.timeout(60):
        while await db.fetchval("SELECT status FROM notifications WHERE id = $1", notification_id) != "completed":
            ttls.append(await arq.pttl(key))
            await asyncio.sleep(0.2)
    took = time.monotonic() - began
    assert took > LEASE * 1.1, f"the job took {took:.1f} s: not longer than the lease"
    while ttls and ttls[0] == -2:  # not started yet
        ttls.pop(0)
    while ttls and ttls[-1] == -2:  # the key is deleted as the job ends, just before the status is read
        ttls.pop()
    assert ttls and all(0 < ttl <= LEASE * 1000 for ttl in ttls), f"the lease, renewed while the job ran: {ttls}"
    sent: dict[str, int] = defaultdict(int)
    for entry in fake_apns.requests:
        sent[entry.token] += 1
    assert sent == dict.fromkeys((apns_token(n) for n in range(devices)), 1), "every device once"
    logs = whole_logs(tmp_path)
    assert "lease lost" not in logs and "leases not renewed" not in logs, logs
    print(
        f"notification of {devices} devices took {took:.1f} s beside a second worker: every device once; "
        f"its lease seen between {min(ttls) / 1000:.1f} and {max(ttls) / 1000:.1f} s"
    )
