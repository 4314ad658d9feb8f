"""Workers for the tests: ``herald worker`` subprocesses, and arq workers in the test's own loop."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from tests.support.nodes import HERALD, base_environ
from workers.main import create_worker

REPO = Path(__file__).resolve().parents[2]

#: The ``spawn`` fixture: ``spawn(env)`` is a started ``herald worker`` process.
Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """``spawn(env)``: a ``herald worker`` process; every one still alive is killed at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"worker-{len(procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [str(HERALD), "worker"], env={**base_environ(), **env}, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()  # the child holds its own descriptor
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


def worker_env(push_env: dict[str, str], **overrides: str) -> dict[str, str]:
    """A ``herald worker``'s environment: ``push_env`` with 4 sends at a time and a 3 s job timeout."""
    return {
        **push_env,
        "HERALD_PUSH_CONCURRENCY": "4",
        "HERALD_JOB_TIMEOUT": "3",
        "HERALD_SWEEP_INTERVAL": "1",
        "HERALD_LOG_LEVEL": "WARNING",
        **overrides,
    }


def worker_logs(tmp_path: Path) -> str:
    """The tail of every log in ``tmp_path`` (the workers' and web nodes'), for a failure's message."""
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(tmp_path.glob("*.log")))


#: The ``run_worker`` fixture: ``await run_worker(**overrides)``.
Runner = Callable[..., Awaitable[None]]


@pytest.fixture
async def run_worker(push_env: dict[str, str]) -> AsyncIterator[Runner]:
    """``await run_worker(**overrides)``: an arq worker running in this test's loop until teardown."""
    tasks: list[tuple[Any, asyncio.Task[None]]] = []

    async def start(**overrides: str) -> None:
        worker = create_worker(Settings.from_env({**push_env, **overrides}), handle_signals=False)
        tasks.append((worker, asyncio.create_task(worker.async_run())))

    yield start
    for worker, task in tasks:
        await worker.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
