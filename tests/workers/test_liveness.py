"""Job leases (workers.liveness) with arq's own worker loop, in process, on short leases.

The ``kill -9`` of a real ``herald worker`` at the default lease is tests/faults/test_worker_kill.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from unittest import mock

import asyncpg
import pytest
import redis.asyncio as aioredis
from arq import Retry
from arq.connections import RedisSettings
from arq.worker import func

from store import locks, queue
from store.db import create_pool
from workers.campaigns import campaign_run
from workers.context import WorkerApp
from workers.liveness import LEASE, in_progress_key, renew
from workers.main import ResilientWorker
from workers.notify import notify

SHORT = 1.0  # seconds: the lease of these tests' workers

Job = Callable[..., Awaitable[Any]]
Start = Callable[[Job], Awaitable[ResilientWorker]]


@pytest.fixture
async def start_worker(redis_url: str, env: dict[str, str]) -> AsyncIterator[Start]:
    """``await start_worker(job)``: a ResilientWorker on this test's queue running ``job`` as "job"."""
    running: list[tuple[ResilientWorker, asyncio.Task[None]]] = []

    async def start(job: Job) -> ResilientWorker:
        worker = ResilientWorker(
            functions=[func(job, name="job", keep_result=0, max_tries=5)],
            queue_name=env["HERALD_QUEUE_NAME"],
            redis_settings=RedisSettings.from_dsn(redis_url),
            handle_signals=False,
            job_timeout=300,
            poll_delay=0.05,
            job_serializer=queue.serialize,
            job_deserializer=queue.deserialize,
            lease=SHORT,
        )
        running.append((worker, asyncio.create_task(worker.async_run())))
        return worker

    yield start
    for worker, task in running:
        await worker.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def enqueue(redis_url: str, queue_name: str, job_id: str) -> None:
    arq = await queue.connect(redis_url)
    try:
        assert await arq.enqueue_job("job", _job_id=job_id, _queue_name=queue_name) is not None
    finally:
        await arq.aclose()


async def test_a_job_longer_than_its_lease_runs_once_while_its_worker_lives(  # type: ignore[no-untyped-def]
    start_worker: Start, arq: aioredis.Redis, redis_url: str, env
) -> None:
    starts: list[float] = []
    finished = asyncio.Event()

    async def long_job(ctx: dict[str, Any]) -> None:
        starts.append(time.monotonic())
        await asyncio.sleep(4 * SHORT)
        finished.set()

    await start_worker(long_job)
    await start_worker(long_job)  # polls the same queue all along
    await enqueue(redis_url, env["HERALD_QUEUE_NAME"], "long")
    key = in_progress_key("long")
    ttls: list[int] = []
    async with asyncio.timeout(20):
        while not finished.is_set():
            if starts:
                ttls.append(await arq.pttl(key))
            await asyncio.sleep(0.1)
    assert len(starts) == 1, f"the job was started {len(starts)} times"
    live = [ttl for ttl in ttls if ttl != -2]  # -2: the key is gone (the job has just ended)
    assert live and all(0 < ttl <= SHORT * 1000 for ttl in live), f"the lease is {SHORT} s, renewed: {ttls}"
    async with asyncio.timeout(5):
        while await arq.exists(key):
            await asyncio.sleep(0.05)


async def test_a_stalled_worker_does_not_start_its_own_running_job_again(  # type: ignore[no-untyped-def]
    start_worker: Start, arq: aioredis.Redis, redis_url: str, env
) -> None:
    """Its lease lapsed (no renewal) while the job runs: arq would start a second task for the same
    job id in the same process, whose end broke the first one's bookkeeping."""
    starts: list[float] = []

    async def long_job(ctx: dict[str, Any]) -> str:
        starts.append(time.monotonic())
        await asyncio.sleep(3 * SHORT)
        return "done"

    worker = await start_worker(long_job)
    worker.renewer.once = mock.AsyncMock(return_value=set())  # type: ignore[method-assign]
    await enqueue(redis_url, env["HERALD_QUEUE_NAME"], "stalled")
    async with asyncio.timeout(20):
        while worker.jobs_complete + worker.jobs_failed == 0:
            await asyncio.sleep(0.05)
    assert len(starts) == 1
    assert (worker.jobs_complete, worker.jobs_failed) == (1, 0)
    assert not await arq.zscore(env["HERALD_QUEUE_NAME"], "stalled"), "the finished job left the queue"


async def test_a_dead_workers_job_starts_elsewhere_once_its_lease_runs_out(  # type: ignore[no-untyped-def]
    start_worker: Start, arq: aioredis.Redis, redis_url: str, env
) -> None:
    """What a killed worker leaves: the job in the queue, its in-progress key no longer renewed."""
    started = asyncio.Event()

    async def job(ctx: dict[str, Any]) -> None:
        started.set()

    await enqueue(redis_url, env["HERALD_QUEUE_NAME"], "orphan")
    await arq.psetex(in_progress_key("orphan"), int(SHORT * 1000), b"1")
    t0 = time.monotonic()
    await start_worker(job)
    await asyncio.sleep(SHORT / 2)
    assert not started.is_set(), "started while the lease still held"
    async with asyncio.timeout(5 * SHORT):
        await started.wait()
    took = time.monotonic() - t0
    assert SHORT * 0.9 < took < SHORT + 1.0, took


async def test_renewal_extends_existing_keys_only(arq: aioredis.Redis) -> None:
    await arq.psetex(in_progress_key("mine"), 500, b"1")
    assert await renew(arq, ["mine", "ended"], 7.0) == {"ended"}
    assert 6000 < await arq.pttl(in_progress_key("mine")) <= 7000
    assert not await arq.exists(in_progress_key("ended")), "an ended job's key came back"


@pytest.mark.parametrize(("job", "namespace"), [(notify, locks.NOTIFICATIONS), (campaign_run, locks.CAMPAIGNS)])
async def test_a_second_run_while_another_worker_holds_the_job_stays_queued(
    database_url: str, db: asyncpg.Connection, job: Job, namespace: int
) -> None:
    """A run started after a lease lapsed on a live worker: ``Retry`` (arq keeps the job queued),
    not a result (arq would drop the job while its holder may still need it queued)."""
    await db.execute(locks.TRY_LOCK, namespace, "some-id")  # the live holder
    pool = await create_pool(database_url, size=2)
    try:
        app = mock.MagicMock(spec=WorkerApp)
        app.pool = pool
        with pytest.raises(Retry) as raised:
            await job({"app": app}, "some-id")
        assert raised.value.defer_score == int(LEASE * 1000)
    finally:
        await pool.close()
