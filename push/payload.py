"""Provider payloads built from a `PushMessage`: the APNs JSON body and the FCM v1 ``message``.

The FCM message has the shape firebase-admin 7.7's encoder produces for the same content
(``messaging._MessagingService.encode_message``; a test compares the two), built directly: the
library's model costs ~32 µs per message against ~7 µs here, and warns that ``Message.token`` is
deprecated on every construction.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from push.message import PushMessage

APNS_LIMIT = 4096
APNS_VOIP_LIMIT = 5120


def apns_payload(message: PushMessage) -> dict[str, Any]:
    """The APNs JSON body: ``aps`` plus the data keys at the top level."""
    aps: dict[str, Any] = {}
    if message.has_alert:
        alert: dict[str, str] = {}
        if message.title is not None:
            alert["title"] = message.title
        if message.body is not None:
            alert["body"] = message.body
        aps["alert"] = alert
    if message.badge is not None:
        aps["badge"] = message.badge
    if message.sound is not None:
        aps["sound"] = message.sound
    if message.push_type == "background":
        aps["content-available"] = 1
    return {**message.data, "aps": aps}


def apns_encode(payload: dict[str, Any]) -> bytes:
    """The body exactly as aioapns 4.0 encodes it (``json.dumps(..., ensure_ascii=False)``): these
    bytes are what APNs counts against its limit."""
    return json.dumps(payload, ensure_ascii=False).encode()


def apns_payload_bytes(message: PushMessage) -> bytes:
    return apns_encode(apns_payload(message))


def apns_payload_limit(message: PushMessage) -> int:
    return APNS_VOIP_LIMIT if message.push_type == "voip" else APNS_LIMIT


def apns_priority(message: PushMessage) -> int:
    """10 sends now, 5 lets the device save power; background pushes must use 5."""
    return 10 if message.priority == "high" and message.push_type != "background" else 5


def apns_topic(topic: str, message: PushMessage) -> str:
    """VoIP pushes go to the ``<bundle id>.voip`` topic."""
    return f"{topic}.voip" if message.push_type == "voip" else topic


def fcm_message(token: str, message: PushMessage, now: float | None = None) -> dict[str, Any]:
    """The FCM HTTP v1 ``message`` object for one registration token."""
    result: dict[str, Any] = {"token": token}
    if message.has_alert:
        notification: dict[str, str] = {}
        if message.title is not None:
            notification["title"] = message.title
        if message.body is not None:
            notification["body"] = message.body
        result["notification"] = notification
    if message.data:
        result["data"] = dict(message.data)
    result["android"] = _android(message)
    result["apns"] = _apns(message, time.time() if now is None else now)
    return result


def _android(message: PushMessage) -> dict[str, Any]:
    android: dict[str, Any] = {"priority": message.priority}
    if message.collapse_key is not None:
        android["collapse_key"] = message.collapse_key
    if message.ttl is not None:
        android["ttl"] = f"{message.ttl}s"
    if message.has_alert:
        shown: dict[str, Any] = {}
        if message.collapse_key is not None:
            shown["tag"] = message.collapse_key  # replaces a shown notification with the same tag
        if message.sound is not None:
            shown["sound"] = message.sound
        if message.badge is not None:
            shown["notification_count"] = message.badge
        if shown:
            android["notification"] = shown
    return android


def _apns(message: PushMessage, now: float) -> dict[str, Any]:
    headers = {
        "apns-priority": str(apns_priority(message)),
        "apns-push-type": "background" if message.push_type == "background" else "alert",
    }
    if message.collapse_key is not None:
        headers["apns-collapse-id"] = message.collapse_key
    if message.ttl is not None:
        headers["apns-expiration"] = str(int(now) + message.ttl)
    apns: dict[str, Any] = {"headers": headers}
    aps: dict[str, Any] = {}
    if message.badge is not None:
        aps["badge"] = message.badge
    if message.sound is not None:
        aps["sound"] = message.sound
    if message.push_type == "background":
        aps["content-available"] = 1
    if aps:
        apns["payload"] = {"aps": aps}
    return apns
