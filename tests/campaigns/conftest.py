"""Fixtures for campaigns: a settable clock.

The ``marketer`` (tests/support/campaigns.py), the fake APNs and FCM and a real arq worker
(``run_worker``) are shared fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.clock import CLOCK, Clock


@pytest.fixture
def clock() -> Iterator[Clock]:
    """The campaign clock; tests set it, and it is back to the real time afterwards."""
    yield CLOCK
    CLOCK.reset()
