"""Console sessions: a random cookie naming a server-side record in Redis, and its CSRF token.

Why server-side rather than a signed cookie: signing out (or revoking the API key) ends the
session at once on every web node, and there is no signing secret to configure and rotate.
Redis already holds every node's shared state; a lost Redis only signs marketers out.

- Cookie ``herald_console``: 256 random bits; HttpOnly, SameSite=Strict, Path=/console, Secure
  over https.  Redis keeps ``sha256(cookie)`` → ``{"key_id", "csrf"}`` with a sliding TTL, so a
  copy of Redis does not hold usable cookies.
- CSRF: each session has a random token, embedded in every form (``csrf_token``) and sent by our
  script as ``X-CSRF-Token``; every state-changing request must carry it (compared in constant
  time).  The sign-in form, which has no session yet, uses a double-submit cookie instead.
- Each request also checks that the API key is still a live admin key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from aiohttp import web

from hub.context import Hub
from store import apikeys, keys

COOKIE = "herald_console"
LOGIN_COOKIE = "herald_console_login"
PATH = "/console"
TTL_SECONDS = 8 * 3600
LOGIN_TTL_SECONDS = 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: str
    key_id: int
    key_name: str
    csrf: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def is_https(request: web.Request) -> bool:
    # X-Forwarded-Proto only ever adds Secure, so trusting it from any proxy is harmless.
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=PATH, httponly=True, samesite="Strict", secure=is_https(request)
    )


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path=PATH)


async def create(hub: Hub, key: apikeys.ApiKey) -> tuple[str, Session]:
    """A new session for an admin key: (cookie value, session)."""
    token = secrets.token_urlsafe(32)
    session = Session(_hash(token), key.id, key.name, secrets.token_urlsafe(32))
    record = {"key_id": key.id, "key_name": key.name, "csrf": session.csrf}
    await hub.redis.set(keys.console_session(session.token_hash), json.dumps(record), ex=TTL_SECONDS)
    return token, session


async def load(hub: Hub, request: web.Request) -> Session | None:
    """The request's live session (its TTL renewed), or None."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 128:
        return None
    token_hash = _hash(token)
    name = keys.console_session(token_hash)
    raw = await hub.redis.get(name)
    if raw is None:
        return None
    record = json.loads(raw)
    if not await apikeys.admin_live(hub.pool, int(record["key_id"])):
        await hub.redis.delete(name)
        return None
    await hub.redis.expire(name, TTL_SECONDS)
    return Session(token_hash, int(record["key_id"]), str(record.get("key_name", "")), str(record["csrf"]))


async def end(hub: Hub, session: Session) -> None:
    await hub.redis.delete(keys.console_session(session.token_hash))


def same(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())


def new_login_token() -> str:
    return secrets.token_urlsafe(24)
