"""Socket.IO packets: python-socketio's, with JSON decoded by one decoder and a cheaper binary check,
and packets that break the protocol refused with :class:`PacketError` (the Node parser's rules)."""

from __future__ import annotations

import json
from typing import Any

from socketio import packet as sio_packet

MAX_DEPTH = 32  # arrays and objects nested deeper than this are refused (1,000 levels overflowed the decoder)
RESERVED_EVENTS = frozenset(
    # the Node server's: names a client may not emit (python-socketio would run the server's own
    # "connect" or "disconnect" handler for them)
    ("connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener")
)
PACKET_TYPES = "0123456"


class PacketError(ValueError):
    """A packet that breaks the Socket.IO protocol, with what could be read of it before the fault."""

    def __init__(
        self, reason: str, packet_type: int | None = None, namespace: str | None = None, ack_id: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.packet_type = packet_type
        self.namespace = namespace or "/"
        self.ack_id = ack_id


def _bounded_int(digits: str) -> int:
    if len(digits) > 100:  # parsing a huge integer costs quadratic time (engineio's rule)
        raise ValueError("Integer is too large")
    return int(digits)


class SafeJson:
    """engineio's JSON (integers of more than 100 digits refused) with one decoder made once;
    engineio's ``loads`` made a new ``JSONDecoder`` per call."""

    _decoder = json.JSONDecoder(parse_int=_bounded_int)
    dumps = staticmethod(json.dumps)

    @classmethod
    def loads(cls, data: str | bytes | bytearray) -> Any:
        if not isinstance(data, str):
            data = data.decode(json.detect_encoding(data), "surrogatepass")
        try:
            value = cls._decoder.decode(data)
        except RecursionError:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
        # the nesting can only be as deep as the brackets are many: the walk is for the rare text with more
        if data.count("[") + data.count("{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        return value


def _depth(value: Any) -> int:
    """How deep arrays and objects nest in a decoded JSON value (no recursion)."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                break
        pending.extend((child, depth + 1) for child in children)
    return deepest


class Packet(sio_packet.Packet):  # type: ignore[misc]
    """python-socketio's packet with a cheaper search for binary attachments, and `SafeJson`.

    Every packet built to be sent (each ack, each broadcast) walks its data for ``bytes``;
    python-socketio's walk builds a list and a ``functools.reduce`` per level, a tenth of a web
    node's CPU under persisted chat. Same answer: bytes or bytearray anywhere in the lists and
    dict values, tuples and other objects not looked into.
    """

    json = SafeJson

    def decode(self, encoded_packet: Any) -> int:
        """python-socketio's, raising :class:`PacketError` for what the Node parser refuses: an unknown
        packet type, data that does not decode (or nests too deep), binary data outside a binary
        packet, a payload of the wrong shape for its type, and a reserved event name."""
        if not isinstance(encoded_packet, str):
            raise PacketError("binary data outside a binary packet")
        if not encoded_packet or encoded_packet[0] not in PACKET_TYPES:
            raise PacketError("unknown packet type")
        try:
            attachments = super().decode(encoded_packet)
        except ValueError as exc:  # the id and namespace, if read before the fault, stay on self
            raise PacketError(str(exc), self.packet_type, self.namespace, self.id) from None
        reason = _payload_fault(self.packet_type, self.data)
        if reason is not None:
            raise PacketError(reason, self.packet_type, self.namespace, self.id)
        return int(attachments)

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        pending = [data]
        while pending:
            item = pending.pop()
            kind = type(item)
            if kind is str or kind is int or kind is bool or kind is float or item is None:
                continue
            if isinstance(item, dict):
                pending.extend(item.values())
            elif isinstance(item, list):
                pending.extend(item)
            elif isinstance(item, (bytes, bytearray)):
                return True
        return False


def _payload_fault(packet_type: int, data: Any) -> str | None:
    """Why this payload may not come with this packet type (socket.io-parser's ``isPayloadValid``)."""
    if packet_type == sio_packet.CONNECT:
        return None if data is None or isinstance(data, dict) else "a CONNECT payload must be an object"
    if packet_type == sio_packet.DISCONNECT:
        return None if data is None else "a DISCONNECT has no payload"
    if packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
        if not isinstance(data, list) or not data:
            return "an EVENT payload must be a non-empty array"
        name = data[0]
        if isinstance(name, str):
            return f"event name {name!r} is reserved" if name in RESERVED_EVENTS else None
        numeric = isinstance(name, int | float) and not isinstance(name, bool)
        return None if numeric else "an event name must be a string"
    if packet_type in (sio_packet.ACK, sio_packet.BINARY_ACK):
        return None if isinstance(data, list) else "an ACK payload must be an array"
    return "a client may not send CONNECT_ERROR"
