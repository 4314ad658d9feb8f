"""The console in a real browser: Playwright (tests/browser, npm) drives Debian's Chromium.

``tests/browser/console.mjs`` signs in with an admin key, builds a segment and waits for the live
count, composes a campaign with a translation and reads the personalised preview, launches it
to the outbox provider (a real arq worker sends it) and watches the stats until every device is
delivered, saving a screenshot of each page.  Without Chromium, Node.js or playwright-core this
test fails, never skips: ``make setup`` installs the npm side, ``apt-get install chromium`` the
browser (``.ci/run`` does under CI).  ``HERALD_SCREENSHOTS=docs/console`` keeps the screenshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from config import Settings
from store import keys
from tests.support.js import run_node_script
from tests.support.rest import Rest
from workers.main import create_worker

REPO_ROOT = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO_ROOT / "tests" / "browser"
SCRIPT = BROWSER_DIR / "console.mjs"
RUN_TIMEOUT = 90.0
PAGES = ("sign-in", "segment", "compose", "campaign-draft", "campaign", "campaigns", "segments")


def chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(
            "Chromium is not installed: `apt-get install -y chromium` (Debian), or set CHROMIUM to its path; "
            "under CI .ci/run installs it",
            pytrace=False,
        )
    return path


def node() -> str:
    found = shutil.which("node")
    how = "run `make setup` (npm ci in tests/browser; Node.js 20 must be installed)"
    if found is None:
        pytest.fail(f"`node` is not on PATH: {how}", pytrace=False)
    if not (BROWSER_DIR / "node_modules" / "playwright-core" / "package.json").is_file():
        pytest.fail(f"playwright-core is not installed in {BROWSER_DIR / 'node_modules'}: {how}", pytrace=False)
    return found


@pytest.fixture
async def outbox_worker(env: dict[str, str]) -> AsyncIterator[None]:
    """A real arq worker sending through the outbox provider."""
    settings = Settings.from_env(
        {**env, "HERALD_PUSH_PROVIDER": "outbox", "HERALD_SWEEP_INTERVAL": "1", "HERALD_JOB_TIMEOUT": "10"}
    )
    worker = create_worker(settings, handle_signals=False)
    task = asyncio.create_task(worker.async_run())
    yield
    await worker.close()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


# user -> (profile, device platforms)
USERS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "u1": ({"attributes": {"plan": "pro", "name": "Zoé"}, "locale": "fr-CA"}, ["ios", "android"]),
    "u2": ({"attributes": {"plan": "pro", "name": "Ann"}, "locale": "en"}, ["ios"]),
    "u3": ({"attributes": {"plan": "pro"}}, ["android"]),
    "u4": ({"attributes": {"plan": "pro", "name": "Out"}, "marketing_opt_in": False}, ["ios"]),
    "u5": ({"attributes": {"plan": "pro", "name": "Nodevice"}}, []),
    "u6": ({"attributes": {"plan": "free", "name": "Free"}}, ["ios"]),
    "u7": ({"attributes": {"plan": "free"}}, ["android"]),
}


async def seed(rest: Rest) -> None:
    n = 0
    for user_id, (profile, platforms) in USERS.items():
        status, answer = await rest.request("PUT", f"/users/{user_id}", profile)
        assert status in (200, 201), answer
        for platform in platforms:
            n += 1
            provider = "apns" if platform == "ios" else "fcm"
            device = {"token": f"{n:064x}", "provider": provider, "platform": platform, "user_id": user_id}
            status, answer = await rest.request("POST", "/devices", {**device, "app_id": "chat.herald.app"})
            assert status in (200, 201), answer


async def other_campaigns(rest: Rest) -> None:
    """A draft, a scheduled and a cancelled campaign, so the list shows more than ours."""
    status, segment = await rest.request("POST", "/segments", {"name": "Everyone", "filter": {"all": []}})
    assert status == 201, segment
    later = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()
    for name, then in (("Weekly digest", "schedule"), ("Onboarding tips", None), ("Flash sale", "cancel")):
        body = {"name": name, "segment_id": segment["id"], "content": {"default": {"title": name}}}
        status, campaign = await rest.request("POST", "/campaigns", body)
        assert status == 201, campaign
        if then == "schedule":
            status, answer = await rest.request(
                "POST", f"/campaigns/{campaign['id']}/schedule", {"schedule": {"kind": "at", "at": later}}
            )
            assert status == 200, answer
        elif then == "cancel":
            status, answer = await rest.request("POST", f"/campaigns/{campaign['id']}/cancel", {})
            assert status == 200, answer


async def run_script(args: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "CHROMIUM": chromium()}
    return await run_node_script(node(), SCRIPT, args, cwd=BROWSER_DIR, timeout=RUN_TIMEOUT, env=env)


async def test_sign_in_build_a_segment_launch_and_watch_it_complete(
    hub_url: str, api_key, outbox_worker: None, db: asyncpg.Connection, redis_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    chromium()
    admin = await api_key("admin", name="marketing")
    await seed(Rest(hub_url, admin))
    await other_campaigns(Rest(hub_url, admin))
    shots = REPO_ROOT / os.environ["HERALD_SCREENSHOTS"] if os.environ.get("HERALD_SCREENSHOTS") else tmp_path / "shots"

    report = await run_script(
        {
            "url": hub_url,
            "key": admin,
            "screenshots": str(shots),
            "segment_name": "Pro users with the app",
            "conditions": [
                {"field": "attributes.", "key": "plan", "op": "eq", "value": "pro"},
                {"field": "device.platform", "op": "in", "value": "ios, android"},
            ],
            "campaign": {
                "name": "Spring sale",
                "title": "Hi {{name|there}}",
                "body": "Pro plans are 20% off this week",
                "locales": [["fr", "Salut {{name|toi}}", "-20 % sur Pro cette semaine"]],
            },
            # u1-u4 are pro with a device (u4 opted out); u5 has none; u1 has two devices.
            "expect": {"users": 4, "delivered": 4, "preview_title": "Salut Zoé"},
        }
    )

    assert report["redirected_to_sign_in"] is True
    assert report["bad_key_error"] == "That key is unknown or revoked."
    session = next(c for c in report["cookies"] if c["name"] == "herald_console")
    assert session == {"name": "herald_console", "httpOnly": True, "sameSite": "Strict", "path": "/console"}
    assert report["cookie_visible_to_script"] is False
    assert report["live_count"] == {"users": "4", "devices": "5", "opted_out": "1", "sample": ["u1", "u2", "u3", "u4"]}
    assert report["built_filter"] == {
        "all": [
            {"field": "attributes.plan", "op": "eq", "value": "pro"},
            {"field": "device.platform", "op": "in", "value": ["ios", "android"]},
        ]
    }
    assert report["preview"]["title"] == "Salut Zoé" and "fr variant" in report["preview"]["meta"]
    assert report["draft_preview"] == "Salut Zoé"
    assert report["badge"] == "completed" and report["list_status"] == "completed"
    stats = report["stats"]
    assert (stats["targeted"], stats["sent"], stats["skipped"], stats["delivered"]) == ("4", "3", "1", "4")
    assert (stats["failed"], stats["pending"]) == ("0", "0")
    assert report["skip_reasons"] == ["opted out: 1"]
    assert report["chart_lines"] >= 3 and report["cancel_button_gone"] is True
    assert report["after_sign_out"] == "/console/sign-in"
    assert report["page_errors"] == []
    assert report["steps"] == list(PAGES)
    for name in PAGES:
        assert (shots / f"{name}.png").stat().st_size > 10_000, name

    # What the browser did is what the database and the outbox hold.
    segment = await db.fetchrow("SELECT name, filter FROM segments WHERE id = $1", report["segment_id"])
    assert segment["name"] == "Pro users with the app" and segment["filter"] == report["built_filter"]
    campaign = await db.fetchrow("SELECT * FROM campaigns WHERE id = $1", report["campaign_id"])
    assert campaign["status"] == "completed" and campaign["segment_id"] is not None
    assert campaign["content"]["locales"]["fr"]["title"] == "Salut {{name|toi}}"
    sends = {r["user_id"]: (r["status"], r["reason"]) for r in await db.fetch("SELECT * FROM campaign_sends")}
    assert sends == {
        "u1": ("sent", None),
        "u2": ("sent", None),
        "u3": ("sent", None),
        "u4": ("skipped", "opted_out"),
    }
    delivered = await db.fetchval("SELECT count(*) FROM deliveries WHERE status = 'delivered'")
    assert delivered == 4
    redis = aioredis.Redis.from_url(redis_url)
    try:
        outbox = [json.loads(e) for e in await redis.lrange(keys.OUTBOX, 0, -1)]
    finally:
        await redis.aclose()
    assert len(outbox) == 4, outbox
    assert "Salut Zoé" in json.dumps(outbox, ensure_ascii=False)
