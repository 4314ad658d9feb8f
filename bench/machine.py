"""What the figures were measured on: the machine, the date and the versions of everything involved."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PY_PACKAGES = ("python-socketio", "python-engineio", "aiohttp", "asyncpg", "uvloop", "redis", "hiredis")
PUSH_PACKAGES = ("aioapns", "h2", "hpack", "asyncpg", "arq", "uvloop", "firebase-admin", "httpx", "redis")
NODE_PACKAGES = ("socket.io", "engine.io", "ws", "pg")


def describe(js_dir: Path, postgres: str, redis: str) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_mem_total_kib() / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": _node_version(),
        "postgresql": postgres,
        "redis": redis,
        "python_packages": {name: _py_version(name) for name in PY_PACKAGES},
        "node_packages": {name: _node_package(js_dir, name) for name in NODE_PACKAGES},
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_kib() -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def _node_version() -> str:
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "missing"


def _py_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def _node_package(js_dir: Path, name: str) -> str:
    try:
        return str(json.loads((js_dir / "node_modules" / name / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return "-"
