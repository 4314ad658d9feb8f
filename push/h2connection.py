"""One HTTP/2 connection of an :class:`push.h2client.H2Pool`: an asyncio protocol driving h2,
its streams, flow control and GOAWAY; and the errors and response a request ends with."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from h2.config import H2Configuration
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

from push.h2_lean import CountingH2Connection, LeanEncoder

if TYPE_CHECKING:
    from push.h2client import H2Pool

MAX_STREAM_ID = 2**30  # start a fresh connection long before h2's 2**31 - 1
RECEIVE_WINDOW = 16 * 1024 * 1024  # bytes the server may send before we acknowledge


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


class H2ClientConnection(asyncio.Protocol):
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
