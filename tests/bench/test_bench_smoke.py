"""The benchmark harness at its smoke size, so it never rots.

Runs ``python -m bench.run all --smoke`` (every scenario, ~20 clients, ~1 s a step) against this
test's PostgreSQL and Redis and checks only that each scenario ran for Herald and the reference
and produced its figures.  Nothing here is timed: the figures of a smoke run mean nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH = REPO_ROOT / "bench"


def _require_node() -> None:
    how = "run `make setup` (it runs `npm ci` in bench; Node.js 20 must be installed)"
    if shutil.which("node") is None:
        pytest.fail(f"`node` is not on PATH: {how}", pytrace=False)
    for package in ("socket.io", "ws", "pg"):
        if not (BENCH / "node_modules" / package / "package.json").is_file():
            pytest.fail(f"{package} is not installed in {BENCH / 'node_modules'}: {how}", pytrace=False)


@pytest.mark.timeout(180)
def test_every_scenario_runs_at_smoke_size(service_urls: tuple[str, str], redis_url: str, tmp_path: Path) -> None:
    _require_node()
    admin_url, _ = service_urls
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "all", "--smoke", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        env={**os.environ, "BENCH_DATABASE_URL": admin_url, "BENCH_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "benchmarks.json").read_text())
    assert set(results) == {"fanout", "persisted", "idle"}
    for scenario, figures in results.items():
        assert figures["smoke"] is True
        assert {run["server"] for run in figures["runs"]} == {"herald", "reference"}, scenario
        assert figures["machine"]["cores"] >= 1
    for run in results["fanout"]["runs"]:
        assert run["subscribers"] == 20
        assert run["ramp"] and all(step["delivered"] > 0 for step in run["ramp"])
        assert run["fixed"]["p50_ms"] is not None
    for run in results["persisted"]["runs"]:
        assert run["ramp"] and all(step["acked"] > 0 and step["errors"] == 0 for step in run["ramp"])
        for step in run["ramp"]:  # where the cores went, by process
            assert set(step["cpu_split"]) == {"server", "postgres", "redis", "generator", "other"}
            assert step["cpu_split"]["postgres"] > 0, "every acked message was a PostgreSQL commit"
        assert run["database"]["autovacuums"] >= 0
    assert results["persisted"]["database_start"]["databases"] >= 1
    for run in results["idle"]["runs"]:
        assert run["clients"] == 20 and run["still_open"] == 20
        assert run["rss_after"] > 0
    page = (tmp_path / "benchmarks.md").read_text()
    assert "Smoke size" in page and "| fanout |" in page
    assert "herald" in proc.stdout and "reference" in proc.stdout
