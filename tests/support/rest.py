"""The tests' one REST client: ``<node>/api/v1<path>`` with a bearer credential, JSON in and out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

API = "/api/v1"


@dataclass
class Reply:
    """An answer as it came: its status, Content-Type without parameters ("" when none) and body."""

    status: int
    content_type: str
    body: bytes


class Rest:
    """A REST client of one node with one credential (None: no Authorization header).

    Each call opens a session of its own unless ``http`` is given, so a client outlives a node's
    restart; ``timeout`` bounds each call in seconds (default aiohttp's).  ``headers`` go with every
    call (an ``Idempotency-Key``, say).
    """

    def __init__(
        self,
        base: str,
        credential: str | None = None,
        *,
        http: aiohttp.ClientSession | None = None,
        timeout: float | None = None,
    ) -> None:
        self.base = base
        self.credential = credential
        self.http = http
        self.timeout = timeout
        self.headers: dict[str, str] = {}

    async def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """``method /api/v1<path>`` as given (``json_body`` None: no JSON body); the answer unparsed."""
        sent = {"Authorization": f"Bearer {self.credential}"} if self.credential else {}
        sent.update(self.headers)
        sent.update(headers or {})
        kwargs: dict[str, Any] = {"headers": sent, "params": params, "data": data}
        if json_body is not None:
            kwargs["json"] = json_body
        if self.http is not None:
            return await self._send(self.http, method, path, kwargs)
        timeout = None if self.timeout is None else aiohttp.ClientTimeout(total=self.timeout)  # None: aiohttp's
        async with aiohttp.ClientSession(timeout=timeout) as http:
            return await self._send(http, method, path, kwargs)

    async def _send(self, http: aiohttp.ClientSession, method: str, path: str, kwargs: dict[str, Any]) -> Reply:
        async with http.request(method, f"{self.base}{API}{path}", **kwargs) as resp:
            content_type = resp.headers.get("Content-Type", "").split(";")[0]
            return Reply(resp.status, content_type, await resp.read())

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, the answer: its JSON; its text when that is not JSON; None when it is empty)."""
        reply = await self.send(method, path, json_body=body)
        text = reply.body.decode(errors="replace")
        if not text:
            return reply.status, None
        try:
            return reply.status, json.loads(text)
        except ValueError:
            return reply.status, text

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        """A call that must succeed (200, 201 or 202); its answer."""
        status, answer = await self.request(method, path, body)
        assert status in (200, 201, 202), (method, path, status, answer)
        return answer


async def create_room(url: str, key: str, room_id: str, members: list[str]) -> None:
    """A private room named as its id, through the REST API of the node at ``url``."""
    status, body = await Rest(url, key, timeout=10).request(
        "POST", "/rooms", {"kind": "private", "id": room_id, "name": room_id, "members": members}
    )
    assert status == 201, body
