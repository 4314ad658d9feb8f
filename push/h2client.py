"""A minimal HTTP/2 client for one origin: a few TLS connections, many streams on each.

Made for FCM's ``messages:send`` (small POSTs, small answers): httpx's HTTP/2 path cost about
1.3-1.6 ms of CPU per request against the fake FCM (docs/push.md), mostly in anyio's TLS stream and
about five socket writes per request; this client builds each request with ``h2`` and writes it
in one go, as aioapns does for APNs.

- `H2Pool.request` opens connections on demand, up to ``max_connections``, and never opens more
  streams on a connection than the server's ``MAX_CONCURRENT_STREAMS`` (nor than
  ``streams_per_connection``); callers wait for a slot.
- Request bodies follow flow control; response data is acknowledged as it arrives.
- GOAWAY: the connection takes no new streams, and streams the server did not process fail with
  `StreamNotProcessed` (safe to send again); a lost connection fails its streams with `H2Error`.
- A cancelled request (a caller's timeout) resets its stream.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from push.h2connection import H2ClientConnection, H2ClientError, H2Response, StreamNotProcessed

__all__ = ["H2ClientError", "H2Pool", "H2Response", "StreamNotProcessed"]


class H2Pool:
    """Connections to one ``https://host:port`` origin."""

    def __init__(
        self,
        host: str,
        port: int = 443,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 8,
        streams_per_connection: int = 100,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.authority = (host if port == 443 else f"{host}:{port}").encode()
        self._ssl = ssl_context or ssl.create_default_context()
        self._ssl.set_alpn_protocols(["h2"])
        self._max_connections = max_connections
        #: at most this many streams per connection even when the server allows more
        self.streams_per_connection = streams_per_connection
        self._connect_timeout = connect_timeout
        self._connections: list[H2ClientConnection] = []
        self._connecting = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def request(self, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> H2Response:
        """One request and its answer; raises `H2ClientError` (or `StreamNotProcessed`) below HTTP."""
        connection = await self._acquire()
        try:
            pseudo = [(b":method", method), (b":scheme", b"https"), (b":authority", self.authority), (b":path", path)]
            return await connection.request([*pseudo, *headers], body)
        finally:
            connection.released()
            self._wake()

    async def _acquire(self) -> H2ClientConnection:
        while True:
            if self._closed:
                raise H2ClientError("the client is closed")
            for connection in self._connections:
                if connection.has_slot:
                    connection.reserved += 1
                    return connection
            if not self._connecting and len(self._connections) < self._max_connections:
                # one connection set-up at a time: callers arriving meanwhile wait for its streams
                connection = await self._connect()
                connection.reserved += 1
                return connection
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # pass on the wake-up this caller will not use
                raise

    async def _connect(self) -> H2ClientConnection:
        self._connecting += 1
        try:
            loop = asyncio.get_running_loop()
            connect = loop.create_connection(
                lambda: H2ClientConnection(self), self.host, self.port, ssl=self._ssl, server_hostname=self.host
            )
            try:
                _, connection = await asyncio.wait_for(connect, self._connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise H2ClientError(f"cannot connect to {self.host}:{self.port}: {type(exc).__name__}") from exc
            try:
                await asyncio.wait_for(asyncio.shield(connection.ready), self._connect_timeout)
            except BaseException:
                connection.close()
                raise
            if self._closed:
                connection.close()
                raise H2ClientError("the client is closed")
            self._connections.append(connection)
            return connection
        finally:
            self._connecting -= 1
            self._wake(everyone=True)

    def _forget(self, connection: H2ClientConnection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)
        self._wake(everyone=True)

    def _wake(self, *, everyone: bool = False) -> None:
        """Wake one waiter (a slot was freed), or all of them (capacity changed)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not everyone:
                    return

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def close(self) -> None:
        self._closed = True
        for connection in list(self._connections):
            connection.close()
        self._connections.clear()
        self._wake(everyone=True)
