"""Hypothesis drives every socket event with arbitrary payloads: each gets an ack, the server stays up.

The hub and a client run on an event loop of their own in a thread, so hypothesis can call into
them from its ordinary (synchronous) test function, many examples over one connection.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import Settings
from hub.app import create_app
from tests.support.nodes import start_serving
from tests.support.sockets import ChatClient
from tests.support.tokens import token_for

EVENTS = [
    "room:join",
    "room:leave",
    "room:mute",
    "message:send",
    "message:edit",
    "message:delete",
    "history",
    "sync",
    "typing",
    "read",
    "read:all",
    "rooms:list",
    "presence",
    "auth:refresh",
    "member:set",
    "member:remove",
    "member:ban",
    "member:unban",
    "member:mute",
    "room:freeze",
    "message:report",
    "no:such:event",
]
FIELDS = ["room", "client_id", "text", "meta", "reply_to", "id", "before_seq", "after_seq", "limit", "rooms",
          "typing", "seq", "until", "token", "cursor", "user_id", "role", "reason", "frozen"]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=False),
    st.text(max_size=60),
    st.sampled_from(["team", "r1", "", "../x", "2030-01-01T00:00:00Z", "x" * 5000]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
payloads = st.one_of(values, st.dictionaries(st.sampled_from(FIELDS), values, max_size=6))


class ThreadedHub:
    """The app and one connected client on a loop running in a background thread."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        settings = Settings.from_env({**self.env, "HERALD_MESSAGE_RATE": "10000", "HERALD_MESSAGE_BURST": "10000"})
        self.runner, port = await start_serving(create_app(settings))
        self.url = f"http://127.0.0.1:{port}"
        self.client = ChatClient(self.url, token_for("fuzzer"))
        await self.client.open()

    async def _stop(self) -> None:
        await self.client.close()
        await self.runner.cleanup()

    def __enter__(self) -> ThreadedHub:
        self.thread.start()
        self.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def threaded_hub(env: dict[str, str]) -> Iterator[ThreadedHub]:
    with ThreadedHub(env) as hub:
        yield hub


def test_every_event_answers_any_payload_with_an_ack(threaded_hub: ThreadedHub) -> None:
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(event=st.sampled_from(EVENTS), payload=payloads)
    def one(event: str, payload: Any) -> None:
        answer = threaded_hub.run(threaded_hub.client.call(event, payload))
        assert isinstance(answer, dict) and isinstance(answer.get("ok"), bool), answer
        if not answer["ok"]:
            assert set(answer["error"]) >= {"code", "message"}
            assert answer["error"]["code"] != "internal", (event, payload, answer)

    one()
    assert threaded_hub.client.sio.connected
    pong = threaded_hub.run(threaded_hub.client.call("history", {"room": "nope"}))
    assert pong["error"]["code"] == "not_found"
