"""One timer for every socket's next ping and pong deadline (see ``hub.transport``)."""

from __future__ import annotations

import asyncio
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


class PingWheel:
    """Every socket's next ping and pong deadline, on one timer: buckets of ``tick`` seconds.

    A socket is in the bucket of its next due time; ``Socket.wheel_slot`` says which bucket is
    current for it, so an entry left behind by a reschedule (a pong before its deadline) is
    skipped.  Due with no ping outstanding: send one and wait ``ping_timeout`` for the pong.  Due
    with a ping outstanding: the client is gone, close the socket (reason ``PING_TIMEOUT``).
    """

    def __init__(self, server: EngineServer, tick: float) -> None:
        self.server = server
        self.tick = tick
        self.buckets: dict[int, list[Socket]] = {}
        self.cursor = 0  # the next slot to run
        self.timer: asyncio.TimerHandle | None = None
        self.running = False
        self.closing: set[asyncio.Task[None]] = set()

    def add(self, sock: Socket, delay: float) -> None:
        slot = math.ceil((time.monotonic() + delay) / self.tick)
        sock.wheel_slot = slot
        bucket = self.buckets.get(slot)
        if bucket is None:
            self.buckets[slot] = [sock]
        else:
            bucket.append(sock)
        if self.running:
            return  # _run re-arms when it is done
        if self.timer is None or slot < self.cursor:
            if self.timer is not None:
                self.timer.cancel()
            self.cursor = slot
            self._arm()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self.timer = loop.call_at(self._loop_time(loop, self.cursor * self.tick), self._run)

    @staticmethod
    def _loop_time(loop: asyncio.AbstractEventLoop, monotonic_at: float) -> float:
        return loop.time() + (monotonic_at - time.monotonic())

    def _run(self) -> None:
        self.timer = None
        self.running = True
        try:
            self._due(math.floor(time.monotonic() / self.tick))
        finally:
            self.running = False
        if self.buckets:
            self.cursor = max(self.cursor, min(self.buckets))
            self._arm()

    def _due(self, now_slot: int) -> None:
        server = self.server
        while self.cursor <= now_slot:
            slot = self.cursor
            self.cursor += 1
            for sock in self.buckets.pop(slot, ()):
                if sock.wheel_slot != slot or sock.closed or sock.closing:
                    continue
                if sock.last_ping is None:  # the pong came: ping again
                    sock.last_ping = time.time()
                    sock.send_nowait(PING, PING_FRAME)
                    self.add(sock, server.ping_timeout)
                else:  # no pong within ping_timeout
                    sock.wheel_slot = 0
                    task = asyncio.ensure_future(sock.ping_timed_out())
                    self.closing.add(task)
                    task.add_done_callback(self.closing.discard)
