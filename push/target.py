"""Where one notification goes: one device of one app, with the delivery's stable id."""

from __future__ import annotations

from dataclasses import dataclass

PROVIDERS = ("apns", "fcm")
ENVIRONMENTS = ("sandbox", "production")


@dataclass(frozen=True, slots=True)
class Target:
    """One device. ``delivery_id`` is stable per (notification, device): it is the ``apns-id`` of
    every attempt, so a resend after a retry or a crash is recognisably the same notification."""

    token: str
    provider: str  # "apns" | "fcm"
    environment: str  # "sandbox" | "production"
    app_id: str | None  # APNs topic / Android package: picks the credentials
    delivery_id: str  # a UUID string
