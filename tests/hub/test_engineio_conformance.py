"""Engine.IO v4 over HTTP as the Node server answers it (hub.transport.engine), from a raw HTTP client.

Every refusal is a 400 with the Node server's body ``{"code", "message"}``; a POST is answered ``ok``;
a malformed POST or a second GET poll closes the session; a CLOSE packet over polling answers the
GET that waits; a second websocket for an upgraded session is accepted and closed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from config import Settings
from hub.app import create_app
from hub.transport.wheel import PingWheel
from tests.support.nodes import serving

PATH = "/socket.io/"


@pytest.fixture
async def url(env: dict[str, str]) -> AsyncIterator[str]:
    settings = Settings.from_env({**env, "HERALD_PING_INTERVAL": "1.5", "HERALD_PING_TIMEOUT": "0.25"})
    async with serving(create_app(settings)) as (_, port):
        yield f"http://127.0.0.1:{port}{PATH}"


async def _handshake(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url, params={"EIO": "4", "transport": "polling"}) as resp:
        assert resp.status == 200
        text = await resp.text()
    assert text.startswith("0")
    opened: dict[str, Any] = json.loads(text[1:])
    return opened


async def _refusal(resp: aiohttp.ClientResponse) -> int:
    assert resp.status == 400
    body = await resp.json(content_type=None)
    assert set(body) == {"code", "message"}
    return int(body["code"])


def _session(sid: str) -> dict[str, str]:
    return {"EIO": "4", "transport": "polling", "sid": sid}


async def test_the_handshake_advertises_fractional_intervals_in_milliseconds(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        opened = await _handshake(http, url)
    assert opened["pingInterval"] == 1500  # engineio sent int(1.5) * 1000 = 1000
    assert opened["pingTimeout"] == 250


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"EIO": "4"}, 0),  # no transport
        ({"EIO": "4", "transport": "carrier-pigeon"}, 0),
        ({"EIO": "3", "transport": "polling"}, 5),
        ({"transport": "polling"}, 5),
        ({"EIO": "4", "transport": "polling", "sid": "nobody"}, 1),
    ],
)
async def test_bad_handshakes_are_refused_with_the_node_servers_codes(
    url: str, params: dict[str, str], code: int
) -> None:
    async with aiohttp.ClientSession() as http, http.get(url, params=params) as resp:
        assert await _refusal(resp) == code


async def test_other_methods_are_bad_requests_not_405(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.put(url, params={"EIO": "4", "transport": "polling"}) as resp:
            assert await _refusal(resp) == 2  # Bad handshake method
        sid = (await _handshake(http, url))["sid"]
        async with http.put(url, params=_session(sid), data="4hi") as resp:
            assert await _refusal(resp) == 3


async def test_a_post_is_answered_ok(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        sid = (await _handshake(http, url))["sid"]
        async with http.post(url, params=_session(sid), data="3") as resp:
            assert resp.status == 200
            assert await resp.text() == "ok"


async def test_a_malformed_post_is_refused_and_closes_the_session(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        sid = (await _handshake(http, url))["sid"]
        async with http.post(url, params=_session(sid), data="abc") as resp:
            assert await _refusal(resp) == 3
        async with http.get(url, params=_session(sid)) as resp:
            assert await _refusal(resp) == 1, "the session is gone"


async def test_a_post_nested_too_deep_for_the_json_decoder_is_refused_and_closes_the_session(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        sid = (await _handshake(http, url))["sid"]
        async with http.post(url, params=_session(sid), data="4" + "[" * 5000) as resp:
            assert await _refusal(resp) == 3  # engineio's decoder raised RecursionError: a 500
        async with http.get(url, params=_session(sid)) as resp:
            assert await _refusal(resp) == 1, "the session is gone"


async def test_a_second_get_poll_is_refused_and_closes_the_session(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        sid = (await _handshake(http, url))["sid"]
        first = asyncio.ensure_future(http.get(url, params=_session(sid)))
        await asyncio.sleep(0.2)  # the first poll is waiting
        async with http.get(url, params=_session(sid)) as resp:
            assert await _refusal(resp) == 3
        async with await first as resp:
            assert resp.status == 200
            assert await resp.text() == "1", "the waiting poll gets the CLOSE packet"
        async with http.get(url, params=_session(sid)) as resp:
            assert await _refusal(resp) == 1


async def test_a_close_packet_over_polling_answers_the_waiting_get(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        sid = (await _handshake(http, url))["sid"]
        waiting = asyncio.ensure_future(http.get(url, params=_session(sid)))
        await asyncio.sleep(0.2)
        async with http.post(url, params=_session(sid), data="1") as resp:
            assert await resp.text() == "ok"
        async with asyncio.timeout(2):  # not after interval + timeout, with a 400
            async with await waiting as resp:
                assert resp.status == 200
                assert await resp.text() == "6"  # a NOOP, as the Node server answers
        async with http.get(url, params=_session(sid)) as resp:
            assert await _refusal(resp) == 1


async def test_a_second_websocket_for_an_upgraded_session_is_accepted_then_closed(url: str) -> None:
    ws_url = url.replace("http://", "ws://")
    async with aiohttp.ClientSession() as http:
        sid = (await _handshake(http, url))["sid"]
        params = {"EIO": "4", "transport": "websocket", "sid": sid}
        ws = await http.ws_connect(ws_url, params=params)
        await ws.send_str("2probe")
        assert await ws.receive_str(timeout=5) == "3probe"
        await ws.send_str("5")  # upgraded
        second = await http.ws_connect(ws_url, params=params)  # engineio answered 400 here
        closed = await second.receive(timeout=5)
        assert closed.type is aiohttp.WSMsgType.CLOSE
        await ws.send_str("3")  # the first websocket still carries the session
        assert not ws.closed
        await ws.close()


class _Probe:
    """What the PingWheel needs of a socket, recording when each ping went out."""

    def __init__(self) -> None:
        self.wheel_due = 0.0
        self.last_ping: float | None = None
        self.closed = self.closing = False
        self.pinged_at: float | None = None

    def send_nowait(self, pkt: Any, frame: bytes) -> None:
        self.pinged_at = time.monotonic()


class _Server:
    ping_timeout = 60.0


async def test_the_wheel_pings_each_socket_at_its_own_time_never_before() -> None:
    wheel = PingWheel(_Server(), tick=0.05)  # type: ignore[arg-type]
    probes = [_Probe() for _ in range(6)]
    delays = [0.012 * (i + 1) for i in range(len(probes))]  # several due times within one tick
    dues = []
    for probe, delay in zip(probes, delays, strict=True):
        wheel.add(probe, delay)  # type: ignore[arg-type]
        dues.append(probe.wheel_due)
    async with asyncio.timeout(5):
        while any(p.pinged_at is None for p in probes):
            await asyncio.sleep(0.005)
    for probe, due in zip(probes, dues, strict=True):
        assert probe.pinged_at is not None and probe.pinged_at >= due  # never early
    assert [p.pinged_at for p in probes] == sorted(p.pinged_at for p in probes)  # type: ignore[type-var]
