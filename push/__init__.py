"""Push: providers (APNs, FCM, outbox), payload building, outcome classification; no database.

Imports only `config`. The worker joins outcomes to the store::

    pushers = Pushers.from_settings(settings, outbox_sink=...)
    result = await pushers.send(Target(token, "apns", "production", app_id, delivery_id), message)
    result.outcome  # Outcome.DELIVERED | PRUNE | FAIL | RETRY, with reason / retry_after / unregistered_at
"""

from push.errors import PushError
from push.message import PushMessage
from push.outcome import Outcome, SendResult, classify_apns, classify_fcm
from push.providers import Provider
from push.pushers import AppProviders, Pushers
from push.target import Target

__all__ = [
    "AppProviders",
    "Outcome",
    "Provider",
    "PushError",
    "PushMessage",
    "Pushers",
    "SendResult",
    "Target",
    "classify_apns",
    "classify_fcm",
]
