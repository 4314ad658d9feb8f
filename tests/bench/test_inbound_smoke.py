"""bench/inbound.py at its smoke size: both parsers read every message of each input, and the page
gets its section.  Nothing is timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_inbound_parsing_benchmark_runs_and_writes_its_section(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.inbound", "--smoke", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((tmp_path / "benchmarks.json").read_text())["inbound"]["rows"]
    assert [row["messages"] for row in rows] == [1, 1000]  # (the harness asserts each parser read them all)
    page = (tmp_path / "benchmarks.md").read_text()
    assert "## 6. Inbound websocket parsing" in page and "smoke size" in page
