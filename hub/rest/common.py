"""Credentials, bodies and queries of REST requests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from config import payloads
from config.bodies import Body
from config.errors import Code
from hub.auth import Claims
from hub.context import HUB, Hub
from hub.errors import HubError
from store import apikeys
from store.apikeys import ApiKey

MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (by client JWT) or a backend service (by API key)."""

    user: Claims | None = None
    key: ApiKey | None = None

    @property
    def user_id(self) -> str | None:
        return self.user.user_id if self.user else None

    def has_scope(self, scope: str) -> bool:
        return self.key is not None and self.key.allows(scope)


def hub_of(request: web.Request) -> Hub:
    return request.config_dict[HUB]


async def principal(request: web.Request) -> Principal:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise HubError(Code.AUTH_REQUIRED, "send Authorization: Bearer <client JWT or API key>")
    credential = header[7:].strip()
    hub = hub_of(request)
    if credential.startswith(apikeys.KEY_PREFIX):
        key = await apikeys.authenticate(hub.pool, credential)
        if key is None:
            raise HubError(Code.TOKEN_INVALID, "the API key is unknown or revoked")
        who = Principal(key=key)
    else:
        who = Principal(user=hub.verifier.verify(credential))
    wait = hub.caller_rate.take(f"key:{who.key.id}" if who.key else f"user:{who.user_id}")
    if wait:
        raise HubError(Code.RATE_LIMITED, "too many requests for this credential", retry_after=wait)
    return who


async def require_scope(request: web.Request, scope: str) -> Principal:
    """A caller whose API key has ``scope`` (or admin); users are refused."""
    who = await principal(request)
    if not who.has_scope(scope):
        raise HubError(Code.FORBIDDEN, f"this needs an API key with the {scope} scope")
    return who


async def user_or_scope(request: web.Request, scope: str) -> Principal:
    """A user (by client JWT; the domain decides what they may do), or an API key with ``scope``."""
    who = await principal(request)
    if who.key is not None and not who.has_scope(scope):
        raise HubError(Code.FORBIDDEN, f"this needs an API key with the {scope} scope")
    return who


async def require_self_or_scope(request: web.Request, user_id: str, scope: str) -> Principal:
    """The user ``user_id`` themselves (by client JWT), or an API key with ``scope`` (or admin)."""
    who = await principal(request)
    if who.key is not None and not who.has_scope(scope):
        raise HubError(Code.FORBIDDEN, f"this needs the user's own token or an API key with the {scope} scope")
    if who.key is None and who.user_id != user_id:
        raise HubError(Code.FORBIDDEN, "a client may only act on its own account")
    return who


async def json_body(
    request: web.Request, body: Body, *, required: bool = True, without: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The JSON object in the body, refusing fields ``body`` does not declare (less ``without``).

    An empty body is refused unless the route documents its body as optional (``required=False``).
    The fields' values are checked by ``body.parse`` where the handler needs them.
    """
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise HubError(Code.TOO_LARGE, f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise HubError(Code.TOO_LARGE, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        if required:
            raise HubError(Code.INVALID_PAYLOAD, "this route needs a JSON object as its body")
        raw = b"{}"
    try:
        data = json.loads(raw)
    except ValueError:
        raise HubError(Code.INVALID_PAYLOAD, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HubError(Code.INVALID_PAYLOAD, "the body must be a JSON object")
    return body.refuse_unknown(data, without=without)


def path_user_id(request: web.Request) -> str:
    """The ``{user_id}`` of the path: a user id that cannot exist is answered ``not_found``."""
    user_id = request.match_info["user_id"]
    if not payloads.ID_PATTERN.match(user_id):
        raise HubError(Code.NOT_FOUND, "no such user: a user id is 1 to 128 letters, digits or _ . : @ -")
    return user_id


def query_int(request: web.Request, name: str, *, minimum: int = 0, maximum: int = 2**62) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise HubError(
            Code.INVALID_PAYLOAD, f"{name} must be a whole number", fields={name: "must be a whole number"}
        ) from None
    if not minimum <= value <= maximum:
        raise HubError(
            Code.INVALID_PAYLOAD,
            f"{name} must be between {minimum} and {maximum}",
            fields={name: "out of range"},
        )
    return value
