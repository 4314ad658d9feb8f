"""Start-up problems an operator can fix end a process with one line naming the setting.

Real ``herald`` processes against a PostgreSQL and a Redis port where nothing listens, a database
that does not exist, and a port another process holds: exit status 2, one line on stderr, the
credentials of the URL nowhere in it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERALD = str(Path(sys.executable).with_name("herald"))
SECRET = "x" * 40


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _herald(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith("HERALD_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    return subprocess.run(
        [HERALD, *args],
        env={**base, "HERALD_JWT_SECRET": SECRET, "HERALD_PUSH_PROVIDER": "outbox", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("{")]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def listening() -> Iterator[int]:
    """A loopback port some other process holds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("command", ["web", "worker", "migrate"])
def test_unreachable_postgresql_is_one_line_naming_the_setting(command: str, redis_url: str, tmp_path: Path) -> None:
    port = _closed_port()
    env = {"DATABASE_URL": f"postgresql://herald:s3cret-password@127.0.0.1:{port}/herald", "REDIS_URL": redis_url}
    line = _one_line(_herald(env, command, cwd=tmp_path))
    assert line == f"herald: DATABASE_URL: cannot reach PostgreSQL at 127.0.0.1:{port}/herald: connection refused"
    assert "s3cret" not in line


def test_missing_database_says_so(service_urls: tuple[str, str], redis_url: str, tmp_path: Path) -> None:
    postgres = service_urls[0].rsplit("/", 1)[0]
    line = _one_line(_herald({"DATABASE_URL": f"{postgres}/no_such_db", "REDIS_URL": redis_url}, "web", cwd=tmp_path))
    assert line.startswith("herald: DATABASE_URL: cannot reach PostgreSQL at ")
    assert line.endswith('database "no_such_db" does not exist')


@pytest.mark.parametrize("command", ["web", "worker"])
def test_unreachable_redis_is_one_line_naming_the_setting(command: str, database_url: str, tmp_path: Path) -> None:
    port = _closed_port()
    env = {"DATABASE_URL": database_url, "REDIS_URL": f"redis://:s3cret-password@127.0.0.1:{port}/0"}
    line = _one_line(_herald(env, command, cwd=tmp_path))
    assert line.startswith(f"herald: REDIS_URL: cannot reach Redis at 127.0.0.1:{port}/0: ")
    assert "refused" in line.lower()
    assert "s3cret" not in line


def test_a_taken_port_is_one_line_naming_the_setting(
    database_url: str, redis_url: str, listening: int, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "PORT": str(listening), "HERALD_HOST": "127.0.0.1"}
    line = _one_line(_herald(env, "web", cwd=tmp_path))
    assert line == f"herald: PORT: 127.0.0.1:{listening} is already in use (another process listens there)"


def test_version(tmp_path: Path) -> None:
    result = _herald({}, "--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip().startswith("herald 0.")
