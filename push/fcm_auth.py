"""OAuth2 access tokens for FCM, from a service account, refreshed off the event loop.

google-auth exchanges a signed JWT at the service account's ``token_uri`` with blocking `requests`,
so the exchange runs in a thread (`asyncio.to_thread`): the loop keeps sending meanwhile (and a
fake token endpoint in the same loop, as in the tests, can answer). One exchange at a time; it
starts 5 minutes before the token expires while the old token is still used.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account

from push.outcome import Outcome, SendResult

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
REFRESH_BEFORE = 300.0  # seconds before expiry to start a background refresh
MIN_VALID = 30.0  # a token with less than this left is not used: wait for the refresh


class AuthFailed(Exception):
    """No usable access token; ``result`` is what the send reports (RETRY or FAIL)."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.reason)
        self.result = result


class _Request(google.auth.transport.requests.Request):
    """google-auth's transport with an explicit ``verify`` (a CA path, or True) and timeout: a
    `requests.Session.verify` would lose to ``REQUESTS_CA_BUNDLE`` from the environment."""

    def __init__(self, verify: str | bool, timeout: float) -> None:
        super().__init__()
        self._verify = verify
        self._timeout = timeout

    def __call__(
        self,
        url: Any,
        method: Any = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        kwargs.setdefault("verify", self._verify)
        timeout = min(timeout or self._timeout, self._timeout)
        return super().__call__(url, method, body, headers, timeout, **kwargs)  # type: ignore[no-untyped-call]


class AccessTokens:
    def __init__(
        self,
        credentials_file: Path,
        *,
        ca_file: Path | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            str(credentials_file), scopes=[SCOPE]
        )
        self._request = _Request(str(ca_file) if ca_file else True, timeout)
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._task: asyncio.Task[SendResult | None] | None = None
        self.exchanges = 0  # completed token exchanges (for tests and metrics)

    async def get(self) -> str:
        """A valid access token: the cached one, or a fresh one."""
        left = self._expires_at - self._clock()
        if self._token is not None and left > MIN_VALID:
            if left <= REFRESH_BEFORE:
                self._start()  # in the background; the current token still works
            return self._token
        return await self._refresh()

    async def renew(self, rejected: str) -> str:
        """FCM rejected ``rejected`` (401): a new token, unless another send already got one."""
        if self._token is not None and self._token != rejected:
            return self._token
        self._token = None
        return await self._refresh()

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _refresh(self) -> str:
        error = await asyncio.shield(self._start())
        if error is not None or self._token is None:
            raise AuthFailed(error or SendResult(Outcome.RETRY, "auth_unavailable"))
        return self._token

    def _start(self) -> asyncio.Task[SendResult | None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._exchange())
        return self._task

    async def _exchange(self) -> SendResult | None:
        try:
            token, expires_at = await asyncio.to_thread(self._blocking_exchange)
        except google.auth.exceptions.RefreshError as exc:
            log.warning("FCM token exchange refused: %s", exc)
            outcome = Outcome.RETRY if exc.retryable else Outcome.FAIL
            return SendResult(outcome, "auth_unavailable" if exc.retryable else "auth_failed")
        except (google.auth.exceptions.TransportError, OSError) as exc:
            log.warning("FCM token exchange failed: %s", type(exc).__name__)
            return SendResult(Outcome.RETRY, "auth_unavailable")
        self._token, self._expires_at = token, expires_at
        self.exchanges += 1
        return None

    def _blocking_exchange(self) -> tuple[str, float]:
        creds = self._credentials
        creds.refresh(self._request)
        expiry = creds.expiry  # naive UTC
        expires_at = calendar.timegm(expiry.utctimetuple()) if expiry is not None else self._clock() + 3600
        return str(creds.token), float(expires_at)
