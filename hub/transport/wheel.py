"""One timer for every socket's next ping and pong deadline (see ``hub.transport``)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from typing import TYPE_CHECKING

from engineio import packet as eio_packet

from hub.websocket import text_frame

if TYPE_CHECKING:
    from hub.transport.engine import EngineServer
    from hub.transport.socket import Socket

PING = eio_packet.Packet(eio_packet.PING)
PING_FRAME = text_frame(PING.encode().encode())
#: Seconds at least between two runs of the wheel's timer: due times closer than this are handled
#: together (at most this late).  Armed at every distinct due time, 10,000 idle websockets woke it
#: 400 times a second and took 0.051 of a core (0.004 with one run per 1 s bucket, docs/benchmarks.md).
GRAIN = 0.01


class PingWheel:
    """Every socket's next ping and pong deadline, on one timer, each kept to the exact time.

    ``Socket.wheel_due`` is a socket's exact due time (``time.monotonic()``); the socket waits in the
    bucket of ``tick`` seconds that holds that time, a list entry and nothing else.  When the
    timer fires, the buckets that have begun are moved into ``head``, a heap of ``(due, n, socket)``
    that only ever holds the sockets due within about one tick; every socket whose due time has
    come is handled, and the timer is armed again at the earliest due time in ``head`` (or at the
    start of the next bucket, which becomes part of ``head`` then), but never sooner than ``GRAIN``
    after its last run.  So a ping goes out, and a silent socket is closed, at most ``GRAIN`` after
    its time comes, never before; and the timer fires at most 1 / ``GRAIN`` times a second.

    An entry is stale when its socket was filed again later (a pong before its deadline):
    ``wheel_due`` then names another bucket, or another due time in ``head``, and the entry is
    skipped.  Due with no ping outstanding: send one and wait ``ping_timeout`` for the pong.  Due
    with a ping outstanding: the client is gone, close the socket (reason ``PING_TIMEOUT``).
    """

    def __init__(self, server: EngineServer, tick: float) -> None:
        self.server = server
        self.tick = tick
        self.buckets: dict[int, list[Socket]] = {}
        self.next_slot: int | None = None  # the lowest key of ``buckets``
        self.cursor = 0  # slots below this one go to ``head``
        self.head: list[tuple[float, int, Socket]] = []
        self.order = itertools.count()  # breaks ties in ``head`` (sockets do not compare)
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf  # monotonic time the timer fires at
        self.last_run = -math.inf  # monotonic time of the timer's last run
        self.running = False
        self.closing: set[asyncio.Task[None]] = set()

    def add(self, sock: Socket, delay: float) -> None:
        due = time.monotonic() + delay
        sock.wheel_due = due
        slot = math.floor(due / self.tick)
        if slot < self.cursor:
            heapq.heappush(self.head, (due, next(self.order), sock))
        else:
            bucket = self.buckets.get(slot)
            if bucket is None:
                self.buckets[slot] = [sock]
                if self.next_slot is None or slot < self.next_slot:
                    self.next_slot = slot
            else:
                bucket.append(sock)
        if not self.running and due < self.timer_at:
            self._arm(due)  # _run re-arms when it is done

    def _arm(self, at: float) -> None:
        at = max(at, self.last_run + GRAIN)
        if self.timer is not None:
            if at >= self.timer_at:
                return  # it fires soon enough already
            self.timer.cancel()
        loop = asyncio.get_running_loop()
        self.timer_at = at
        self.timer = loop.call_at(loop.time() + (at - time.monotonic()), self._run)

    def _run(self) -> None:
        self.timer = None
        self.timer_at = math.inf
        self.running = True
        try:
            now = self.last_run = time.monotonic()
            self._take_begun(math.floor(now / self.tick))
            self._due(now)
        finally:
            self.running = False
        at = self.head[0][0] if self.head else math.inf
        if self.next_slot is not None:
            at = min(at, self.next_slot * self.tick)
        if at < math.inf:
            self._arm(at)

    def _take_begun(self, now_slot: int) -> None:
        """Move the current entries of every bucket up to ``now_slot`` into ``head``."""
        tick = self.tick
        head = self.head
        while self.next_slot is not None and self.next_slot <= now_slot:
            slot = self.next_slot
            for sock in self.buckets.pop(slot):
                due = sock.wheel_due
                if math.floor(due / tick) == slot:
                    heapq.heappush(head, (due, next(self.order), sock))
            self.next_slot = min(self.buckets) if self.buckets else None
        self.cursor = max(self.cursor, now_slot + 1)

    def _due(self, now: float) -> None:
        server = self.server
        head = self.head
        while head and head[0][0] <= now:
            due, _, sock = heapq.heappop(head)
            if sock.wheel_due != due or sock.closed or sock.closing:
                continue  # filed again since, or gone
            if sock.last_ping is None:  # the pong came: ping again
                sock.last_ping = time.time()
                sock.send_nowait(PING, PING_FRAME)
                self.add(sock, server.ping_timeout)
            else:  # no pong within ping_timeout
                sock.wheel_due = 0.0
                task = asyncio.ensure_future(sock.ping_timed_out())
                self.closing.add(task)
                task.add_done_callback(self.closing.discard)
