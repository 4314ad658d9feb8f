"""Crash semantics (DESIGN.md, States): a real ``herald worker`` process is killed with SIGKILL
while some requests are answered, some are in flight (held by the fake) and some not yet started.

After a restart, what was answered is not sent again, what was never started is sent once, and
what was in flight is sent again with the same ``apns-id`` and collapse id / Android tag, so the
device replaces the notification instead of showing it twice.

arq runs a killed worker's job again once its in-progress key expires: a lease of 10 s that the
worker renews while it lives (workers.liveness), so about 10 s after the kill.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.fakes.apns import FakeAPNs
from tests.fakes.core import FakeProvider, LogEntry
from tests.fakes.fcm import FakeFCM
from tests.support.nodes import HERALD, base_environ
from tests.support.push import notify, register
from tests.support.rest import Rest
from tests.support.workers import REPO, Spawn, worker_env, worker_logs

USERS = ("ana", "ben", "cy")
RECOVERY_WITHIN = 60.0  # the killed worker's lease runs out within 10 s; see the module doc
SETTLE_WITHIN = 1.0  # time given to the killed worker to record answers it already got
# The killed worker's job must still be running at the kill: with a 3 s timeout, a loaded machine
# (2 CPUs) sometimes let arq time the job out first, which is not the crash this file is about.
KILLED_JOB_TIMEOUT = "10"


async def statuses(db: asyncpg.Connection, notification_id: str) -> dict[str, str]:
    rows = await db.fetch("SELECT device_token, status FROM deliveries WHERE notification_id = $1", notification_id)
    return {r["device_token"]: r["status"] for r in rows}


async def crash_mid_batch(
    db: asyncpg.Connection,
    arq: aioredis.Redis,
    fake: FakeProvider,
    proc: subprocess.Popen[bytes],
    notification_id: str,
    held: int,
) -> tuple[dict[str, str], dict[str, str]]:
    """Wait until `held` requests are held, let the worker record what it got, SIGKILL it.

    Returns (what the fake saw of each token before the kill: answered / in flight, the deliveries'
    statuses at the kill). Tokens the fake never saw were not started.
    """
    await fake.wait_held(held, within=30)
    await asyncio.sleep(0.1)  # a request past the budget would be held too: there is none
    assert fake.held == held
    assert proc.poll() is None, "the worker died before the kill"
    answered = {e.token for e in fake.requests if e.status is not None}
    seen = {e.token: ("answered" if e.token in answered else "in flight") for e in fake.requests}
    deadline = time.monotonic() + SETTLE_WITHIN
    while time.monotonic() < deadline:
        done = {t for t, s in (await statuses(db, notification_id)).items() if s == "delivered"}
        if done >= answered:
            break
        await asyncio.sleep(0.02)
    running = await arq.exists(f"arq:in-progress:notify:{notification_id}")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert running, "the job was no longer running in the killed worker (timed out or finished)"
    return seen, await statuses(db, notification_id)


async def recover(db: asyncpg.Connection, notification_id: str, tmp_path: Path) -> float:
    """Wait for the notification to complete; return how long it took."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(RECOVERY_WITHIN):
            while await db.fetchval("SELECT status FROM notifications WHERE id = $1", notification_id) != "completed":
                await asyncio.sleep(0.2)
    except TimeoutError:
        at = await statuses(db, notification_id)
        pytest.fail(f"not completed {RECOVERY_WITHIN:.0f} s after the restart: {at}\n{worker_logs(tmp_path)}")
    took = time.monotonic() - started
    print(f"completed {took:.1f} s after the restart")  # shown with a failure's captured output
    return took


def by_token(requests: list[LogEntry]) -> dict[str, list[LogEntry]]:
    grouped: dict[str, list[LogEntry]] = {}
    for entry in requests:
        grouped.setdefault(entry.token, []).append(entry)
    return grouped


EXPECTED_AT_KILL = {"answered": "delivered", "in flight": "sending", "not started": "pending"}
EXPECTED_SENDS = {"answered": 1, "in flight": 2, "not started": 1}


def check_crash_outcome(
    tokens: list[str], seen: dict[str, str], at_kill: dict[str, str], sent: dict[str, list[LogEntry]], categories: int
) -> None:
    """The deliveries' states at the kill match what the fake saw, and each device got what it is owed."""
    table = "\n".join(
        f"{t[:16]}… fake: {seen.get(t, 'not started'):11} db: {at_kill.get(t)!s:9} requests: {len(sent.get(t, []))}"
        for t in tokens
    )
    assert len({seen.get(t, "not started") for t in tokens}) == categories, f"the crash came too late:\n{table}"
    for token in tokens:
        state = seen.get(token, "not started")
        assert at_kill.get(token) == EXPECTED_AT_KILL[state], f"state at the kill is not what was sent:\n{table}"
    for token in tokens:
        state = seen.get(token, "not started")
        assert len(sent.get(token, [])) == EXPECTED_SENDS[state], (
            f"{state} device sent a wrong number of times:\n{table}"
        )


@pytest.mark.parametrize("collapse_key", ["score-update", None])
async def test_apns_in_flight_pushes_are_resent_with_the_same_ids_after_a_kill(  # type: ignore[no-untyped-def]
    api: dict[str, Rest],
    db,
    arq: aioredis.Redis,
    fake_apns: FakeAPNs,
    push_env,
    spawn: Spawn,
    tmp_path: Path,
    collapse_key: str | None,
) -> None:
    tokens = [f"{i:02x}" * 32 for i in range(1, 13)]
    for i, token in enumerate(tokens):
        await register(api, USERS[i % len(USERS)], token, "apns")
    fake_apns.hold_after(5)  # 5 answered, then 4 in flight (the concurrency), 3 not started
    first = spawn(worker_env(push_env, HERALD_JOB_TIMEOUT=KILLED_JOB_TIMEOUT))
    content = {"collapse_key": collapse_key} if collapse_key else {}
    notification_id = await notify(api, {"user_ids": list(USERS)}, **content)

    seen, at_kill = await crash_mid_batch(db, arq, fake_apns, first, notification_id, held=4)
    assert sorted(seen.values()).count("answered") == 5, seen
    stored = {
        r["device_token"]: r["apns_id"]
        for r in await db.fetch(
            "SELECT device_token, apns_id::text FROM deliveries WHERE notification_id = $1", notification_id
        )
    }
    fake_apns.release()
    spawn(worker_env(push_env))
    await recover(db, notification_id, tmp_path)

    sent = by_token(fake_apns.requests)
    assert set(sent) == set(tokens), "every device gets the notification"
    for token, requests in sent.items():
        assert {r.apns_id for r in requests} == {stored[token]}, f"{token[:10]}…: one apns-id, the delivery's"
        collapse_ids = {r.headers.get("apns-collapse-id") for r in requests}
        assert len(collapse_ids) == 1, f"{token[:10]}…: one collapse id across resends: {collapse_ids}"
        if collapse_key is not None:
            assert collapse_ids == {collapse_key}
    check_crash_outcome(tokens, seen, at_kill, sent, categories=3)
    assert await statuses(db, notification_id) == dict.fromkeys(tokens, "delivered")
    assert await db.fetchval("SELECT status FROM notifications WHERE id = $1", notification_id) == "completed"


async def test_fcm_in_flight_pushes_are_resent_with_the_same_tag_after_a_kill(  # type: ignore[no-untyped-def]
    api: dict[str, Rest], db, arq: aioredis.Redis, fake_fcm: FakeFCM, push_env, spawn: Spawn, tmp_path: Path
) -> None:
    tokens = [f"fcm-crash-{i}-" + "x" * 40 for i in range(6)]
    for i, token in enumerate(tokens):
        await register(api, USERS[i % len(USERS)], token, "fcm")
    fake_fcm.hold_after(3)  # with 2 at a time: 3 answered, 2 in flight, 1 not started
    first = spawn(worker_env(push_env, HERALD_PUSH_CONCURRENCY="2", HERALD_JOB_TIMEOUT=KILLED_JOB_TIMEOUT))
    notification_id = await notify(api, {"user_ids": list(USERS)}, collapse_key="score-update")

    seen, at_kill = await crash_mid_batch(db, arq, fake_fcm, first, notification_id, held=2)
    assert sorted(seen.values()).count("answered") == 3, seen
    fake_fcm.release()
    spawn(worker_env(push_env, HERALD_PUSH_CONCURRENCY="2"))
    await recover(db, notification_id, tmp_path)

    sent = by_token(fake_fcm.requests)
    assert set(sent) == set(tokens), "every device gets the notification"
    for token, requests in sent.items():
        messages: list[dict[str, Any]] = [r.payload["message"] for r in requests]
        for message in messages:
            assert message["android"]["collapse_key"] == "score-update"
            assert message["android"]["notification"]["tag"] == "score-update"
            assert message["apns"]["headers"]["apns-collapse-id"] == "score-update"
        assert all(m == messages[0] for m in messages), f"{token}: a resend is the same message"
    check_crash_outcome(tokens, seen, at_kill, sent, categories=3)
    assert await statuses(db, notification_id) == dict.fromkeys(tokens, "delivered")
    assert await db.fetchval("SELECT status FROM notifications WHERE id = $1", notification_id) == "completed"


async def test_worker_without_credentials_or_outbox_exits_with_one_line(env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(HERALD),
        "worker",
        env={**base_environ(), **env},
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = err.decode().splitlines()
    assert proc.returncode == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("herald: HERALD_PUSH_PROVIDER:"), lines
    assert "HERALD_PUSH_PROVIDER=outbox" in lines[0]


async def test_sigterm_hands_the_running_job_back_to_the_next_worker(  # type: ignore[no-untyped-def]
    api: dict[str, Rest], db, arq: aioredis.Redis, fake_apns: FakeAPNs, push_env, spawn: Spawn, tmp_path: Path
) -> None:
    """A worker stopped with SIGTERM mid-notify exits promptly and hands its job back at once: the
    next worker finishes it without waiting for arq's in-progress key to expire (unlike a kill -9),
    and the devices that were in flight get the same apns-id again."""
    tokens = [f"{i:02x}" * 32 for i in range(0x21, 0x27)]
    for i, token in enumerate(tokens):
        await register(api, USERS[i % len(USERS)], token, "apns")
    fake_apns.hold_after(2)  # with 2 at a time: 2 answered, 2 in flight, 2 not started
    first = spawn(worker_env(push_env, HERALD_PUSH_CONCURRENCY="2", HERALD_JOB_TIMEOUT="30"))
    notification_id = await notify(api, {"user_ids": list(USERS)})
    await fake_apns.wait_held(2, within=30)
    stored = {
        r["device_token"]: r["apns_id"]
        for r in await db.fetch(
            "SELECT device_token, apns_id::text FROM deliveries WHERE notification_id = $1", notification_id
        )
    }

    first.send_signal(signal.SIGTERM)
    exit_code = await asyncio.to_thread(first.wait, 20)
    assert exit_code == 0, worker_logs(tmp_path)
    assert not await arq.exists(f"arq:in-progress:notify:{notification_id}"), "the job was not handed back"

    fake_apns.release()
    spawn(worker_env(push_env, HERALD_PUSH_CONCURRENCY="2"))
    took = await recover(db, notification_id, tmp_path)
    assert took < 15, f"the next worker waited {took:.1f} s: the job was not handed back"
    sent = by_token(fake_apns.requests)
    assert set(sent) == set(tokens)
    for token, requests in sent.items():
        assert {r.apns_id for r in requests} == {stored[token]}, f"{token[:10]}…: one apns-id, the delivery's"
        assert len(requests) <= 2
    assert await statuses(db, notification_id) == dict.fromkeys(tokens, "delivered")
