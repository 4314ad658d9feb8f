"""The access tests' shared pieces (tests/hub/test_access.py, tests/hub/test_access_matrix.py): what a
refused request must leave untouched, the error body it must answer with, and the placeholders of
their tables (the ``world`` they stand for is built by tests/hub/conftest.py)."""

from __future__ import annotations

from typing import Any

import asyncpg

OK = "ok"
MSG = "<id of alice's message in secret>"

#: Columns a refused request may still change: using an API key stamps its last use.
VOLATILE_COLUMNS = {("api_keys", "last_used_at")}


async def snapshot(db: asyncpg.Connection) -> dict[str, list[str]]:
    """Everything a refused request must leave untouched: every row of every table (order aside)."""
    columns: dict[str, list[str]] = {}
    for row in await db.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
    ):
        if (row["table_name"], row["column_name"]) not in VOLATILE_COLUMNS:
            columns.setdefault(row["table_name"], []).append(row["column_name"])
    state: dict[str, list[str]] = {}
    for table, names in columns.items():
        quoted = ", ".join(f'"{name}"' for name in names)
        rows = await db.fetch(f'SELECT {quoted} FROM "{table}"')
        state[table] = sorted(repr(tuple(r)) for r in rows)
    return state


def snapshot_diff(before: dict[str, list[str]], after: dict[str, list[str]]) -> str:
    """The tables whose rows differ, with the rows gone and the rows new ("" when none)."""
    changes = []
    for table in sorted(set(before) | set(after)):
        old, new = set(before.get(table, [])), set(after.get(table, []))
        if old != new:
            changes.append(f"{table}: -{sorted(old - new)} +{sorted(new - old)}")
    return "; ".join(changes)


def assert_error(body: Any, code: str) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


def fill(value: Any, world: dict[str, Any]) -> Any:
    """Replace the placeholders of a table row with the ids of this test's world.

    ``world["placeholders"]`` may add more (a placeholder standing alone takes its value's type).
    """
    known: dict[str, Any] = {MSG: world["message_id"], "<dm>": world["dm"], **world.get("placeholders", {})}
    if isinstance(value, str) and value in known:
        return known[value]
    if isinstance(value, dict):
        return {fill(k, world): fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    if isinstance(value, str):
        for placeholder, replacement in known.items():
            value = value.replace(placeholder, str(replacement))
    return value
