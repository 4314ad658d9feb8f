"""The push benchmarks at their smoke size, so the harness never rots.

Runs ``python -m bench.push_run all --smoke`` (a few hundred notifications per provider, a campaign
to 2,000 generated users) against this test's PostgreSQL and Redis, and checks only that every
figure was produced.  Nothing here is timed: the figures of a smoke run mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_push_and_campaign_scenarios_run_at_smoke_size(
    service_urls: tuple[str, str], redis_url: str, tmp_path: Path
) -> None:
    admin_url, _ = service_urls
    proc = subprocess.run(
        [sys.executable, "-m", "bench.push_run", "all", "--smoke", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        env={**os.environ, "BENCH_DATABASE_URL": admin_url, "BENCH_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "benchmarks.json").read_text())
    assert set(results) == {"push", "campaign"}
    push = results["push"]
    assert push["smoke"] is True and push["machine"]["cores"] >= 1
    assert {run["provider"] for run in push["runs"]} == {"apns", "fcm"}
    for run in push["runs"]:
        assert run["delivered"] == run["notifications"] > 0
        assert run["per_s"] > 0 and run["cpu_us"] > 0
    assert {ref["provider"] for ref in push["references"]} == {"apns", "fcm"}
    assert all(ref["sent"] > 0 for ref in push["references"])
    campaign = results["campaign"]
    assert len(campaign["previews"]) == 3
    assert all(p["users"] > 0 and p["p50_ms"] > 0 for p in campaign["previews"])
    delivery = campaign["delivery"]
    assert delivery["completed"] and delivery["delivered"] > 0 and delivery["pending"] == 0
    page = (tmp_path / "benchmarks.md").read_text()
    assert "Smoke size" in page and "Push throughput" in page and "Campaign at scale" in page
