"""APNs over Herald's own HTTP/2 client: one pool per (app, environment), one JWT per key.

aioapns was the limit at the push rates Herald aims at (about 260 µs of CPU per push alone, with
seams needed for the host, timeouts, late answers and ``Retry-After``): requests now go through
`push.h2client.H2Pool` (the client FCM uses), a few connections each carrying up to the server's
``MAX_CONCURRENT_STREAMS``, the provider JWT shared per key (`ProviderToken`). The body and the
headers that depend only on the message are built once per message, not once per device.

The environment the request goes to is the device's own (``HERALD_APNS_ENVIRONMENT=auto``) or the
forced one; ``HERALD_APNS_HOST`` sends both to one host:port (a fake or a proxy) without changing
which environment a request counts as. ``BadDeviceToken`` prunes the device, unless the request was
sent to another environment than the device registered for: then it fails with
``"BadDeviceToken (environment mismatch)"`` and the device is kept.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from h2.exceptions import H2Error

from push.apns_auth import ProviderToken
from push.apns_protocol import APNS_PORT, PRODUCTION_HOST, SANDBOX_HOST
from push.apps import ApnsCredentials
from push.h2client import H2ClientError, H2Pool, H2Response, StreamNotProcessed
from push.message import PushMessage
from push.outcome import DELIVERED, Outcome, SendResult, classify_apns, parse_retry_after
from push.payload import apns_encode, apns_payload, apns_payload_limit, apns_priority, apns_topic
from push.target import Target
from push.tls import client_context

MAX_CONNECTIONS = 2  # per (app, environment): APNs multiplexes up to its SETTINGS limit on each
STREAMS_PER_CONNECTION = 1000  # at most; the server's SETTINGS may allow fewer (seen from 1 to 1500)
NETWORK_ERRORS = (H2ClientError, OSError, H2Error)
#: Derives a stable apns-id from a delivery id that is not a UUID.
APNS_ID_NAMESPACE = uuid.UUID("6f1c1c8e-6a55-4c55-9a0e-2f3f6d1b8a11")


def parse_host(value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) as a pair."""
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def apns_id(delivery_id: str) -> str:
    """The delivery id when it is a UUID (as it should be), else a UUID derived from it."""
    try:
        return str(uuid.UUID(delivery_id))
    except ValueError:
        return str(uuid.uuid5(APNS_ID_NAMESPACE, delivery_id))


class _Prepared:
    """What a request for one message carries whatever the device: body and headers."""

    __slots__ = ("body", "headers", "too_large", "ttl")

    def __init__(self, credentials: ApnsCredentials, message: PushMessage) -> None:
        self.body = apns_encode(apns_payload(message))
        self.too_large = len(self.body) > apns_payload_limit(message)
        self.ttl = message.ttl
        headers = [(b"apns-topic", apns_topic(credentials.topic, message).encode())]
        headers.append((b"apns-priority", str(apns_priority(message)).encode()))
        if message.collapse_key is not None:
            headers.append((b"apns-collapse-id", message.collapse_key.encode()))
        headers.append((b"apns-push-type", message.push_type.encode()))
        self.headers = headers


class ApnsProvider:
    name = "apns"

    def __init__(
        self,
        credentials: ApnsCredentials,
        *,
        token: ProviderToken | None = None,
        host: str | None = None,
        environment: str = "auto",
        ca_file: Path | None = None,
        timeout: float = 10.0,
        max_connections: int = MAX_CONNECTIONS,
        streams_per_connection: int = STREAMS_PER_CONNECTION,
    ) -> None:
        self.credentials = credentials
        self.token = token or ProviderToken(credentials.key, credentials.key_id, credentials.team_id)
        self._host = parse_host(host) if host else None
        self._environment = environment
        self._ca_file = ca_file
        self._timeout = timeout
        self._max_connections = max_connections
        self._streams_per_connection = streams_per_connection
        self._pools: dict[str, H2Pool] = {}
        self._prepared: tuple[PushMessage, _Prepared] | None = None
        self._authorization: tuple[str, bytes] = ("", b"")

    def environment_for(self, target: Target) -> str:
        """Where a request for ``target`` goes: its own environment, or the forced one."""
        return target.environment if self._environment == "auto" else self._environment

    def prepare(self, message: PushMessage) -> _Prepared:
        """The message's body and headers, made once for a run of sends of the same message."""
        last = self._prepared
        if last is not None and last[0] is message:
            return last[1]
        prepared = _Prepared(self.credentials, message)
        self._prepared = (message, prepared)
        return prepared

    async def send(self, target: Target, message: PushMessage) -> SendResult:
        environment = self.environment_for(target)
        prepared = self.prepare(message)
        if prepared.too_large:
            return SendResult(Outcome.FAIL, "PayloadTooLarge")  # refused here: nothing is sent
        headers = [(b"apns-id", apns_id(target.delivery_id).encode()), *prepared.headers]
        if prepared.ttl is not None:  # 0: deliver now or never
            headers.append((b"apns-expiration", str(int(time.time()) + prepared.ttl).encode()))
        generation = self.token.generation
        headers.append((b"authorization", self._authorization_header()))
        path = b"/3/device/" + target.token.encode()
        pool = self._pool(environment)
        try:
            async with asyncio.timeout(self._timeout):
                try:
                    response = await pool.request(b"POST", path, headers, prepared.body)
                except StreamNotProcessed:  # GOAWAY or REFUSED_STREAM: APNs never saw it, send it again
                    response = await pool.request(b"POST", path, headers, prepared.body)
        except TimeoutError:
            return SendResult(Outcome.RETRY, "timeout")
        except NETWORK_ERRORS as exc:
            return SendResult(Outcome.RETRY, f"network: {type(exc).__name__}")
        if response.status == 200:
            return DELIVERED
        outcome = _classify(response, environment_mismatch=environment != target.environment)
        if outcome.reason == "ExpiredProviderToken":
            self.token.expired(generation)
        elif outcome.reason == "TooManyProviderTokenUpdates":
            self.token.too_many_updates()
        return outcome

    def _authorization_header(self) -> bytes:
        value = self.token.get_header()
        if value is not self._authorization[0]:
            self._authorization = (value, value.encode())
        return self._authorization[1]

    @property
    def pools(self) -> dict[str, H2Pool]:
        """The connection pools made so far, by environment (for diagnostics and tests)."""
        return dict(self._pools)

    def host_for(self, environment: str) -> tuple[str, int]:
        """The host and port requests for ``environment`` connect to."""
        return self._host or (SANDBOX_HOST if environment == "sandbox" else PRODUCTION_HOST, APNS_PORT)

    def _pool(self, environment: str) -> H2Pool:
        pool = self._pools.get(environment)
        if pool is None:
            host, port = self.host_for(environment)
            pool = self._pools[environment] = H2Pool(
                host,
                port,
                ssl_context=client_context(self._ca_file),
                max_connections=self._max_connections,
                streams_per_connection=self._streams_per_connection,
                connect_timeout=self._timeout,
            )
        return pool

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()


def _classify(response: H2Response, *, environment_mismatch: bool) -> SendResult:
    """An APNs error answer: ``reason`` (and ``timestamp``) from the JSON body, ``retry-after``."""
    reason: str | None = None
    timestamp: int | None = None
    try:
        body: Any = json.loads(response.body) if response.body else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        reason = body.get("reason") if isinstance(body.get("reason"), str) else None
        timestamp = body.get("timestamp") if isinstance(body.get("timestamp"), int) else None
    retry_after = parse_retry_after(response.headers.get(b"retry-after"))
    return classify_apns(response.status, reason, timestamp, retry_after, environment_mismatch=environment_mismatch)
