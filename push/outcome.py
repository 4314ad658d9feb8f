"""What became of one send, and the provider answers behind it (the tables of PROTOCOLS.md).

`classify_apns` and `classify_fcm` are pure: status, reason or body, Retry-After in; `SendResult`
out. Providers call them; tests can call them directly.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    DELIVERED = "delivered"
    PRUNE = "pruned"  # the token is dead: mark the device invalid
    FAIL = "failed"  # payload or configuration error: retrying cannot help
    RETRY = "retrying"  # 429, 5xx, network: try again later (honour retry_after)


#: Failures that say Herald's configuration is wrong rather than the payload or the device.
CONFIG_REASONS = frozenset(
    [
        "not_configured",
        "DeviceTokenNotForTopic",
        "TopicDisallowed",
        "BadTopic",
        "MissingTopic",
        "BadCertificate",
        "BadCertificateEnvironment",
        "Forbidden",
        "InvalidProviderToken",
        "MissingProviderToken",
        "BadDeviceToken (environment mismatch)",
        "SENDER_ID_MISMATCH",
        "THIRD_PARTY_AUTH_ERROR",
        "APNS_AUTH_ERROR",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "auth_failed",
    ]
)


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    reason: str | None = None  # provider reason or error code, e.g. "Unregistered", "UNREGISTERED"
    retry_after: float | None = None  # seconds, from Retry-After when given
    unregistered_at: float | None = None  # epoch seconds, from APNs 410 Unregistered ``timestamp``

    @property
    def config_error(self) -> bool:
        """A failure an operator must fix (credentials, topic, project), not the sender."""
        return self.outcome is Outcome.FAIL and self.reason in CONFIG_REASONS


DELIVERED = SendResult(Outcome.DELIVERED)


def parse_retry_after(value: str | bytes | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# -- APNs

_APNS: dict[str, Outcome] = {
    "Unregistered": Outcome.PRUNE,  # 410; the worker prunes only if registered before `timestamp`
    "ExpiredToken": Outcome.PRUNE,  # 410
    "BadDeviceToken": Outcome.PRUNE,  # 400; FAIL when sent to the other environment (see below)
    "DeviceTokenNotForTopic": Outcome.FAIL,  # configuration: never prune the fleet for a wrong topic
    "TopicDisallowed": Outcome.FAIL,
    "TooManyRequests": Outcome.RETRY,  # 429
    "InternalServerError": Outcome.RETRY,  # 500
    "ServiceUnavailable": Outcome.RETRY,  # 503
    "Shutdown": Outcome.RETRY,  # 503
    "IdleTimeout": Outcome.RETRY,  # 400, the connection idled out: send again
    "ExpiredProviderToken": Outcome.RETRY,  # 403; the provider mints a new JWT
    "TooManyProviderTokenUpdates": Outcome.RETRY,  # 429; the provider stops minting for a while
    **dict.fromkeys(
        [
            "BadCollapseId",
            "BadExpirationDate",
            "BadMessageId",
            "BadPriority",
            "BadTopic",
            "DuplicateHeaders",
            "InvalidPushType",
            "MissingDeviceToken",
            "MissingTopic",
            "PayloadEmpty",
            "BadCertificate",
            "BadCertificateEnvironment",
            "Forbidden",
            "InvalidProviderToken",
            "MissingProviderToken",
            "BadPath",
            "MethodNotAllowed",
            "PayloadTooLarge",
        ],
        Outcome.FAIL,
    ),
}
ENVIRONMENT_MISMATCH = "BadDeviceToken (environment mismatch)"


def classify_apns(
    status: int,
    reason: str | None,
    timestamp_ms: int | None = None,
    retry_after: float | None = None,
    *,
    environment_mismatch: bool = False,
) -> SendResult:
    """An APNs answer as a `SendResult`. ``environment_mismatch``: the request went to the other
    environment than the device registered for, so ``BadDeviceToken`` blames Herald, not the token."""
    if status == 200:
        return DELIVERED
    outcome = _APNS.get(reason or "") or _by_status(status)
    if reason == "BadDeviceToken" and environment_mismatch:
        return SendResult(Outcome.FAIL, ENVIRONMENT_MISMATCH, retry_after)
    unregistered_at = timestamp_ms / 1000 if reason == "Unregistered" and timestamp_ms is not None else None
    return SendResult(outcome, reason or f"HTTP {status}", retry_after, unregistered_at)


# -- FCM

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
_FCM: dict[str, Outcome] = {
    "UNREGISTERED": Outcome.PRUNE,
    "SENDER_ID_MISMATCH": Outcome.FAIL,
    "THIRD_PARTY_AUTH_ERROR": Outcome.FAIL,
    "APNS_AUTH_ERROR": Outcome.FAIL,  # the older name of THIRD_PARTY_AUTH_ERROR
    "QUOTA_EXCEEDED": Outcome.RETRY,
    "INTERNAL": Outcome.RETRY,
    "UNAVAILABLE": Outcome.RETRY,
}


def classify_fcm(status: int, body: Any, retry_after: float | None = None) -> SendResult:
    """An FCM v1 answer as a `SendResult`; ``body`` is the parsed JSON, or None if it was not JSON."""
    if status == 200:
        return DELIVERED
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        # No Google error body (FCM has served bare HTML 404s): never prune on that.
        return SendResult(_by_status(status), f"HTTP {status}", retry_after)
    details = [d for d in error.get("details") or () if isinstance(d, Mapping)]
    code = next((str(d.get("errorCode")) for d in details if d.get("@type") == FCM_ERROR_TYPE), None)
    rpc_status = str(error.get("status") or "") or None
    if code == "INVALID_ARGUMENT" or (code is None and rpc_status == "INVALID_ARGUMENT"):
        return _invalid_argument(error, details, retry_after)
    if code in _FCM:
        return SendResult(_FCM[code], code, retry_after)
    return SendResult(_by_status(status), code or rpc_status or f"HTTP {status}", retry_after)


def _invalid_argument(
    error: Mapping[str, Any], details: list[Mapping[str, Any]], retry_after: float | None
) -> SendResult:
    """Prune only when the complaint is about the token; a payload complaint is a failure."""
    fields = [
        str(v.get("field", ""))
        for d in details
        if d.get("@type") == BAD_REQUEST_TYPE
        for v in d.get("fieldViolations") or ()
        if isinstance(v, Mapping)
    ]
    about_token = any(f in ("message.token", "token") for f in fields) or (
        not fields
        and any(d.get("@type") == FCM_ERROR_TYPE for d in details)
        and "registration token" in str(error.get("message", "")).lower()
    )
    if about_token:
        return SendResult(Outcome.PRUNE, "INVALID_ARGUMENT", retry_after)
    named = next((f for f in fields if f), None)
    return SendResult(Outcome.FAIL, f"INVALID_ARGUMENT ({named})" if named else "INVALID_ARGUMENT", retry_after)


def _by_status(status: int) -> Outcome:
    """The fallback for an unknown reason: 429, 5xx and 404 (FCM's bare HTML 404s) retry, other
    4xx fail. A status alone never proves a token dead, so it never prunes."""
    if status in (404, 429) or status >= 500 or status < 400:
        return Outcome.RETRY
    return Outcome.FAIL
