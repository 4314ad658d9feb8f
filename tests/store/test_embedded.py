"""store.embedded: the private PostgreSQL and Redis that `herald up` starts under ./.herald/."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from store.embedded import EmbeddedError, ServiceUrls, running_services, start_embedded

pytestmark = pytest.mark.embedded

REPO = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (an orphaned postmaster may stay a zombie
    until init reaps it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()
    return state not in ("Z", "X")


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


async def _pg(url: str, *statements: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        result: Any = None
        for statement in statements:
            result = await conn.fetchval(statement)
        return result
    finally:
        await conn.close()


def pg(url: str, *statements: str) -> Any:
    return asyncio.run(_pg(url, *statements))


def test_start_use_stop_and_restart_keeps_data(tmp_path: Path) -> None:
    data_dir = tmp_path / ".herald"

    services = start_embedded(data_dir)
    try:
        urls = services.urls
        assert urls.database_url.startswith("postgresql://postgres@/postgres?host=")
        assert urls.redis_url.startswith("redis://127.0.0.1:")
        assert pg(urls.database_url, "SELECT 1") == 1
        pg(urls.database_url, "CREATE TABLE kept (v text)", "INSERT INTO kept VALUES ('first run')")
        client = redis.Redis.from_url(urls.redis_url)
        assert client.ping()
        client.set("herald:test:kept", "first run")
        client.close()

        assert running_services(data_dir) == urls
        recorded = json.loads((data_dir / "services.json").read_text())
        assert recorded["owner_pid"] == os.getpid()
        assert (recorded["database_url"], recorded["redis_url"]) == (urls.database_url, urls.redis_url)
        pg_pid, redis_pid = services.postgres_pid, services.redis_pid
        assert _alive(pg_pid) and _alive(redis_pid)
    finally:
        services.stop()

    assert services.stopped
    assert _wait_dead(pg_pid, 0.5), "postgres still running after stop()"
    assert _wait_dead(redis_pid, 0.5), "redis-server still running after stop()"
    assert running_services(data_dir) is None
    assert not (data_dir / "services.json").exists()
    services.stop()  # idempotent

    with start_embedded(data_dir) as again:
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        assert pg(again.urls.database_url, "SELECT v FROM kept") == "first run"
        client = redis.Redis.from_url(again.urls.redis_url)
        assert client.get("herald:test:kept") == b"first run"
        client.close()
        assert running_services(data_dir) == again.urls
    assert running_services(data_dir) is None
    assert not _alive(again.postgres_pid) and not _alive(again.redis_pid)


def test_second_start_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    with start_embedded(tmp_path) as services:
        with pytest.raises(EmbeddedError, match=rf"already running in this folder \(pid {os.getpid()}\)"):
            start_embedded(tmp_path)
        # The refused start touched nothing: the first services still answer.
        assert pg(services.urls.database_url, "SELECT 1") == 1
        assert running_services(tmp_path) == services.urls


def test_running_services_is_none_without_a_live_owner(tmp_path: Path) -> None:
    assert running_services(tmp_path) is None
    (tmp_path / "services.json").write_text(
        json.dumps(
            {
                "database_url": "postgresql://postgres@/postgres?host=/nonexistent",
                "redis_url": "redis://127.0.0.1:1/0",
                "owner_pid": 999_999_999,
                "owner_start": "0",
                "pg_socket_dir": "/nonexistent",
                "redis_port": 1,
            }
        )
    )
    assert running_services(tmp_path) is None
    (tmp_path / "services.json").write_text("{not json")
    assert running_services(tmp_path) is None


OWNER_SCRIPT = """
import json, sys, time
from pathlib import Path
from store.embedded import start_embedded
services = start_embedded(Path(sys.argv[1]))
print(json.dumps({"pg": services.postgres_pid, "redis": services.redis_pid,
                  "db": services.urls.database_url}), flush=True)
time.sleep(600)
"""


def _start_owner(data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """A separate process that starts the services and then hangs, to be killed with SIGKILL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line, f"the owner process failed (exit {owner.wait()})"
    return owner, json.loads(line)


def test_start_after_kill_9_of_everything(tmp_path: Path) -> None:
    owner, pids = _start_owner(tmp_path)
    pg(pids["db"], "CREATE TABLE survived (v int)")
    assert running_services(tmp_path) is not None
    # kill -9 the owner, the postmaster and its children (pg_ctl made it a session and group leader)
    # and redis (its own session too): stale services.json, postmaster.pid, socket lock and redis.pid.
    owner.kill()
    owner.wait()
    os.killpg(pids["pg"], signal.SIGKILL)
    os.killpg(pids["redis"], signal.SIGKILL)
    assert _wait_dead(pids["pg"]) and _wait_dead(pids["redis"])
    assert (tmp_path / "postgres" / "postmaster.pid").exists()
    assert running_services(tmp_path) is None

    started = time.monotonic()
    with start_embedded(tmp_path) as services:
        elapsed = time.monotonic() - started
        assert pg(services.urls.database_url, "SELECT count(*) FROM survived") == 0
        assert redis.Redis.from_url(services.urls.redis_url).ping()
    assert elapsed < 30, f"restart after a crash took {elapsed:.1f}s (PostgreSQL ran crash recovery)"


def test_start_after_kill_9_of_the_owner_stops_its_leftovers(tmp_path: Path) -> None:
    owner, pids = _start_owner(tmp_path)
    owner.kill()
    owner.wait()
    # Its PostgreSQL and Redis live on without an owner: not "running" for other commands...
    assert _alive(pids["pg"]) and _alive(pids["redis"])
    assert running_services(tmp_path) is None
    # ...and the next start stops them instead of running a second server on the same files.
    with start_embedded(tmp_path) as services:
        assert not _alive(pids["pg"]) and not _alive(pids["redis"])
        assert services.postgres_pid != pids["pg"]
        assert pg(services.urls.database_url, "SELECT 1") == 1


def test_long_data_dir_puts_the_socket_in_a_short_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / ("d" * 60) / ("e" * 40)
    with start_embedded(data_dir) as services:
        socket_dir = Path(services.urls.database_url.split("host=", 1)[1])
        assert socket_dir.parent == Path("/tmp") and socket_dir.name.startswith("herald-pg-")
        assert pg(services.urls.database_url, "SELECT 1") == 1
        assert running_services(data_dir) == services.urls
    assert not socket_dir.exists()


def test_service_urls_is_a_frozen_value() -> None:
    urls = ServiceUrls(database_url="postgresql://x", redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(AttributeError):
        urls.redis_url = "other"  # type: ignore[misc]
