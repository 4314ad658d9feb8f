"""The ``herald`` command: up, web, worker, migrate, token, apikey.

The one place where the web side and the workers meet: ``worker`` and ``up`` import ``workers``
to run it; nothing else in ``hub`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import secrets
import signal
import sys
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from config import Settings, SettingsError, configure_logging
from hub import httpserver
from hub.auth import mint_token
from hub.preflight import StartupError, bind_error, reach_database, reach_redis
from store import apikeys
from store.db import connect
from store.migrate import migrate

DEV_SECRET_FILE = "dev-secret"
SHUTDOWN_GRACE = 10.0  # seconds a web node waits for requests in flight after SIGTERM


class CliError(Exception):
    """A problem the user can fix; printed as one line, exit status 2."""


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        raise SystemExit(2)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level)
        args.run(settings, args)
    except (SettingsError, CliError, StartupError) as exc:
        print(f"herald: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald", description="Herald: realtime messaging and push notification hub.")
    parser.add_argument("--version", action="version", version=f"herald {_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    up = sub.add_parser("up", help="run web and worker together; embedded PostgreSQL and Redis when no URLs are set")
    up.set_defaults(run=cmd_up)
    web_cmd = sub.add_parser("web", help="run a web node (Socket.IO, REST, health) on PORT")
    web_cmd.set_defaults(run=cmd_web)
    worker = sub.add_parser("worker", help="run an arq worker for push and campaign jobs")
    worker.set_defaults(run=cmd_worker)
    mig = sub.add_parser("migrate", help="apply pending SQL migrations (safe to run from several processes)")
    mig.set_defaults(run=cmd_migrate)

    token = sub.add_parser("token", help="mint a client JWT with the configured secret, for trying things")
    token.add_argument("user_id", help="the user the token is for (its sub)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    token.set_defaults(run=cmd_token)

    keys = sub.add_parser("apikey", help="create, list and revoke API keys")
    key_sub = keys.add_subparsers(title="apikey commands", metavar="ACTION", required=True)
    create = key_sub.add_parser("create", help="create a key; it is shown once")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--scopes", required=True, help=f"comma-separated scopes from: {', '.join(apikeys.SCOPES)}")
    create.set_defaults(run=cmd_apikey_create)
    listing = key_sub.add_parser("list", help="list keys (never the keys themselves)")
    listing.set_defaults(run=cmd_apikey_list)
    revoke = key_sub.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key", help="the key's id or prefix, as `herald apikey list` shows")
    revoke.set_defaults(run=cmd_apikey_revoke)
    return parser


# -- local state: the embedded services and the dev secret ---------------------------------


def dev_secret(data_dir: Path, *, create: bool) -> str | None:
    """The dev JWT secret kept under the data dir, created on first use when ``create``."""
    path = data_dir / DEV_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    if not create:
        return None
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


def with_local_state(settings: Settings) -> Settings:
    """Fill unset URLs from a running `herald up` in this folder, and the secret from its dev secret."""
    from store.embedded import running_services

    changes: dict[str, Any] = {}
    if not (settings.database_url and settings.redis_url):
        urls = running_services(settings.data_dir)
        if urls is not None:
            changes["database_url"] = settings.database_url or urls.database_url
            changes["redis_url"] = settings.redis_url or urls.redis_url
    if not settings.jwt_secret and "HS256" in settings.jwt_algorithms:
        secret = dev_secret(settings.data_dir, create=False)
        if secret:
            changes["jwt_secret"] = secret
    return replace(settings, **changes) if changes else settings


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("herald-hub")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree that was never installed
        return "unknown"


def _need_database(settings: Settings) -> str:
    """DATABASE_URL, once PostgreSQL answered there (else one line naming the setting)."""
    if not settings.database_url:
        raise CliError("DATABASE_URL: not set, and no `herald up` is running in this folder")
    _run(reach_database(settings.database_url))
    return settings.database_url


def _need_redis(settings: Settings) -> str:
    if not settings.redis_url:
        raise CliError("REDIS_URL: not set, and no `herald up` is running in this folder")
    _run(reach_redis(settings.redis_url))
    return settings.redis_url


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.run(coro)


# -- commands -----------------------------------------------------------------------------


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    settings = with_local_state(settings)
    url = _need_database(settings)

    async def run() -> list[int]:
        conn = await connect(url)
        try:
            return await migrate(conn)
        finally:
            await conn.close()

    applied = _run(run())
    print(f"applied migrations: {', '.join(map(str, applied))}" if applied else "database is up to date")


def cmd_token(settings: Settings, args: argparse.Namespace) -> None:
    settings = with_local_state(settings)
    if not settings.jwt_secret:
        raise CliError("HERALD_JWT_SECRET: not set, and no dev secret in this folder (run `herald up` first)")
    print(mint_token(settings.jwt_secret, args.user_id, ttl=args.ttl))


def cmd_apikey_create(settings: Settings, args: argparse.Namespace) -> None:
    url = _need_database(with_local_state(settings))
    try:
        scopes = list(apikeys.check_scopes([s.strip() for s in args.scopes.split(",") if s.strip()]))
    except ValueError as exc:
        raise CliError(f"--scopes: {exc}") from None

    async def run() -> tuple[apikeys.ApiKey, str]:
        conn = await connect(url)
        try:
            return await apikeys.create(conn, args.name, scopes)
        finally:
            await conn.close()

    record, key = _run(run())
    print(key)
    print(f"id {record.id}, scopes {','.join(record.scopes)}: store it now, it is not shown again", file=sys.stderr)


def cmd_apikey_list(settings: Settings, args: argparse.Namespace) -> None:
    url = _need_database(with_local_state(settings))

    async def run() -> list[apikeys.ApiKey]:
        conn = await connect(url)
        try:
            return await apikeys.list_all(conn)
        finally:
            await conn.close()

    print(f"{'id':>4}  {'prefix':<12} {'name':<20} {'scopes':<30} state")
    for key in _run(run()):
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        print(f"{key.id:>4}  {key.prefix:<12} {key.name:<20} {','.join(key.scopes):<30} {state}")


def cmd_apikey_revoke(settings: Settings, args: argparse.Namespace) -> None:
    url = _need_database(with_local_state(settings))

    async def run() -> bool:
        conn = await connect(url)
        try:
            return await apikeys.revoke(conn, args.key)
        finally:
            await conn.close()

    if not _run(run()):
        raise CliError(f"no API key with id or prefix {args.key!r}")
    print(f"revoked {args.key}")


def cmd_web(settings: Settings, args: argparse.Namespace) -> None:
    from hub.app import create_app

    _need_database(settings)
    _need_redis(settings)
    app = create_app(settings)
    _freeze_startup_objects()
    try:
        _run(httpserver.serve(app, settings.host, settings.port, shutdown_timeout=SHUTDOWN_GRACE))
    except OSError as exc:
        raise bind_error(exc, settings.host, settings.port) or exc from None


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    from workers.main import create_worker

    # arq's Worker takes the current event loop when it is made: set uvloop's first (made after,
    # the worker ran on asyncio's default loop, about twice the CPU per push).
    _need_database(settings)
    _need_redis(settings)
    asyncio.set_event_loop(_new_loop())
    worker = create_worker(settings)
    worker.run()


def _freeze_startup_objects() -> None:
    """Leave what start-up made (modules, the app) out of every later garbage collection.

    Python's oldest-generation collection walks every tracked object; with the libraries a web
    node imports that took about 60 ms, a pause every few seconds under load that was the whole
    p99 of acks (docs/benchmarks.md). Objects made after this are collected as usual.
    """
    gc.collect()
    gc.freeze()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()


def cmd_up(settings: Settings, args: argparse.Namespace) -> None:
    from store.embedded import EmbeddedServices, start_embedded

    embedded: EmbeddedServices | None = None
    if not (settings.database_url and settings.redis_url):
        print(f"starting embedded PostgreSQL and Redis under {settings.data_dir}/ ...", flush=True)
        try:
            embedded = start_embedded(settings.data_dir)
        except RuntimeError as exc:
            raise CliError(str(exc)) from None
        settings = replace(
            settings,
            database_url=settings.database_url or embedded.urls.database_url,
            redis_url=settings.redis_url or embedded.urls.redis_url,
        )
    try:
        if not settings.jwt_secret and not (settings.jwt_public_key_file or settings.jwt_jwks_file):
            settings = replace(settings, jwt_secret=dev_secret(settings.data_dir, create=True))
        if settings.push_provider == "auto" and not settings.has_push_credentials:
            settings = replace(settings, push_provider="outbox")
        _run(_up(settings))
    finally:
        if embedded is not None:
            embedded.stop()
            print("stopped embedded PostgreSQL and Redis", flush=True)


async def _up(settings: Settings) -> None:
    from hub.app import create_app
    from workers.main import create_worker

    assert settings.database_url is not None and settings.redis_url is not None
    await reach_database(settings.database_url)
    await reach_redis(settings.redis_url)
    conn = await connect(settings.database_url)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    if applied:
        print(f"applied migrations: {', '.join(map(str, applied))}", flush=True)

    runner = httpserver.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    host = settings.host if settings.host != "0.0.0.0" else "127.0.0.1"
    try:
        await web.TCPSite(runner, host, settings.port).start()
    except OSError as exc:
        await runner.cleanup()
        raise bind_error(exc, host, settings.port) or exc from None
    worker = create_worker(settings, handle_signals=False)
    worker_task = asyncio.create_task(worker.async_run())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _print_banner(settings, host)
    done_first = asyncio.create_task(stop.wait())
    await asyncio.wait({done_first, worker_task}, return_when=asyncio.FIRST_COMPLETED)
    print("shutting down ...", flush=True)
    await worker.close()
    worker_task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await worker_task
    done_first.cancel()
    await runner.cleanup()


def _print_banner(settings: Settings, host: str) -> None:
    url = f"http://{host}:{settings.port}"
    lines = [
        f"Herald is up at {url}",
        f"  Socket.IO  {url}/socket.io/   (auth: {{token}})",
        f"  REST       {url}/api/v1/",
        f"  console    {url}/console  (sign in with an admin API key)",
        f"  health     {url}/readyz   metrics {url}/metrics",
        f"  push       {settings.push_provider}",
        "In another terminal, in this folder:",
        "  .venv/bin/herald token alice                                  # a client JWT for user alice",
        "  .venv/bin/herald apikey create --name dev --scopes admin      # an API key for REST",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)
