"""Migrations: applied once each, even when several processes start together."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from store.migrate import load_migrations, migrate
from tests.support.urls import database_url_with

pytestmark = pytest.mark.embedded


async def test_concurrent_starts_apply_each_migration_once(service_urls: tuple[str, str]) -> None:
    admin_url = service_urls[0]
    name = "herald_migrate_race"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = database_url_with(admin_url, name)
        conns = [await asyncpg.connect(url) for _ in range(5)]
        results = await asyncio.gather(*(migrate(c) for c in conns))
        for conn in conns:
            await conn.close()
        applied = sorted(v for result in results for v in result)
        assert applied == [m.version for m in load_migrations()]
        check = await asyncpg.connect(url)
        rows = await check.fetch("SELECT version FROM schema_migrations ORDER BY version")
        tables = await check.fetchval("SELECT count(*) FROM pg_tables WHERE tablename = 'messages'")
        await check.close()
        assert [r["version"] for r in rows] == [m.version for m in load_migrations()]
        assert tables == 1
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_a_second_run_applies_nothing(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await migrate(conn) == []
    finally:
        await conn.close()
