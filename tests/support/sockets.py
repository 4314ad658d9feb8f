"""Socket.IO clients of the tests: a recording python-socketio client, the fixtures that open them,
and waiting for what they receive."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import socketio

from tests.support.tokens import token_for

CLOSE_TIMEOUT = 5.0  # seconds to close a client of the ``clients`` fixture whose node may be gone


class ChatClient:
    """A real python-socketio client that records every event it receives, in order."""

    def __init__(self, url: str, token: str, *, transports: list[str] | None = None) -> None:
        self.url = url
        self.token = token
        self.transports = transports or ["websocket"]
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: defaultdict[str, list[Any]] = defaultdict(list)
        self._arrived = asyncio.Condition()
        self.sio.on("*", self._record)
        self.sio.on("disconnect", self._on_disconnect)
        self.disconnected = asyncio.Event()

    async def _record(self, event: str, *args: Any) -> None:
        async with self._arrived:
            self.events[event].append(args[0] if len(args) == 1 else args)
            self._arrived.notify_all()

    async def _on_disconnect(self, *args: Any) -> None:
        self.disconnected.set()

    async def open(self) -> None:
        await self.sio.connect(self.url, auth={"token": self.token}, transports=self.transports, wait_timeout=5)
        await self.wait_for("ready")

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()

    async def call(self, event: str, data: Any = None, timeout: float = 5.0) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    async def wait_for(self, event: str, count: int = 1, timeout: float = 5.0) -> list[Any]:
        """Wait until ``count`` events of that name have arrived; return all of them."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.events[event]) >= count)
        return self.events[event]

    async def call_ok(self, event: str, data: Any = None) -> dict[str, Any]:
        answer = await self.call(event, data)
        assert answer.get("ok") is True, answer
        return dict(answer)


#: The ``connect`` fixture: ``await connect("alice")``, optionally ``url=`` and ``token=``.
Connect = Callable[..., Awaitable[ChatClient]]

#: The ``clients`` fixture: ``await clients(url, user_id)``.
OpenClient = Callable[[str, str], Awaitable[ChatClient]]


@pytest.fixture
async def connect(hub_url: str) -> AsyncIterator[Connect]:
    """``await connect("alice")``: a connected python-socketio client for that user."""
    clients: list[ChatClient] = []

    async def open_client(user_id: str, *, url: str | None = None, token: str | None = None) -> ChatClient:
        client = ChatClient(url or hub_url, token or token_for(user_id))
        await client.open()
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


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
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await client.close()
        except Exception:  # a node already gone; nothing left to close
            pass


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
    """Matches a ``message:new`` event of a message with that text."""
    return lambda event: event["message"]["text"] == text


async def send(client: ChatClient, room: str, text: str) -> None:
    """``message:send`` of ``text``, with a client_id made of it; the ack must be ok."""
    client_id = "c-" + "".join(c if c.isalnum() else "-" for c in text)
    await client.call_ok("message:send", {"room": room, "client_id": client_id, "text": text})


async def connect_refusal(url: str, token: str | None) -> dict[str, Any]:
    """Connect with ``token`` (None: no auth at all) and return the single connect_error payload."""
    client = socketio.AsyncClient(reconnection=False)
    refusals: list[Any] = []
    client.on("connect_error", refusals.append)
    auth = None if token is None else {"token": token}
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(url, auth=auth, transports=["websocket"], wait_timeout=5)
    finally:
        if client.connected:
            await client.disconnect()
    assert len(refusals) == 1, refusals
    [refusal] = refusals
    assert set(refusal) == {"message", "data"}, refusal
    assert set(refusal["data"]) == {"code", "message"}, refusal
    assert isinstance(refusal["data"]["message"], str) and refusal["data"]["message"]
    return dict(refusal)
