"""API keys for backend services and the console, stored as sha256 hashes.

A key looks like ``hk_<43 url-safe characters>``; it is shown once at creation.  Keys carry
256 random bits, so a plain sha256 (not a slow password hash) is the right way to store them.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

SCOPES = ("publish", "notify", "devices", "campaigns", "admin")
KEY_PREFIX = "hk_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


INSERT = """
INSERT INTO api_keys (name, prefix, key_hash, scopes) VALUES ($1, $2, $3, $4)
RETURNING id, name, prefix, scopes, created_at, last_used_at, revoked_at
"""
SELECT_ALL = "SELECT id, name, prefix, scopes, created_at, last_used_at, revoked_at FROM api_keys ORDER BY id"
SELECT_BY_HASH = """
UPDATE api_keys SET last_used_at = now()
WHERE key_hash = $1 AND revoked_at IS NULL
RETURNING id, name, prefix, scopes, created_at, last_used_at, revoked_at
"""
REVOKE = """
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id::text = $1 OR prefix = $1
RETURNING id
"""


def _from_row(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def check_scopes(scopes: list[str]) -> tuple[str, ...]:
    """Validate scope names; raise ValueError naming the unknown one."""
    if not scopes:
        raise ValueError(f"give at least one scope of {', '.join(SCOPES)}")
    for scope in scopes:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}")
    return tuple(dict.fromkeys(scopes))


async def create(conn: asyncpg.Connection, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Create a key; return its record and the key itself (the only time it is seen)."""
    valid = check_scopes(scopes)
    key = new_key()
    row = await conn.fetchrow(INSERT, name, key[: len(KEY_PREFIX) + 8], hash_key(key), list(valid))
    assert row is not None
    return _from_row(row), key


async def list_all(conn: asyncpg.Connection) -> list[ApiKey]:
    return [_from_row(row) for row in await conn.fetch(SELECT_ALL)]


async def authenticate(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> ApiKey | None:
    """The live key matching ``key``, or None when it is unknown or revoked."""
    if not key.startswith(KEY_PREFIX):
        return None
    row = await conn.fetchrow(SELECT_BY_HASH, hash_key(key))
    return _from_row(row) if row else None


async def revoke(conn: asyncpg.Connection, id_or_prefix: str) -> bool:
    """Revoke by id or prefix; False when no key matches."""
    return await conn.fetchval(REVOKE, id_or_prefix) is not None


ADMIN_LIVE = "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL AND 'admin' = ANY(scopes))"


async def admin_live(conn: asyncpg.Connection | asyncpg.Pool, key_id: int) -> bool:
    """Whether the key is still an unrevoked admin key (console sessions end with their key)."""
    return bool(await conn.fetchval(ADMIN_LIVE, key_id))
