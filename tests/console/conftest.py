"""Fixtures for the console: an admin key, and a browser-like HTTP client that keeps cookies
(``tests.support.console.Browser``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.console import Browser


@pytest.fixture
async def browser(hub_url: str) -> AsyncIterator[Browser]:
    client = Browser(hub_url)
    yield client
    await client.close()


@pytest.fixture
async def admin_key(api_key) -> str:  # type: ignore[no-untyped-def]
    return str(await api_key("admin", name="console admin"))
