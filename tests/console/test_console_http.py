"""The console over HTTP: sign-in with admin keys only, cookie attributes, pages behind the session,
CSRF on every state-changing request, sign-out ending the session, escaping of stored text."""

from __future__ import annotations

import json
from http.cookies import SimpleCookie

import asyncpg
import redis.asyncio as aioredis

from tests.support.console import SIGN_IN, Browser, field

PAGES = ["/console/campaigns", "/console/campaigns/new", "/console/segments", "/console/segments/new"]


def set_cookies(resp) -> SimpleCookie:  # type: ignore[no-untyped-def]
    cookies: SimpleCookie = SimpleCookie()
    for header in resp.headers.getall("Set-Cookie", []):
        cookies.load(header)
    return cookies


async def test_a_bad_key_shows_an_error_and_sets_no_session(browser: Browser) -> None:
    resp, page = await browser.sign_in("hk_not-a-real-key")
    assert resp.status == 401
    assert "That key is unknown or revoked." in page
    assert "herald_console" not in set_cookies(resp)
    resp, _ = await browser.get("/console/campaigns")
    assert resp.status == 303 and resp.headers["Location"] == SIGN_IN


async def test_a_key_without_the_admin_scope_is_refused(browser: Browser, api_key) -> None:  # type: ignore[no-untyped-def]
    resp, page = await browser.sign_in(await api_key("campaigns", "publish"))
    assert resp.status == 403
    assert "does not have the admin scope" in page
    assert "herald_console" not in set_cookies(resp)


async def test_the_sign_in_form_needs_its_own_token(browser: Browser, admin_key: str) -> None:
    await browser.get(SIGN_IN)
    resp, page = await browser.post(SIGN_IN, data={"login_token": "forged", "key": admin_key})
    assert resp.status == 403 and "expired" in page
    resp, _ = await browser.get("/console/campaigns")
    assert resp.status == 303


async def test_an_admin_key_signs_in_with_a_strict_http_only_cookie(browser: Browser, admin_key: str) -> None:
    resp, _ = await browser.sign_in(admin_key)
    assert resp.status == 303 and resp.headers["Location"] == "/console/campaigns"
    morsel = set_cookies(resp)["herald_console"]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/console"
    assert not morsel["secure"]  # plain http here; over https see the next test
    assert len(morsel.value) >= 40
    for path in PAGES:
        resp, page = await browser.get(path)
        assert resp.status == 200, (path, page)
        assert "Content-Security-Policy" in resp.headers and resp.headers["Cache-Control"] == "no-store"
        assert "console admin" in page  # the key's name in the header


async def test_the_cookie_is_secure_behind_https(browser: Browser, admin_key: str) -> None:
    resp, _ = await browser.sign_in(admin_key, headers={"X-Forwarded-Proto": "https"})
    assert resp.status == 303
    assert set_cookies(resp)["herald_console"]["secure"] is True


async def test_pages_and_endpoints_need_a_session(browser: Browser) -> None:
    for path in [*PAGES, "/console", "/console/"]:
        resp, _ = await browser.get(path)
        assert resp.status == 303, path
        assert resp.headers["Location"] in (SIGN_IN, "/console/campaigns"), path
    resp, body = await browser.post("/console/api/segments/preview", json={"filter": {"all": []}})
    assert resp.status == 401 and json.loads(body)["error"]["code"] == "auth_required"
    resp, _ = await browser.post("/console/segments", data={"name": "x", "filter": "{}"})
    assert resp.status == 303 and resp.headers["Location"] == SIGN_IN
    resp, _ = await browser.get("/console/static/console.js")
    assert resp.status == 200  # the assets are public


async def test_state_changes_need_the_csrf_token(browser: Browser, admin_key: str, db: asyncpg.Connection) -> None:
    await browser.sign_in(admin_key)
    token = await browser.csrf()
    form = {"name": "Everyone", "filter": json.dumps({"all": []})}
    for given in ({}, {"csrf_token": "wrong"}, {"csrf_token": token[:-1]}):
        resp, _ = await browser.post("/console/segments", data={**form, **given})
        assert resp.status == 403, given
    preview = {"filter": {"all": []}}
    for headers in ({}, {"X-CSRF-Token": "wrong"}):
        resp, body = await browser.post("/console/api/segments/preview", json=preview, headers=headers)
        assert resp.status == 403 and json.loads(body)["error"]["code"] == "forbidden"
    resp, _ = await browser.post("/console/sign-out", data={})
    assert resp.status == 403
    assert await db.fetchval("SELECT count(*) FROM segments") == 0

    resp, _ = await browser.post("/console/segments", data={**form, "csrf_token": token})
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/segments/")
    resp, body = await browser.post("/console/api/segments/preview", json=preview, headers={"X-CSRF-Token": token})
    assert resp.status == 200 and json.loads(body) == {"users": 0, "devices": 0, "opted_out": 0, "sample": []}
    assert await db.fetchval("SELECT name FROM segments") == "Everyone"


async def test_sign_out_ends_the_session(browser: Browser, admin_key: str, redis_url: str) -> None:
    resp, _ = await browser.sign_in(admin_key)
    cookie = set_cookies(resp)["herald_console"].value
    token = await browser.csrf()
    redis = aioredis.Redis.from_url(redis_url)
    try:
        assert len(await redis.keys("herald:console:session:*")) == 1
        assert cookie.encode() not in b"".join(await redis.keys("*"))  # only its hash is stored
        resp, _ = await browser.post("/console/sign-out", data={"csrf_token": token})
        assert resp.status == 303 and resp.headers["Location"].startswith(SIGN_IN)
        assert await redis.keys("herald:console:session:*") == []
    finally:
        await redis.aclose()
    # The old cookie, replayed, opens nothing.
    again = Browser(browser.base)
    try:
        resp, _ = await again.get("/console/campaigns", cookies={"herald_console": cookie})
        assert resp.status == 303 and resp.headers["Location"] == SIGN_IN
    finally:
        await again.close()


async def test_revoking_the_key_ends_its_sessions(browser: Browser, admin_key: str, db: asyncpg.Connection) -> None:
    await browser.sign_in(admin_key)
    assert (await browser.get("/console/campaigns"))[0].status == 200
    await db.execute("UPDATE api_keys SET revoked_at = now()")
    resp, _ = await browser.get("/console/campaigns")
    assert resp.status == 303 and resp.headers["Location"] == SIGN_IN


async def test_stored_text_is_escaped(browser: Browser, admin_key: str, db: asyncpg.Connection) -> None:
    await browser.sign_in(admin_key)
    token = await browser.csrf()
    evil = '<script>alert("x")</script>'
    resp, _ = await browser.post(
        "/console/segments", data={"name": evil, "filter": json.dumps({"all": []}), "csrf_token": token}
    )
    segment_id = resp.headers["Location"].split("/")[-1].split("?")[0]
    form = {"name": evil, "segment_id": segment_id, "title": evil, "body": "hi", "csrf_token": token}
    resp, page = await browser.post("/console/campaigns", data=form)
    assert resp.status == 303, page
    campaign_page = resp.headers["Location"]
    for path in ("/console/segments", "/console/campaigns", campaign_page, f"/console/segments/{segment_id}"):
        _, page = await browser.get(path)
        assert evil not in page, path
        assert "&lt;script&gt;" in page, path


async def test_form_errors_are_shown_on_the_page(browser: Browser, admin_key: str) -> None:
    await browser.sign_in(admin_key)
    token = await browser.csrf()
    bad = {"name": "Bad", "filter": json.dumps({"all": [{"field": "nope", "op": "eq", "value": 1}]})}
    resp, page = await browser.post("/console/segments", data={**bad, "csrf_token": token})
    assert resp.status == 422 and 'class="alert"' in page and "nope" in page
    assert field(page, "name") == "Bad"  # what was typed is kept
    no_audience = {"name": "No audience", "title": "t", "csrf_token": token}
    resp, page = await browser.post("/console/campaigns", data=no_audience)
    assert resp.status == 422 and "Choose a segment" in page


async def test_compose_edit_schedule_at_a_time_and_cancel(
    browser: Browser, admin_key: str, db: asyncpg.Connection
) -> None:
    await browser.sign_in(admin_key)
    token = await browser.csrf()
    headers = {"X-CSRF-Token": token}
    await db.execute("INSERT INTO users (id, attributes, locale) VALUES ('ana', '{\"name\": \"Ana\"}', 'pt-BR')")
    resp, _ = await browser.post(
        "/console/segments", data={"name": "All", "filter": json.dumps({"all": []}), "csrf_token": token}
    )
    segment_id = resp.headers["Location"].split("/")[-1].split("?")[0]
    draft = {"name": "Promo", "segment_id": segment_id, "title": "Hi {{name|you}}", "csrf_token": token}
    draft |= {"locale": "pt", "locale_title": "Olá {{name}}", "locale_body": "Promo"}
    resp, page = await browser.post("/console/campaigns", data=draft)
    assert resp.status == 303, page
    campaign = resp.headers["Location"].split("?")[0]
    campaign_id = campaign.split("/")[-1]

    # The preview endpoint renders the chosen variant for the segment's first user.
    render = {"title": "Hi {{name|you}}", "body": "", "locales": [["pt", "Olá {{name}}", ""]], "segment_id": segment_id}
    resp, body = await browser.post("/console/api/campaigns/render", json=render, headers=headers)
    assert resp.status == 200 and json.loads(body) == {
        "user_id": "ana",
        "locale": "pt-BR",
        "variant": "pt",
        "title": "Olá Ana",
        "body": "",
    }
    _, page = await browser.get(campaign)
    assert "Olá Ana" in page and 'id="launch"' in page

    resp, _ = await browser.post(f"{campaign}/edit", data={**draft, "name": "Promo 2", "throttle_per_minute": "60"})
    assert resp.status == 303
    row = await db.fetchrow("SELECT name, throttle_per_minute, content FROM campaigns WHERE id = $1", campaign_id)
    assert (row["name"], row["throttle_per_minute"]) == ("Promo 2", 60)
    assert row["content"]["locales"] == {"pt": {"title": "Olá {{name}}", "body": "Promo"}}

    past = {"kind": "at", "at": "2020-01-01T09:00", "at_timezone": "Europe/Paris", "csrf_token": token}
    resp, page = await browser.post(f"{campaign}/schedule", data=past)
    assert resp.status == 422 and "in the past" in page
    later = {**past, "at": "2099-01-01T09:00"}
    resp, _ = await browser.post(f"{campaign}/schedule", data=later)
    assert resp.status == 303 and resp.headers["Location"].endswith("?notice=scheduled")
    row = await db.fetchrow("SELECT status, scheduled_at FROM campaigns WHERE id = $1", campaign_id)
    assert row["status"] == "scheduled" and row["scheduled_at"].isoformat() == "2099-01-01T08:00:00+00:00"
    resp, body = await browser.get(f"/console/api/campaigns/{campaign_id}/stats")
    assert resp.status == 200 and json.loads(body)["status"] == "scheduled"

    resp, _ = await browser.post(f"{campaign}/cancel", data={"csrf_token": token})
    assert resp.status == 303
    assert await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "cancelled"
    resp, page = await browser.post(f"{campaign}/cancel", data={"csrf_token": token})
    assert resp.status == 409 and "cannot be cancelled" in page
