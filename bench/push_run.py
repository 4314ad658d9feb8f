"""Push-side benchmarks: a real ``herald worker`` delivering to the fake APNs and FCM.

    python -m bench.push_run [all|push|campaign] [--smoke] [--out DIR] [--users N] [--workers N]

- ``push``: one worker process; one notification of ``count`` devices per provider, timed from the
  ``notify`` job's enqueue to the notification completed (every outcome recorded), with the worker's
  CPU from /proc. References in the same run against the same fakes: aioapns alone, Herald's FCM
  sender alone, firebase-admin's ``send_each_async`` (bench/push_clients.py).
- ``campaign``: a database of ``--users`` users made by bench/gen_users.py (cloned per run); the
  segment preview (the code of ``POST /segments/preview``) timed for three typical filters, then a
  whole unthrottled campaign to everyone, timed from launch to completed with ``--workers`` workers.

The fakes run in their own processes (tests/fakes, HTTP/2 over TLS, ``--latency`` added to every
answer). Figures go to docs/benchmarks.md beside the chat ones. Every child process and database
made here is removed at the end, even on error (``--keep-data`` keeps the generated audience).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg

from bench import gen_users, machine, procs, report
from bench.run import DEFAULT_DATABASE, DEFAULT_REDIS, JS_DIR, ROOT, _service_versions, _with_database
from store.db import connect
from store.migrate import load_migrations

HERALD = Path(sys.executable).with_name("herald")
TEAM_ID, KEY_ID, TOPIC, PROJECT = "TEAM123456", "KEY1234567", "chat.herald.bench", "herald-bench"
PUSH_TARGET = 4000.0  # notifications/s per worker process, each provider
PREVIEW_TARGET_MS = 200.0
CAMPAIGN_TARGET_S = 300.0
#: deliveries sent more than once (a retry after a failed request): 0 in a clean run
RESENT = "SELECT count(*) FROM deliveries WHERE notification_id = $1 AND attempts > 1"
CAMPAIGN_RESENT = """
SELECT count(*) FROM deliveries d JOIN notifications n ON n.id = d.notification_id
WHERE n.campaign_id = $1 AND d.attempts > 1
"""
MESSAGE = {"title": "Alice", "body": "Lunch at noon?", "data": {"room": "r1", "seq": "42"}}
CONTENT = {
    "default": {"title": "Hi {{name|there}}", "body": "Pro plans are 20% off this week"},
    "locales": {"fr": {"title": "Salut {{name|toi}}", "body": "-20 % sur Pro cette semaine"}},
}
FILTERS: dict[str, dict[str, Any]] = {
    "attributes.plan eq pro": {"field": "attributes.plan", "op": "eq", "value": "pro"},
    "active in 30 days and tag sports": {
        "all": [
            {"field": "last_active_at", "op": "within_days", "value": 30},
            {"field": "tags", "op": "contains", "value": "sports"},
        ]
    },
    "locale in (fr-FR, de-DE) and an iOS device": {
        "all": [
            {"field": "locale", "op": "in", "value": ["fr-FR", "de-DE"]},
            {"field": "device.platform", "op": "eq", "value": "ios"},
        ]
    },
}


@dataclass(frozen=True, slots=True)
class Size:
    push_count: int  # devices per provider in the timed notification
    warmup: int
    reference_count: int
    users: int  # campaign audience
    preview_runs: int
    workers: int
    latency: float
    max_wait_s: float  # per timed delivery


FULL = Size(
    push_count=40_000,
    warmup=2_000,
    reference_count=20_000,
    users=1_000_000,
    preview_runs=15,
    workers=2,
    latency=0.02,
    max_wait_s=480,
)
SMOKE = Size(
    push_count=300, warmup=50, reference_count=300, users=2_000, preview_runs=3, workers=1, latency=0.02, max_wait_s=60
)


class PushBench:
    def __init__(self, size: Size, admin_url: str, redis_url: str, tmp: Path, *, keep_data: bool = False) -> None:
        self.size = size
        self.admin_url = admin_url
        self.redis_url = redis_url
        self.tmp = tmp
        self.keep_data = keep_data
        self.run_id = uuid.uuid4().hex[:8]
        self.tls_dir = tmp / "tls"
        self.key_file = tmp / "AuthKey.p8"
        self.public_key = tmp / "AuthKey.pub.pem"
        self.service_account = tmp / "service-account.json"
        self.apns_port = 0
        self.fcm_port = 0

    # -- processes ------------------------------------------------------------------------

    @contextlib.contextmanager
    def fakes(self) -> Iterator[list[int]]:
        """Fake APNs and FCM, each in its own process; yields their pids."""
        from tests.fakes.apns import AuthKey

        key = AuthKey.generate()
        self.key_file.write_text(key.p8)
        self.public_key.write_text(key.public_pem)
        latency = str(self.size.latency)
        apns = [sys.executable, "-m", "tests.fakes.apns", "--port", "0", "--latency", latency]
        apns += ["--team-id", TEAM_ID, "--key-id", KEY_ID, "--public-key", str(self.public_key)]
        apns += ["--tls-dir", str(self.tls_dir)]
        fcm = [sys.executable, "-m", "tests.fakes.fcm", "--port", "0", "--latency", latency, "--project", PROJECT]
        fcm += ["--tls-dir", str(self.tls_dir), "--service-account", str(self.service_account)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with contextlib.ExitStack() as stack:
            pids = []
            for argv, name in ((apns, "apns"), (fcm, "fcm")):  # one after the other: they share the TLS dir
                log = self.tmp / f"fake-{name}.log"
                proc = stack.enter_context(procs.started(argv, env=env, cwd=ROOT, log=log))
                assert proc.stdout is not None
                line = proc.stdout.readline()
                if not line.strip():
                    raise RuntimeError(f"fake {name} did not start: {log.read_text()[-2000:]}")
                setattr(self, f"{name}_port", int(line))
                pids.append(proc.pid)
            yield pids

    def worker_env(self, database_url: str, queue: str) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            "REDIS_URL": self.redis_url,
            "HERALD_QUEUE_NAME": queue,
            "HERALD_LOG_LEVEL": "WARNING",
            "HERALD_APNS_KEY_FILE": str(self.key_file),
            "HERALD_APNS_KEY_ID": KEY_ID,
            "HERALD_APNS_TEAM_ID": TEAM_ID,
            "HERALD_APNS_TOPIC": TOPIC,
            "HERALD_APNS_HOST": f"127.0.0.1:{self.apns_port}",
            "HERALD_FCM_CREDENTIALS_FILE": str(self.service_account),
            "HERALD_FCM_ENDPOINT": f"https://127.0.0.1:{self.fcm_port}",
            "HERALD_PUSH_CA_FILE": str(self.tls_dir / "ca.pem"),
        }

    @contextlib.contextmanager
    def workers(self, database_url: str, count: int) -> Iterator[tuple[str, list[int]]]:
        """``count`` ``herald worker`` processes on a queue of their own; yields (queue, pids) once all take jobs."""
        queue = f"herald-bench-{self.run_id}-{uuid.uuid4().hex[:6]}"
        env = self.worker_env(database_url, queue)
        with contextlib.ExitStack() as stack:
            pids = []
            for i in range(count):
                log = self.tmp / f"worker-{queue}-{i}.log"
                proc = stack.enter_context(procs.started([str(HERALD), "worker"], env=env, cwd=ROOT, log=log))
                pids.append(proc.pid)
            asyncio.run(self._ping(queue, count))
            yield queue, pids

    async def _ping(self, queue_name: str, count: int) -> None:
        from store import queue

        arq = await queue.connect(self.redis_url)
        try:
            jobs = [await arq.enqueue_job("ping", _queue_name=queue_name) for _ in range(count * 2)]
            for job in jobs:
                assert job is not None
                await job.result(timeout=60)
        finally:
            await arq.aclose()

    # -- databases ------------------------------------------------------------------------

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    @contextlib.contextmanager
    def database(self, name: str, template: str | None = None) -> Iterator[str]:
        """A database for one run (empty and migrated, or cloned from ``template``); dropped on exit."""
        from store.db import connect
        from store.migrate import migrate

        async def create() -> None:
            await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await self._admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
            if template is None:
                conn = await connect(_with_database(self.admin_url, name))
                try:
                    await migrate(conn)
                finally:
                    await conn.close()

        asyncio.run(create())
        try:
            yield _with_database(self.admin_url, name)
        finally:
            asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    # -- scenario 1: push throughput ------------------------------------------------------

    def push(self) -> dict[str, Any]:
        n, warm = self.size.push_count, self.size.warmup
        runs: list[dict[str, Any]] = []
        references: list[dict[str, Any]] = []
        with self.fakes() as fake_pids, self.database(f"herald_bench_push_{self.run_id}") as db:
            asyncio.run(_seed_push(db, n + warm))
            with self.workers(db, 1) as (queue, pids):
                for provider in ("apns", "fcm"):
                    warmup = range(0, warm)  # connections, JWT, OAuth token
                    asyncio.run(self.deliver(db, queue, pids, fake_pids, provider, warmup))
                    result = asyncio.run(self.deliver(db, queue, pids, fake_pids, provider, range(warm, warm + n)))
                    runs.append(result)
                    _progress(f"herald {provider}: {result['per_s']:,.0f}/s, {result['cpu_us']:,.0f} µs CPU each")
            references = self.references(fake_pids)
        return {
            "size": {"count": n, "latency_ms": self.size.latency * 1000, "workers": 1},
            "runs": runs,
            "references": references,
        }

    async def deliver(
        self, db: str, queue_name: str, pids: list[int], fake_pids: list[int], provider: str, users: range
    ) -> dict[str, Any]:
        """One notification to ``users`` (one ``provider`` device each), timed from the enqueue to completed."""
        from store import notifications, queue

        conn = await connect(db)
        arq = await queue.connect(self.redis_url)
        try:
            target = {"user_ids": [f"{provider}{i:07d}" for i in users]}
            row, _ = await notifications.insert(
                conn, api_key_id=None, idempotency_key=None, campaign_id=None, target=target, payload=MESSAGE
            )
            nid = str(row["id"])
            cpu0, machine0, fakes0 = procs.sample(pids), procs.machine_busy(), procs.sample(fake_pids)
            await queue.enqueue_notify(arq, queue_name, nid)
            deadline = time.monotonic() + self.size.max_wait_s
            while await conn.fetchval("SELECT status FROM notifications WHERE id = $1", nid) != "completed":
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
            cpu1, machine1, fakes1 = procs.sample(pids), procs.machine_busy(), procs.sample(fake_pids)
            counts = await notifications.counts(conn, nid)
            resent = await conn.fetchval(RESENT, nid)
        finally:
            await arq.aclose()
            await conn.close()
        wall = cpu1.at - cpu0.at
        delivered = counts.get("delivered", 0)
        return {
            "provider": provider,
            "notifications": len(users),
            "delivered": delivered,
            "counts": counts,
            "resent": resent,
            "wall_s": round(wall, 3),
            "per_s": delivered / wall if wall > 0 else 0.0,
            "cpu_us": (cpu1.cpu_s - cpu0.cpu_s) / max(delivered, 1) * 1e6,
            "worker_cpu": procs.cpu_share(cpu0, cpu1),
            "fakes_cpu": procs.cpu_share(fakes0, fakes1),
            "machine_cpu": procs.cpu_share(machine0, machine1),
        }

    def references(self, fake_pids: list[int]) -> list[dict[str, Any]]:
        from bench import push_clients

        count = self.size.reference_count
        common = [f"--tls-dir={self.tls_dir}", f"--count={count}"]
        fcm = [*common, f"--port={self.fcm_port}", f"--service-account={self.service_account}"]
        apns = [*common, f"--port={self.apns_port}", f"--service-account={self.service_account}"]
        apns += [f"--apns-key={self.key_file}", f"--team-id={TEAM_ID}", f"--key-id={KEY_ID}"]
        plan = [
            ("apns", ["--client=aioapns", "--in-flight=200"], apns),
            ("fcm", ["--client=h2", "--in-flight=500"], fcm),
            ("fcm", ["--client=firebase-admin", "--batch=500"], fcm),
        ]
        out = []
        for provider, extra, args in plan:
            result = push_clients.run_client(extra, args)
            result["provider"] = provider
            out.append(result)
            _progress(f"reference {result['client']}: {result['sends_per_s']:,}/s")
        return out

    # -- scenario 2: a campaign to a million users ----------------------------------------

    def campaign(self) -> dict[str, Any]:
        users = self.size.users
        source = f"herald_bench_users_{users}"
        made = asyncio.run(self._audience(source, users))
        try:
            with self.fakes(), self.database(f"herald_bench_campaign_{self.run_id}", template=source) as db:
                previews = asyncio.run(self.previews(db))
                with self.workers(db, self.size.workers) as (queue, pids):
                    delivery = asyncio.run(self.run_campaign(db, queue, pids))
        finally:
            if not self.keep_data:
                asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{source}" WITH (FORCE)'))
        return {
            "size": {"users": users, "latency_ms": self.size.latency * 1000, "workers": self.size.workers},
            "audience": made,
            "previews": previews,
            "delivery": delivery,
        }

    async def _audience(self, name: str, users: int) -> dict[str, Any]:
        """The generated audience: reused when a database of that name is complete, else made now."""
        with contextlib.suppress(asyncpg.InvalidCatalogNameError):
            conn = await asyncpg.connect(_with_database(self.admin_url, name))
            try:
                have = await conn.fetchval("SELECT count(*) FROM users")
                devices = await conn.fetch("SELECT provider, count(*) AS n FROM devices GROUP BY 1 ORDER BY 1")
                indexed = await conn.fetchval("SELECT count(*) FROM pg_indexes WHERE indexname = 'users_attributes'")
                version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
            finally:
                await conn.close()
            if have == users and indexed and version == load_migrations()[-1].version:
                return {"users": users, "devices": {r["provider"]: int(r["n"]) for r in devices}, "reused": True}
        made = await gen_users.generate(self.admin_url, name, users)
        _progress(f"generated {users:,} users in {made['total_s']} s")
        return made

    async def previews(self, db: str) -> list[dict[str, Any]]:
        from campaigns.segments import audience
        from store.db import create_pool

        pool = await create_pool(db, size=4)
        out = []
        try:
            for label, tree in FILTERS.items():
                times = []
                figures: dict[str, Any] = {}
                for i in range(self.size.preview_runs + 1):
                    start = time.perf_counter()
                    figures = await audience(pool, tree, 10)
                    if i:  # the first one warms the caches
                        times.append((time.perf_counter() - start) * 1000)
                times.sort()
                out.append(
                    {
                        "filter": label,
                        "tree": tree,
                        "users": figures["users"],
                        "devices": figures["devices"],
                        "runs": len(times),
                        "p50_ms": statistics.median(times),
                        "p99_ms": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
                    }
                )
                _progress(f"preview {label}: p50 {out[-1]['p50_ms']:.0f} ms")
        finally:
            await pool.close()
        return out

    async def run_campaign(self, db: str, queue_name: str, pids: list[int]) -> dict[str, Any]:
        from store import campaign_runs, campaigns, queue

        conn = await connect(db)
        arq = await queue.connect(self.redis_url)
        try:
            fields = {
                "name": "bench",
                "segment_id": None,
                "filter": {"all": []},
                "content": CONTENT,
                "schedule": {"kind": "now", "fallback_timezone": "UTC"},
                "throttle_per_minute": None,
                "frequency_cap": None,
                "quiet_hours": None,
            }
            row = await campaigns.insert(conn, fields)
            cid = str(row["id"])
            now = await conn.fetchval("SELECT now()")
            await campaigns.schedule(conn, cid, fields["schedule"], fields["filter"], now)
            cpu0, machine0 = procs.sample(pids), procs.machine_busy()
            await queue.enqueue_campaign(arq, queue_name, cid)
            deadline = time.monotonic() + self.size.max_wait_s
            finished = False
            while time.monotonic() < deadline:
                if await campaigns.status(conn, cid) == "completed":
                    finished = True
                    break
                await asyncio.sleep(0.2)
            cpu1, machine1 = procs.sample(pids), procs.machine_busy()
            summary = await campaign_runs.summary(conn, cid)
            notifications = await conn.fetchval("SELECT count(*) FROM notifications WHERE campaign_id = $1", cid)
            resent = await conn.fetchval(CAMPAIGN_RESENT, cid)
        finally:
            await arq.aclose()
            await conn.close()
        wall = cpu1.at - cpu0.at
        delivered = summary["delivered"]
        return {
            "completed": finished,
            "wall_s": round(wall, 1),
            "users_sent": summary["sent"],
            "users_skipped": summary["skipped"],
            "delivered": delivered,
            "pending": summary["pending"],
            "notifications": notifications,
            "resent": resent,
            "per_s": delivered / wall if wall > 0 else 0.0,
            "cpu_us": (cpu1.cpu_s - cpu0.cpu_s) / max(delivered, 1) * 1e6,
            "workers_cpu": procs.cpu_share(cpu0, cpu1),
            "machine_cpu": procs.cpu_share(machine0, machine1),
        }


async def _seed_push(db: str, n: int) -> None:
    """``n`` users with one APNs device each (apns0000000…) and ``n`` with one FCM device (fcm0000000…)."""
    conn = await asyncpg.connect(db)
    try:
        for provider, platform in (("apns", "ios"), ("fcm", "android")):
            ids = [f"{provider}{i:07d}" for i in range(n)]
            await conn.copy_records_to_table("users", records=[(u,) for u in ids], columns=["id"])
            devices = [(gen_users.device_token(provider, i, 0), provider, platform, u) for i, u in enumerate(ids)]
            await conn.copy_records_to_table(
                "devices", records=devices, columns=["token", "provider", "platform", "user_id"]
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push_run", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", default="all", choices=("all", "push", "campaign"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the harness runs, measures nothing")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where benchmarks.md and .json go")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--users", type=int, help="campaign audience size")
    parser.add_argument("--workers", type=int, help="campaign: worker processes")
    parser.add_argument("--count", type=int, help="push: devices per provider")
    parser.add_argument("--keep-data", action="store_true", help="keep the generated audience for the next run")
    args = parser.parse_args(argv)

    size = SMOKE if args.smoke else FULL
    if args.users:
        size = replace(size, users=args.users)
    if args.workers:
        size = replace(size, workers=args.workers)
    if args.count:
        size = replace(size, push_count=args.count, reference_count=args.count)
    scenarios = ("push", "campaign") if args.scenario == "all" else (args.scenario,)
    pg_version, redis_version = _service_versions(args.database_url, args.redis_url)
    info = machine.describe(JS_DIR, pg_version, redis_version)
    info["python_packages"] = {p: machine._py_version(p) for p in machine.PUSH_PACKAGES}
    with tempfile.TemporaryDirectory(prefix="herald-bench-push-") as tmp:
        bench = PushBench(size, args.database_url, args.redis_url, Path(tmp), keep_data=args.keep_data)
        results = report.run_scenarios(bench, scenarios, info, args.smoke)
    print(report.table(results))
    report.write(args.out, results, asdict(size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
