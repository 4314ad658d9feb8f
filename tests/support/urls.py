"""The URL of another database or Redis index on the same server."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def database_url_with(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def redis_url_with(url: str, index: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{index}", parts.query, parts.fragment))
