"""hub.transport.packets.Packet finds binary attachments exactly where python-socketio's own packet does:
a client sent bytes gets them back as an attachment, everything else stays plain JSON."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from socketio import packet as sio_packet

from hub.transport.packets import Packet

leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(), st.binary(), st.tuples(st.binary())
)
payloads = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(payloads)
def test_binary_detection_matches_python_socketio(data: Any) -> None:
    assert Packet.data_is_binary(data) == sio_packet.Packet.data_is_binary(data)


def test_an_event_with_bytes_inside_is_sent_as_binary() -> None:
    data = ["message:new", {"room": "r", "message": {"meta": {"thumb": b"\x89PNG"}}}]
    assert Packet(sio_packet.EVENT, data=data).packet_type == sio_packet.BINARY_EVENT
    assert Packet(sio_packet.EVENT, data=["message:new", {"room": "r"}]).packet_type == sio_packet.EVENT


def test_packets_decode_as_python_socketio_does_and_huge_integers_are_refused() -> None:
    encoded = '2["message:send",{"room":"r","text":"héllo","n":12,"x":1.5}]'
    assert Packet(encoded_packet=encoded).data == sio_packet.Packet(encoded_packet=encoded).data
    assert Packet.json.loads(encoded[1:].encode()) == [
        "message:send",
        {"room": "r", "text": "héllo", "n": 12, "x": 1.5},
    ]
    with pytest.raises(ValueError, match="too large"):
        Packet(encoded_packet='2["message:send",{"n":' + "9" * 101 + "}]")
