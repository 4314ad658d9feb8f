"""One APNs provider JWT per signing key, shared by every connection and client that uses the key.

Apple wants a token refreshed at most every 20 minutes and at least every 60; aioapns mints one per
connection. Here one `ProviderToken` per (team, key) is reused for 30 minutes, re-minted at once on
``ExpiredProviderToken`` (once per token, however many requests report it), and not re-minted for
20 minutes after ``TooManyProviderTokenUpdates``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
from aioapns.connection import AuthorizationHeaderProvider
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

REFRESH_AFTER = 30 * 60
HOLD_AFTER_TOO_MANY = 20 * 60
MUST_REFRESH_AFTER = 55 * 60  # even while holding: APNs refuses tokens older than an hour


class ProviderToken(AuthorizationHeaderProvider):
    """The ``authorization`` header value; ``generation`` counts the tokens minted so far."""

    def __init__(self, key_pem: str, key_id: str, team_id: str, *, clock: Callable[[], float] = time.time) -> None:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("an APNs auth key is an EC (ES256) private key")
        self._key = key
        self.key_id = key_id
        self.team_id = team_id
        self._clock = clock
        self._header: str | None = None
        self._issued_at = 0.0
        self._hold_until = 0.0
        self.generation = 0

    def get_header(self) -> str:
        now = self._clock()
        age = now - self._issued_at
        due = age >= REFRESH_AFTER and (now >= self._hold_until or age >= MUST_REFRESH_AFTER)
        if self._header is None or due:
            self._mint(now)
        assert self._header is not None
        return self._header

    def expired(self, generation: int) -> None:
        """APNs said ``ExpiredProviderToken`` to a request sent with token ``generation``."""
        if generation == self.generation and self._clock() >= self._hold_until:
            self._header = None

    def too_many_updates(self) -> None:
        """APNs said ``TooManyProviderTokenUpdates``: keep the current token for a while."""
        self._hold_until = self._clock() + HOLD_AFTER_TOO_MANY

    def _mint(self, now: float) -> None:
        claims = {"iss": self.team_id, "iat": int(now)}
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.key_id})
        self._header = f"bearer {token}"
        self._issued_at = now
        self.generation += 1
