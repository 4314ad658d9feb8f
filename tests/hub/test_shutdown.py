"""SIGTERM on a web node: clients are told to reconnect, land on another node and sync."""

from __future__ import annotations

import asyncio
import signal
import time

from tests.conftest import token_for
from tests.helpers import ChatClient
from tests.hub.test_multinode import StartWeb, web_node  # noqa: F401  (the fixture)
from tests.hub.test_rooms import Rest


async def test_sigterm_tells_clients_to_reconnect_and_exits_quickly(web_node: StartWeb, api_key) -> None:  # noqa: F811  # type: ignore[no-untyped-def]
    leaving = await web_node()
    staying = await web_node()
    service = Rest(staying.url, await api_key("publish"))
    await service.request("POST", "/rooms", {"kind": "private", "id": "team", "members": ["alice", "bob"]})
    alice = ChatClient(leaving.url, token_for("alice"))
    bob = ChatClient(staying.url, token_for("bob"))
    await alice.open()
    await bob.open()
    await bob.call_ok("message:send", {"room": "team", "client_id": "before", "text": "before"})
    await alice.wait_for("message:new")

    started = time.monotonic()
    leaving.proc.send_signal(signal.SIGTERM)
    [closing] = await alice.wait_for("closing", timeout=10)
    assert closing["code"] == "server_shutdown"
    await asyncio.wait_for(alice.disconnected.wait(), 10)
    while leaving.proc.poll() is None and time.monotonic() - started < 20:  # bounded: SHUTDOWN_GRACE
        await asyncio.sleep(0.05)
    assert leaving.proc.returncode == 0

    await bob.call_ok("message:send", {"room": "team", "client_id": "during", "text": "while alice moves"})
    moved = ChatClient(staying.url, token_for("alice"))
    await moved.open()
    synced = await moved.call_ok("sync", {"rooms": {"team": 1}})
    assert [m["text"] for m in synced["rooms"]["team"]["messages"]] == ["while alice moves"]
    await moved.close()
    await bob.close()
