"""One-shot commands: migrate, token, and apikey create/list/revoke."""

from __future__ import annotations

import argparse
import sys

from cli.common import CliError, need_database, run
from cli.local_state import with_local_state
from config import Settings
from hub.auth import mint_token
from store import apikeys
from store.db import connect
from store.migrate import migrate


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    settings = with_local_state(settings)
    url = need_database(settings)

    async def apply() -> list[int]:
        conn = await connect(url)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    applied = run(apply())
    print(f"applied migrations: {', '.join(map(str, applied))}" if applied else "database is up to date")


def cmd_token(settings: Settings, args: argparse.Namespace) -> None:
    settings = with_local_state(settings)
    if not settings.jwt_secret:
        raise CliError("HERALD_JWT_SECRET: not set, and no dev secret in this folder (run `herald up` first)")
    print(mint_token(settings.jwt_secret, args.user_id, ttl=args.ttl))


def cmd_apikey_create(settings: Settings, args: argparse.Namespace) -> None:
    url = need_database(with_local_state(settings))
    try:
        scopes = list(apikeys.check_scopes([s.strip() for s in args.scopes.split(",") if s.strip()]))
    except ValueError as exc:
        raise CliError(f"--scopes: {exc}") from None

    async def create() -> tuple[apikeys.ApiKey, str]:
        conn = await connect(url)
        try:
            return await apikeys.create(conn, args.name, scopes)
        finally:
            await conn.close()

    record, key = run(create())
    print(key)
    print(f"id {record.id}, scopes {','.join(record.scopes)}: store it now, it is not shown again", file=sys.stderr)


def cmd_apikey_list(settings: Settings, args: argparse.Namespace) -> None:
    url = need_database(with_local_state(settings))

    async def list_all() -> list[apikeys.ApiKey]:
        conn = await connect(url)
        try:
            return await apikeys.list_all(conn)
        finally:
            await conn.close()

    print(f"{'id':>4}  {'prefix':<12} {'name':<20} {'scopes':<30} state")
    for key in run(list_all()):
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        print(f"{key.id:>4}  {key.prefix:<12} {key.name:<20} {','.join(key.scopes):<30} {state}")


def cmd_apikey_revoke(settings: Settings, args: argparse.Namespace) -> None:
    url = need_database(with_local_state(settings))

    async def revoke() -> bool:
        conn = await connect(url)
        try:
            return await apikeys.revoke(conn, args.key)
        finally:
            await conn.close()

    if not run(revoke()):
        raise CliError(f"no API key with id or prefix {args.key!r}")
    print(f"revoked {args.key}")
