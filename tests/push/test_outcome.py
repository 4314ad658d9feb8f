"""The classification tables as pure functions (the provider tests run them through the clients)."""

from __future__ import annotations

import email.utils

import pytest

from push import Outcome, SendResult, classify_apns, classify_fcm
from push.outcome import BAD_REQUEST_TYPE, FCM_ERROR_TYPE, parse_retry_after


def test_parse_retry_after() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(b"7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == 30.0
    assert parse_retry_after(date, now=2_000_000) == 0.0


def test_apns_unknown_reasons_fall_back_on_the_status() -> None:
    assert classify_apns(500, "SomethingNew").outcome is Outcome.RETRY
    assert classify_apns(429, None).outcome is Outcome.RETRY
    assert classify_apns(400, "SomethingNew") == SendResult(Outcome.FAIL, "SomethingNew")
    assert classify_apns(410, "SomethingNew").outcome is Outcome.FAIL  # never prune on a guess
    assert classify_apns(200, None) == SendResult(Outcome.DELIVERED)


def test_apns_unregistered_timestamp_and_mismatch() -> None:
    result = classify_apns(410, "Unregistered", 1_700_000_000_500)
    assert (result.outcome, result.unregistered_at) == (Outcome.PRUNE, 1_700_000_000.5)
    result = classify_apns(400, "BadDeviceToken", environment_mismatch=True)
    assert result == SendResult(Outcome.FAIL, "BadDeviceToken (environment mismatch)")
    assert result.config_error
    assert classify_apns(400, "DeviceTokenNotForTopic").config_error
    assert not classify_apns(400, "BadCollapseId").config_error


def _error(status: int, rpc: str, message: str = "", *details: dict[str, object]) -> dict[str, object]:
    return {"error": {"code": status, "status": rpc, "message": message, "details": list(details)}}


@pytest.mark.parametrize(
    ("status", "body", "outcome", "reason"),
    [
        (404, None, Outcome.RETRY, "HTTP 404"),
        (404, _error(404, "NOT_FOUND", "Not found"), Outcome.RETRY, "NOT_FOUND"),  # no FcmError: never prune
        (
            400,
            _error(
                400,
                "INVALID_ARGUMENT",
                "Invalid registration",
                {"@type": BAD_REQUEST_TYPE, "fieldViolations": [{"field": "message.token"}]},
            ),
            Outcome.PRUNE,
            "INVALID_ARGUMENT",
        ),
        (
            400,
            _error(
                400,
                "INVALID_ARGUMENT",
                "Message is too big",
                {"@type": FCM_ERROR_TYPE, "errorCode": "INVALID_ARGUMENT"},
            ),
            Outcome.FAIL,
            "INVALID_ARGUMENT",
        ),
        (403, _error(403, "PERMISSION_DENIED", "denied"), Outcome.FAIL, "PERMISSION_DENIED"),
        (401, _error(401, "UNAUTHENTICATED", "bad token"), Outcome.FAIL, "UNAUTHENTICATED"),
        (502, None, Outcome.RETRY, "HTTP 502"),
        (
            401,
            _error(401, "UNAUTHENTICATED", "", {"@type": FCM_ERROR_TYPE, "errorCode": "APNS_AUTH_ERROR"}),
            Outcome.FAIL,
            "APNS_AUTH_ERROR",
        ),
    ],
)
def test_fcm_edges(status: int, body: object, outcome: Outcome, reason: str) -> None:
    assert classify_fcm(status, body, 3.0) == SendResult(outcome, reason, 3.0)
