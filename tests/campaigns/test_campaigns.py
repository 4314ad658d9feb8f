"""Campaigns end to end: REST → campaign_run job (real arq worker) → notify → real APNs client →
fake APNs, whose request log says who got what.  The campaign clock is set by the tests."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from config.clock import Clock
from tests.fakes.apns import FakeAPNs
from tests.support.campaigns import Marketer, wait_status
from tests.support.push import apns_token
from tests.support.workers import Runner

EVERYONE: dict[str, Any] = {"all": []}


def titles(fake: FakeAPNs) -> dict[str, str]:
    return {r.token: r.payload["aps"]["alert"]["title"] for r in fake.requests}


async def wait_requests(fake: FakeAPNs, n: int, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while len(fake.requests) < n:
            await asyncio.sleep(0.05)


async def test_content_by_locale_with_personalisation_and_opt_out(
    marketer: Marketer, run_worker: Runner, db: asyncpg.Connection, fake_apns: FakeAPNs
) -> None:
    await marketer.user("u1", locale="fr-CA", attributes={"name": "Zoé", "plan": "pro"})
    await marketer.user("u2", locale="en", attributes={"plan": "free"})
    await marketer.user("u3", attributes={"name": "Out"}, marketing_opt_in=False)
    await marketer.user("u4", attributes={"name": "Nobody"})  # no device
    await marketer.user("u5")
    for n, user in enumerate(("u1", "u2", "u3", "u5"), 1):
        await marketer.device(user, apns_token(n), locale="fr-FR" if user == "u5" else None)
    content = {
        "default": {"title": "Hi {{name|friend}}", "body": "Your plan: {{ plan }}", "data": {"plan": "{{plan|none}}"}},
        "locales": {"fr": {"title": "Salut {{name|toi}}", "body": "Offre {{plan}}"}},
    }
    campaign = await marketer.campaign(filter=EVERYONE, content=content)
    await run_worker()
    await marketer.schedule(campaign["id"])
    await wait_status(db, campaign["id"], "completed")
    assert titles(fake_apns) == {apns_token(1): "Salut Zoé", apns_token(2): "Hi friend", apns_token(4): "Salut toi"}
    by_token = {r.token: r.payload for r in fake_apns.requests}
    assert by_token[apns_token(2)]["aps"]["alert"]["body"] == "Your plan: free"
    assert by_token[apns_token(2)]["plan"] == "free"
    assert by_token[apns_token(1)]["aps"]["alert"]["body"] == "Offre pro"
    stats = await marketer.stats(campaign["id"])
    assert stats["status"] == "completed" and stats["targeted"] == 5
    assert (stats["sent"], stats["skipped"], stats["delivered"], stats["failed"], stats["pending"]) == (3, 2, 3, 0, 0)
    assert stats["skipped_reasons"] == {"opted_out": 1, "no_devices": 1}
    assert stats["progress"] and stats["progress"][-1]["delivered"] == 3
    assert await db.fetchval("SELECT count(DISTINCT campaign_id) FROM notifications") == 1


async def test_local_time_across_timezones(
    marketer: Marketer, run_worker: Runner, db: asyncpg.Connection, fake_apns: FakeAPNs, clock: Clock
) -> None:
    clock.set(datetime(2026, 3, 1, 0, 0, tzinfo=UTC))
    zones = {"tokyo": "Asia/Tokyo", "london": "Europe/London", "newyork": "America/New_York"}
    zones["auckland"] = "Pacific/Auckland"  # 09:00 there was 2026-02-28T20:00Z: already passed
    for n, (user, zone) in enumerate(zones.items(), 1):
        await marketer.user(user, timezone=zone)
        await marketer.device(user, apns_token(n))
    await marketer.user("nozone")  # falls back to the schedule's timezone
    await marketer.device("nozone", apns_token(9), timezone="America/Sao_Paulo")  # ... after the device's (-03:00)
    campaign = await marketer.campaign(filter=EVERYONE)
    await run_worker()
    scheduled = await marketer.schedule(campaign["id"], {"kind": "local", "local_time": "2026-03-01T09:00:00"})
    assert scheduled["scheduled_at"].startswith("2026-03-01T00:00:0")
    await wait_requests(fake_apns, 1)
    await asyncio.sleep(1.5)
    assert [r.token for r in fake_apns.requests] == [apns_token(1)]  # Tokyo: 09:00 JST is 00:00Z
    clock.set(datetime(2026, 3, 1, 9, 0, 1, tzinfo=UTC))
    await wait_requests(fake_apns, 2)
    assert fake_apns.requests[1].token == apns_token(2)  # London
    clock.set(datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC))
    await wait_requests(fake_apns, 3)
    assert fake_apns.requests[2].token == apns_token(9)  # São Paulo, from the device
    await asyncio.sleep(1.5)
    assert await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign["id"]) == "running"
    clock.set(datetime(2026, 3, 1, 14, 0, 1, tzinfo=UTC))
    await wait_status(db, campaign["id"], "completed")
    assert [r.token for r in fake_apns.requests] == [apns_token(n) for n in (1, 2, 9, 3)]
    stats = await marketer.stats(campaign["id"])
    assert (stats["sent"], stats["skipped_reasons"]) == (4, {"local_time_passed": 1})


async def test_quiet_hours_defer_or_skip_in_the_users_timezone(
    marketer: Marketer, run_worker: Runner, db: asyncpg.Connection, fake_apns: FakeAPNs, clock: Clock
) -> None:
    clock.set(datetime(2026, 3, 1, 22, 30, tzinfo=UTC))
    # 23:30 in Paris (quiet until 08:00 = 07:00Z), 07:30 in Tokyo (quiet until 08:00 = 23:00Z), 17:30 in New York
    for n, (user, zone) in enumerate(
        (("paris", "Europe/Paris"), ("tokyo", "Asia/Tokyo"), ("ny", "America/New_York")), 1
    ):
        await marketer.user(user, timezone=zone)
        await marketer.device(user, apns_token(n))
    quiet = {"start": "22:00", "end": "08:00"}
    skipping = await marketer.campaign(filter=EVERYONE, quiet_hours={**quiet, "action": "skip"})
    deferring = await marketer.campaign(filter=EVERYONE, quiet_hours=quiet)
    await run_worker()
    await marketer.schedule(skipping["id"])
    await wait_status(db, skipping["id"], "completed")
    stats = await marketer.stats(skipping["id"])
    assert (stats["sent"], stats["skipped_reasons"]) == (1, {"quiet_hours": 2})
    await marketer.schedule(deferring["id"])
    await wait_requests(fake_apns, 2)
    await asyncio.sleep(1.5)
    assert [r.token for r in fake_apns.requests] == [apns_token(3), apns_token(3)]
    clock.set(datetime(2026, 3, 1, 23, 0, 1, tzinfo=UTC))
    await wait_requests(fake_apns, 3)
    assert fake_apns.requests[2].token == apns_token(2)
    clock.set(datetime(2026, 3, 2, 7, 0, 1, tzinfo=UTC))
    await wait_status(db, deferring["id"], "completed")
    assert fake_apns.requests[3].token == apns_token(1)
    assert len(fake_apns.requests) == 4


async def test_throttle_spreads_sends(
    marketer: Marketer, run_worker: Runner, db: asyncpg.Connection, fake_apns: FakeAPNs
) -> None:
    for n in range(6):
        await marketer.user(f"t{n}")
        await marketer.device(f"t{n}", apns_token(n))
    campaign = await marketer.campaign(filter=EVERYONE, throttle_per_minute=120)  # 2 a second
    await run_worker()
    await marketer.schedule(campaign["id"])
    await wait_status(db, campaign["id"], "completed")
    times = sorted(r.time for r in fake_apns.requests)
    assert len(times) == 6
    assert times[-1] - times[0] >= 1.8  # 6 users at 2 per second: three batches a second apart
    assert times[1] - times[0] < 0.5  # a batch goes out at once


async def test_frequency_cap_counts_every_campaign_in_its_window(
    marketer: Marketer, run_worker: Runner, db: asyncpg.Connection, fake_apns: FakeAPNs, clock: Clock
) -> None:
    clock.set(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    for n in range(3):
        await marketer.user(f"c{n}")
        await marketer.device(f"c{n}", apns_token(n))
    await run_worker()
    cap = {"max": 1, "window_hours": 24}
    first = await marketer.campaign(filter={"any": [{"field": "id", "op": "in", "value": ["c0", "c1"]}]})
    await marketer.schedule(first["id"])
    await wait_status(db, first["id"], "completed")
    capped = await marketer.campaign(filter=EVERYONE, frequency_cap=cap)
    await marketer.schedule(capped["id"])
    await wait_status(db, capped["id"], "completed")
    stats = await marketer.stats(capped["id"])
    assert (stats["sent"], stats["skipped_reasons"]) == (1, {"frequency_cap": 2})
    clock.set(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))  # a day later the window has passed
    later = await marketer.campaign(filter=EVERYONE, frequency_cap=cap)
    await marketer.schedule(later["id"])
    await wait_status(db, later["id"], "completed")
    assert (await marketer.stats(later["id"]))["sent"] == 3
    assert Counter(r.token for r in fake_apns.requests) == {apns_token(0): 2, apns_token(1): 2, apns_token(2): 2}


async def test_cancel_stops_within_seconds(
    marketer: Marketer, run_worker: Runner, db: asyncpg.Connection, fake_apns: FakeAPNs
) -> None:
    for n in range(20):
        await marketer.user(f"k{n:02}")
        await marketer.device(f"k{n:02}", apns_token(n))
    campaign = await marketer.campaign(filter=EVERYONE, throttle_per_minute=60)  # 1 a second
    await run_worker()
    await marketer.schedule(campaign["id"])
    await wait_requests(fake_apns, 2)
    cancelled = await marketer.call("POST", f"/campaigns/{campaign['id']}/cancel", expect=200)
    assert cancelled["status"] == "cancelled"
    at_cancel = len(fake_apns.requests)
    await asyncio.sleep(2.5)
    assert len(fake_apns.requests) <= at_cancel + 1  # at most the batch already committed
    stats = await marketer.stats(campaign["id"])
    assert stats["status"] == "cancelled" and stats["sent"] + stats["skipped"] < 20
    await marketer.call("POST", f"/campaigns/{campaign['id']}/cancel", expect=409)
    await marketer.call("PATCH", f"/campaigns/{campaign['id']}", {"name": "again"}, expect=409)


async def test_scheduled_at_a_time_starts_when_due(
    marketer: Marketer, run_worker: Runner, db: asyncpg.Connection, fake_apns: FakeAPNs, clock: Clock
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    clock.set(now)
    await marketer.user("s1")
    await marketer.device("s1", apns_token(1))
    campaign = await marketer.campaign(filter=EVERYONE)
    await run_worker()
    at = now + timedelta(hours=2)
    scheduled = await marketer.schedule(campaign["id"], {"kind": "at", "at": at.isoformat()})
    assert scheduled["status"] == "scheduled"
    await asyncio.sleep(1.5)
    assert fake_apns.requests == []
    clock.set(at + timedelta(seconds=1))
    await wait_status(db, campaign["id"], "completed")
    assert len(fake_apns.requests) == 1
