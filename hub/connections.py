"""This node's live sockets: who each belongs to, which rooms it follows, when its token ends."""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Conn:
    sid: str
    user_id: str
    expires_at: float
    rooms: set[str] = field(default_factory=set)


class Connections:
    """The sockets, and their tokens' expiries on one timer (a heap, not a timer per socket).

    ``on_expired(conn)`` is called when a socket's token has run out; a socket whose
    ``expires_at`` was moved later (``auth:refresh``) is skipped by its old entry, and entries of
    sockets gone are dropped when they come due or when the heap is rebuilt (it is whenever more
    than half of it is stale).
    """

    def __init__(self, on_expired: Callable[[Conn], None] | None = None) -> None:
        self.by_sid: dict[str, Conn] = {}
        self.by_user: defaultdict[str, set[str]] = defaultdict(set)
        self.on_expired = on_expired
        self._expiries: list[tuple[float, str]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, conn: Conn) -> bool:
        """Register a socket; True when it is the user's first on this node."""
        self.by_sid[conn.sid] = conn
        sids = self.by_user[conn.user_id]
        sids.add(conn.sid)
        self.watch_expiry(conn)
        return len(sids) == 1

    def remove(self, sid: str) -> tuple[Conn | None, bool]:
        """Forget a socket; return it and whether it was the user's last on this node."""
        conn = self.by_sid.pop(sid, None)
        if conn is None:
            return None, False
        sids = self.by_user.get(conn.user_id)
        if sids is None:
            return conn, False
        sids.discard(sid)
        if not sids:
            del self.by_user[conn.user_id]
            return conn, True
        return conn, False

    def watch_expiry(self, conn: Conn) -> None:
        """(Re)schedule ``on_expired`` for ``conn.expires_at``."""
        if self.on_expired is None:
            return
        if len(self._expiries) > 2 * len(self.by_sid) + 1024:
            self._expiries = [(c.expires_at, c.sid) for c in self.by_sid.values()]
            heapq.heapify(self._expiries)
        else:
            heapq.heappush(self._expiries, (conn.expires_at, conn.sid))
        if self._expiries[0][0] < self._timer_at:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        at = self._expiries[0][0]
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_later(max(0.0, at - time.time()), self._expire)

    def _expire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = time.time()
        heap = self._expiries
        while heap and heap[0][0] <= now:
            at, sid = heapq.heappop(heap)
            conn = self.by_sid.get(sid)
            if conn is not None and conn.expires_at <= at and self.on_expired is not None:
                self.on_expired(conn)
        if heap:
            self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, math.inf

    def of_user(self, user_id: str) -> list[Conn]:
        return [self.by_sid[sid] for sid in self.by_user.get(user_id, ()) if sid in self.by_sid]

    def users(self) -> list[str]:
        return list(self.by_user)

    def __len__(self) -> int:
        return len(self.by_sid)
