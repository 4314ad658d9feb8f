"""Credentials of the tests: the JWT secret every test hub runs with, client tokens signed with it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hub.auth import mint_token

JWT_SECRET = "test-secret-0123456789abcdef-0123456789"

#: The ``api_key`` fixture (tests/conftest.py): ``await api_key("publish")`` is a new key's bearer string.
ApiKey = Callable[..., Awaitable[str]]


def token_for(user_id: str, **claims: Any) -> str:
    return mint_token(JWT_SECRET, user_id, **claims)
