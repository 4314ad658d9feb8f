"""Where APNs listens: the production and sandbox hosts and their port.

(This module held the aioapns seam — a protocol subclass for the host, the shared JWT, Retry-After
and late answers — until push/apns.py moved to Herald's own HTTP/2 client.)
"""

from __future__ import annotations

PRODUCTION_HOST = "api.push.apple.com"
SANDBOX_HOST = "api.sandbox.push.apple.com"
APNS_PORT = 443
