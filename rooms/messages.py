"""Sending, editing, deleting and reading chat messages.

A message is committed before :func:`send` returns, so the caller acknowledges only what is
stored.  The same (room, sender, client_id) always yields the first message: retries are safe.
A statement PostgreSQL aborts as a deadlock or serialization failure is tried again; when it
keeps failing the sender gets ``unavailable`` (nothing was stored: send again).

With a :class:`GroupCommit`, the messages sent at about the same time are stored together: one
statement and one commit for all of them (``store.messages.insert_many``), which is what lets a
web node acknowledge thousands of messages a second; each sender still waits for its own row.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from config.errors import Code
from rooms import moderation
from rooms.errors import ChatError
from rooms.membership import room_or_404
from store import messages as message_store
from store import rooms as room_store
from store.db import Row

log = logging.getLogger(__name__)

MAX_PAGE = 200
DEFAULT_PAGE = 50
#: Attempts of a statement that PostgreSQL aborted as a deadlock victim or a serialization failure,
#: and the pause before the next one (times the attempt number, with jitter, so that two nodes'
#: batches that collided do not collide again in step).
ATTEMPTS = 3
RETRY_PAUSE = 0.02
TRANSIENT = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
T = TypeVar("T")


async def retrying(attempt: Callable[[], Awaitable[T]], *, attempts: int = ATTEMPTS) -> T:
    """Run ``attempt`` again when PostgreSQL aborted it as a deadlock (40P01) or serialization
    failure (40001); after ``attempts`` such failures, a retryable ``unavailable`` ChatError.

    Each attempt is a whole statement (one transaction), so a failed one left nothing behind.
    """
    for n in range(1, attempts + 1):
        try:
            return await attempt()
        except TRANSIENT as exc:
            if n == attempts:
                log.warning("statement aborted; giving up", extra={"sqlstate": exc.sqlstate, "attempts": n})
                raise ChatError(
                    Code.UNAVAILABLE, "the message was not stored (the database was busy); send it again"
                ) from exc
            log.info("statement aborted; retrying", extra={"sqlstate": exc.sqlstate, "attempt": n})
            await asyncio.sleep(RETRY_PAUSE * n * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Outgoing:
    room_id: str
    sender_id: str
    client_id: str
    text: str
    meta: dict[str, Any]
    reply_to: int | None = None


#: a message waiting to be stored, and where its row (or None) goes
Pending = tuple[message_store.NewMessage, asyncio.Future[Row | None]]


class GroupCommit:
    """Stores concurrent messages in batches: one statement, one round trip and one commit each.

    Up to ``in_flight`` batches are stored at once, each on its own connection, and no two of
    them share a room: the messages of a room whose earlier message is still being stored wait,
    and so do that room's later ones, so rows of one room get their seq in the order they were
    sent (and two batches never wait for each other's room locks).  A batch takes the messages
    submitted while the others were being stored (at most ``max_batch``), in submission order.
    With one batch at a time the commit round trip was the ceiling: at 5,000 messages a second
    batches of a dozen queued behind each other (p50 25 ms) with the CPU not yet busy.

    Batches on different web nodes may share rooms: the statement locks its rooms in id order, and
    a batch PostgreSQL still aborts (deadlock, serialization failure) is tried again (:func:`retrying`)
    with its rooms held here, so their later messages keep waiting behind it.
    """

    IN_FLIGHT = 2

    def __init__(self, pool: asyncpg.Pool, *, max_batch: int = 256, in_flight: int = IN_FLIGHT) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._in_flight = in_flight
        self._waiting: list[Pending] = []
        self._busy_rooms: set[str] = set()
        self._flights: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def insert(self, message: message_store.NewMessage) -> Row | None:
        """The stored row, or None when a precondition failed (as ``store.messages.insert``)."""
        future: asyncio.Future[Row | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((message, future))
        if not self._scheduled:  # at the end of this loop turn: the messages sent in it go together
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)
        return await future

    def _start(self) -> None:
        self._scheduled = False
        while len(self._flights) < self._in_flight and (batch := self._take()):
            flight = asyncio.ensure_future(self._fly(batch))
            self._flights.add(flight)

    def _take(self) -> list[Pending]:
        """The next batch: waiting messages of rooms not being stored, a room's order kept."""
        batch: list[Pending] = []
        rest: list[Pending] = []
        held: set[str] = set()
        for item in self._waiting:
            room = item[0].room_id
            if len(batch) < self._max_batch and room not in self._busy_rooms and room not in held:
                batch.append(item)
            else:
                rest.append(item)
                held.add(room)
        self._waiting = rest
        self._busy_rooms.update(message.room_id for message, _ in batch)
        return batch

    async def _fly(self, batch: list[Pending]) -> None:
        try:
            await self._commit(batch)
        except asyncio.CancelledError:
            for _, future in [*batch, *self._waiting]:
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._busy_rooms.difference_update(message.room_id for message, _ in batch)
            self._flights.discard(asyncio.current_task())
            if self._waiting:
                self._start()

    async def _commit(self, batch: list[Pending]) -> None:
        # One row per (room, sender, client_id): a repeat in the same batch resolves to None and its
        # sender then finds the first one's row, committed by then.
        unique: dict[tuple[str, str, str], Pending] = {}
        repeats = []
        for message, future in batch:
            key = (message.room_id, message.sender_id, message.client_id)
            if key in unique:
                repeats.append(future)
            else:
                unique[key] = (message, future)
        items = list(unique.values())
        messages = [m for m, _ in items]

        async def insert_batch() -> list[Row | None]:
            async with self._pool.acquire() as conn:
                return await message_store.insert_many(conn, messages)

        try:
            try:
                rows = await retrying(insert_batch)
            except asyncpg.UniqueViolationError:
                # A concurrent insert (another node) took a client_id: fall back to one by one.
                rows = [await _insert_one(self._pool, m) for m in messages]
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), row in zip(items, rows, strict=True):
            if not future.done():
                future.set_result(row)
        for future in repeats:
            if not future.done():
                future.set_result(None)


async def _insert_one(pool: asyncpg.Pool, m: message_store.NewMessage) -> Row | None:
    return await retrying(
        lambda: message_store.insert(
            pool, m.room_id, m.sender_id, m.client_id, m.text, m.meta, m.reply_to, as_service=m.as_service
        )
    )


async def send(
    pool: asyncpg.Pool, out: Outgoing, *, as_service: bool = False, batcher: GroupCommit | None = None
) -> tuple[Row, bool]:
    """Store a message; return it and whether it is new (False: the client_id was seen before).

    With ``batcher`` the insert joins a group commit; without, it is a statement of its own.
    """
    new = message_store.NewMessage(
        out.room_id, out.sender_id, out.client_id, out.text, out.meta, out.reply_to, as_service
    )
    row = await (batcher.insert(new) if batcher is not None else _insert_one(pool, new))
    if row is not None:
        return row, True
    existing = await message_store.by_client_id(pool, out.room_id, out.sender_id, out.client_id)
    if existing is not None:
        return existing, False
    room = await room_or_404(pool, out.room_id)
    if not as_service:
        await moderation.may_post(pool, room, out.sender_id)
    if out.reply_to is not None:
        raise ChatError(
            Code.INVALID_PAYLOAD,
            "reply_to is not a message of this room",
            fields={"reply_to": "is not a message of this room"},
        )
    raise ChatError(Code.CONFLICT, "the message could not be stored; send it again")  # pragma: no cover


async def _editable(pool: asyncpg.Pool, room_id: str, message_id: int, actor: str | None) -> asyncpg.Record:
    current = await message_store.get(pool, room_id, message_id)
    if current is None:
        await room_or_404(pool, room_id)
        raise ChatError(Code.NOT_FOUND, f"message {message_id} is not in room {room_id}")
    if actor is not None and current["sender_id"] != actor:
        member = await room_store.get_member(pool, room_id, actor)
        if member is None:
            raise ChatError(Code.NOT_MEMBER, "you are not a member of this room")
        if member["role"] not in ("owner", "admin"):
            raise ChatError(Code.FORBIDDEN, "only the author or a room admin may change this message")
    return current


async def edit(pool: asyncpg.Pool, room_id: str, message_id: int, actor: str | None, text: str) -> asyncpg.Record:
    await _editable(pool, room_id, message_id, actor)
    row = await message_store.update_text(pool, room_id, message_id, text)
    if row is None:
        raise ChatError(Code.CONFLICT, "a deleted message cannot be edited")
    return row


async def delete(pool: asyncpg.Pool, room_id: str, message_id: int, actor: str | None) -> asyncpg.Record:
    await _editable(pool, room_id, message_id, actor)
    row = await message_store.mark_deleted(pool, room_id, message_id)
    assert row is not None
    return row


async def history(
    pool: asyncpg.Pool, room_id: str, *, before_seq: int | None, after_seq: int | None, limit: int
) -> tuple[list[asyncpg.Record], bool]:
    """A page of messages in seq order and whether more lie beyond it.

    With ``after_seq`` the page runs forward from it; otherwise it is the newest ``limit``
    messages before ``before_seq`` (or before the end).
    """
    if after_seq is not None:
        rows = await message_store.after(pool, room_id, after_seq, limit + 1)
        return rows[:limit], len(rows) > limit
    rows = await message_store.before(pool, room_id, before_seq if before_seq is not None else 2**62, limit + 1)
    return list(reversed(rows[:limit])), len(rows) > limit


async def sync(
    pool: asyncpg.Pool, versions: dict[str, int], limit: int
) -> dict[str, tuple[list[asyncpg.Record], bool]]:
    """For each room, the messages sent, edited or deleted after its version (at most ``limit``,
    in version order, each as it is now) and whether more remain."""
    rows = await message_store.changed_since(pool, versions, limit + 1)
    grouped: dict[str, list[asyncpg.Record]] = {room_id: [] for room_id in versions}
    for row in rows:
        grouped[row["room_id"]].append(row)
    return {room_id: (found[:limit], len(found) > limit) for room_id, found in grouped.items()}
