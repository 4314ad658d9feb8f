"""The benchmark audience generator writes the per-user device summaries itself (the triggers that
keep them are off during its load): they must equal what the triggers would have written."""

from __future__ import annotations

import uuid

import asyncpg

from bench import gen_users
from bench.gen_users import _with_database


async def test_generated_users_carry_the_summaries_of_their_devices(service_urls: tuple[str, str]) -> None:
    admin_url, _ = service_urls
    database = f"herald_bench_test_{uuid.uuid4().hex[:8]}"
    made = await gen_users.generate(admin_url, database, 300)
    try:
        conn = await asyncpg.connect(_with_database(admin_url, database))
        try:
            wrong = await conn.fetch(
                """
                SELECT u.id FROM users u
                LEFT JOIN LATERAL (
                    SELECT count(*)::integer AS n, coalesce(array_agg(DISTINCT platform ORDER BY platform), '{}') AS p
                    FROM devices d WHERE d.user_id = u.id AND d.invalid_at IS NULL
                ) s ON true
                WHERE (u.valid_devices, u.device_platforms) IS DISTINCT FROM (s.n, s.p)
                """
            )
            platforms = await conn.fetch("SELECT platform, count(*) AS n FROM devices GROUP BY 1 ORDER BY 1")
        finally:
            await conn.close()
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await admin.close()
    assert made["users"] == 300
    assert wrong == []
    counts = {r["platform"]: r["n"] for r in platforms}
    assert set(counts) == {"android", "ios"} and sum(counts.values()) == 360  # every fifth user has two
    assert 0.35 < counts["ios"] / 360 < 0.65
