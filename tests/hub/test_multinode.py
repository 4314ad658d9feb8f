"""Several web nodes on one Redis and one database: fan-out, presence, control messages, resync.

Two real ``herald web`` processes for the cross-node contracts and a node killed with ``kill -9``;
in-process nodes on a private redis-server (which the test kills and restarts) for ``resync``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from tests.support.nodes import Node, RedisServer, StartWeb, stop_process
from tests.support.rest import Rest, create_room
from tests.support.sockets import OpenClient, is_text, send, wait_event
from tests.support.tokens import ApiKey

PRESENCE_TTL = 1.5  # seconds, for HERALD_PRESENCE_TTL
REST_TIMEOUT = 10.0  # seconds per REST call


# -- helpers ----------------------------------------------------------------------------------


def is_presence(user_id: str, online: bool) -> Callable[[Any], bool]:
    return lambda event: event["user_id"] == user_id and event["online"] is online


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

    status, body = await Rest(n1.url, key, timeout=REST_TIMEOUT).request("POST", "/users/bob/disconnect")
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

    rest = Rest(n1.url, key, timeout=REST_TIMEOUT)
    status, body = await rest.request("DELETE", "/rooms/team/members/bob")
    assert status == 204, body
    removed = await wait_event(bob, "room:removed")
    assert removed == {"room": "team", "reason": "removed"}
    await send(alice, "team", "bob is out")
    await wait_event(carol, "message:new", is_text("bob is out"))  # same node as bob: it got there
    await asyncio.sleep(0.3)
    assert not [e for e in bob.events["message:new"] if e["message"]["text"] == "bob is out"]

    status, body = await rest.request("PUT", "/rooms/team/members/bob", {"role": "member"})
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

    await stop_process(n2.proc, signal.SIGKILL)  # no graceful departure: only the TTL can tell
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
