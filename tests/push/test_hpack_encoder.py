"""push.h2_lean.LeanEncoder against hpack's decoder (the one h2 servers use): every header block
decodes to the headers sent, while the dynamic table fills, evicts, and shrinks on the server's word."""

from __future__ import annotations

from hpack import Decoder

from push.h2_lean import LeanEncoder


def request(i: int, token_version: int) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"api.push.apple.com"),
        (b":path", b"/3/device/%064x" % i),
        (b"authorization", b"bearer " + b"j" * 180 + b"%d" % token_version),
        (b"apns-topic", b"chat.herald.app"),
        (b"apns-push-type", b"alert"),
        (b"apns-priority", b"10"),
        (b"apns-collapse-id", b"room-%d" % (i % 7)),
        (b"content-type", b"type-%d" % (i % 40)),  # more distinct entries than the table holds
    ]


def test_every_block_decodes_to_what_was_sent_while_the_table_churns_and_shrinks() -> None:
    encoder, decoder = LeanEncoder(), Decoder()
    for i in range(3000):
        if i == 2000:  # the server's SETTINGS_HEADER_TABLE_SIZE, lowered mid-connection
            encoder.header_table_size = 300
            decoder.max_allowed_table_size = 300
        headers = request(i, token_version=i // 500)  # the provider token changes now and then
        assert [tuple(h) for h in decoder.decode(encoder.encode(headers), raw=True)] == headers, i
    assert decoder.header_table_size == 300


def test_a_repeated_token_is_sent_once_then_as_an_index() -> None:
    encoder = LeanEncoder()
    first = encoder.encode(request(1, token_version=0))
    second = encoder.encode(request(2, token_version=0))
    assert b"j" * 180 in first
    assert b"j" * 180 not in second
    assert len(second) < len(first) - 180


def test_an_entry_larger_than_the_table_empties_it_and_still_decodes() -> None:
    encoder, decoder = LeanEncoder(), Decoder()
    huge = [(b"authorization", b"x" * 5000), (b"apns-topic", b"t")]
    for _ in range(3):
        assert [tuple(h) for h in decoder.decode(encoder.encode(huge), raw=True)] == huge
