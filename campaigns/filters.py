"""Segment filters: a JSON tree validated and compiled to a parameterised SQL condition over ``users u``.

    {"all": [node, ...]}                       every node holds (an empty list holds for everyone)
    {"any": [node, ...]}                       at least one node holds
    {"not": node}                              the node does not hold
    {"field": f, "op": o, "value": v}          a leaf

The fields and the operators each takes are in :data:`FIELDS`.  Field names are whitelisted and
attribute keys must match :data:`ATTRIBUTE_KEY`; every value (and every attribute key) travels as a
bind parameter, so no text of the request is ever spliced into SQL.  Leaves never answer NULL
(see `_never_null`), so ``not`` is the exact complement.  A ``device.*``
leaf holds when the user has a valid device for which it holds; ``device.platform`` is answered
from ``users.device_platforms`` (kept by triggers, migration 0007) without reading ``devices``.

Bad input raises :class:`campaigns.errors.SegmentError` (code ``invalid_filter``) naming the node, e.g.
``filter.all[2].value``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from campaigns import filter_values as check
from campaigns.errors import SegmentError
from store.segments import Condition

MAX_NODES = 200
MAX_DEPTH = 12
ATTRIBUTE_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")

EQUALITY = ("eq", "ne", "in")
ORDER = ("gt", "gte", "lt", "lte", "between")
TIME_OPS = (*ORDER, "within_days", "older_than_days", "exists")
TEXT_OPS = (*EQUALITY, "exists", "contains")

#: field -> (kind, SQL expression, operators).  Device expressions are over ``dv`` (see _never_null),
#: but device.platform, which reads the user's own summary ``u.device_platforms`` (migration 0007).
FIELDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "id": ("text", "u.id", EQUALITY),
    "timezone": ("text", "u.timezone", TEXT_OPS),
    "locale": ("text", "u.locale", TEXT_OPS),
    "marketing_opt_in": ("bool", "u.marketing_opt_in", ("eq", "ne")),
    "last_active_at": ("time", "u.last_active_at", TIME_OPS),
    "created_at": ("time", "u.created_at", TIME_OPS),
    "tags": ("tags", "u.tags", ("contains", "in", "exists")),
    "device.platform": ("platforms", "u.device_platforms", TEXT_OPS),
    "device.provider": ("text", "dv.provider", TEXT_OPS),
    "device.environment": ("text", "dv.environment", TEXT_OPS),
    "device.app_id": ("text", "dv.app_id", TEXT_OPS),
    "device.locale": ("text", "dv.locale", TEXT_OPS),
    "device.timezone": ("text", "dv.timezone", TEXT_OPS),
    "device.app_version": ("version", "dv.app_version", (*TEXT_OPS, *ORDER)),
    "device.registered_at": ("time", "dv.registered_at", TIME_OPS),
}
ATTRIBUTE_OPS = (*EQUALITY, *ORDER, "exists", "contains", "within_days", "older_than_days")
COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
# "1.10.2-beta" -> {1, 10, 2}: compared element by element as numbers (only digits reach the cast).
VERSION_SQL = "array_remove(string_to_array(regexp_replace({col}, '[^0-9.]', '', 'g'), '.'), '')::numeric[]"


def compile_filter(tree: object, *, start: int = 1, now: datetime | None = None, path: str = "filter") -> Condition:
    """Validate ``tree`` and compile it; placeholders are numbered from ``$start``."""
    compiler = _Compiler(start, now or datetime.now(UTC))
    sql = compiler.node(tree, path, 0)
    return Condition(sql, tuple(compiler.args))


def validate(tree: object, path: str = "filter") -> None:
    compile_filter(tree, path=path)


class _Compiler:
    def __init__(self, start: int, now: datetime) -> None:
        self.start = start
        self.now = now
        self.args: list[Any] = []
        self.nodes = 0

    def param(self, value: Any, cast: str) -> str:
        self.args.append(value)
        return f"${self.start + len(self.args) - 1}::{cast}"

    def node(self, node: object, path: str, depth: int) -> str:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SegmentError(path, f"a filter has at most {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise SegmentError(path, f"a filter nests at most {MAX_DEPTH} levels")
        if not isinstance(node, dict):
            raise SegmentError(path, "must be an object: {all}, {any}, {not} or {field, op, value}")
        if "field" in node or "op" in node:
            return self.leaf(node, path)
        if len(node) != 1:
            raise SegmentError(path, "must have exactly one of all, any, not (or be a {field, op, value} leaf)")
        [(key, value)] = node.items()
        if key == "not":
            return f"NOT ({self.node(value, f'{path}.not', depth + 1)})"
        if key not in ("all", "any"):
            raise SegmentError(path, f"unknown key {key!r}; use all, any, not or a {{field, op, value}} leaf")
        if not isinstance(value, list):
            raise SegmentError(f"{path}.{key}", "must be a list of filters")
        if not value:
            if key == "any":
                raise SegmentError(f"{path}.any", "must not be empty")
            return "true"
        parts = [self.node(child, f"{path}.{key}[{i}]", depth + 1) for i, child in enumerate(value)]
        joiner = " AND " if key == "all" else " OR "
        return "(" + joiner.join(f"({p})" for p in parts) + ")"

    def leaf(self, node: dict[str, Any], path: str) -> str:
        unknown = [k for k in node if k not in ("field", "op", "value")]
        if unknown:
            raise SegmentError(f"{path}.{unknown[0]}", "unknown key; a leaf has field, op and value")
        field, op = node.get("field"), node.get("op")
        if not isinstance(field, str):
            raise SegmentError(f"{path}.field", "is required (a string)")
        ops: tuple[str, ...]
        if field.startswith("attributes."):
            key = field.removeprefix("attributes.")
            if not ATTRIBUTE_KEY.match(key):
                raise SegmentError(f"{path}.field", "an attribute key is 1 to 64 letters, digits or _")
            kind, expr, ops = "attribute", key, ATTRIBUTE_OPS
        elif field in FIELDS:
            kind, expr, ops = FIELDS[field]
        else:
            raise SegmentError(f"{path}.field", f"unknown field {field!r}; use attributes.<key> or one of {_names()}")
        if op not in ops:
            raise SegmentError(f"{path}.op", f"{field} takes the operators {', '.join(ops)}")
        assert isinstance(op, str)
        if "value" not in node and op != "exists":
            raise SegmentError(f"{path}.value", "is required")
        value = node.get("value", True)
        vpath = f"{path}.value"
        if kind == "attribute":
            sql = self.attribute(expr, op, value, vpath)
        elif kind == "tags":
            sql = self.tags(op, value, vpath)
        elif kind == "time":
            sql = self.time(expr, op, value, vpath)
        elif kind == "bool":
            sql = f"{expr} {'=' if op == 'eq' else '<>'} {self.param(check.boolean(value, vpath), 'boolean')}"
        elif kind == "version" and op in ORDER:
            sql = self.version(expr, op, value, vpath)
        elif kind == "platforms":
            sql = self.platforms(expr, op, value, vpath)
        else:
            sql = self.text(expr, op, value, vpath)
        return _never_null(sql, field, kind, expr, op)

    def text(self, expr: str, op: str, value: object, path: str) -> str:
        if op == "exists":
            return f"{expr} IS {'NOT ' if check.boolean(value, path) else ''}NULL"
        if op == "in":
            return f"{expr} = ANY({self.param(check.listed(value, path, check.text), 'text[]')})"
        text = check.text(value, path)
        if op == "eq":
            return f"{expr} = {self.param(text, 'text')}"
        if op == "ne":
            return f"{expr} IS DISTINCT FROM {self.param(text, 'text')}"
        return f"strpos(lower({expr}), lower({self.param(text, 'text')})) > 0"  # contains

    def platforms(self, platforms: str, op: str, value: object, path: str) -> str:
        """A device.platform leaf over the user's valid devices' platforms (``u.device_platforms``,
        sorted, no NULLs): the array operators are never NULL and, for ``contains`` aside, can use a
        GIN index."""
        if op == "exists":  # platform is NOT NULL: every valid device has one
            return f"cardinality({platforms}) > 0" if check.boolean(value, path) else "false"
        if op == "in":
            return f"{platforms} && {self.param(check.listed(value, path, check.text), 'text[]')}"
        if op == "contains":
            needle = self.param(check.text(value, path), "text")
            return f"EXISTS (SELECT 1 FROM unnest({platforms}) p WHERE strpos(lower(p), lower({needle})) > 0)"
        one = self.param([check.text(value, path)], "text[]")
        if op == "eq":
            return f"{platforms} @> {one}"
        return f"NOT ({platforms} <@ {one})"  # ne: a device of another platform

    def version(self, expr: str, op: str, value: object, path: str) -> str:
        left = VERSION_SQL.format(col=expr)
        if op == "between":
            low, high = check.pair(value, path, check.version)
            return f"{left} BETWEEN {self.param(low, 'numeric[]')} AND {self.param(high, 'numeric[]')}"
        return f"{left} {COMPARE[op]} {self.param(check.version(value, path), 'numeric[]')}"

    def time(self, expr: str, op: str, value: object, path: str) -> str:
        if op == "exists":
            return f"{expr} IS {'NOT ' if check.boolean(value, path) else ''}NULL"
        if op in ("within_days", "older_than_days"):
            since = self.now - timedelta(days=check.days(value, path))
            return f"{expr} {'>=' if op == 'within_days' else '<'} {self.param(since, 'timestamptz')}"
        if op == "between":
            low, high = check.pair(value, path, check.time_of)
            return f"{expr} BETWEEN {self.param(low, 'timestamptz')} AND {self.param(high, 'timestamptz')}"
        return f"{expr} {COMPARE[op]} {self.param(check.time_of(value, path), 'timestamptz')}"

    def tags(self, op: str, value: object, path: str) -> str:
        if op == "exists":
            return f"cardinality(u.tags) {'>' if check.boolean(value, path) else '='} 0"
        if op == "contains":
            return f"u.tags @> {self.param([check.text(value, path)], 'text[]')}"
        return f"u.tags && {self.param(check.listed(value, path, check.text), 'text[]')}"  # in: any of them

    def attribute(self, key: str, op: str, value: object, path: str) -> str:
        if op in ("eq", "ne"):
            contained = f"u.attributes @> {self.param({key: check.scalar(value, path)}, 'jsonb')}"
            return contained if op == "eq" else f"NOT ({contained})"
        if op == "in":
            values = check.listed(value, path, check.scalar)
            return "(" + " OR ".join(f"u.attributes @> {self.param({key: v}, 'jsonb')}" for v in values) + ")"
        item = f"(u.attributes -> {self.param(key, 'text')})"
        if op == "exists":
            present = f"({item} IS NOT NULL AND jsonb_typeof({item}) <> 'null')"
            return present if check.boolean(value, path) else f"NOT {present}"
        if op == "contains":
            text = f"(u.attributes ->> {self.param(key, 'text')})"
            needle = self.param(check.text(value, path), "text")
            return f"(jsonb_typeof({item}) = 'string' AND strpos(lower({text}), lower({needle})) > 0)"
        if op in ("within_days", "older_than_days"):
            since = (self.now - timedelta(days=check.days(value, path))).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
            return self.ordered(key, item, ">=" if op == "within_days" else "<", since)
        if op == "between":
            low, high = check.pair(value, path, check.orderable)
            if type(low) is not type(high) and not (isinstance(low, int | float) and isinstance(high, int | float)):
                raise SegmentError(path, "both ends must be numbers or both strings")
            return f"({self.ordered(key, item, '>=', low)} AND {self.ordered(key, item, '<=', high)})"
        return self.ordered(key, item, COMPARE[op], check.orderable(value, path))

    def ordered(self, key: str, item: str, sign: str, value: str | int | float) -> str:
        """Numbers compare as numbers, strings (ISO dates) byte-wise; other types never match."""
        if isinstance(value, str):
            text = f"(u.attributes ->> {self.param(key, 'text')})"
            return f"(jsonb_typeof({item}) = 'string' AND {text} COLLATE \"C\" {sign} {self.param(value, 'text')})"
        return f"(jsonb_typeof({item}) = 'number' AND {item} {sign} {self.param(value, 'jsonb')})"


def _never_null(sql: str, field: str, kind: str, expr: str, op: str) -> str:
    """``sql`` as a condition that is true or false, never NULL, in a form the planner can still
    match to an index: ``coalesce(x, false)`` is opaque to it (a GIN or B-tree index then goes
    unused and a device leaf's EXISTS becomes a sub-plan run per user), so it is kept only where
    nothing cheaper is exact."""
    if kind in ("tags", "bool", "platforms"):
        return sql  # u.tags, u.marketing_opt_in and u.device_platforms are NOT NULL
    if field.startswith("device."):
        # EXISTS is never NULL, and a NULL inside counts as false.
        return f"EXISTS (SELECT 1 FROM devices dv WHERE dv.user_id = u.id AND dv.invalid_at IS NULL AND {sql})"
    if kind == "attribute":
        # @> on the NOT NULL attributes, and the exists test, are never NULL; the rest may be
        return sql if op in ("eq", "ne", "in", "exists") else f"coalesce({sql}, false)"
    if op in ("exists", "ne"):
        return sql  # IS [NOT] NULL and IS DISTINCT FROM are never NULL
    return f"({expr} IS NOT NULL AND {sql})"  # over a non-NULL value the comparison is never NULL


def _names() -> str:
    return ", ".join(FIELDS)


#: The OpenAPI component SegmentFilter (the tree is checked by :func:`compile_filter`).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "A filter node: {all: [nodes]}, {any: [nodes]}, {not: node} or a leaf {field, op, value}; "
        "see docs/campaigns.md. Invalid filters are answered 422 invalid_filter naming the node."
    ),
}
