"""Segments: saved filters, and the audience a filter selects (the marketer's live preview)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from campaigns.drafts import MAX_NAME, is_uuid
from campaigns.errors import CampaignError
from campaigns.filters import compile_filter
from config import bodies
from config.clock import CLOCK, iso
from config.errors import Code
from store import segments as store

DEFAULT_SAMPLE = 10
MAX_SAMPLE = 50

#: POST /segments/preview
PREVIEW = bodies.Body(
    {
        "filter": bodies.passed_on(bodies.ref("SegmentFilter"), required=True),
        "sample_size": bodies.integer(minimum=0, maximum=MAX_SAMPLE, default=DEFAULT_SAMPLE),
    }
)
#: POST /segments, PUT /segments/{id}
SEGMENT = bodies.Body(
    {
        "name": bodies.text(MAX_NAME, required=True),
        "filter": bodies.passed_on(bodies.ref("SegmentFilter"), required=True),
    }
)


async def audience(pool: asyncpg.Pool, tree: object, size: int) -> dict[str, Any]:
    """Exact user and device counts of a filter and ``size`` users (by id) as a sample; raises
    ``SegmentError`` for a bad filter."""
    condition = compile_filter(tree, now=CLOCK.now())
    (users, opted_out, devices), sample = await asyncio.gather(
        store.count(pool, condition), store.sample(pool, condition, size)
    )
    return {
        "users": users,
        "devices": devices,
        "opted_out": opted_out,
        "sample": [
            {
                "id": r["id"],
                "attributes": r["attributes"],
                "tags": list(r["tags"]),
                "timezone": r["timezone"],
                "locale": r["locale"],
                "marketing_opt_in": r["marketing_opt_in"],
                "last_active_at": iso(r["last_active_at"]),
            }
            for r in sample
        ],
    }


async def preview(pool: asyncpg.Pool, body: dict[str, Any]) -> dict[str, Any]:
    """The audience of a :data:`PREVIEW` body."""
    values = PREVIEW.parse(body)
    return await audience(pool, values["filter"], values["sample_size"])


def checked(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A :data:`SEGMENT` body's (name, filter), the filter compiled to prove it valid."""
    values = SEGMENT.parse(body)
    compile_filter(values["filter"])
    assert isinstance(values["filter"], dict)
    return values["name"], values["filter"]


def checked_id(value: str) -> str:
    """A segment id from a path: one that cannot exist is ``not_found``."""
    if not is_uuid(value):
        raise CampaignError(Code.NOT_FOUND, f"segment {value} does not exist")
    return value


async def get(pool: asyncpg.Pool, segment_id: str) -> Any:
    row = await store.get(pool, checked_id(segment_id))
    if row is None:
        raise CampaignError(Code.NOT_FOUND, "no such segment")
    return row


async def create(pool: asyncpg.Pool, body: dict[str, Any]) -> Any:
    name, tree = checked(body)
    return await store.insert(pool, name, tree)


async def replace(pool: asyncpg.Pool, segment_id: str, body: dict[str, Any]) -> Any:
    sid = checked_id(segment_id)
    name, tree = checked(body)
    row = await store.update(pool, sid, name, tree)
    if row is None:
        raise CampaignError(Code.NOT_FOUND, "no such segment")
    return row


async def delete(pool: asyncpg.Pool, segment_id: str) -> None:
    """Delete a segment no campaign not yet finished targets."""
    sid = checked_id(segment_id)
    if await store.in_use(pool, sid):
        raise CampaignError(Code.CONFLICT, "a campaign not yet finished targets this segment")
    if not await store.delete(pool, sid):
        raise CampaignError(Code.NOT_FOUND, "no such segment")
