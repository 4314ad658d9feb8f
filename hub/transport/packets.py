"""Socket.IO packets: python-socketio's, with JSON decoded by one decoder and a cheaper binary check."""

from __future__ import annotations

import json
from typing import Any

from socketio import packet as sio_packet


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
        return cls._decoder.decode(data)


class Packet(sio_packet.Packet):  # type: ignore[misc]
    """python-socketio's packet with a cheaper search for binary attachments, and `SafeJson`.

    Every packet built to be sent (each ack, each broadcast) walks its data for ``bytes``;
    python-socketio's walk builds a list and a ``functools.reduce`` per level, a tenth of a web
    node's CPU under persisted chat. Same answer: bytes or bytearray anywhere in the lists and
    dict values, tuples and other objects not looked into.
    """

    json = SafeJson

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
