"""Campaigns in the tests: a marketer's REST calls (users, devices, segments, campaigns) and waiting
for a campaign's status."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from tests.support.push import TOPIC
from tests.support.rest import Rest
from tests.support.tokens import ApiKey


class Marketer:
    """REST calls a marketer's console (or backend) makes, with a campaigns key and a devices key."""

    def __init__(self, base: str, campaigns_key: str, devices_key: str) -> None:
        self.api = Rest(base, campaigns_key)
        self.devices = Rest(base, devices_key)

    async def call(self, method: str, path: str, body: Any = None, expect: int | None = None) -> Any:
        status, answer = await self.api.request(method, path, body)
        if expect is not None:
            assert status == expect, (status, answer)
        return answer

    async def user(self, user_id: str, **profile: Any) -> dict[str, Any]:
        status, answer = await self.api.request("PUT", f"/users/{user_id}", profile)
        assert status in (200, 201), answer
        return dict(answer)

    async def device(self, user_id: str, token: str, provider: str = "apns", **extra: Any) -> None:
        platform = extra.pop("platform", "ios" if provider == "apns" else "android")
        body = {"token": token, "provider": provider, "platform": platform, "user_id": user_id, "app_id": TOPIC}
        status, answer = await self.devices.request("POST", "/devices", {**body, **extra})
        assert status in (200, 201), answer

    async def preview(self, tree: Any, **extra: Any) -> tuple[int, Any]:
        return await self.api.request("POST", "/segments/preview", {"filter": tree, **extra})

    async def campaign(self, **body: Any) -> dict[str, Any]:
        body.setdefault("name", "test campaign")
        body.setdefault("content", {"default": {"title": "Hello", "body": "World"}})
        return dict(await self.call("POST", "/campaigns", body, expect=201))

    async def schedule(self, campaign_id: str, schedule: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"schedule": schedule} if schedule is not None else {}
        return dict(await self.call("POST", f"/campaigns/{campaign_id}/schedule", body, expect=200))

    async def stats(self, campaign_id: str) -> dict[str, Any]:
        return dict(await self.call("GET", f"/campaigns/{campaign_id}/stats", expect=200))


@pytest.fixture
async def marketer(hub_url: str, api_key: ApiKey) -> Marketer:
    return Marketer(hub_url, await api_key("campaigns"), await api_key("devices"))


async def wait_status(db: asyncpg.Connection, campaign_id: str, status: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) != status:
            await asyncio.sleep(0.05)
