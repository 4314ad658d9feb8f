"""Oversize and malformed HTTP requests: Herald's JSON error with a fitting status, and no credential in
any answer or log line.

aiohttp's parser refuses these before any middleware runs; ``hub.httpserver`` answers them.  Every
request goes over a raw socket, so what is sent is exactly what is written below.  The same hostile
run goes against an in-process node (every log record at DEBUG, Herald's JSON formatter) and
against a real ``herald web`` process at ``HERALD_LOG_LEVEL=DEBUG`` (its whole stderr).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from config import Settings
from config.logs import JsonFormatter
from hub.app import create_app
from hub.httpserver import MAX_FIELD_BYTES, MAX_HEADERS, AppRunner
from tests.support.sockets import ChatClient
from tests.support.tokens import token_for

HERALD = str(Path(sys.executable).with_name("herald"))
FRAGMENT = 16  # no log line may hold this many consecutive characters of a credential
LOGGERS = ("", "aiohttp", "aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.internal", "asyncio", "hub")


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: Any
    raw: bytes


async def exchange(port: int, request: bytes) -> Answer:
    """Write ``request`` as is on a new connection; read the answer until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()  # every refusal closes the connection (Connection: close below otherwise)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    return Answer(status, headers.get("content-type", ""), parsed, raw)


def http_request(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *(f"{k}: {v}" for k, v in headers)]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def assert_refused(answer: Answer, status: int, code: str, case: str) -> None:
    assert answer.status == status, (case, answer.raw[:300])
    assert answer.content_type.startswith("application/json"), (case, answer.raw[:300])
    assert isinstance(answer.body, dict) and set(answer.body) == {"error"}, (case, answer.raw[:300])
    assert set(answer.body["error"]) == {"code", "message"}, (case, answer.body)
    assert answer.body["error"]["code"] == code, (case, answer.body)
    assert answer.body["error"]["message"], (case, answer.body)


class Credentials:
    """The credentials of a run, and whether a text holds FRAGMENT consecutive characters of one."""

    def __init__(self, secrets: list[str]) -> None:
        self.pieces = {s[i : i + FRAGMENT]: s[:8] + "..." for s in secrets for i in range(len(s) - FRAGMENT + 1)}

    def leaked_in(self, text: str) -> set[str]:
        """The credentials (their first characters) of which ``text`` holds a fragment."""
        pieces = self.pieces
        return {
            pieces[text[i : i + FRAGMENT]] for i in range(len(text) - FRAGMENT + 1) if text[i : i + FRAGMENT] in pieces
        }


PARSER_REFUSALS = 9  # the cases below that aiohttp's parser refuses (the bad JSON and the big body reach a route)


async def hostile_run(port: int, key: str) -> Credentials:
    """Send every hostile request, assert each answer; return the credentials used (for the log check)."""
    jwt = token_for("alice")
    huge_jwt = token_for("alice", blob="x" * MAX_FIELD_BYTES)  # a real, signed JWT over the limit
    secrets = Credentials([key, jwt, huge_jwt])

    cases: list[tuple[str, bytes, int, str]] = [
        (
            "an Authorization header over the limit, a real API key at its start",
            http_request(
                "GET", "/api/v1/users/alice/rooms", [("Authorization", f"Bearer {key} {'k' * MAX_FIELD_BYTES}")]
            ),
            431,
            "too_large",
        ),
        (
            "a real JWT over the header limit",
            http_request("GET", "/api/v1/users/alice/rooms", [("Authorization", f"Bearer {huge_jwt}")]),
            431,
            "too_large",
        ),
        (
            "an oversize Authorization header on the Socket.IO path",
            http_request("GET", "/socket.io/?EIO=4&transport=polling", [("Authorization", f"Bearer {huge_jwt}")]),
            431,
            "too_large",
        ),
        (
            "more headers than allowed, each holding the key",
            http_request(
                "GET",
                "/api/v1/users/alice/rooms",
                [("Authorization", f"Bearer {key}"), *((f"X-Pad-{i}", key) for i in range(MAX_HEADERS + 10))],
            ),
            431,
            "too_large",
        ),
        (
            "a request line over the limit, a token in its query",
            http_request("GET", f"/socket.io/?EIO=4&transport=polling&token={jwt}&pad={'p' * MAX_FIELD_BYTES}", []),
            431,
            "too_large",
        ),
        (
            "bad JSON with a valid key",
            http_request(
                "POST",
                "/api/v1/rooms",
                [("Authorization", f"Bearer {key}"), ("Content-Type", "application/json")],
                f'{{"kind": "public", "name": "{key}"'.encode(),
            ),
            400,
            "invalid_payload",
        ),
        (
            "a body over the limit with a valid key",
            http_request(
                "POST",
                "/api/v1/rooms",
                [("Authorization", f"Bearer {key}"), ("Content-Type", "application/json")],
                json.dumps({"kind": "public", "name": "big", "metadata": {"pad": "b" * 300_000}}).encode(),
            ),
            413,
            "too_large",
        ),
        (
            "a header line without a colon, holding the key",
            f"GET /api/v1/users/alice/rooms HTTP/1.1\r\nHost: x\r\nAuthorization Bearer {key}\r\n\r\n".encode(),
            400,
            "invalid_payload",
        ),
        (
            "a request line that is not HTTP, holding the key",
            f"{key} {jwt}\r\n\r\n".encode(),
            400,
            "invalid_payload",
        ),
        (
            "a chunked body whose chunk size is not hexadecimal",
            http_request(
                "POST",
                "/api/v1/rooms",
                [("Authorization", f"Bearer {key}"), ("Transfer-Encoding", "chunked")],
            )
            + f"{key}\r\n{{}}\r\n0\r\n\r\n".encode(),
            400,
            "invalid_payload",
        ),
        (
            "TLS sent to the HTTP port",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),
            400,
            "invalid_payload",
        ),
    ]
    for case, request, status, code in cases:
        answer = await exchange(port, request)
        assert_refused(answer, status, code, case)
        assert not secrets.leaked_in(answer.raw.decode("latin-1")), (case, answer.raw[:300])

    # the node is unharmed: REST with the same key, an Engine.IO polling handshake, a Socket.IO session
    ok = await exchange(port, http_request("GET", "/api/v1/users/alice/rooms", [("Authorization", f"Bearer {key}")]))
    nothing = {"rooms": [], "next_cursor": None, "total": 0, "unread_total": 0}
    assert ok.status == 200 and ok.body == nothing, ok.raw[:300]
    opened = await exchange(port, http_request("GET", "/socket.io/?EIO=4&transport=polling", []))
    assert opened.status == 200 and opened.raw.partition(b"\r\n\r\n")[2].startswith(b'0{"sid":'), opened.raw[:300]
    client = ChatClient(f"http://127.0.0.1:{port}", jwt)
    await client.open()
    assert client.events["ready"] == [
        {"user_id": "alice", "rooms": [], "unread": {}, "unread_total": 0, "versions": {}}
    ]
    await client.close()
    return secrets


class Recorder(logging.Handler):
    """Every record, as Herald's JSON formatter writes it (message, extras, stack)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    handler = Recorder()
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in LOGGERS]
    for logger, _ in saved:
        logger.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    for logger, level in saved:
        logger.setLevel(level)


async def test_hostile_requests_get_json_errors_and_no_credential_is_logged(
    settings: Settings, api_key: Callable[..., Awaitable[str]], recorder: Recorder
) -> None:
    key = await api_key("admin")
    runner = AppRunner(create_app(settings), access_log=None)  # as `herald web` serves (hub.httpserver.serve)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert site._server is not None
    try:
        secrets = await hostile_run(site._server.sockets[0].getsockname()[1], key)
    finally:
        await runner.cleanup()
    refusals = [json.loads(line) for line in recorder.lines if '"refused an HTTP request"' in line]
    assert len(refusals) == PARSER_REFUSALS, recorder.lines  # one line each (a request line that is not HTTP: debug)
    assert all("exc" not in line for line in refusals)
    assert not [line for line in recorder.lines if secrets.leaked_in(line)]


@pytest.fixture
async def herald_web(env: dict[str, str], tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """A ``herald web`` process logging at DEBUG: (its port, the file of its stderr and stdout)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = {
        k: v for k, v in os.environ.items() if not k.startswith("HERALD_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    node_env = {**base, **env, "PORT": str(port), "HERALD_HOST": "127.0.0.1", "HERALD_LOG_LEVEL": "DEBUG"}
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([HERALD, "web"], env=node_env, cwd=tmp_path, stdout=out, stderr=out)
    try:
        async with asyncio.timeout(30), aiohttp.ClientSession() as http:
            while True:
                assert proc.poll() is None, log.read_text()[-2000:]
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        yield port, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_herald_web_answers_hostile_requests_and_logs_no_credential(
    herald_web: tuple[int, Path], api_key: Callable[..., Awaitable[str]]
) -> None:
    port, log = herald_web
    secrets = await hostile_run(port, await api_key("admin"))
    lines = log.read_text(errors="replace").splitlines()
    assert sum('"refused an HTTP request"' in line for line in lines) == PARSER_REFUSALS, lines[-50:]
    assert not [line for line in lines if secrets.leaked_in(line)]
    assert not [line for line in lines if "Traceback" in line or '"exc"' in line], lines[-50:]
