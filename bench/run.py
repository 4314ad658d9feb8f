"""Run the chat benchmarks: Herald against the Node.js Socket.IO reference, same load generator.

    python -m bench.run [all|fanout|persisted|idle] [--smoke] [--out DIR]

Each scenario seeds a fresh PostgreSQL database (cloned per server from a seeded template), starts
the servers one after the other on loopback, drives each with the same Node.js generator
(bench/loadgen), samples the servers' CPU and RSS from /proc, prints a table, and writes the
figures with the machine and date to ``docs/benchmarks.md`` (and ``docs/benchmarks.json``, from
which a later run of another scenario rebuilds the page).  ``--smoke`` is a tiny size of every
scenario that the test suite runs so the harness never rots; its figures mean nothing.
Everything is bounded in time, and every child process is killed at the end, even on error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg

from bench import machine, procs, report

ROOT = Path(__file__).resolve().parents[1]
JS_DIR = ROOT / "bench"
LOADGEN = ROOT / "bench" / "loadgen"
REFERENCE = ROOT / "bench" / "reference" / "server.mjs"
HERALD = Path(sys.executable).with_name("herald")
SCENARIOS = ("fanout", "persisted", "idle")
DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True, slots=True)
class Size:
    fanout_subscribers: int
    fanout_rates: tuple[int, ...]  # publisher messages/s; deliveries/s = rate x subscribers
    fanout_fixed_rate: int
    fanout_herald_procs: tuple[int, ...]
    persisted_clients: int
    persisted_herald_procs: tuple[int, ...]
    persisted_rates: tuple[int, ...]  # total messages/s over all clients
    idle_connections: int
    step_s: float
    warmup_s: float
    drain_s: float
    settle_s: float
    idle_window_s: float
    max_run_s: float


FULL = Size(
    fanout_subscribers=1000,
    fanout_rates=(20, 40, 60, 80, 100, 120, 160, 200),
    fanout_fixed_rate=40,
    fanout_herald_procs=(1, 2),
    persisted_clients=200,
    persisted_herald_procs=(1, 2),
    persisted_rates=(1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000),
    idle_connections=10_000,
    step_s=5.0,
    warmup_s=2.0,
    drain_s=2.0,
    settle_s=3.0,
    idle_window_s=10.0,
    max_run_s=240.0,
)
SMOKE = Size(
    fanout_subscribers=20,
    fanout_rates=(5, 10),
    fanout_fixed_rate=10,
    fanout_herald_procs=(1,),
    persisted_clients=20,
    persisted_herald_procs=(1,),
    persisted_rates=(20, 40),
    idle_connections=20,
    step_s=1.0,
    warmup_s=0.3,
    drain_s=1.0,
    settle_s=0.3,
    idle_window_s=1.0,
    max_run_s=40.0,
)


class Bench:
    def __init__(self, size: Size, admin_url: str, redis_url: str, logs: Path) -> None:
        self.size = size
        self.admin_url = admin_url
        self.redis_url = redis_url
        self.logs = logs
        self.secret = secrets.token_urlsafe(32)
        self.run_id = uuid.uuid4().hex[:8]

    # -- databases ------------------------------------------------------------------------

    @contextlib.contextmanager
    def template(self, scenario: str, seed: Callable[[asyncpg.Connection], Any]) -> Iterator[str]:
        """A migrated, seeded database to clone per server; dropped on exit with its clones."""
        name = f"herald_bench_{scenario}_{self.run_id}"
        clones: list[str] = []

        async def build() -> None:
            from store.db import connect
            from store.migrate import migrate

            await self._admin(f'CREATE DATABASE "{name}"')
            conn = await connect(_with_database(self.admin_url, name))
            try:
                await migrate(conn)
                await seed(conn)
            finally:
                await conn.close()

        self._clones = clones
        try:
            asyncio.run(build())
            yield name
        finally:

            async def drop() -> None:
                for db in [*clones, name]:
                    await self._admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')

            asyncio.run(drop())

    def clone(self, template: str) -> str:
        name = f"{template}_{len(self._clones)}"
        self._clones.append(name)
        asyncio.run(self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        return _with_database(self.admin_url, name)

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # -- servers --------------------------------------------------------------------------

    @contextlib.contextmanager
    def herald(self, database_url: str, count: int) -> Iterator[tuple[list[str], list[int]]]:
        """``count`` Herald web processes sharing one Redis channel; yields (base URLs, pids)."""
        channel = f"herald-bench-{self.run_id}-{uuid.uuid4().hex[:6]}"
        with contextlib.ExitStack() as stack:
            urls, pids = [], []
            for i in range(count):
                port = procs.free_port()
                env = {
                    **os.environ,
                    "PYTHONPATH": str(ROOT),  # this tree's Herald, whatever the venv was installed from
                    "PORT": str(port),
                    "HERALD_HOST": "127.0.0.1",
                    "DATABASE_URL": database_url,
                    "REDIS_URL": self.redis_url,
                    "HERALD_JWT_SECRET": self.secret,
                    "HERALD_SOCKETIO_CHANNEL": channel,
                    "HERALD_LOG_LEVEL": "WARNING",
                    # The benchmark measures the server, not the flood limits per user and per
                    # address (every client here comes from 127.0.0.1: connecting 10,000 of them
                    # faster than 200 a second had some refused with rate_limited).
                    "HERALD_MESSAGE_RATE": "1000000",
                    "HERALD_MESSAGE_BURST": "100000",
                    "HERALD_ADDRESS_RATE": "1000000",
                }
                log = self.logs / f"herald-{channel}-{i}.log"
                proc = stack.enter_context(procs.started([str(HERALD), "web"], env=env, cwd=ROOT, log=log))
                procs.wait_http(f"http://127.0.0.1:{port}/healthz", proc, 30, log)
                urls.append(f"http://127.0.0.1:{port}")
                pids.append(proc.pid)
            time.sleep(0.3)  # let each node's Redis subscription settle
            yield urls, pids

    @contextlib.contextmanager
    def reference(self, database_url: str) -> Iterator[tuple[list[str], list[int]]]:
        port = procs.free_port()
        env = {**os.environ, "PORT": str(port), "DATABASE_URL": database_url, "BENCH_JWT_SECRET": self.secret}
        log = self.logs / f"reference-{port}.log"
        with procs.started(["node", str(REFERENCE)], env=env, cwd=JS_DIR, log=log) as proc:
            url = f"http://127.0.0.1:{port}"
            procs.wait_http(f"{url}/socket.io/?EIO=4&transport=polling", proc, 30, log)
            yield [url], [proc.pid]

    # -- the generator --------------------------------------------------------------------

    def generate(
        self,
        script: str,
        args: dict[str, Any],
        server_pids: list[int],
        on_connected: Callable[[subprocess.Popen[str]], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Run one generator; per step, the servers' CPU is sampled between its start and end lines."""
        limit = self.size.max_run_s
        argv = ["node", str(LOADGEN / script), json.dumps({**args, "max_run_s": limit})]
        log = self.logs / f"{script}-{uuid.uuid4().hex[:6]}.log"
        steps: dict[int, tuple[procs.Sample, procs.Sample, tuple[float, dict[str, float]]]] = {}
        server_cpu: dict[int, float] = {}
        machine_cpu: dict[int, float] = {}
        cpu_split: dict[int, dict[str, float]] = {}
        extra: dict[str, Any] = {}
        result: dict[str, Any] | None = None
        with procs.started(argv, env=dict(os.environ), cwd=JS_DIR, log=log, stdin=True) as proc:
            killer = threading.Timer(limit + 15, procs.stop, args=(proc,))
            killer.start()
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    event = json.loads(line)
                    kind = event.get("event")
                    if kind == "step_start":
                        split = (time.monotonic(), procs.cpu_by_kind(server_pids, proc.pid))
                        steps[event["step"]] = (procs.sample(server_pids), procs.machine_busy(), split)
                    elif kind == "step_end":
                        server0, machine0, split0 = steps[event["step"]]
                        server_cpu[event["step"]] = procs.cpu_share(server0, procs.sample(server_pids))
                        machine_cpu[event["step"]] = procs.cpu_share(machine0, procs.machine_busy())
                        split1 = (time.monotonic(), procs.cpu_by_kind(server_pids, proc.pid))
                        cpu_split[event["step"]] = procs.split_share(split0, split1)
                    elif kind == "connected" and on_connected is not None:
                        extra = on_connected(proc)
                    elif kind == "result":
                        result = event
                    elif kind == "error":
                        raise RuntimeError(f"{script}: {event['error']}")
            finally:
                killer.cancel()
        if result is None:
            raise RuntimeError(f"{script} ended without a result: {log.read_text()[-2000:]}")
        for step in [*result.get("ramp", []), *([result["fixed"]] if result.get("fixed") else [])]:
            step["server_cpu"] = server_cpu.get(step["step"])
            step["machine_cpu"] = machine_cpu.get(step["step"])
            step["cpu_split"] = cpu_split.get(step["step"])
        return {**result, **extra}

    # -- scenarios ------------------------------------------------------------------------

    def fanout(self) -> dict[str, Any]:
        n = self.size.fanout_subscribers
        subscribers = [f"s{i}" for i in range(n)]

        async def seed(conn: asyncpg.Connection) -> None:
            await _seed_rooms(conn, [("fan", "public", [*subscribers, "pub"])])

        gen_args = {
            "secret": self.secret,
            "room": "fan",
            "subscribers": subscribers,
            "publisher": "pub",
            "rates": list(self.size.fanout_rates),
            "fixed_rate": self.size.fanout_fixed_rate,
            "step_s": self.size.step_s,
            "warmup_s": self.size.warmup_s,
            "drain_s": self.size.drain_s,
            "payload_bytes": 100,
            "connect_concurrency": 50,
        }
        runs = []
        with self.template("fanout", seed) as tpl:
            for count in self.size.fanout_herald_procs:
                with self.herald(self.clone(tpl), count) as (urls, pids):
                    result = self.generate("fanout.mjs", {**gen_args, "urls": urls}, pids)
                    runs.append({"server": "herald", "procs": count, **result})
                _progress(runs[-1])
            with self.reference(self.clone(tpl)) as (urls, pids):
                result = self.generate("fanout.mjs", {**gen_args, "urls": urls}, pids)
                runs.append({"server": "reference", "procs": 1, **result})
            _progress(runs[-1])
        return {"size": {"subscribers": n, "payload_bytes": 100, "step_s": self.size.step_s}, "runs": runs}

    def persisted(self) -> dict[str, Any]:
        n = self.size.persisted_clients
        clients = [{"user": f"c{i}", "room": f"pr{i}"} for i in range(n)]

        async def seed(conn: asyncpg.Connection) -> None:
            await _seed_rooms(conn, [(c["room"], "private", [c["user"]]) for c in clients])

        gen_args = {
            "secret": self.secret,
            "clients": clients,
            "rates": list(self.size.persisted_rates),
            "step_s": self.size.step_s,
            "warmup_s": self.size.warmup_s,
            "drain_s": self.size.drain_s,
            "payload_bytes": 100,
            "connect_concurrency": 50,
        }
        runs = []
        with self.template("persisted", seed) as tpl:
            cluster = asyncio.run(self._cluster_state())
            servers: list[tuple[str, int]] = [("herald", count) for count in self.size.persisted_herald_procs]
            for server, count in [*servers, ("reference", 1)]:
                database = self.clone(tpl)
                start = self.herald(database, count) if server == "herald" else self.reference(database)
                with start as (urls, pids):
                    result = self.generate("persisted.mjs", {**gen_args, "urls": urls}, pids)
                result["database"] = asyncio.run(self._database_state(database))
                runs.append({"server": server, "procs": count, **result})
                _progress(runs[-1])
        size = {"clients": n, "payload_bytes": 100, "step_s": self.size.step_s}
        return {"size": size, "runs": runs, "database_start": cluster}

    async def _cluster_state(self) -> dict[str, Any]:
        """What the PostgreSQL cluster held when a scenario started (a figure that does not reproduce
        may come from a cluster left large by earlier runs)."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            row = await conn.fetchrow(
                "SELECT count(*) AS databases, sum(pg_database_size(datname)) AS bytes FROM pg_database"
                " WHERE datallowconn"
            )
            buffers = await conn.fetchval("SELECT setting FROM pg_settings WHERE name = 'shared_buffers'")
        finally:
            await conn.close()
        assert row is not None
        return {"databases": row["databases"], "bytes": int(row["bytes"] or 0), "shared_buffers_pages": int(buffers)}

    async def _database_state(self, url: str) -> dict[str, Any]:
        """The bench database after a run: a fresh clone of the seeded template (no messages) before it."""
        conn = await asyncpg.connect(url)
        try:
            row = await conn.fetchrow(
                "SELECT n_live_tup AS rows, n_dead_tup AS dead, autovacuum_count AS autovacuums,"
                " autoanalyze_count AS autoanalyzes, pg_total_relation_size(relid) AS bytes"
                " FROM pg_stat_user_tables WHERE relname = 'messages'"
            )
        finally:
            await conn.close()
        return dict(row) if row is not None else {}

    def idle(self) -> dict[str, Any]:
        n = self.size.idle_connections
        users = [f"i{i}" for i in range(n)]

        async def seed(conn: asyncpg.Connection) -> None:
            await _seed_rooms(conn, [(f"ir{i}", "private", [u]) for i, u in enumerate(users)])

        gen_args = {"secret": self.secret, "users": users, "connect_concurrency": 100, "hold_s": self.size.max_run_s}
        runs = []
        with self.template("idle", seed) as tpl:
            for server, start in (("herald", lambda db: self.herald(db, 1)), ("reference", self.reference)):
                with start(self.clone(tpl)) as (urls, pids):
                    time.sleep(self.size.settle_s)
                    before = procs.sample(pids)

                    def measure(
                        proc: subprocess.Popen[str], pids: list[int] = pids, before: procs.Sample = before
                    ) -> dict[str, Any]:
                        time.sleep(self.size.settle_s)
                        held, machine_held = procs.sample(pids), procs.machine_busy()
                        time.sleep(self.size.idle_window_s)
                        after, machine_after = procs.sample(pids), procs.machine_busy()
                        assert proc.stdin is not None
                        proc.stdin.write("done\n")
                        proc.stdin.flush()
                        return {
                            "rss_before": before.rss,
                            "rss_after": after.rss,
                            "server_cpu_idle": procs.cpu_share(held, after),
                            "machine_cpu_idle": procs.cpu_share(machine_held, machine_after),
                        }

                    result = self.generate("idle.mjs", {**gen_args, "urls": urls}, pids, on_connected=measure)
                    opened = max(result["clients"], 1)
                    result["bytes_per_connection"] = (result["rss_after"] - result["rss_before"]) / opened
                    runs.append({"server": server, "procs": 1, **result})
                _progress(runs[-1])
        return {"size": {"connections": n, "idle_window_s": self.size.idle_window_s}, "runs": runs}


async def _seed_rooms(conn: asyncpg.Connection, rooms: list[tuple[str, str, list[str]]]) -> None:
    users = sorted({u for _, _, members in rooms for u in members})
    await conn.execute("INSERT INTO users (id) SELECT unnest($1::text[])", users)
    await conn.execute(
        "INSERT INTO rooms (id, kind, name) SELECT r, k, r FROM unnest($1::text[], $2::text[]) AS t(r, k)",
        [r for r, _, _ in rooms],
        [k for _, k, _ in rooms],
    )
    pairs = [(r, u) for r, _, members in rooms for u in members]
    await conn.execute(
        "INSERT INTO members (room_id, user_id, role)"
        " SELECT r, u, 'owner' FROM unnest($1::text[], $2::text[]) AS t(r, u)",
        [r for r, _ in pairs],
        [u for _, u in pairs],
    )


def _with_database(url: str, database: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def _progress(run: dict[str, Any]) -> None:
    print(f"  done: {run['server']} x{run['procs']}", file=sys.stderr, flush=True)


def _service_versions(admin_url: str, redis_url: str) -> tuple[str, str]:
    async def fetch() -> tuple[str, str]:
        import redis.asyncio as aioredis

        conn = await asyncpg.connect(admin_url)
        try:
            pg = str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
        client = aioredis.Redis.from_url(redis_url)
        try:
            info = await client.info("server")
        finally:
            await client.aclose()
        return pg, str(info.get("redis_version", "?"))

    return asyncio.run(fetch())


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", default="all", choices=("all", *SCENARIOS))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the harness runs, measures nothing")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where benchmarks.md and .json go")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--herald-procs", help="fan-out and persisted: Herald process counts to try, e.g. 1,2")
    parser.add_argument("--rates", help="rates of the ramp (fan-out: publisher messages/s; persisted: total)")
    args = parser.parse_args(argv)

    size = SMOKE if args.smoke else FULL
    if args.herald_procs:
        counts = tuple(int(n) for n in args.herald_procs.split(","))
        size = replace(size, fanout_herald_procs=counts, persisted_herald_procs=counts)
    if args.rates:
        rates = tuple(int(n) for n in args.rates.split(","))
        size = replace(size, fanout_rates=rates, fanout_fixed_rate=rates[0], persisted_rates=rates)
    fds = raise_fd_limit()
    if fds < size.idle_connections + 1000:
        print(f"bench: open-file limit {fds} is too low for {size.idle_connections} connections", file=sys.stderr)
        return 2
    scenarios = SCENARIOS if args.scenario == "all" else (args.scenario,)
    pg_version, redis_version = _service_versions(args.database_url, args.redis_url)
    info = machine.describe(JS_DIR, pg_version, redis_version)
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as tmp:
        bench = Bench(size, args.database_url, args.redis_url, Path(tmp))
        results = report.run_scenarios(bench, scenarios, info, args.smoke)
    print(report.table(results))
    report.write(args.out, results, asdict(size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
