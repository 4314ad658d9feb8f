"""Test harness: real PostgreSQL and Redis, isolated per test.

Services, in order of preference:
1. ``HERALD_TEST_DATABASE_URL`` / ``HERALD_TEST_REDIS_URL`` when set;
2. the local servers on their default ports when they answer;
3. embedded ones (``devservices``) started for the session.
``HERALD_TEST_SERVICES=embedded`` forces the third (a CI step runs part of the suite so).

Isolation (DESIGN.md): a template database migrated once under an advisory lock and cloned per
test (dropped ``WITH (FORCE)``); per test a Redis database index (flushed), a Socket.IO channel
and a queue name of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from config import Settings
from store.migrate import load_migrations, migrate

# Before anything imports tests.support: pytest rewrites the asserts of its modules too.
pytest.register_assert_rewrite("tests.support")

from tests.support.tokens import JWT_SECRET, ApiKey  # noqa: E402
from tests.support.urls import database_url_with, redis_url_with  # noqa: E402

#: Fixtures shared across the test folders (tests/support/__init__.py lists what each module holds).
pytest_plugins = [
    "tests.support.nodes",
    "tests.support.sockets",
    "tests.support.push",
    "tests.support.workers",
    "tests.support.campaigns",
]

TEMPLATE_LOCK = 0x7E57


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def service_urls() -> Iterator[tuple[str, str]]:
    """(admin database URL, redis base URL) for the whole session."""
    forced = os.environ.get("HERALD_TEST_SERVICES") == "embedded"
    db_url = os.environ.get("HERALD_TEST_DATABASE_URL")
    redis_url = os.environ.get("HERALD_TEST_REDIS_URL")
    if not forced and db_url and redis_url:
        yield db_url, redis_url
        return
    if not forced and _answers("127.0.0.1", 5432) and _answers("127.0.0.1", 6379):
        yield "postgresql://postgres@127.0.0.1:5432/postgres", "redis://127.0.0.1:6379/0"
        return
    from devservices import start_embedded

    with tempfile.TemporaryDirectory(prefix="herald-test-") as tmp, start_embedded(Path(tmp)) as services:
        yield services.urls.database_url, services.urls.redis_url


def _template_name() -> str:
    digest = hashlib.sha256()
    for migration in load_migrations():
        digest.update(migration.sql.encode())
    return f"herald_tpl_{digest.hexdigest()[:12]}"


@pytest.fixture(scope="session")
def template_db(service_urls: tuple[str, str]) -> str:
    """Name of a migrated template database, built once (by whichever process gets there first)."""
    admin_url = service_urls[0]
    name = _template_name()

    async def build() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", TEMPLATE_LOCK)
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                building = f"{name}_building"
                await conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{building}"')
                target = await asyncpg.connect(database_url_with(admin_url, building))
                try:
                    await migrate(target)
                finally:
                    await target.close()
                await conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", TEMPLATE_LOCK)
            await conn.close()

    asyncio.run(build())
    return name


@pytest.fixture
async def database_url(service_urls: tuple[str, str], template_db: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test."""
    admin_url = service_urls[0]
    name = f"herald_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    finally:
        await conn.close()
    yield database_url_with(admin_url, name)
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


REDIS_LOCK = "herald-test:lock"


@pytest.fixture
async def redis_url(service_urls: tuple[str, str]) -> AsyncIterator[str]:
    """A Redis database index of this test's own, flushed before use.

    Indexes are leased with a lock key, so test sessions running at once never flush each other's.
    """
    lease = uuid.uuid4().hex
    async with asyncio.timeout(60):
        while True:
            for index in range(1, 16):
                url = redis_url_with(service_urls[1], index)
                client = aioredis.Redis.from_url(url)
                try:
                    if await client.set(REDIS_LOCK, lease, nx=True, ex=600):
                        await client.flushdb()
                        await client.set(REDIS_LOCK, lease, ex=600)
                        break
                finally:
                    await client.aclose()
            else:
                await asyncio.sleep(0.2)
                continue
            break
    yield url
    client = aioredis.Redis.from_url(url)
    try:
        if await client.get(REDIS_LOCK) == lease.encode():
            await client.delete(REDIS_LOCK)
    finally:
        await client.aclose()


@pytest.fixture
async def arq(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client of this test's Redis database, to look at arq's keys."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def test_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def env(database_url: str, redis_url: str, test_id: str) -> dict[str, str]:
    """The environment a hub process of this test runs with."""
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "HERALD_JWT_SECRET": JWT_SECRET,
        "HERALD_SOCKETIO_CHANNEL": f"herald-test-{test_id}",
        "HERALD_QUEUE_NAME": f"herald:test:{test_id}",
        "HERALD_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(env)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to this test's database, for assertions on what is stored."""
    from store.db import connect

    conn = await connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def api_key(database_url: str) -> ApiKey:
    """``await api_key("publish")``: a fresh API key with those scopes, as its bearer string."""
    from store import apikeys

    async def create(*scopes: str, name: str = "test") -> str:
        conn = await asyncpg.connect(database_url)
        try:
            _, key = await apikeys.create(conn, name, list(scopes))
        finally:
            await conn.close()
        return key

    return create
