"""The minimal HTTP/2 client: against the fake FCM over TLS, and frame by frame in memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import RequestReceived, StreamReset

from push.h2client import H2ClientError, H2Pool, StreamNotProcessed
from push.h2connection import H2ClientConnection
from tests.fakes.core import Reply
from tests.fakes.fcm import FakeFCM
from tests.fakes.tls import shared_tls


def pool_for(fake: FakeFCM, **kw: Any) -> H2Pool:
    return H2Pool("127.0.0.1", fake.port, ssl_context=fake.tls.client_context(), **kw)


async def post(pool: H2Pool, token: str, body: bytes = b"{}") -> int:
    headers = [(b"authorization", b"Bearer " + token.encode()), (b"content-type", b"application/json")]
    return (await pool.request(b"POST", b"/v1/projects/herald-test/messages:send", headers, body)).status


@pytest.fixture
async def fcm_slow() -> AsyncIterator[FakeFCM]:
    async with FakeFCM(max_streams=2, latency=0.05) as fake:
        yield fake


async def test_follows_the_servers_stream_limit(fcm_slow: FakeFCM) -> None:
    pool = pool_for(fcm_slow, max_connections=1)
    token = fcm_slow.issue_access_token()
    start = time.monotonic()
    try:
        statuses = await asyncio.gather(*(post(pool, token) for _ in range(6)))
    finally:
        await pool.close()
    assert statuses == [400] * 6  # the fake checks the message shape; the point is the streams
    assert time.monotonic() - start >= 0.15  # 6 requests, 2 at a time, 50 ms each
    assert fcm_slow.server.protocol_errors == 0 and fcm_slow.server.connections_made == 1


async def test_opens_more_connections_up_to_its_limit(fcm_slow: FakeFCM) -> None:
    pool = pool_for(fcm_slow, max_connections=3)
    token = fcm_slow.issue_access_token()
    try:
        await post(pool, token)  # the first connection
        await asyncio.gather(*(post(pool, token) for _ in range(12)))
        assert pool.open_connections == 3
    finally:
        await pool.close()
    assert fcm_slow.server.protocol_errors == 0


async def test_bodies_larger_than_the_flow_control_window(fcm: FakeFCM) -> None:
    pool = pool_for(fcm)
    body = b'{"message": {"token": "t", "data": {"big": "' + b"x" * 300_000 + b'"}}}'
    try:
        statuses = await asyncio.gather(*(post(pool, fcm.issue_access_token(), body) for _ in range(3)))
    finally:
        await pool.close()
    assert statuses == [200] * 3
    assert [len(e.payload["message"]["data"]["big"]) for e in fcm.requests] == [300_000] * 3


async def test_a_lost_connection_fails_its_streams_and_the_next_request_reconnects(fcm: FakeFCM) -> None:
    pool = pool_for(fcm)
    token = fcm.issue_access_token()
    fcm.script("t", Reply.hold())
    body = b'{"message": {"token": "t"}}'
    try:
        held = asyncio.ensure_future(post(pool, token, body))
        await fcm.wait_held(1)
        fcm.server.drop_connections()
        with pytest.raises(H2ClientError, match="connection lost"):
            await held
        fcm.release()
        assert await post(pool, token, b'{"message": {"token": "u"}}') == 200
    finally:
        await pool.close()
    assert fcm.server.connections_made == 2


async def test_connection_refused() -> None:
    pool = H2Pool("127.0.0.1", 1, ssl_context=shared_tls().client_context(), connect_timeout=2)
    with pytest.raises(H2ClientError, match="cannot connect"):
        await post(pool, "x")
    await pool.close()


# -- frame by frame: a server-side h2 state machine and an in-memory transport


class MemoryTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Wire:
    """A client `H2ClientConnection` wired to an in-memory h2 server."""

    def __init__(self) -> None:
        self.pool = H2Pool("example.test")
        self.client = H2ClientConnection(self.pool)
        self.transport = MemoryTransport()
        self.client.connection_made(self.transport)
        self.server = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.server.initiate_connection()
        self.events: list[Any] = []
        self.pump()

    def pump(self) -> None:
        """Deliver what each side wrote to the other, until quiet."""
        while True:
            to_server, to_client = bytes(self.transport.sent), self.server.data_to_send()
            self.transport.sent.clear()
            if not to_server and not to_client:
                return
            if to_server:
                self.events += self.server.receive_data(to_server)
            if to_client:
                self.client.data_received(to_client)

    async def start_request(self) -> asyncio.Task[Any]:
        pseudo = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.test"), (b":path", b"/")]
        task = asyncio.ensure_future(self.client.request(pseudo, b""))
        await asyncio.sleep(0)  # the request is made...
        await asyncio.sleep(0)  # ...and written at the end of that turn of the loop
        self.pump()
        return task

    def stream_ids(self) -> list[int]:
        return [e.stream_id for e in self.events if isinstance(e, RequestReceived)]


async def test_goaway_fails_unprocessed_streams_as_retryable() -> None:
    wire = Wire()
    first, second = await wire.start_request(), await wire.start_request()
    done_id, _unprocessed = wire.stream_ids()
    wire.server.send_headers(done_id, [(b":status", b"200")], end_stream=True)
    wire.server.close_connection(last_stream_id=done_id)
    wire.pump()
    assert (await first).status == 200
    with pytest.raises(StreamNotProcessed):
        await second
    assert not wire.client.usable and wire.transport.closed


async def test_refused_stream_is_retryable_and_other_resets_are_not() -> None:
    wire = Wire()
    refused, broken = await wire.start_request(), await wire.start_request()
    refused_id, broken_id = wire.stream_ids()
    wire.server.reset_stream(refused_id, ErrorCodes.REFUSED_STREAM)
    wire.server.reset_stream(broken_id, ErrorCodes.INTERNAL_ERROR)
    wire.pump()
    with pytest.raises(StreamNotProcessed):
        await refused
    with pytest.raises(H2ClientError) as info:
        await broken
    assert not isinstance(info.value, StreamNotProcessed)
    assert wire.client.usable


async def test_a_cancelled_request_resets_its_stream() -> None:
    wire = Wire()
    task = await wire.start_request()
    [stream_id] = wire.stream_ids()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    wire.pump()
    assert any(isinstance(e, StreamReset) and e.stream_id == stream_id for e in wire.events)
    assert wire.client.streams == {}
