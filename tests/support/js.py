"""Node.js scripts in the tests (tests/js: the official socket.io-client; tests/browser: Chromium)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parents[1] / "js"


def node_and_script(script: Path) -> tuple[str, Path]:
    """The node executable and a script of tests/js, or a failure saying how to install them."""
    ci = os.environ.get("CI", "").lower() == "true"
    how = "run `make setup` (it runs `npm ci` in tests/js; Node.js 20 must be installed)"
    if ci:
        how = "the CI image must provide Node.js 20 and run `make setup` (npm ci in tests/js) before the tests"
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"`node` is not on PATH: {how}", pytrace=False)
    if not script.is_file():
        pytest.fail(f"{script} is missing", pytrace=False)
    if not (JS_DIR / "node_modules" / "socket.io-client" / "package.json").is_file():
        pytest.fail(f"socket.io-client is not installed in {JS_DIR / 'node_modules'}: {how}", pytrace=False)
    return node, script


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
