"""A lean FCM HTTP v1 sender: a pre-built JSON body per send, bounded requests in flight.

firebase-admin's ``send_each_async`` was measured far slower per notification (docs/push.md): it
gathers without a bound, ignores ``Retry-After`` and refreshes tokens with blocking `requests` on
the loop. Here each send is one POST through an `FcmTransport` (HTTP/2 on a few shared
connections); the OAuth2 token comes from `AccessTokens` (google-auth, in a thread); a 401 renews
the token once and sends again; a request the server did not process (GOAWAY) is sent again once.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from h2.exceptions import H2Error

from push.apps import FcmCredentials
from push.fcm_auth import AccessTokens, AuthFailed
from push.fcm_transport import FcmAnswer, FcmTransport, transport_for
from push.h2client import H2ClientError, StreamNotProcessed
from push.message import PushMessage
from push.outcome import DELIVERED, FCM_ERROR_TYPE, Outcome, SendResult, classify_fcm, parse_retry_after
from push.payload import fcm_message
from push.target import Target

FCM_ENDPOINT = "https://fcm.googleapis.com"
MAX_IN_FLIGHT = 1000
NETWORK_ERRORS = (H2ClientError, H2Error, OSError, httpx.HTTPError)


class FcmHttp:
    """The transport and the in-flight bound, shared by every FCM app of a process."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        ca_file: Path | None = None,
        timeout: float = 10.0,
        max_in_flight: int = MAX_IN_FLIGHT,
        transport: FcmTransport | None = None,
    ) -> None:
        self.transport = transport or transport_for(endpoint or FCM_ENDPOINT, ca_file=ca_file, timeout=timeout)
        self.timeout = timeout
        self.slots = asyncio.Semaphore(max_in_flight)

    async def close(self) -> None:
        await self.transport.close()


class FcmProvider:
    name = "fcm"

    def __init__(self, credentials: FcmCredentials, *, tokens: AccessTokens, http: FcmHttp) -> None:
        self.tokens = tokens
        self._http = http
        self.path = f"/v1/projects/{credentials.project_id}/messages:send"
        self._template: tuple[PushMessage, bytes, bytes] | None = None

    def body(self, token: str, message: PushMessage) -> bytes:
        """The request body. A run of sends of one message (a notification's devices) encodes the
        message once and puts each token in; a message with a TTL carries an expiry computed at
        each send, so it is encoded each time."""
        if message.ttl is not None:
            return _encode(token, message)
        template = self._template
        if template is None or template[0] is not message:
            prefix, _, suffix = _encode(_SLOT, message).partition(_SLOT_JSON)
            template = self._template = (message, prefix, suffix)
        return template[1] + json.dumps(token).encode() + template[2]

    async def send(self, target: Target, message: PushMessage) -> SendResult:
        body = self.body(target.token, message)
        async with self._http.slots:
            try:
                async with asyncio.timeout(self._http.timeout):
                    answer = await self._exchange(body)
            except AuthFailed as exc:
                return exc.result
            except TimeoutError:
                return SendResult(Outcome.RETRY, "timeout")
            except NETWORK_ERRORS as exc:
                return SendResult(Outcome.RETRY, f"network: {type(exc).__name__}")
        if answer.status == 200:
            return DELIVERED
        return classify_fcm(answer.status, _json(answer.body), parse_retry_after(answer.retry_after))

    async def _exchange(self, body: bytes) -> FcmAnswer:
        token = await self.tokens.get()
        answer = await self._post(body, token)
        if answer.status == 401 and not _is_fcm_error(answer.body):
            answer = await self._post(body, await self.tokens.renew(token))
        return answer

    async def _post(self, body: bytes, token: str) -> FcmAnswer:
        try:
            return await self._http.transport.post(self.path, token, body)
        except StreamNotProcessed:  # GOAWAY or REFUSED_STREAM: FCM never saw it, send it again
            return await self._http.transport.post(self.path, token, body)

    async def close(self) -> None:
        await self.tokens.close()


_SLOT = "\u0000herald-token\u0000"  # stands for the token in a template: no real token holds NULs
_SLOT_JSON = json.dumps(_SLOT).encode()


def _encode(token: str, message: PushMessage) -> bytes:
    return json.dumps({"message": fcm_message(token, message)}, separators=(",", ":")).encode()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _is_fcm_error(body: bytes) -> bool:
    """A 401 carrying an FcmError (THIRD_PARTY_AUTH_ERROR: the APNs credentials in Firebase) is
    FCM's verdict on the message, not on Herald's access token."""
    parsed = _json(body)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return isinstance(details, list) and any(isinstance(d, dict) and d.get("@type") == FCM_ERROR_TYPE for d in details)
