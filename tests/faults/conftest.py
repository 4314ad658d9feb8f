"""Fault tests: real processes (web nodes, workers, redis-server, PostgreSQL) broken on purpose.

The fixtures come from the suites these tests extend: ``herald web`` subprocesses and a private
redis-server from tests/hub/test_multinode.py, fake APNs and FCM from tests/workers/conftest.py.
"""

from __future__ import annotations

from tests.campaigns.conftest import marketer
from tests.hub.test_multinode import private_redis, web_node
from tests.workers.conftest import auth_key, fake_apns, fake_fcm, push_env
from tests.workers.test_crash import spawn

__all__ = [
    "auth_key",
    "fake_apns",
    "fake_fcm",
    "marketer",
    "private_redis",
    "push_env",
    "spawn",
    "web_node",
]
