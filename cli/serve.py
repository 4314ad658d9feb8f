"""The long-running commands: web, worker, and up (both together, on embedded services when none are set)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
from dataclasses import replace

from aiohttp import web

from cli.common import CliError, need_database, need_redis, new_loop, run
from cli.local_state import dev_secret
from config import Settings
from hub import httpserver
from hub.preflight import bind_error, reach_database, reach_redis
from store.db import connect
from store.migrate import migrate

SHUTDOWN_GRACE = 10.0  # seconds a web node waits for requests in flight after SIGTERM


def cmd_web(settings: Settings, args: argparse.Namespace) -> None:
    from hub.app import create_app

    need_database(settings)
    need_redis(settings)
    app = create_app(settings)
    _freeze_startup_objects()
    try:
        run(httpserver.serve(app, settings.host, settings.port, shutdown_timeout=SHUTDOWN_GRACE))
    except OSError as exc:
        raise bind_error(exc, settings.host, settings.port) or exc from None


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    from workers.main import create_worker

    # arq's Worker takes the current event loop when it is made: set uvloop's first (made after,
    # the worker ran on asyncio's default loop, about twice the CPU per push).
    need_database(settings)
    need_redis(settings)
    asyncio.set_event_loop(new_loop())
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


def cmd_up(settings: Settings, args: argparse.Namespace) -> None:
    from devservices import EmbeddedServices, start_embedded

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
        run(_up(settings))
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
