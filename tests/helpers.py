"""Helpers shared by the tests: URL rewriting and a recording Socket.IO client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import socketio
from aiohttp import web

from hub import httpserver


def database_url_with(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def redis_url_with(url: str, index: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{index}", parts.query, parts.fragment))


class ChatClient:
    """A real python-socketio client that records every event it receives, in order."""

    def __init__(self, url: str, token: str, *, transports: list[str] | None = None) -> None:
        self.url = url
        self.token = token
        self.transports = transports or ["websocket"]
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: defaultdict[str, list[Any]] = defaultdict(list)
        self._arrived = asyncio.Condition()
        self.sio.on("*", self._record)
        self.sio.on("disconnect", self._on_disconnect)
        self.disconnected = asyncio.Event()

    async def _record(self, event: str, *args: Any) -> None:
        async with self._arrived:
            self.events[event].append(args[0] if len(args) == 1 else args)
            self._arrived.notify_all()

    async def _on_disconnect(self, *args: Any) -> None:
        self.disconnected.set()

    async def open(self) -> None:
        await self.sio.connect(self.url, auth={"token": self.token}, transports=self.transports, wait_timeout=5)
        await self.wait_for("ready")

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()

    async def call(self, event: str, data: Any = None, timeout: float = 5.0) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    async def wait_for(self, event: str, count: int = 1, timeout: float = 5.0) -> list[Any]:
        """Wait until ``count`` events of that name have arrived; return all of them."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.events[event]) >= count)
        return self.events[event]

    async def call_ok(self, event: str, data: Any = None) -> dict[str, Any]:
        answer = await self.call(event, data)
        assert answer.get("ok") is True, answer
        return dict(answer)


async def run_node_script(
    node: str, script: Path, args: dict[str, Any], *, cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a Node.js test script that ends by printing one JSON line with ``ok``; return that report."""
    proc = await asyncio.create_subprocess_exec(
        node,
        str(script),
        json.dumps(args),
        cwd=str(cwd),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"{script.name} did not finish within {timeout} s")
    lines = [line for line in out.decode().splitlines() if line.strip()]
    detail = f"exit {proc.returncode}\nstdout:\n{out.decode()}\nstderr:\n{err.decode()[-3000:]}"
    assert lines, f"{script.name} printed nothing; {detail}"
    try:
        report = json.loads(lines[-1])
    except json.JSONDecodeError:
        pytest.fail(f"{script.name} did not end with a JSON line; {detail}")
    assert isinstance(report, dict)
    assert proc.returncode == 0 and report.get("ok") is True, f"{script.name} failed: {report.get('error')}; {detail}"
    return report


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[tuple[web.AppRunner, int]]:
    """``app`` served in this process on a free port of 127.0.0.1 by the server ``herald web`` runs
    (``hub.httpserver``): (its runner, the port)."""
    runner, port = await start_serving(app)
    try:
        yield runner, port
    finally:
        await runner.cleanup()


async def start_serving(app: web.Application) -> tuple[web.AppRunner, int]:
    """Start serving ``app`` as :func:`serving` does; the caller cleans the runner up."""
    runner = httpserver.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None and site._server.sockets
    return runner, site._server.sockets[0].getsockname()[1]
