"""FCM client throughput: Herald's sender (over its HTTP/2 client, and over httpx) against
firebase-admin's ``send_each_async``.

    python -m bench.push_clients [--count 20000] [--latency 0.02] [--in-flight 500] [--out FILE]

Starts the fake FCM (tests/fakes/fcm.py) as a separate process answering after ``--latency``
seconds, then runs each client in a fresh child process (uvloop, as the worker runs) that sends
``--count`` notifications after a warm-up (token exchange, connection). Reports sends per second and
the client process's CPU time per notification (user + system, all threads). On demand only: these
are figures for docs/push.md, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 200
MESSAGE_DATA = {"room": "r1", "seq": "42", "sender": "alice"}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the clients (each runs in its own child process)


async def run_lean(
    port: int, tls_dir: Path, service_account: Path, count: int, in_flight: int, transport_name: str
) -> dict[str, Any]:
    from push import PushMessage, Target
    from push.apps import FcmCredentials
    from push.fcm import FcmHttp, FcmProvider
    from push.fcm_auth import AccessTokens
    from push.fcm_transport import H2Transport, HttpxTransport

    ca, endpoint = tls_dir / "ca.pem", f"https://127.0.0.1:{port}"
    transport = H2Transport(endpoint, ca_file=ca) if transport_name == "h2" else HttpxTransport(endpoint, ca_file=ca)
    http = FcmHttp(transport=transport, max_in_flight=in_flight)
    provider = FcmProvider(
        FcmCredentials(service_account, "herald-bench"), tokens=AccessTokens(service_account, ca_file=ca), http=http
    )
    message = PushMessage(title="Alice", body="Lunch at noon?", data=MESSAGE_DATA, collapse_key="room-r1")

    async def send(i: int) -> bool:
        target = Target(f"bench-token-{i:08d}", "fcm", "production", None, str(uuid.uuid4()))
        return (await provider.send(target, message)).outcome == "delivered"

    try:
        await asyncio.gather(*(send(i) for i in range(WARMUP)))
        cpu, start = cpu_seconds(), time.perf_counter()
        ok = sum(await asyncio.gather(*(send(i) for i in range(count))))
        wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    finally:
        await provider.close()
        await http.close()
    name = "HTTP/2 client (push/h2client.py)" if transport_name == "h2" else "httpx AsyncClient(http2=True)"
    return {"client": f"Herald FCM sender over {name}, {in_flight} in flight", "sent": ok, "wall_s": wall, "cpu_s": cpu}


async def run_firebase_admin(port: int, tls_dir: Path, service_account: Path, count: int, batch: int) -> dict[str, Any]:
    import warnings

    ca = str(tls_dir / "ca.pem")
    os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = ca  # firebase-admin takes no CA option
    warnings.simplefilter("ignore", DeprecationWarning)  # Message.token is deprecated in 7.7
    import firebase_admin
    from firebase_admin import credentials, messaging

    app = firebase_admin.initialize_app(credentials.Certificate(str(service_account)), name="bench")
    service = messaging._get_messaging_service(app)
    service._fcm_url = f"https://127.0.0.1:{port}/v1/projects/{app.project_id}/messages:send"

    def build(n: int) -> list[messaging.Message]:
        return [
            messaging.Message(
                token=f"bench-token-{i:08d}",
                notification=messaging.Notification(title="Alice", body="Lunch at noon?"),
                data=MESSAGE_DATA,
                android=messaging.AndroidConfig(
                    collapse_key="room-r1", priority="high", notification=messaging.AndroidNotification(tag="room-r1")
                ),
                apns=messaging.APNSConfig(headers={"apns-collapse-id": "room-r1", "apns-priority": "10"}),
            )
            for i in range(n)
        ]

    # The token refresh blocks the loop with `requests`: fine here, the fake is another process.
    await messaging.send_each_async(build(WARMUP), app=app)
    cpu, start = cpu_seconds(), time.perf_counter()
    ok = 0
    for first in range(0, count, batch):
        response = await messaging.send_each_async(build(min(batch, count - first)), app=app)
        ok += response.success_count
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    await service._async_client.aclose()
    return {"client": f"firebase-admin send_each_async, batches of {batch}", "sent": ok, "wall_s": wall, "cpu_s": cpu}


async def run_aioapns(
    port: int, tls_dir: Path, key_file: Path, team_id: str, key_id: str, count: int, in_flight: int
) -> dict[str, Any]:
    """aioapns alone (10 connections, ``in_flight`` requests at a time), against the fake APNs."""
    from aioapns import APNs, NotificationRequest, PushType

    from push.tls import client_context

    key = key_file.read_text()  # noqa: ASYNC240 - once, before the timed part
    client = APNs(
        key=key,
        key_id=key_id,
        team_id=team_id,
        topic="chat.herald.bench",
        max_connections=10,
        ssl_context=client_context(tls_dir / "ca.pem"),
    )
    base = client.pool.protocol_class
    client.pool.protocol_class = type("BenchProtocol", (base,), {"APNS_SERVER": "127.0.0.1", "APNS_PORT": port})
    gate = asyncio.Semaphore(in_flight)
    payload = {"aps": {"alert": {"title": "Alice", "body": "Lunch at noon?"}}, **MESSAGE_DATA}

    async def send(i: int) -> bool:
        request = NotificationRequest(
            device_token=f"{i:064x}",
            message=payload,
            notification_id=str(uuid.uuid4()),
            collapse_key="room-r1",
            push_type=PushType.ALERT,
        )
        async with gate:
            return bool((await client.send_notification(request)).is_successful)

    try:
        await asyncio.gather(*(send(i) for i in range(WARMUP)))
        cpu, start = cpu_seconds(), time.perf_counter()
        ok = sum(await asyncio.gather(*(send(i) for i in range(count))))
        wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    finally:
        client.pool.close()
    name = f"aioapns {metadata.version('aioapns')} alone, 10 connections, {in_flight} in flight"
    return {"client": name, "sent": ok, "wall_s": wall, "cpu_s": cpu}


def child(args: argparse.Namespace) -> None:
    import uvloop

    tls_dir, service_account = Path(args.tls_dir), Path(args.service_account)
    if args.client == "aioapns":
        coro = run_aioapns(
            args.port, tls_dir, Path(args.apns_key), args.team_id, args.key_id, args.count, args.in_flight
        )
    elif args.client in ("h2", "httpx"):
        coro = run_lean(args.port, tls_dir, service_account, args.count, args.in_flight, args.client)
    else:
        coro = run_firebase_admin(args.port, tls_dir, service_account, args.count, args.batch)
    print(json.dumps(uvloop.run(coro)), flush=True)


# -- the parent: fake FCM in its own process, each client in a fresh one


def run_client(extra: list[str], common: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.push_clients", "--child", *extra, *common]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["sends_per_s"] = round(result["sent"] / result["wall_s"])
    result["cpu_us_per_send"] = round(result["cpu_s"] / max(result["sent"], 1) * 1e6)
    return result


def parent(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="herald-bench-push-") as tmp:
        tls_dir, service_account = Path(tmp) / "tls", Path(tmp) / "sa.json"
        fake_cmd = [
            *(sys.executable, "-m", "tests.fakes.fcm", "--port", "0", "--latency", str(args.latency)),
            *("--project", "herald-bench", "--tls-dir", str(tls_dir), "--service-account", str(service_account)),
        ]
        fake = subprocess.Popen(fake_cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            assert fake.stdout is not None
            port = int(fake.stdout.readline())
            common = [f"--port={port}", f"--tls-dir={tls_dir}", f"--service-account={service_account}"]
            common.append(f"--count={args.count}")
            results = [
                run_client([f"--client={t}", f"--in-flight={n}"], common)
                for t in ("h2", "httpx")
                for n in sorted({200, args.in_flight})
            ]
            results += [run_client(["--client=firebase-admin", f"--batch={b}"], common) for b in (100, 500)]
        finally:
            fake.terminate()
            fake.wait(10)
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "versions": {p: metadata.version(p) for p in ("httpx", "h2", "firebase-admin", "google-auth", "uvloop")},
        "fake": f"tests.fakes.fcm in a separate process, HTTP/2 over TLS, {args.latency * 1000:.0f} ms per answer",
        "count": args.count,
        "results": results,
    }
    print(f"{'client':<80} {'sent/s':>8} {'CPU µs/send':>12}")
    for r in results:
        print(f"{r['client']:<80} {r['sends_per_s']:>8} {r['cpu_us_per_send']:>12}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.push_clients", description=__doc__)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--out", help="write the figures (with machine and date) as JSON here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=("h2", "httpx", "firebase-admin", "aioapns"), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=500, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tls-dir", help=argparse.SUPPRESS)
    parser.add_argument("--service-account", help=argparse.SUPPRESS)
    parser.add_argument("--apns-key", help=argparse.SUPPRESS)
    parser.add_argument("--team-id", help=argparse.SUPPRESS)
    parser.add_argument("--key-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    child(args) if args.child else parent(args)


if __name__ == "__main__":
    main()
