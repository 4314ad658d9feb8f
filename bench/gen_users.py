"""Make a benchmark audience: users with attributes, tags, time zones and locales, and their devices.

    python -m bench.gen_users --users 1000000 --database herald_bench_users_1000000 [--admin-url URL]

Creates the database (dropping one of that name first), migrates it with ``store.migrate``, drops
the secondary indexes of ``users`` and ``devices``, loads both tables with ``COPY`` (rows made here,
deterministic for a given size), builds the indexes again and runs ``ANALYZE``. About 1.2 devices
per user: every user has one, every fifth a second; iOS devices push through APNs (hex tokens),
Android ones through FCM, about half each. A million users take about a minute here.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
NAMES = ("Alice", "Bob", "Chloé", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kenji", "Lena")
PLANS = ("free",) * 14 + ("pro",) * 5 + ("team",)
COUNTRIES = ("US", "GB", "FR", "DE", "ES", "BR", "JP", "IN", "CA", "AU")
TAGS = ("beta", "vip", "sports", "news", "music", "travel", "gaming", "food")
TIMEZONES = (
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "UTC",
)
LOCALES = ("en-US", "en-GB", "fr-FR", "de-DE", "es-ES", "pt-BR", "ja-JP", "en-IN")
VERSIONS = tuple(f"{major}.{minor}.{patch}" for major in (2, 3) for minor in range(0, 12, 3) for patch in (0, 1, 4))
CHUNK = 20_000
NOW = datetime.now(UTC).replace(microsecond=0)


def user_id(i: int) -> str:
    return f"u{i:08d}"


def device_count(i: int) -> int:
    """Every user has a device, every fifth a second one."""
    return 2 if i % 5 == 0 else 1


def device_provider(i: int, j: int) -> str:
    """About half the devices push through APNs (iOS), the rest through FCM (Android)."""
    return "apns" if hashlib.blake2b(b"%d:%d" % (i, j), digest_size=1).digest()[0] & 1 else "fcm"


def device_platform(provider: str) -> str:
    return "ios" if provider == "apns" else "android"


def device_platforms(i: int) -> str:
    """users.device_platforms of user ``i`` in COPY's text format: its devices' platforms, sorted."""
    return "{" + ",".join(sorted({device_platform(device_provider(i, j)) for j in range(device_count(i))})) + "}"


def device_token(provider: str, i: int, j: int) -> str:
    """APNs tokens are 64 hex digits; FCM ones are opaque text."""
    return f"{i:056x}{j:08x}" if provider == "apns" else f"fcm:{i:09d}:{j}:bench-registration-token"


def _text(value: str | None) -> str:
    """A value in COPY's text format."""
    if value is None:
        return "\\N"
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


async def _chunks(users: int, seed: int, kind: str) -> AsyncIterator[bytes]:
    rng = random.Random(f"{seed}:{kind}")
    lines: list[str] = []
    for i in range(users):
        uid = user_id(i)
        if kind == "users":
            attributes = {
                "name": NAMES[i % len(NAMES)],
                "plan": rng.choice(PLANS),
                "age": rng.randint(18, 80),
                "country": rng.choice(COUNTRIES),
                "score": rng.randint(0, 1000),
            }
            tags = [t for t in TAGS if rng.random() < 0.15]
            tz = rng.choice(TIMEZONES) if rng.random() < 0.9 else None
            locale = rng.choice(LOCALES) if rng.random() < 0.9 else None
            opt_in = "t" if rng.random() < 0.9 else "f"
            created = NOW - timedelta(days=rng.randint(1, 900))
            active = (NOW - timedelta(minutes=rng.randint(0, 60 * 24 * 120))) if rng.random() < 0.95 else None
            tag_text = "{" + ",".join(tags) + "}"
            lines.append(
                "\t".join(
                    (
                        uid,
                        _text(json.dumps(attributes, separators=(",", ":"))),
                        tag_text,
                        _text(tz),
                        _text(locale),
                        opt_in,
                        created.isoformat(),
                        _text(active.isoformat() if active else None),
                        str(device_count(i)),  # valid_devices and device_platforms: the devices made below
                        device_platforms(i),
                    )
                )
            )
        else:
            for j in range(device_count(i)):
                provider = device_provider(i, j)
                platform = device_platform(provider)
                registered = NOW - timedelta(days=rng.randint(1, 400))
                lines.append(
                    "\t".join(
                        (
                            device_token(provider, i, j),
                            provider,
                            platform,
                            uid,
                            "\\N",
                            "production",
                            rng.choice(LOCALES),
                            rng.choice(TIMEZONES),
                            rng.choice(VERSIONS),
                            registered.isoformat(),
                            registered.isoformat(),
                        )
                    )
                )
        if len(lines) >= CHUNK:
            yield ("\n".join(lines) + "\n").encode()
            lines = []
    if lines:
        yield ("\n".join(lines) + "\n").encode()


USER_COLUMNS = [
    "id",
    "attributes",
    "tags",
    "timezone",
    "locale",
    "marketing_opt_in",
    "created_at",
    "last_active_at",
    "valid_devices",
    "device_platforms",
]
DEVICE_COLUMNS = [
    "token",
    "provider",
    "platform",
    "user_id",
    "app_id",
    "environment",
    "locale",
    "timezone",
    "app_version",
    "registered_at",
    "updated_at",
]
SECONDARY_INDEXES = """
SELECT i.indexname, i.indexdef FROM pg_indexes i
JOIN pg_class c ON c.relname = i.indexname
JOIN pg_index x ON x.indexrelid = c.oid
WHERE i.schemaname = 'public' AND i.tablename IN ('users', 'devices') AND NOT x.indisprimary
"""


def _with_database(url: str, database: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def generate(admin_url: str, database: str, users: int, *, seed: int = 1) -> dict[str, Any]:
    """Create ``database`` holding ``users`` users and their devices; return what was made and how long it took."""
    from store.migrate import migrate

    started = time.monotonic()
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(_with_database(admin_url, database))
    try:
        await migrate(conn)
        indexes = await conn.fetch(SECONDARY_INDEXES)
        for row in indexes:
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
        await conn.execute("ALTER TABLE devices DROP CONSTRAINT IF EXISTS devices_user_id_fkey")
        await conn.copy_to_table("users", source=_chunks(users, seed, "users"), columns=USER_COLUMNS)
        # users.valid_devices and device_platforms are written above: their triggers sit out the load.
        await conn.execute("SET session_replication_role = replica")
        await conn.copy_to_table("devices", source=_chunks(users, seed, "devices"), columns=DEVICE_COLUMNS)
        await conn.execute("RESET session_replication_role")
        loaded = time.monotonic()
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute(
            "ALTER TABLE devices ADD CONSTRAINT devices_user_id_fkey"
            " FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE"
        )
        for row in indexes:
            await conn.execute(row["indexdef"])
        await conn.execute("VACUUM ANALYZE users")
        await conn.execute("VACUUM ANALYZE devices")
        devices = await conn.fetch("SELECT provider, count(*) AS n FROM devices GROUP BY provider ORDER BY provider")
    finally:
        await conn.close()
    return {
        "users": users,
        "devices": {r["provider"]: int(r["n"]) for r in devices},
        "load_s": round(loaded - started, 1),
        "total_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gen_users", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--database", help="database to (re)create; default herald_bench_users_<users>")
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    database = args.database or f"herald_bench_users_{args.users}"
    if not database.startswith("herald_bench_"):
        print("the database name must start with herald_bench_", file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(generate(args.admin_url, database, args.users, seed=args.seed))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
