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
import contextlib
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes
from hpack.table import HeaderTable

MAX_STREAM_ID = 2**30  # start a fresh connection long before h2's 2**31 - 1
RECEIVE_WINDOW = 16 * 1024 * 1024  # bytes the server may send before we acknowledge


class LeanEncoder:
    """HPACK for a client sending many requests alike, in place of h2's encoder.

    - Headers that stay the same on a connection (``INDEXED``: the provider token, the topic...)
      are added to the dynamic table the first time and sent as a one-byte index after that, so
      neither end handles the 200-byte JWT again until it changes.
    - Any other header is sent as an indexed static entry when it is one (``:method: POST``), else
      as a literal "without indexing" (the name from the static table when it is there).
    - No Huffman coding: a few bytes more on the wire, much less CPU.

    The table is kept as the server's decoder keeps it (RFC 7541: insertion, eviction of the
    oldest, entries larger than the table). When the server's SETTINGS lower the table size below
    the one in use, the next header block starts with a size update and the table shrinks.
    Literal encodings are cached per header, except for ``UNCACHED`` names, whose values change on
    every request.
    """

    MAX_CACHED = 4096
    DEFAULT_TABLE_SIZE = 4096  # RFC 7541's initial size; never grown (that would need a signal)
    INDEXED = frozenset([b":authority", b"authorization", b"apns-topic", b"apns-push-type", b"content-type"])
    UNCACHED = frozenset([b":path", b"apns-id", b"content-length", b"apns-expiration"])

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes | str, bytes | str], bytes] = {}
        self._capacity = self.DEFAULT_TABLE_SIZE
        self._size_update: int | None = None  # to signal at the start of the next block
        self._entries: deque[tuple[tuple[bytes, bytes], int, int]] = deque()  # (header, size, insertion), oldest first
        self._where: dict[tuple[bytes, bytes], int] = {}  # header -> its insertion number, while in the table
        self._used = 0  # bytes the entries take, as RFC 7541 counts them
        self._inserted = 0

    @property
    def header_table_size(self) -> int:
        return self._capacity

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        """The server's SETTINGS_HEADER_TABLE_SIZE (set by h2): shrink to it when it is smaller."""
        if value < self._capacity:
            self._capacity = value
            self._size_update = value
            self._evict(0)

    def encode(self, headers: list[tuple[bytes | str, bytes | str]], huffman: bool = False) -> bytes:
        parts = []
        if self._size_update is not None:
            parts.append(_hpack_integer(self._size_update, 5, 0x20))
            self._size_update = None
        cache = self._cache
        for header in headers:
            name = header[0] if isinstance(header[0], bytes) else header[0].encode()
            if name in self.INDEXED and (pair := (name, _as_bytes(header[1]))) not in _STATIC_PAIRS:
                parts.append(self._indexed(pair))
                continue
            encoded = cache.get(header)
            if encoded is None:
                encoded = _literal(name, _as_bytes(header[1]))
                if name not in self.UNCACHED and len(cache) < self.MAX_CACHED:
                    cache[header] = encoded
            parts.append(encoded)
        return b"".join(parts)

    def _indexed(self, pair: tuple[bytes, bytes]) -> bytes:
        """The header as an index into the dynamic table, added to it first when it is not there."""
        insertion = self._where.get(pair)
        if insertion is not None:
            return _hpack_integer(len(_STATIC_TABLE_ENTRIES) + 1 + self._inserted - insertion, 7, 0x80)
        name, value = pair
        name_index = _STATIC_NAMES.get(name)
        head = _hpack_integer(name_index, 6, 0x40) if name_index else b"\x40" + _hpack_integer(len(name), 7, 0) + name
        size = len(name) + len(value) + 32
        if size > self._capacity:
            self._evict(self._capacity)  # RFC 7541 4.4: the table empties and keeps nothing
        else:
            self._evict(size)
            self._inserted += 1
            self._entries.append((pair, size, self._inserted))
            self._where[pair] = self._inserted
            self._used += size
        return head + _hpack_integer(len(value), 7, 0) + value

    def _evict(self, room: int) -> None:
        """Drop the oldest entries until ``room`` more bytes fit."""
        while self._entries and self._used + room > self._capacity:
            pair, size, insertion = self._entries.popleft()
            self._used -= size
            if self._where.get(pair) == insertion:
                del self._where[pair]


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _hpack_integer(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 5.1: an integer with an N-bit prefix, ``first`` holding the pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: bytes, value: bytes) -> bytes:
    index = _STATIC_PAIRS.get((name, value))
    if index is not None:
        return _hpack_integer(index, 7, 0x80)  # indexed header field
    name_index = _STATIC_NAMES.get(name)
    head = _hpack_integer(name_index, 4, 0x00) if name_index else b"\x00" + _hpack_integer(len(name), 7, 0) + name
    return head + _hpack_integer(len(value), 7, 0) + value


def _static_tables() -> tuple[dict[tuple[bytes, bytes], int], dict[bytes, int]]:
    pairs: dict[tuple[bytes, bytes], int] = {}
    names: dict[bytes, int] = {}
    for i, (name, value) in enumerate(_STATIC_TABLE_ENTRIES, start=1):
        if value:
            pairs.setdefault((name, value), i)
        names.setdefault(name, i)
    return pairs, names


_STATIC_TABLE_ENTRIES: tuple[tuple[bytes, bytes], ...] = HeaderTable.STATIC_TABLE
_STATIC_PAIRS, _STATIC_NAMES = _static_tables()


class CountingH2Connection(H2Connection):
    """An h2 connection told its count of client-opened streams instead of walking for it.

    h2 counts a connection's open streams by walking every stream it knows on each new one (and
    forgets closed ones as it goes): O(streams) per request, about a quarter of the CPU of a push
    (and of the fake provider answering it) with 1,000 streams on a connection. ``count`` gives the
    owner's own count, which must never be above h2's (a request would be refused for a stream
    that is in fact free); h2 walks (and forgets closed streams) once every ``SWEEP_EVERY`` times.
    The count replaces h2's where the limit applies: outbound streams on a client, inbound on a
    server.
    """

    SWEEP_EVERY = 512

    def __init__(self, config: H2Configuration, count: Callable[[], int]) -> None:
        super().__init__(config)
        self._count = count
        self._until_sweep = self.SWEEP_EVERY

    def _client_streams(self) -> int:
        self._until_sweep -= 1
        if self._until_sweep <= 0:
            self._until_sweep = self.SWEEP_EVERY
            return self._open_streams(1)  # client-opened stream ids are odd
        return self._count()

    @property
    def open_outbound_streams(self) -> int:
        return self._client_streams() if self.config.client_side else super().open_outbound_streams

    @property
    def open_inbound_streams(self) -> int:
        return super().open_inbound_streams if self.config.client_side else self._client_streams()


class H2ClientError(Exception):
    """The request failed below HTTP (connection lost or refused, stream reset, bad ALPN)."""


class StreamNotProcessed(H2ClientError):
    """GOAWAY or REFUSED_STREAM: the server did not process the request; it may be sent again."""


@dataclass(slots=True)
class H2Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


@dataclass(slots=True)
class _Stream:
    future: asyncio.Future[H2Response]
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    unsent: bytes = b""  # request body waiting for flow-control window


class _Connection(asyncio.Protocol):
    def __init__(self, pool: H2Pool) -> None:
        self.pool = pool
        config = H2Configuration(
            client_side=True,
            header_encoding=None,
            # The requests are built here, in the right form: h2's per-header checks and rewrites
            # were a fifth of the CPU of a push.
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )
        self.h2 = CountingH2Connection(config, lambda: len(self.streams))
        self.h2.encoder = LeanEncoder()  # type: ignore[assignment]
        self._flush_scheduled = False
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.reserved = 0  # slots handed out by the pool, whether or not their stream is open yet
        self.max_streams = min(100, pool.streams_per_connection)  # until the server's SETTINGS arrive
        self.usable = True
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
            self.usable = False
            self.ready.set_exception(H2ClientError("the server did not agree to HTTP/2 (ALPN)"))
            transport.close()
            return
        self.h2.initiate_connection()
        self.h2.update_settings({SettingCodes.ENABLE_PUSH: 0, SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW})
        self.h2.increment_flow_control_window(RECEIVE_WINDOW)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:
            self._fail_all(H2ClientError(f"HTTP/2 protocol error: {exc}"))
            self._flush()
            self.close()
            return
        for event in events:
            if isinstance(event, ResponseReceived):
                if (stream := self.streams.get(event.stream_id)) is not None:
                    stream.headers = dict(event.headers or ())
                    stream.status = int(stream.headers.get(b":status", b"0"))
            elif isinstance(event, DataReceived):
                if (stream := self.streams.get(event.stream_id)) is not None and event.data:
                    stream.body += event.data
                if event.flow_controlled_length:
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                self._finish(event.stream_id)
            elif isinstance(event, StreamReset):
                retryable = event.error_code == ErrorCodes.REFUSED_STREAM
                error = StreamNotProcessed if retryable else H2ClientError
                self._fail(event.stream_id, error(f"stream reset by the server ({event.error_code!r})"))
            elif isinstance(event, WindowUpdated):
                self._send_unsent()
            elif isinstance(event, RemoteSettingsChanged):
                if (changed := event.changed_settings.get(SettingCodes.MAX_CONCURRENT_STREAMS)) is not None:
                    self.max_streams = min(changed.new_value, self.pool.streams_per_connection)
                if not self.ready.done():
                    self.ready.set_result(None)
                self.pool._wake(everyone=True)
            elif isinstance(event, ConnectionTerminated):
                self._goaway(event.last_stream_id)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        if not self.ready.done():
            self.ready.set_exception(H2ClientError(f"connection lost during set-up: {exc!r}"))
        self._fail_all(H2ClientError(f"connection lost ({exc!r})" if exc else "connection lost (closed)"))
        self.pool._forget(self)

    # -- requests

    @property
    def has_slot(self) -> bool:
        return self.usable and self.reserved < self.max_streams

    async def request(self, headers: list[tuple[bytes, bytes]], body: bytes) -> H2Response:
        """Send one request on this connection (the caller holds a slot) and wait for its answer."""
        if not self.usable or self.transport is None or self.transport.is_closing():
            raise StreamNotProcessed("connection is closing")
        stream_id = self.h2.get_next_available_stream_id()
        if stream_id >= MAX_STREAM_ID:
            self.usable = False
        stream = _Stream(asyncio.get_running_loop().create_future())
        try:
            self.h2.send_headers(stream_id, headers, end_stream=not body)
            self.streams[stream_id] = stream
            if body:
                stream.unsent = body
                self._send_body(stream_id, stream)
        except (ProtocolError, StreamClosedError) as exc:
            self.streams.pop(stream_id, None)
            raise H2ClientError(f"cannot send the request: {exc!r}") from exc
        finally:
            self._flush_soon()
        try:
            return await stream.future
        except asyncio.CancelledError:
            if self.streams.pop(stream_id, None) is not None:
                try:
                    self.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
                    self._flush()
                except (ProtocolError, StreamClosedError):
                    pass
            raise

    def _send_body(self, stream_id: int, stream: _Stream) -> None:
        while stream.unsent:
            size = min(self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size)
            if size <= 0:
                return  # resumed on WINDOW_UPDATE
            chunk, stream.unsent = stream.unsent[:size], stream.unsent[size:]
            self.h2.send_data(stream_id, chunk, end_stream=not stream.unsent)

    def _send_unsent(self) -> None:
        for stream_id, stream in list(self.streams.items()):
            if stream.unsent:
                try:
                    self._send_body(stream_id, stream)
                except (ProtocolError, StreamClosedError) as exc:
                    self._fail(stream_id, H2ClientError(f"cannot send the body: {exc}"))

    def _finish(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        if stream.unsent:  # answered before the whole body went out: close our side too
            with contextlib.suppress(ProtocolError, StreamClosedError):
                self.h2.reset_stream(stream_id, ErrorCodes.NO_ERROR)
        if not stream.future.done():
            stream.future.set_result(H2Response(stream.status, stream.headers, bytes(stream.body)))

    def _fail(self, stream_id: int, error: Exception) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None and not stream.future.done():
            stream.future.set_exception(error)

    def _fail_all(self, error: Exception) -> None:
        for stream_id in list(self.streams):
            self._fail(stream_id, error)

    def _goaway(self, last_stream_id: int | None) -> None:
        self.usable = False
        last = last_stream_id if last_stream_id is not None else 2**31
        for stream_id in [s for s in self.streams if s > last]:
            self._fail(stream_id, StreamNotProcessed("GOAWAY: not processed by the server"))
        if not self.streams:
            self.close()

    def released(self) -> None:
        """A slot was given back; a connection that takes no new streams closes once idle."""
        self.reserved -= 1
        if not self.usable and not self.streams and self.reserved <= 0:
            self.close()

    def _flush_soon(self) -> None:
        """Write at the end of this turn of the loop: the requests started in one turn (many, when
        a batch goes out) leave in one write and one TLS record instead of one each."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.transport is not None and not self.transport.is_closing() and (out := self.h2.data_to_send()):
            self.transport.write(out)

    def close(self) -> None:
        self.usable = False
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.h2.close_connection()
                self._flush()
            except ProtocolError:
                pass
            self.transport.close()


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
        self._connections: list[_Connection] = []
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

    async def _acquire(self) -> _Connection:
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

    async def _connect(self) -> _Connection:
        self._connecting += 1
        try:
            loop = asyncio.get_running_loop()
            connect = loop.create_connection(
                lambda: _Connection(self), self.host, self.port, ssl=self._ssl, server_hostname=self.host
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

    def _forget(self, connection: _Connection) -> None:
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
