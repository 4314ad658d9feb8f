"""The two parts of h2 and hpack Herald replaces for speed (their sources are fenced in
tests/test_library_fences.py): a header encoder that indexes only what repeats
(:class:`LeanEncoder`), and a connection told its count of open streams
(:class:`CountingH2Connection`).  Used by :mod:`push.h2client` and the fake providers."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from h2.config import H2Configuration
from h2.connection import H2Connection
from hpack.table import HeaderTable


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
