"""A bounded soak: steady chat and push load on a ``herald web`` and a ``herald worker`` process.

For ``HERALD_SOAK_SECONDS`` (150 by default) four clients chat in one room (each sends every
``CHAT_EVERY`` seconds and waits for the ack), a fifth connects and disconnects every
``CHURN_EVERY`` seconds, and a backend posts a notification to the room's users every
``NOTIFY_EVERY`` seconds (the outbox provider, four devices).  Every ``SAMPLE_EVERY`` seconds the
test reads each process's resident memory, open descriptors and threads from /proc.

Passes when nothing grows without bound (the last third of the samples against the middle third,
the first third being warm-up), every send was acknowledged and stored, every notification
completed.  The figures are printed as the markdown of docs/reliability.md's soak section (between
its markers), and written to the file ``HERALD_SOAK_REPORT`` names if set; the test never rewrites
a tracked file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.chat import Chatter, check_nothing_lost
from tests.support.nodes import StartWeb
from tests.support.rest import Rest, create_room
from tests.support.sockets import ChatClient
from tests.support.tokens import ApiKey, token_for

SOAK_SECONDS = float(os.environ.get("HERALD_SOAK_SECONDS", "150"))
SAMPLE_EVERY = 5.0
CHAT_EVERY = 0.05  # per client: 4 clients, about 80 messages a second in all
CHURN_EVERY = 2.0
NOTIFY_EVERY = 0.25
USERS = ["ana", "ben", "cy", "dee"]
RSS_SLACK = 1.10  # the last third's mean RSS may exceed the middle third's by 10 % (plus 4 MiB)
RSS_SLACK_KIB = 4096
FD_SLACK = 8
REPORT = os.environ.get("HERALD_SOAK_REPORT")  # a file to write the report to, besides printing it
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"

Spawn = Callable[[dict[str, str]], "subprocess.Popen[bytes]"]


def sample(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_kib": int(fields["VmRSS"].split()[0]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": int(fields["Threads"]),
    }


def thirds(values: list[int]) -> tuple[list[int], list[int]]:
    n = len(values) // 3
    return values[n : 2 * n], values[2 * n :]


@pytest.mark.soak
@pytest.mark.timeout(SOAK_SECONDS + 240)
async def test_soak_steady_chat_and_push_load_grows_nothing(  # type: ignore[no-untyped-def]
    web_node: StartWeb, spawn: Spawn, env: dict[str, str], api_key: ApiKey, db: asyncpg.Connection
) -> None:
    node = await web_node(HERALD_MESSAGE_RATE="1000", HERALD_MESSAGE_BURST="1000")
    worker = spawn({**env, "HERALD_PUSH_PROVIDER": "outbox", "HERALD_SWEEP_INTERVAL": "5"})
    publish = await api_key("publish")
    devices = Rest(node.url, await api_key("devices"))
    notify = Rest(node.url, await api_key("notify"))
    await create_room(node.url, publish, "soak", [*USERS, "churn"])
    for n, user in enumerate(USERS):
        body = {"token": f"{n + 1:064x}", "provider": "apns", "platform": "ios", "user_id": user, "app_id": "soak"}
        status, answer = await devices.request("POST", "/devices", body)
        assert status in (200, 201), answer
    chatters = [Chatter(user, "soak", [node.url]) for user in USERS]
    for chatter in chatters:
        await chatter.start()

    loop = asyncio.get_running_loop()
    stop_at = loop.time() + SOAK_SECONDS
    sent: dict[str, int] = dict.fromkeys(USERS, 0)
    notifications: list[str] = []
    churns = 0
    samples: list[dict[str, Any]] = []

    async def chat(chatter: Chatter) -> None:
        while loop.time() < stop_at:
            await chatter.send(sent[chatter.user_id])
            sent[chatter.user_id] += 1
            await asyncio.sleep(CHAT_EVERY)

    async def churn() -> None:
        nonlocal churns
        while loop.time() < stop_at:
            client = ChatClient(node.url, token_for("churn"))
            await client.open()
            await client.call_ok("sync", {"rooms": {"soak": 0}})
            await client.close()
            churns += 1
            await asyncio.sleep(CHURN_EVERY)

    async def push() -> None:
        body = {"to": {"user_ids": USERS}, "notification": {"title": "soak", "body": "tick"}}
        while loop.time() < stop_at:
            status, answer = await notify.request("POST", "/notifications", body)
            assert status == 202, answer
            notifications.append(answer["id"])
            await asyncio.sleep(NOTIFY_EVERY)

    async def watch() -> None:
        started = loop.time()
        while loop.time() < stop_at:
            assert node.proc.poll() is None and worker.poll() is None, "a process died"
            samples.append(
                {"t": round(loop.time() - started), "web": sample(node.proc.pid), "worker": sample(worker.pid)}
            )
            await asyncio.sleep(SAMPLE_EVERY)

    began = time.monotonic()
    try:
        await asyncio.gather(*(chat(c) for c in chatters), churn(), push(), watch())
        elapsed = time.monotonic() - began
        async with asyncio.timeout(60):
            while await db.fetchval("SELECT count(*) FROM notifications WHERE status <> 'completed'"):
                await asyncio.sleep(0.2)
        stored = await check_nothing_lost(db, "soak", chatters, sum(sent.values()))
    finally:
        for chatter in chatters:
            await chatter.close()
    delivered = await db.fetchval("SELECT count(*) FROM deliveries WHERE status = 'delivered'")
    assert delivered == len(notifications) * len(USERS)

    figures: dict[str, dict[str, tuple[float, float, int, int]]] = {}
    for proc in ("web", "worker"):
        figures[proc] = {}
        for key in ("rss_kib", "fds", "threads"):
            values = [s[proc][key] for s in samples]
            middle, last = thirds(values)
            figures[proc][key] = (statistics.mean(middle), statistics.mean(last), min(values), max(values))
    table = [
        "| process | figure | first | middle third (mean) | last third (mean) | min | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for proc, by_key in figures.items():
        for key, (middle_mean, last_mean, low, high) in by_key.items():
            first = samples[0][proc][key]
            unit = " MiB" if key == "rss_kib" else ""
            scale = 1024 if key == "rss_kib" else 1

            def fmt(v: float, scale: int = scale, unit: str = unit) -> str:
                return f"{v / scale:.1f}{unit}" if scale > 1 else f"{v:.1f}"

            name = {"rss_kib": "resident memory", "fds": "open descriptors", "threads": "threads"}[key]
            row = [proc, name, fmt(first), fmt(middle_mean), fmt(last_mean), fmt(low), fmt(high)]
            table.append("| " + " | ".join(row) + " |")
    conditions = (
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}): {elapsed:.0f} s, {len(samples)} samples every {SAMPLE_EVERY:.0f} s; "
        f"{stored} chat messages acknowledged and stored ({stored / elapsed:.0f}/s from {len(USERS)} clients), "
        f"{churns} connect/sync/disconnect cycles, {len(notifications)} notifications "
        f"({delivered} deliveries to the outbox), all completed; no message lost."
    )
    report = "\n".join([BEGIN, "", conditions, "", *table, "", END])
    print("\n" + report)
    if REPORT:
        await asyncio.to_thread(Path(REPORT).write_text, report + "\n")

    for proc, by_key in figures.items():
        middle_rss, last_rss, *_ = by_key["rss_kib"]
        assert last_rss <= middle_rss * RSS_SLACK + RSS_SLACK_KIB, f"{proc} memory grows: {by_key['rss_kib']}"
        middle_fds, last_fds, *_ = by_key["fds"]
        assert last_fds <= middle_fds + FD_SLACK, f"{proc} descriptors grow: {by_key['fds']}"
        middle_threads, last_threads, *_ = by_key["threads"]
        assert last_threads <= middle_threads + 2, f"{proc} threads grow: {by_key['threads']}"
    with contextlib.suppress(Exception):
        worker.terminate()
