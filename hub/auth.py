"""Client JWT verification.

Algorithms are pinned by configuration, never taken from the token: the token's ``alg`` must be
one of ``HERALD_JWT_ALGORITHMS``, and it picks the key *kind* (the shared secret for HS*, the
public key or JWKS for RS*/ES*), so an RS public key can never be used as an HMAC secret.
``exp`` and ``sub`` are required; ``aud`` and ``iss`` are checked when configured.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import jwt

from config import Settings
from config.errors import Code
from config.payloads import ID_PATTERN
from hub.errors import HubError


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: str
    expires_at: float


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self._algorithms = settings.jwt_algorithms
        self._secret = settings.jwt_secret
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        self._public_key: Any = None
        self._jwks: jwt.PyJWKSet | None = None
        if settings.jwt_public_key_file:
            self._public_key = settings.jwt_public_key_file.read_text()
        if settings.jwt_jwks_file:
            self._jwks = jwt.PyJWKSet.from_dict(json.loads(settings.jwt_jwks_file.read_text()))

    def verify(self, token: object) -> Claims:
        """Return the token's claims or raise HubError with token_expired / token_invalid."""
        if not isinstance(token, str) or not token:
            raise HubError(Code.AUTH_REQUIRED, "a token is required")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise HubError(Code.TOKEN_INVALID, "the token is malformed") from None
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise HubError(Code.TOKEN_INVALID, f"the token's algorithm {alg!r} is not accepted")
        key = self._key_for(alg, header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise HubError(Code.TOKEN_EXPIRED, "the token has expired") from None
        except jwt.PyJWTError as exc:
            raise HubError(Code.TOKEN_INVALID, f"the token is invalid: {exc}") from None
        sub = claims["sub"]
        if not isinstance(sub, str) or not ID_PATTERN.match(sub):
            raise HubError(
                Code.TOKEN_INVALID, "the token's sub must be a user id of 1 to 128 letters, digits or _ . : @ -"
            )
        return Claims(user_id=sub, expires_at=float(claims["exp"]))

    def _key_for(self, alg: str, kid: object) -> Any:
        if alg.startswith("HS"):
            if not self._secret:
                raise HubError(Code.TOKEN_INVALID, f"the token's algorithm {alg} is not accepted")
            return self._secret
        if self._jwks is not None:
            for jwk in self._jwks.keys:
                if kid is None or jwk.key_id == kid:
                    return jwk.key
            raise HubError(Code.TOKEN_INVALID, "the token's key id is unknown")
        if self._public_key is None:
            raise HubError(Code.TOKEN_INVALID, f"the token's algorithm {alg} is not accepted")
        return self._public_key


def mint_token(secret: str, user_id: str, *, ttl: float = 3600, **claims: Any) -> str:
    """An HS256 client token, as an app backend would mint it (for `herald token` and tests)."""
    now = int(time.time())
    payload = {"sub": user_id, "iat": now, "exp": now + int(ttl), **claims}
    return jwt.encode(payload, secret, algorithm="HS256")
