"""The console in the tests: a browser-like HTTP client that keeps the console's cookies."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

SIGN_IN = "/console/sign-in"


class Browser:
    """An aiohttp session with a cookie jar, as a browser would hold the console's cookies."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # cookies for 127.0.0.1

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, **kwargs: Any) -> tuple[aiohttp.ClientResponse, str]:
        async with self.http.get(self.base + path, allow_redirects=False, **kwargs) as resp:
            return resp, await resp.text()

    async def post(self, path: str, **kwargs: Any) -> tuple[aiohttp.ClientResponse, str]:
        async with self.http.post(self.base + path, allow_redirects=False, **kwargs) as resp:
            return resp, await resp.text()

    async def sign_in(self, key: str, **kwargs: Any) -> tuple[aiohttp.ClientResponse, str]:
        _, page = await self.get(SIGN_IN)
        token = field(page, "login_token")
        return await self.post(SIGN_IN, data={"login_token": token, "key": key}, **kwargs)

    async def csrf(self, path: str = "/console/campaigns") -> str:
        resp, page = await self.get(path)
        assert resp.status == 200, page
        match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
        assert match, page
        return match.group(1)


def field(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field in {page[:500]}"
    return match.group(1)
