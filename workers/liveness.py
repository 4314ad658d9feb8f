"""Job leases: a killed worker's jobs run again within seconds, however long a job may run.

arq marks a job it starts with ``arq:in-progress:<job id>`` and no worker starts that job while the
key exists. arq sets the key once, for the largest job timeout plus 10 s, and deletes it when the job
ends (done, failed, ``Retry``, or cancelled by a graceful shutdown). A worker killed with ``kill -9``
deletes nothing: its job stays in the queue (the sorted set and ``arq:job:<id>``) and waited for the
key to expire, 310 s with the default ``HERALD_JOB_TIMEOUT``.

Herald's workers make that key a lease: arq sets it for ``LEASE`` seconds, and a task of the worker's
own, independent of the jobs, extends the key of every job the process is running every
``lease / 4`` seconds. A live worker keeps its jobs however long they run (the job timeout still
bounds them); a dead one stops renewing, its keys expire within one lease, and the next poll of any
worker (every 50 ms) starts the job again, from what PostgreSQL records as owed.

The renewal only extends a key that exists (PEXPIRE), never creates one: a job that has just ended
cannot be locked again by a late renewal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

import redis.asyncio as aioredis
from arq.constants import in_progress_key_prefix
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

#: Seconds a started job stays locked to its worker without a renewal: a killed worker's jobs start
#: again between ``LEASE - LEASE / 4`` and ``LEASE`` seconds after the kill.  A worker that cannot
#: renew for longer (its event loop blocked, Redis unreachable) may see a job started elsewhere too;
#: the job's PostgreSQL advisory lock keeps the second run waiting (workers.notify, workers.campaigns).
LEASE = 10.0


def in_progress_key(job_id: str) -> str:
    return in_progress_key_prefix + job_id


async def renew(redis: aioredis.Redis, job_ids: Collection[str], lease: float) -> set[str]:
    """Extend the in-progress keys of ``job_ids`` to ``lease`` seconds; return the ids with no key."""
    if not job_ids:
        return set()
    ids = list(job_ids)
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.pexpire(in_progress_key(job_id), int(lease * 1000))
        extended = await pipe.execute()
    return {job_id for job_id, ok in zip(ids, extended, strict=True) if not ok}


class Renewer:
    """Renews the leases of a worker's running jobs until cancelled.

    ``holding()`` names the jobs arq has started in this process and not finished (their keys are
    renewed); ``running()`` those whose function is running now: a missing key for one of these
    means another worker may start it (logged), while a job between its function's end and arq's
    bookkeeping may have lost its key legitimately.
    """

    def __init__(
        self,
        redis: Callable[[], aioredis.Redis | None],
        holding: Callable[[], Collection[str]],
        running: Callable[[], Collection[str]],
        lease: float = LEASE,
    ) -> None:
        self.redis = redis
        self.holding = holding
        self.running = running
        self.lease = lease
        self.every = lease / 4
        self.failing = False
        self.lost: set[str] = set()  # reported once each

    async def once(self) -> set[str]:
        """Renew now; the running jobs whose key was gone."""
        redis = self.redis()
        if redis is None:  # the worker has not connected yet
            return set()
        async with asyncio.timeout(self.every):  # a frozen Redis must not stall the cadence
            missing = await renew(redis, self.holding(), self.lease)
        return missing & set(self.running())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                lost = await self.once()
            except (RedisError, OSError, TimeoutError) as exc:
                if not self.failing:
                    log.warning("job leases not renewed", extra={"error": str(exc) or type(exc).__name__})
                self.failing = True
                continue
            if self.failing:
                log.info("job leases renewed again")
                self.failing = False
            for job_id in sorted(lost - self.lost):
                log.warning("job lease lost: another worker may run the job too", extra={"job_id": job_id})
            self.lost = (self.lost | lost) & set(self.running())
