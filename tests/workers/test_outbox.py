"""The outbox provider: what would have been sent is recorded and shown at the dev endpoint."""

from __future__ import annotations

import logging

import pytest

from tests.support.push import IPHONE, notify, register, wait_completed
from tests.support.rest import Rest


async def test_outbox_records_pushes_for_the_dev_endpoint(  # type: ignore[no-untyped-def]
    start_node, api_key, run_worker, db, caplog: pytest.LogCaptureFixture
) -> None:
    url = await start_node(HERALD_PUSH_PROVIDER="outbox")
    api = {"devices": Rest(url, await api_key("devices")), "notify": Rest(url, await api_key("notify"))}
    admin = Rest(url, await api_key("admin"))
    await register(api, "alice", IPHONE, "apns")
    await run_worker(HERALD_PUSH_PROVIDER="outbox")
    with caplog.at_level(logging.INFO, logger="workers.main"):
        notification_id = await notify(api, {"user_ids": ["alice"]}, title="Your order shipped")
        assert await wait_completed(db, notification_id) == {"delivered": 1}
    status, body = await admin.request("GET", "/dev/outbox")
    assert status == 200
    [push] = body["pushes"]
    assert push["token"] == IPHONE and push["provider"] == "apns"
    assert push["message"]["title"] == "Your order shipped"
    [line] = [r for r in caplog.records if r.getMessage() == "outbox push"]
    assert line.token == "a1a1a1…a1a1"  # type: ignore[attr-defined]  # shortened in the log
