"""The segment filter language through POST /segments/preview: every operator, nesting, bad input
and exact counts; saved segments; user profiles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from campaigns.filters import compile_filter
from store import devices
from tests.support.campaigns import Marketer
from tests.support.push import apns_token
from tests.support.rest import Rest

FCM = "fcm-token-" + "y" * 40


@pytest.fixture
async def people(marketer: Marketer, db: asyncpg.Connection) -> None:
    """Five users with varied profiles and devices (see each line)."""
    await marketer.user(
        "u1",
        attributes={"plan": "pro", "age": 34, "signup": "2026-01-10", "vip": True, "city": "Paris"},
        tags=["beta", "news"],
        timezone="Europe/Paris",
        locale="fr",
    )
    await marketer.user(
        "u2",
        attributes={"plan": "free", "age": 19, "signup": "2025-06-01", "city": "New York"},
        tags=["news"],
        timezone="America/New_York",
        locale="en-US",
    )
    await marketer.user("u3", attributes={"plan": "pro", "age": 51.5}, timezone="Asia/Tokyo", marketing_opt_in=False)
    await marketer.user("u4", attributes={"plan": "team", "country": "DE", "nick": None}, tags=["beta"], locale="de")
    await marketer.user("u5")
    await marketer.device("u1", apns_token(1), app_version="2.10.0", locale="fr-FR", timezone="Europe/Paris")
    await marketer.device("u2", FCM + "2", "fcm", app_version="2.9.1")
    await marketer.device("u3", apns_token(3), app_version="1.0")
    await marketer.device("u3", FCM + "3", "fcm", app_version="3.0", environment="sandbox")
    await marketer.device("u5", FCM + "5", "fcm", platform="web", app_version="2.10.0")
    await db.execute("UPDATE devices SET invalid_at = now() WHERE token = $1", FCM + "5")  # pruned: never counts
    now = datetime.now(UTC)
    for user, days in (("u1", 1), ("u2", 40), ("u4", 10)):
        await db.execute("UPDATE users SET last_active_at = $2 WHERE id = $1", user, now - timedelta(days=days))


def leaf(field: str, op: str, value: Any = None) -> dict[str, Any]:
    node = {"field": field, "op": op}
    return node if value is None else {**node, "value": value}


CASES: list[tuple[str, Any, set[str]]] = [
    ("everyone", {"all": []}, {"u1", "u2", "u3", "u4", "u5"}),
    ("attr eq string", leaf("attributes.plan", "eq", "pro"), {"u1", "u3"}),
    ("attr eq bool", leaf("attributes.vip", "eq", True), {"u1"}),
    ("attr eq number", leaf("attributes.age", "eq", 34), {"u1"}),
    ("attr ne (missing counts)", leaf("attributes.plan", "ne", "pro"), {"u2", "u4", "u5"}),
    ("attr in", leaf("attributes.plan", "in", ["free", "team"]), {"u2", "u4"}),
    ("attr gt number", leaf("attributes.age", "gt", 34), {"u3"}),
    ("attr gte number", leaf("attributes.age", "gte", 34), {"u1", "u3"}),
    ("attr lt number", leaf("attributes.age", "lt", 34), {"u2"}),
    ("attr lte number", leaf("attributes.age", "lte", 34), {"u1", "u2"}),
    ("attr between numbers", leaf("attributes.age", "between", [19, 40]), {"u1", "u2"}),
    ("attr gt date string", leaf("attributes.signup", "gt", "2025-12-31"), {"u1"}),
    ("attr between date strings", leaf("attributes.signup", "between", ["2025-01-01", "2025-12-31"]), {"u2"}),
    ("attr exists", leaf("attributes.country", "exists", True), {"u4"}),
    ("attr null does not exist", leaf("attributes.nick", "exists", True), set()),
    ("attr not exists", leaf("attributes.age", "exists", False), {"u4", "u5"}),
    ("attr contains", leaf("attributes.city", "contains", "york"), {"u2"}),
    ("attr within_days", leaf("attributes.signup", "within_days", 3650), {"u1", "u2"}),
    ("attr older_than_days", leaf("attributes.signup", "older_than_days", 1), {"u1", "u2"}),
    ("tags contains", leaf("tags", "contains", "beta"), {"u1", "u4"}),
    ("tags in", leaf("tags", "in", ["news", "nothing"]), {"u1", "u2"}),
    ("tags exists", leaf("tags", "exists", True), {"u1", "u2", "u4"}),
    ("tags exist not", leaf("tags", "exists", False), {"u3", "u5"}),
    ("id in", leaf("id", "in", ["u1", "u5", "nobody"]), {"u1", "u5"}),
    ("id eq", leaf("id", "eq", "u2"), {"u2"}),
    ("timezone eq", leaf("timezone", "eq", "Asia/Tokyo"), {"u3"}),
    ("timezone ne (null counts)", leaf("timezone", "ne", "Asia/Tokyo"), {"u1", "u2", "u4", "u5"}),
    ("locale contains", leaf("locale", "contains", "EN"), {"u2"}),
    ("locale exists", leaf("locale", "exists", False), {"u3", "u5"}),
    ("opted in", leaf("marketing_opt_in", "eq", False), {"u3"}),
    ("last active within", leaf("last_active_at", "within_days", 7), {"u1"}),
    ("last active older than", leaf("last_active_at", "older_than_days", 7), {"u2", "u4"}),
    ("never active", leaf("last_active_at", "exists", False), {"u3", "u5"}),
    ("not within (never active included)", {"not": leaf("last_active_at", "within_days", 7)}, {"u2", "u3", "u4", "u5"}),
    ("last active gt", leaf("last_active_at", "gt", "2000-01-01"), {"u1", "u2", "u4"}),
    (
        "created between",
        leaf("created_at", "between", ["2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z"]),
        {"u1", "u2", "u3", "u4", "u5"},
    ),
    ("device platform", leaf("device.platform", "eq", "ios"), {"u1", "u3"}),
    ("device platform in", leaf("device.platform", "in", ["android", "web"]), {"u2", "u3"}),
    ("pruned devices never match", leaf("device.platform", "eq", "web"), set()),
    ("device platform ne (another device counts)", leaf("device.platform", "ne", "ios"), {"u2", "u3"}),
    ("device platform contains", leaf("device.platform", "contains", "DRO"), {"u2", "u3"}),
    ("device platform not exists", leaf("device.platform", "exists", False), set()),
    ("device provider ne", leaf("device.provider", "ne", "apns"), {"u2", "u3"}),
    ("device environment", leaf("device.environment", "eq", "sandbox"), {"u3"}),
    ("device locale contains", leaf("device.locale", "contains", "fr"), {"u1"}),
    ("device timezone exists", leaf("device.timezone", "exists", True), {"u1"}),
    ("device app_id", leaf("device.app_id", "eq", "chat.herald.app"), {"u1", "u2", "u3"}),
    ("app version gte (numeric order)", leaf("device.app_version", "gte", "2.10"), {"u1", "u3"}),
    ("app version lt", leaf("device.app_version", "lt", "2.10"), {"u2", "u3"}),
    ("app version gt", leaf("device.app_version", "gt", "2.9.1"), {"u1", "u3"}),
    ("app version lte", leaf("device.app_version", "lte", "1.0"), {"u3"}),
    ("app version between", leaf("device.app_version", "between", ["2.0", "2.9.9"]), {"u2"}),
    ("app version eq text", leaf("device.app_version", "eq", "3.0"), {"u3"}),
    ("device registered recently", leaf("device.registered_at", "within_days", 1), {"u1", "u2", "u3"}),
    ("no device at all", {"not": leaf("device.platform", "exists", True)}, {"u4", "u5"}),
    (
        "nesting",
        {
            "all": [
                {"any": [leaf("attributes.plan", "eq", "pro"), leaf("tags", "contains", "beta")]},
                {"not": leaf("marketing_opt_in", "eq", False)},
                {"not": {"all": [leaf("locale", "eq", "de"), leaf("attributes.country", "eq", "DE")]}},
            ]
        },
        {"u1"},
    ),
    ("any of nots", {"any": [{"not": leaf("tags", "exists", True)}, leaf("id", "eq", "u2")]}, {"u2", "u3", "u5"}),
]


@pytest.mark.parametrize(("name", "tree", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_every_operator_counts_exactly(
    marketer: Marketer, people: None, name: str, tree: Any, expected: set[str]
) -> None:
    status, answer = await marketer.preview(tree, sample_size=50)
    assert status == 200, answer
    assert answer["users"] == len(expected)
    assert [u["id"] for u in answer["sample"]] == sorted(expected)


async def test_device_counts_and_opt_outs(marketer: Marketer, people: None) -> None:
    status, answer = await marketer.preview({"all": []}, sample_size=2)
    assert status == 200
    assert (answer["users"], answer["devices"], answer["opted_out"]) == (5, 4, 1)  # u5's pruned token left out
    assert [u["id"] for u in answer["sample"]] == ["u1", "u2"]
    status, answer = await marketer.preview(leaf("device.platform", "eq", "android"))
    assert (answer["users"], answer["devices"]) == (2, 3)  # u3's iOS device is sent to as well
    assert answer["sample"][0] == {
        "id": "u2",
        "attributes": {"plan": "free", "age": 19, "signup": "2025-06-01", "city": "New York"},
        "tags": ["news"],
        "timezone": "America/New_York",
        "locale": "en-US",
        "marketing_opt_in": True,
        "last_active_at": answer["sample"][0]["last_active_at"],
    }


BAD: list[tuple[Any, str]] = [
    ("everyone", "filter"),
    ({}, "filter"),
    ({"all": [], "any": []}, "filter"),
    ({"every": []}, "filter"),
    ({"all": {}}, "filter.all"),
    ({"any": []}, "filter.any"),
    ({"all": [leaf("attributes.plan", "eq", "pro"), {"not": 3}]}, "filter.all[1].not"),
    ({"all": [{}, {}, leaf("attributes.plan", "eq", [1])]}, "filter.all[0]"),
    (
        {"all": [leaf("id", "eq", "a"), leaf("id", "eq", "b"), leaf("attributes.plan", "eq", [1])]},
        "filter.all[2].value",
    ),
    (leaf("password", "eq", "x"), "filter.field"),
    (leaf("attributes.plan; DROP TABLE users", "eq", "x"), "filter.field"),
    (leaf("attributes.plan", "like", "x"), "filter.op"),
    (leaf("tags", "eq", "beta"), "filter.op"),
    (leaf("attributes.plan", "eq"), "filter.value"),
    ({"field": "tags", "op": "contains", "value": "x", "extra": 1}, "filter.extra"),
    (leaf("attributes.age", "gt", True), "filter.value"),
    (leaf("attributes.age", "between", [1]), "filter.value"),
    (leaf("attributes.age", "between", [1, "b"]), "filter.value"),
    (leaf("attributes.plan", "in", []), "filter.value"),
    (leaf("attributes.plan", "in", ["a", {"b": 1}]), "filter.value[1]"),
    (leaf("last_active_at", "gt", "yesterday"), "filter.value"),
    (leaf("last_active_at", "within_days", -1), "filter.value"),
    (leaf("last_active_at", "within_days", 1.5), "filter.value"),
    (leaf("device.app_version", "gt", "two"), "filter.value"),
    (leaf("tags", "exists", "yes"), "filter.value"),
    (leaf("marketing_opt_in", "eq", "no"), "filter.value"),
    (leaf("locale", "eq", ""), "filter.value"),
    (
        {
            "not": {
                "not": {
                    "not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {}}}}}}}}}}}
                }
            }
        },
        "filter" + ".not" * 13,
    ),
    ({"any": [leaf("id", "eq", str(i)) for i in range(250)]}, "filter.any[199]"),
]


async def test_device_counts_follow_every_change_of_a_device(
    marketer: Marketer, people: None, db: asyncpg.Connection
) -> None:
    """Previews count devices from a per-user tally kept by triggers: it must follow moves, prunes,
    re-registrations and removals exactly as a count of the devices themselves would."""

    async def devices_of() -> int:
        status, answer = await marketer.preview({"all": []})
        assert status == 200, answer
        truth = await db.fetchval(
            "SELECT count(*) FROM devices d JOIN users u ON u.id = d.user_id WHERE d.invalid_at IS NULL"
        )
        assert answer["devices"] == truth
        total = int(answer["devices"])
        # device.platform leaves read a per-user summary too: it must match the devices themselves
        for platform in ("ios", "android", "web"):
            for op in ("eq", "ne"):
                status, answer = await marketer.preview(leaf("device.platform", op, platform), sample_size=50)
                truth = await db.fetch(
                    "SELECT DISTINCT user_id FROM devices WHERE invalid_at IS NULL AND user_id IS NOT NULL"
                    f" AND platform {'=' if op == 'eq' else '<>'} $1 ORDER BY 1",
                    platform,
                )
                assert [u["id"] for u in answer["sample"]] == [r["user_id"] for r in truth], (platform, op)
        return total

    assert await devices_of() == 4
    await marketer.device("u4", apns_token(3))  # u3's iPhone now belongs to u4: still 4
    assert await devices_of() == 4
    status, answer = await marketer.preview(leaf("attributes.plan", "eq", "team"))
    assert (answer["users"], answer["devices"]) == (1, 1)
    await marketer.device("u5", FCM + "5", "fcm", platform="web")  # the pruned token registers again
    assert await devices_of() == 5
    await devices.invalidate(db, [(FCM + "2", "Unregistered", None)])  # pruned by a provider's verdict
    assert await devices_of() == 4
    await marketer.device("u2", FCM + "2", "fcm", app_version="3.1")  # and back
    await marketer.device("u2", FCM + "2", "fcm", app_version="3.2")  # an update that changes no count
    assert await devices_of() == 5
    await marketer.device("u2", FCM + "2", "fcm", platform="web")  # the same token, now a web push
    assert await devices_of() == 5
    status, answer = await marketer.preview(leaf("device.platform", "eq", "web"))
    assert (answer["users"], answer["devices"]) == (2, 2)  # u2 and u5
    status, _ = await marketer.devices.request("DELETE", f"/devices/{apns_token(1)}")
    assert status == 204
    assert await devices_of() == 4
    await db.execute("DELETE FROM users WHERE id = 'u4'")  # its devices go with it
    assert await devices_of() == 3


@pytest.mark.parametrize(("tree", "path"), BAD)
async def test_invalid_filters_point_at_the_bad_node(marketer: Marketer, tree: Any, path: str) -> None:
    status, answer = await marketer.preview(tree)
    assert status == 422, answer
    assert answer["error"]["code"] == "invalid_filter"
    assert list(answer["error"]["fields"]) == [path], answer


def test_user_text_only_travels_as_parameters() -> None:
    evil = "x'); DROP TABLE users; --"
    tree = {
        "any": [
            leaf("attributes.plan", "eq", evil),
            leaf("attributes.plan", "contains", evil),
            leaf("tags", "in", [evil]),
            leaf("locale", "ne", evil),
            leaf("device.platform", "eq", evil),
        ]
    }
    condition = compile_filter(tree, start=4)
    assert evil not in condition.sql and "plan" not in condition.sql
    assert "$4::" in condition.sql and f"${3 + len(condition.args)}::" in condition.sql


async def test_saved_segments(marketer: Marketer, people: None) -> None:
    pro = {"name": "Pro users", "filter": leaf("attributes.plan", "eq", "pro")}
    first = await marketer.call("POST", "/segments", pro, expect=201)
    second = await marketer.call("POST", "/segments", {"name": "Beta", "filter": leaf("tags", "contains", "beta")})
    page = await marketer.call("GET", "/segments?limit=1", expect=200)
    assert [s["id"] for s in page["segments"]] == [first["id"]] and page["next_cursor"] == first["id"]
    page = await marketer.call("GET", f"/segments?limit=1&cursor={page['next_cursor']}", expect=200)
    assert [s["id"] for s in page["segments"]] == [second["id"]] and page["next_cursor"] is None
    renamed = await marketer.call("PUT", f"/segments/{first['id']}", {**pro, "name": "Pro"}, expect=200)
    assert renamed["name"] == "Pro" and renamed["filter"] == pro["filter"]
    assert (await marketer.call("GET", f"/segments/{first['id']}", expect=200))["name"] == "Pro"
    bad = await marketer.call("POST", "/segments", {"name": "x", "filter": {"any": []}}, expect=422)
    assert bad["error"]["fields"] == {"filter.any": "must not be empty"}
    await marketer.call("DELETE", f"/segments/{first['id']}", expect=204)
    await marketer.call("GET", f"/segments/{first['id']}", expect=404)


async def test_user_profiles(marketer: Marketer, hub_url: str, api_key, db: asyncpg.Connection) -> None:  # type: ignore[no-untyped-def]
    status, created = await marketer.api.request(
        "PUT", "/users/zoe", {"attributes": {"plan": "pro"}, "tags": ["b", "a"]}
    )
    assert status == 201 and created["tags"] == ["a", "b"] and created["marketing_opt_in"] is True
    status, updated = await marketer.api.request(
        "PUT", "/users/zoe", {"timezone": "Europe/Berlin", "marketing_opt_in": False}
    )
    assert status == 200
    assert (updated["attributes"], updated["timezone"], updated["marketing_opt_in"]) == (
        {"plan": "pro"},
        "Europe/Berlin",
        False,
    )
    status, cleared = await marketer.api.request("PUT", "/users/zoe", {"timezone": None})
    assert status == 200 and cleared["timezone"] is None and cleared["tags"] == ["a", "b"]
    for body, field in (
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"attributes": {"nested": {"a": 1}}}, "attributes.nested"),
        ({"attributes": {"bad key": 1}}, "attributes.bad key"),
        ({"tags": "beta"}, "tags"),
        ({"locale": "not a locale"}, "locale"),
        ({"plan": "pro"}, "plan"),
    ):
        status, answer = await marketer.api.request("PUT", "/users/zoe", body)
        assert status == 400 and field in answer["error"]["fields"], (body, answer)
    publisher = Rest(hub_url, await api_key("publish"))
    status, _ = await publisher.request("PUT", "/users/zoe", {"tags": []})
    assert status == 403
    assert await db.fetchval("SELECT tags FROM users WHERE id = 'zoe'") == ["a", "b"]
