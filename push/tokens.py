"""What a well-formed device token looks like, per provider."""

from __future__ import annotations

import re

APNS_TOKEN = re.compile(r"^[0-9a-fA-F]{64,200}$")
FCM_TOKEN = re.compile(r"^[A-Za-z0-9_\-:.]{32,4096}$")


def token_problem(provider: str, token: str) -> str | None:
    """Why ``token`` cannot be a ``provider`` token, or None when it can."""
    if provider == "apns" and not APNS_TOKEN.match(token):
        return "an APNs token is 64 or more hexadecimal characters"
    if provider == "fcm" and not FCM_TOKEN.match(token):
        return "an FCM registration token is 32 to 4096 letters, digits or _ - : ."
    return None
