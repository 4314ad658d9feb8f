"""Fixtures for the worker tests: REST clients with the keys a backend uses.

The fake APNs and FCM, ``push_env`` and ``run_worker`` are shared fixtures (tests/support/push.py,
tests/support/workers.py).
"""

from __future__ import annotations

import pytest

from tests.support.rest import Rest


@pytest.fixture
async def api(hub_url: str, api_key) -> dict[str, Rest]:  # type: ignore[no-untyped-def]
    """REST clients holding a devices, a notify and a publish key."""
    return {
        "devices": Rest(hub_url, await api_key("devices")),
        "notify": Rest(hub_url, await api_key("notify")),
        "publish": Rest(hub_url, await api_key("publish")),
    }
