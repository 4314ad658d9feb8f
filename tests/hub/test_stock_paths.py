"""End to end on the paths where the stock python-engineio and aiohttp code still runs under Herald's
overrides (hub/transport): the polling transport, the upgrade from polling to websocket, and the
compressed websocket (aiohttp's ``WebSocketResponse`` with permessage-deflate).

The polling session uses python-socketio's ``AsyncClient``.  The upgrade and the compressed
websocket use :class:`RawClient`, a Socket.IO v5 / Engine.IO v4 client written here, so that the
upgrade happens exactly where the test says (mid-conversation, with a broadcast arriving while it is
probed) and the websocket offers permessage-deflate (python-socketio's client never does).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from tests.support.rest import Rest
from tests.support.sockets import ChatClient
from tests.support.tokens import token_for

Node = Callable[..., Awaitable[str]]
SEP = "\x1e"  # Engine.IO v4 polling payloads: packets separated by a record separator


async def create_room(url: str, key: str, room: dict[str, Any]) -> None:
    status, body = await Rest(url, key).request("POST", "/rooms", room)
    assert status == 201, body


class RawClient:
    """One Socket.IO connection over Engine.IO v4, by hand: polling, websocket, and the upgrade."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http = http
        self.base = f"{url}/socket.io/?EIO=4"
        self.token = token
        self.sid = ""
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.acks: dict[int, Any] = {}
        self.events: list[tuple[str, Any, str]] = []  # (event, payload, transport it came over)
        self.next_id = 0

    @property
    def transport(self) -> str:
        return "websocket" if self.ws is not None else "polling"

    def received(self, event: str) -> list[Any]:
        return [payload for name, payload, _ in self.events if name == event]

    async def open_polling(self) -> None:
        async with self.http.get(f"{self.base}&transport=polling") as resp:
            assert resp.status == 200, await resp.text()
            opened = await resp.text()
        assert opened.startswith("0"), opened
        self.sid = json.loads(opened[1:])["sid"]
        await self.send("40" + json.dumps({"token": self.token}))
        await self.until(lambda: bool(self.received("ready")))

    async def open_websocket(self, *, compress: int) -> None:
        offer = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"} if compress else {}
        self.ws = await self.http.ws_connect(f"{self.base}&transport=websocket", headers=offer, compress=compress)
        opened = await self.ws.receive_str(timeout=10)
        assert opened.startswith("0"), opened
        await self.send("40" + json.dumps({"token": self.token}))
        await self.until(lambda: bool(self.received("ready")))

    async def upgrade(self, while_probing: Callable[[], Awaitable[None]]) -> None:
        """Engine.IO's upgrade: probe a websocket of this session, run ``while_probing`` (the
        polling transport still carries the session), then switch (``5``)."""
        ws = await self.http.ws_connect(f"{self.base}&transport=websocket&sid={self.sid}")
        await ws.send_str("2probe")
        assert await ws.receive_str(timeout=10) == "3probe"
        await while_probing()
        await ws.send_str("5")
        self.ws = ws

    async def emit(self, event: str, data: Any) -> Any:
        """Send an event with an ack id; return the ack's payload."""
        ack_id = self.next_id
        self.next_id += 1
        await self.send(f"42{ack_id}" + json.dumps([event, data]))
        await self.until(lambda: ack_id in self.acks)
        return self.acks.pop(ack_id)

    async def send(self, packet: str) -> None:
        if self.ws is not None:
            await self.ws.send_str(packet)
            return
        async with self.http.post(f"{self.base}&transport=polling&sid={self.sid}", data=packet.encode()) as resp:
            assert resp.status == 200, await resp.text()

    async def until(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                for packet in await self._read():
                    await self._handle(packet)

    async def _read(self) -> list[str]:
        if self.ws is not None:
            message = await self.ws.receive()
            assert message.type == aiohttp.WSMsgType.TEXT, message
            return [str(message.data)]
        async with self.http.get(f"{self.base}&transport=polling&sid={self.sid}") as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.text()).split(SEP)

    async def _handle(self, packet: str) -> None:
        if packet == "2":  # the server's ping
            await self.send("3")
        elif packet.startswith("42"):
            name, payload = json.loads(packet[2:])
            self.events.append((name, payload, self.transport))
        elif packet.startswith("43"):
            digits = packet[2:].split("[", 1)[0]
            self.acks[int(digits)] = json.loads(packet[2 + len(digits) :])[0]
        else:
            assert packet[0] in "0346" or packet.startswith("40"), packet  # open, pong, message, noop

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        else:
            await self.send("1")


def texts_from(events: list[Any], sender: str) -> list[str]:
    return [e["message"]["text"] for e in events if e["message"]["sender_id"] == sender]


async def test_a_whole_chat_session_over_polling_only(start_node: Node, api_key: Callable[..., Awaitable[str]]) -> None:
    # A polling client's disconnect waits for its last long poll, which the server answers only
    # after ping interval + timeout (45 s by default): short ones keep this test quick.
    url = await start_node(HERALD_PING_INTERVAL="1", HERALD_PING_TIMEOUT="4")
    await create_room(url, await api_key("publish"), {"kind": "public", "id": "lobby", "name": "Lobby"})
    alice = ChatClient(url, token_for("alice"), transports=["polling"])
    bob = ChatClient(url, token_for("bob"), transports=["polling"])
    await alice.open()
    await bob.open()
    try:
        assert alice.sio.transport() == "polling" and bob.sio.transport() == "polling"
        assert alice.events["ready"] == [
            {"user_id": "alice", "rooms": [], "unread": {}, "unread_total": 0, "versions": {}}
        ]
        for client in (alice, bob):
            joined = await client.call_ok("room:join", {"room": "lobby"})
            assert joined["room"]["id"] == "lobby"
        sent = await alice.call_ok("message:send", {"room": "lobby", "client_id": "a1", "text": "over polling"})
        assert sent["message"]["seq"] == 1
        [new] = await bob.wait_for("message:new")
        assert new["message"]["text"] == "over polling" and new["message"]["seq"] == 1

        await bob.close()  # bob leaves; alice goes on
        for i in (2, 3):
            ack = await alice.call_ok("message:send", {"room": "lobby", "client_id": f"a{i}", "text": f"missed {i}"})
            assert ack["message"]["seq"] == i
        back = ChatClient(url, token_for("bob"), transports=["polling"])
        await back.open()
        try:
            assert back.events["ready"] == [  # alice's three messages came after bob joined
                {
                    "user_id": "bob",
                    "rooms": ["lobby"],
                    "unread": {"lobby": 3},
                    "unread_total": 3,
                    "versions": {"lobby": 3},
                }
            ]
            synced = await back.call_ok("sync", {"rooms": {"lobby": 1}})
            missed = synced["rooms"]["lobby"]["messages"]
            assert [(m["seq"], m["text"]) for m in missed] == [(2, "missed 2"), (3, "missed 3")]
        finally:
            await back.close()
    finally:
        await alice.close()
        await bob.close()


async def test_polling_upgraded_to_websocket_mid_conversation_loses_and_repeats_nothing(
    start_node: Node, api_key: Callable[..., Awaitable[str]]
) -> None:
    url = await start_node()
    await create_room(url, await api_key("publish"), {"kind": "public", "id": "lobby", "name": "Lobby"})
    bob = ChatClient(url, token_for("bob"))  # websocket; joins first, so he sees every message
    await bob.open()
    await bob.call_ok("room:join", {"room": "lobby"})
    bob_sent: list[str] = []

    async def bob_says(text: str) -> None:
        await bob.call_ok("message:send", {"room": "lobby", "client_id": text.replace(" ", "-"), "text": text})
        bob_sent.append(text)

    async with aiohttp.ClientSession() as http:
        alice = RawClient(http, url, token_for("alice"))
        await alice.open_polling()
        assert (await alice.emit("room:join", {"room": "lobby"}))["ok"] is True
        alice_acks = []
        for i in range(3):  # before the upgrade, both ways
            alice_acks.append(
                await alice.emit("message:send", {"room": "lobby", "client_id": f"a{i}", "text": f"alice {i}"})
            )
            await bob_says(f"bob {i}")
        await alice.until(lambda: len(texts_from(alice.received("message:new"), "bob")) == 3)

        await alice.upgrade(while_probing=lambda: bob_says("bob while probing"))

        for i in range(3, 6):  # after it
            alice_acks.append(
                await alice.emit("message:send", {"room": "lobby", "client_id": f"a{i}", "text": f"alice {i}"})
            )
            await bob_says(f"bob {i}")
        await alice.until(lambda: len(texts_from(alice.received("message:new"), "bob")) == len(bob_sent))
        await alice.close()

    assert all(ack["ok"] for ack in alice_acks), alice_acks
    new = alice.received("message:new")
    assert texts_from(new, "bob") == bob_sent  # every one, once, in order
    heard = [e["message"]["seq"] for e in new]
    assert heard == sorted(set(heard))  # in seq order, none twice
    own = [ack["message"]["seq"] for ack in alice_acks]
    assert sorted(heard + own) == list(range(1, len(bob_sent) + len(own) + 1))  # with her own acks: no gap
    transports = {t for name, _, t in alice.events if name == "message:new"}
    assert transports == {"polling", "websocket"}  # the conversation really crossed the upgrade
    bob_new = await bob.wait_for("message:new", count=6)
    assert texts_from(bob_new, "alice") == [f"alice {i}" for i in range(6)]
    await bob.close()


async def test_compressed_websocket_sends_receives_and_syncs(
    start_node: Node, api_key: Callable[..., Awaitable[str]]
) -> None:
    url = await start_node(HERALD_WS_COMPRESSION="true")
    await create_room(url, await api_key("publish"), {"kind": "public", "id": "lobby", "name": "Lobby"})
    bob = ChatClient(url, token_for("bob"))
    await bob.open()
    await bob.call_ok("room:join", {"room": "lobby"})
    async with aiohttp.ClientSession() as http:
        alice = RawClient(http, url, token_for("alice"))
        await alice.open_websocket(compress=15)
        assert alice.ws is not None and alice.ws.compress == 15  # permessage-deflate negotiated: aiohttp's path
        assert alice.received("ready") == [
            {"user_id": "alice", "rooms": [], "unread": {}, "unread_total": 0, "versions": {}}
        ]
        assert (await alice.emit("room:join", {"room": "lobby"}))["ok"] is True
        text = "compressed " + "words " * 200  # long enough for deflate to matter
        ack = await alice.emit("message:send", {"room": "lobby", "client_id": "a1", "text": text})
        assert ack["ok"] is True and ack["message"]["seq"] == 1
        [heard] = await bob.wait_for("message:new")
        assert heard["message"]["text"] == text
        await bob.call_ok("message:send", {"room": "lobby", "client_id": "b1", "text": "bob back"})
        await alice.until(lambda: texts_from(alice.received("message:new"), "bob") == ["bob back"])
        await alice.close()

        await bob.call_ok("message:send", {"room": "lobby", "client_id": "b2", "text": "while alice is away"})
        again = RawClient(http, url, token_for("alice"))
        await again.open_websocket(compress=15)
        assert again.ws is not None and again.ws.compress == 15
        assert again.received("ready") == [  # bob's two after alice's own
            {
                "user_id": "alice",
                "rooms": ["lobby"],
                "unread": {"lobby": 2},
                "unread_total": 2,
                "versions": {"lobby": 3},
            }
        ]
        synced = await again.emit("sync", {"rooms": {"lobby": 2}})
        assert synced["ok"] is True
        assert [(m["seq"], m["text"]) for m in synced["rooms"]["lobby"]["messages"]] == [(3, "while alice is away")]
        await again.close()
    await bob.close()
