"""Coalescing writes: what many tasks add at the same moment is written by one statement."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Gathers the items added while a flush is pending into one call of ``flush``.

    ``add`` returns once its item has been flushed (or raises what the flush raised), so a caller
    can rely on the write being done — e.g. a delivery marked ``sending`` before its request goes
    out — while concurrent callers share one round trip.
    """

    def __init__(self, flush: Callable[[list[T]], Awaitable[None]], *, max_batch: int = 1000) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._running: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def add(self, item: T) -> None:
        await self._queue(item)

    def add_nowait(self, item: T) -> None:
        """Queue ``item`` for the next flush without waiting for it; `drain` reports a failure."""
        self._queue(item).add_done_callback(_retrieve)

    async def drain(self) -> None:
        """Wait until everything added so far is flushed; raise the first failure of a flush."""
        while (running := self._running) is not None:
            await asyncio.shield(running)
        if self._error is not None:
            raise self._error

    def _queue(self, item: T) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
        return future

    async def _run(self) -> None:
        try:
            await asyncio.sleep(0)  # let the tasks woken in this same moment add theirs
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    await self._flush([item for item, _ in batch])
                except Exception as exc:
                    if self._error is None:
                        self._error = exc
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._running = None


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a fire-and-forget item's failure as seen (`drain` raises it)."""
    if not future.cancelled():
        future.exception()
