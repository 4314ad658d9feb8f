"""``services.json``: the urls and the owner's pid of a running `herald up`, for other CLI commands.

`herald token`, `herald apikey` and the like, run in the same folder, find the services there; a
record whose owner has died (or whose services do not answer) does not count.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devservices.postgres import pg_answers
from devservices.processes import proc_info
from devservices.redis import redis_reply

SERVICES_FILE = "services.json"


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    """asyncpg-usable: ``postgresql://postgres@/postgres?host=<socket dir>``."""
    redis_url: str
    """``redis://127.0.0.1:PORT/0``."""


def read_services(data_dir: Path) -> dict[str, Any] | None:
    """The record in ``data_dir``, or None when there is none or it is not a JSON object."""
    try:
        data = json.loads((data_dir / SERVICES_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_services(data_dir: Path, info: dict[str, Any]) -> None:
    """Write the record atomically (a reader sees the old one or the new one, never half)."""
    tmp = data_dir / f".{SERVICES_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, data_dir / SERVICES_FILE)


def owner_alive(info: dict[str, Any]) -> bool:
    """Whether the process that wrote the record still runs (the same process, not a reused pid)."""
    pid, token = info.get("owner_pid"), info.get("owner_start")
    if not isinstance(pid, int):
        return False
    proc = proc_info(pid)
    return proc is not None and proc[0] == token


def services_answer(info: dict[str, Any]) -> bool:
    """Whether the recorded PostgreSQL socket and Redis port both answer."""
    socket_dir, port = info.get("pg_socket_dir"), info.get("redis_port")
    if not isinstance(socket_dir, str) or not isinstance(port, int):
        return False
    return pg_answers(Path(socket_dir)) and redis_reply(port) != b""


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
    info = read_services(data_dir.resolve())
    if info is None or not owner_alive(info) or not services_answer(info):
        return None
    return _urls_of(info)
