"""The arq worker: its settings, typed context and the jobs it runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from arq import Worker
from arq.connections import RedisSettings
from arq.worker import func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config import Settings
from push import Pushers
from rooms.presence import Presence
from store import keys, queue
from store.db import create_pool
from workers.campaigns import campaign_run
from workers.chat_push import push_pending_forever
from workers.context import WorkerApp, app_of
from workers.liveness import LEASE, Renewer
from workers.notify import notify
from workers.retention import purge_forever
from workers.sweeper import sweep_forever
from workers.webhook import MAX_TRIES as WEBHOOK_TRIES
from workers.webhook import webhook

log = logging.getLogger(__name__)

MAX_JOBS = 20
#: How often arq looks for jobs when it has free slots (its default, 0.5 s, capped a worker at about
#: MAX_JOBS new jobs per half second: the limit of a campaign's many small notify jobs).
POLL_DELAY = 0.05
REDIS_RETRY = 1.0  # seconds between polls while Redis is down


async def ping(ctx: dict[str, Any]) -> str:
    """A no-op job: lets an operator (or a test) check that a worker takes jobs from the queue."""
    await app_of(ctx).pool.fetchval("SELECT 1")
    return "pong"


def shorten(token: str) -> str:
    return token if len(token) <= 12 else f"{token[:6]}…{token[-4:]}"


def outbox_sink(redis: aioredis.Redis) -> Any:
    """Where the outbox provider records pushes: a capped Redis list, and a log line."""

    async def record(entry: dict[str, Any]) -> None:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.lpush(keys.OUTBOX, json.dumps(entry, default=str))
            pipe.ltrim(keys.OUTBOX, 0, keys.OUTBOX_SIZE - 1)
            await pipe.execute()
        message = entry.get("message") or {}
        log.info(
            "outbox push",
            extra={
                "provider": entry.get("provider"),
                "token": shorten(str(entry.get("token"))),
                "title": message.get("title"),
            },
        )

    return record


class ResilientWorker(Worker):
    """arq's worker, kept alive through a Redis outage: a poll that fails waits and tries again.

    arq itself lets the ConnectionError out of ``Worker.run`` and the process ends; queued jobs
    live on in Redis or are re-enqueued from PostgreSQL by the sweeper, so waiting is enough.

    A job it starts is locked to it for ``lease`` seconds, renewed while the job runs
    (workers.liveness): a killed worker's jobs start again elsewhere within one lease.
    """

    redis_down = False

    def __init__(self, *args: Any, lease: float = LEASE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_progress_timeout_s = lease  # arq's was the largest job timeout + 10 s
        self.renewer = Renewer(
            redis=lambda: self._pool,
            holding=lambda: [job_id for job_id, task in self.tasks.items() if not task.done()],
            running=lambda: list(self.job_tasks),
            lease=lease,
        )

    async def main(self) -> None:
        renewing = asyncio.create_task(self.renewer.run())
        try:
            await super().main()
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's, less the jobs this process is still running: one whose lease lapsed while it ran
        (the process stalled) is not started again here (arq keeps one task per job id, and a
        second would end the first one's bookkeeping)."""
        mine = {job_id for job_id, task in self.tasks.items() if not task.done()}
        await super().start_jobs([job_id for job_id in job_ids if job_id.decode() not in mine])

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError) as exc:
            if not self.redis_down:
                log.warning("redis unavailable; the worker waits for it", extra={"error": str(exc)})
            self.redis_down = True
            await asyncio.sleep(REDIS_RETRY)
            return
        if self.redis_down:
            log.info("redis is back; the worker takes jobs again")
            self.redis_down = False

    async def close(self) -> None:
        """arq's ``close``, without its flaw: it gathers the job tasks it has just cancelled, so a job
        cancelled while arq was recording its end raised ``CancelledError`` out of ``close`` and the
        shutdown hook (pools, provider connections) never ran. Cancelled jobs are handed back to the
        queue by arq either way.
        """
        if not self._handle_signals:
            self.handle_sig(signal.SIGUSR1)
        if not self._pool:
            return
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await self.pool.delete(self.health_check_key)
        if self.on_shutdown:
            await self.on_shutdown(self.ctx)
        await self.pool.aclose()
        self._pool = None


def create_worker(
    settings: Settings, *, burst: bool = False, handle_signals: bool = True, lease: float = LEASE
) -> Worker:
    """An arq worker for ``settings``; pools and provider clients open in its start-up hook.

    ``lease``: seconds a killed worker's jobs wait before another worker starts them (workers.liveness).
    """
    settings.require_services()
    settings.require_push_provider()
    assert settings.database_url is not None and settings.redis_url is not None
    database_url, redis_url = settings.database_url, settings.redis_url
    background: list[asyncio.Task[None]] = []

    async def startup(ctx: dict[str, Any]) -> None:
        redis = aioredis.Redis.from_url(redis_url)
        app = WorkerApp(
            settings=settings,
            # Each running job may hold one connection for its advisory lock: room for all of them.
            pool=await create_pool(database_url, size=settings.db_pool_size + MAX_JOBS),
            # Delivery state changes are many small commits: waiting for each WAL flush was most of
            # their time at campaign rates. A PostgreSQL crash may lose the last moment of them;
            # those deliveries are then sent again with the same apns-id and collapse id (replaced,
            # not duplicated), as after a worker crash. Creating work stays synchronous.
            bookkeeping=await create_pool(
                database_url,
                size=settings.db_pool_size,
                plain_statements=True,  # single updates: nothing to reset on release
                server_settings={"synchronous_commit": "off"},
            ),
            redis=redis,
            arq=ctx["redis"],
            pushers=Pushers.from_settings(settings, outbox_sink=outbox_sink(redis)),
            presence=Presence(redis, "worker", ttl=settings.presence_ttl),
            http=aiohttp.ClientSession(),
        )
        ctx["app"] = app
        background.append(asyncio.create_task(sweep_forever(app)))
        background.append(asyncio.create_task(push_pending_forever(app)))
        if settings.retention_days is not None:
            background.append(asyncio.create_task(purge_forever(app)))
        log.info("worker started", extra={"queue": settings.queue_name, "push": settings.push_provider})

    async def shutdown(ctx: dict[str, Any]) -> None:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        app = ctx.get("app")
        if isinstance(app, WorkerApp):
            await app.pushers.close()
            await app.http.close()
            await app.redis.aclose()
            await app.pool.close()
            if app.bookkeeping is not None:
                await app.bookkeeping.close()

    timeout = settings.job_timeout
    return ResilientWorker(
        functions=[
            func(ping, name="ping"),
            func(notify, name=queue.NOTIFY, keep_result=0, max_tries=1000, timeout=timeout),
            func(webhook, name=queue.WEBHOOK, keep_result=0, max_tries=WEBHOOK_TRIES + 1, timeout=min(30.0, timeout)),
            func(campaign_run, name=queue.CAMPAIGN, keep_result=0, max_tries=10**9, timeout=timeout),
        ],
        queue_name=settings.queue_name,
        redis_settings=RedisSettings.from_dsn(redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=handle_signals,
        job_timeout=timeout,
        job_serializer=queue.serialize,
        job_deserializer=queue.deserialize,
        keep_result=60,
        max_jobs=MAX_JOBS,
        poll_delay=POLL_DELAY,
        lease=lease,
    )
