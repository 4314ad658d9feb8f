"""PushMessage: validation of the REST notification object, and the payloads built from it."""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import pytest

from push import PushError, PushMessage
from push.payload import apns_payload, apns_payload_bytes, fcm_message

FULL: dict[str, Any] = {
    "title": "Alice",
    "body": "Lunch?",
    "data": {"room": "r1", "seq": "42"},
    "badge": 3,
    "sound": "default",
    "collapse_key": "room-r1",
    "priority": "normal",
    "ttl": 3600,
    "push_type": "alert",
}


def test_from_json_round_trips() -> None:
    message = PushMessage.from_json(FULL)
    assert message == PushMessage(
        title="Alice",
        body="Lunch?",
        data={"room": "r1", "seq": "42"},
        badge=3,
        sound="default",
        collapse_key="room-r1",
        priority="normal",
        ttl=3600,
        push_type="alert",
    )
    assert message.to_json() == FULL
    assert PushMessage.from_json(message.to_json()) == message


def test_defaults() -> None:
    message = PushMessage.from_json({"body": "hi"})
    assert (message.priority, message.push_type, message.data, message.ttl) == ("high", "alert", {}, None)
    assert PushMessage.from_json({"data": {"k": "v"}, "push_type": "background"}).push_type == "background"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": 5}, "notification.title"),
        ({"body": ["x"]}, "notification.body"),
        ({"data": {"n": 1}}, "notification.data.n"),
        ({"data": {"aps": "x"}}, "notification.data.aps"),
        ({"data": {"google.x": "x"}}, "notification.data.google.x"),
        ({"data": "k=v"}, "notification.data"),
        ({"badge": -1}, "notification.badge"),
        ({"badge": True}, "notification.badge"),
        ({"badge": "3"}, "notification.badge"),
        ({"sound": ""}, "notification.sound"),
        ({"collapse_key": "x" * 65}, "notification.collapse_key"),
        ({"priority": "urgent"}, "notification.priority"),
        ({"ttl": -5}, "notification.ttl"),
        ({"ttl": 1.5}, "notification.ttl"),
        ({"ttl": 29 * 24 * 3600}, "notification.ttl"),
        ({"push_type": "mdm"}, "notification.push_type"),
        ({"colour": "red"}, "notification.colour"),
    ],
)
def test_a_bad_field_is_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(PushError) as info:
        PushMessage.from_json({**FULL, **change})
    assert info.value.code == "invalid_payload"
    assert list(info.value.fields) == [field]
    assert str(info.value).startswith(field)


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(PushError) as info:
        PushMessage.from_json({"title": 1, "badge": -1, "priority": "x"})
    assert set(info.value.fields) == {"notification.title", "notification.badge", "notification.priority"}


def test_not_an_object() -> None:
    with pytest.raises(PushError) as info:
        PushMessage.from_json(["title"])
    assert (info.value.code, info.value.fields) == ("invalid_payload", {"notification": "not an object"})


def test_push_type_rules() -> None:
    with pytest.raises(PushError) as info:
        PushMessage.from_json({"title": "t", "data": {"k": "v"}, "push_type": "background"})
    assert list(info.value.fields) == ["notification.title"]
    with pytest.raises(PushError) as info:
        PushMessage.from_json({"data": {"k": "v"}})  # an alert that shows nothing
    assert list(info.value.fields) == ["notification.body"]


def test_too_large_counts_the_apns_payload() -> None:
    with pytest.raises(PushError) as info:
        PushMessage.from_json({"body": "x" * 4090})
    assert info.value.code == "too_large" and "4096" in info.value.fields["notification"]
    voip = PushMessage.from_json({"body": "x" * 4500, "push_type": "voip"})  # VoIP allows 5120 bytes
    assert len(apns_payload_bytes(voip)) > 4096
    with pytest.raises(PushError, match="5120"):
        PushMessage.from_json({"body": "x" * 5100, "push_type": "voip"})
    # multi-byte characters count as bytes
    with pytest.raises(PushError):
        PushMessage.from_json({"body": "é" * 2100})


def test_apns_payload() -> None:
    assert apns_payload(PushMessage.from_json(FULL)) == {
        "room": "r1",
        "seq": "42",
        "aps": {"alert": {"title": "Alice", "body": "Lunch?"}, "badge": 3, "sound": "default"},
    }
    background = PushMessage(data={"k": "v"}, push_type="background")
    assert apns_payload(background) == {"k": "v", "aps": {"content-available": 1}}


def test_fcm_message_is_what_firebase_admin_would_encode() -> None:
    """The lean builder produces firebase-admin 7.7's encoding of the same content."""
    from firebase_admin import messaging

    message = PushMessage.from_json(FULL)
    now = time.time()
    ours = fcm_message("tok-1", message, now)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Message.token is deprecated in 7.7
        theirs = messaging._MessagingService.encode_message(
            messaging.Message(
                token="tok-1",
                notification=messaging.Notification(title="Alice", body="Lunch?"),
                data={"room": "r1", "seq": "42"},
                android=messaging.AndroidConfig(
                    collapse_key="room-r1",
                    priority="normal",
                    ttl=3600,
                    notification=messaging.AndroidNotification(tag="room-r1", sound="default", notification_count=3),
                ),
                apns=messaging.APNSConfig(
                    headers={
                        "apns-priority": "5",
                        "apns-push-type": "alert",
                        "apns-collapse-id": "room-r1",
                        "apns-expiration": str(int(now) + 3600),
                    },
                    payload=messaging.APNSPayload(aps=messaging.Aps(badge=3, sound="default")),
                ),
            )
        )
    assert json.loads(json.dumps(ours)) == json.loads(json.dumps(theirs))


def test_fcm_background_is_data_only() -> None:
    message = fcm_message("tok", PushMessage(data={"k": "v"}, push_type="background"))
    assert "notification" not in message and "notification" not in message["android"]
    assert message["apns"]["headers"]["apns-push-type"] == "background"
    assert message["apns"]["headers"]["apns-priority"] == "5"
    assert message["apns"]["payload"] == {"aps": {"content-available": 1}}
