"""SIGTERM on a web node: clients are told to reconnect, land on another node and sync."""

from __future__ import annotations

import asyncio
import signal
import time

from tests.support.js import JS_DIR, node_and_script, run_node_script
from tests.support.nodes import StartWeb
from tests.support.rest import Rest
from tests.support.sockets import ChatClient
from tests.support.tokens import token_for

RESTART_SCRIPT = JS_DIR / "restart.mjs"


async def test_sigterm_tells_clients_to_reconnect_and_exits_quickly(web_node: StartWeb, api_key) -> None:  # type: ignore[no-untyped-def]
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


async def test_official_js_client_reconnects_by_itself_after_a_graceful_restart(web_node: StartWeb, api_key) -> None:  # type: ignore[no-untyped-def]
    """A deploy restarts a node: the official client, with its default options, comes back by itself
    and ends with every message of its room exactly once (what it sent, what came while it was away)."""
    node, script = node_and_script(RESTART_SCRIPT)
    before, after = 3, 4
    web = await web_node()
    port = web.url.rsplit(":", 1)[1]
    key = await api_key("publish")
    status, _ = await Rest(web.url, key).request(
        "POST", "/rooms", {"kind": "private", "id": "deploy", "members": ["alice", "bob"]}
    )
    assert status == 201
    args = {"url": web.url, "room": "deploy", "token": token_for("alice"), "before": before, "total": before + after}
    client = asyncio.ensure_future(run_node_script(node, script, args, cwd=script.parent, timeout=45))
    try:
        while True:  # until alice's messages are in
            status, page = await Rest(web.url, key).request("GET", "/rooms/deploy/messages")
            assert status == 200, page
            if len(page["messages"]) == before or client.done():
                break
            await asyncio.sleep(0.05)

        web.proc.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        while web.proc.poll() is None and time.monotonic() - stopping < 20:  # bounded: SHUTDOWN_GRACE
            await asyncio.sleep(0.05)
        assert web.proc.returncode == 0, web.log.read_text()[-6000:]
        again = await web_node(PORT=port)  # the new release, on the same address
        rest = Rest(again.url, key)
        for i in range(after):  # while alice is reconnecting, or just after
            status, _ = await rest.request(
                "POST", "/rooms/deploy/messages", {"sender_id": "bob", "client_id": f"after-{i}", "text": f"after {i}"}
            )
            assert status == 201
        report = await client
    finally:
        if not client.done():
            client.cancel()

    assert report["closing"] == [{"code": "server_shutdown", "message": "the server is restarting; reconnect"}]
    assert report["disconnect_reasons"] == ["transport close"], "not 'io server disconnect', which is final"
    assert report["readies"] == 2, "connected, then reconnected by itself"
    assert sorted(report["seqs"]) == list(range(1, before + after + 1))
    assert report["duplicates"] == 0
