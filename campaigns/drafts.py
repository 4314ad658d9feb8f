"""A campaign's lifecycle: draft → scheduled → running → completed; cancelled before completed.

Drafts are created and changed with their fields checked here (audience, content, schedule,
throttle, frequency cap, quiet hours); scheduling freezes the audience and queues the runner
(``workers/campaigns.py`` does the sending).  The SQL guards every state change, so two callers
racing (a cancel and the runner) cannot both win.  REST and the console both call these.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from arq.connections import ArqRedis

from campaigns import content
from campaigns.errors import CampaignError, invalid
from campaigns.filters import compile_filter
from campaigns.schedule import FrequencyCap, QuietHours, Schedule
from config import bodies
from config.clock import CLOCK
from config.errors import Code
from store import campaigns as store
from store import queue
from store import segments as segment_store

MAX_NAME = 200
MAX_THROTTLE = 10_000_000


def _segment_id(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and (not isinstance(value, str) or not is_uuid(value)):
        raise CampaignError(Code.INVALID_PAYLOAD, f"{name}: must be a segment id", fields={name: "not an id"})
    return value


def _content(data: dict[str, Any], name: str) -> dict[str, Any]:
    if name not in data:
        raise invalid(name, "is required")
    return content.validate(data[name], name)


def _rule(parse: Any) -> bodies.Check:
    def check(data: dict[str, Any], name: str) -> Any:
        rule = parse(data.get(name), name)
        return rule.to_json() if rule is not None else None

    return check


#: A draft's fields: the body of POST /campaigns (and, each optional, of PATCH).
DRAFT = bodies.Body(
    {
        "name": bodies.text(MAX_NAME, required=True),
        "segment_id": bodies.Field(bodies.nullable({"type": "string", "format": "uuid"}), _segment_id),
        "filter": bodies.passed_on(bodies.nullable(bodies.ref("SegmentFilter"))),
        "content": bodies.Field(bodies.ref("CampaignContent"), _content, required=True),
        "schedule": bodies.Field(bodies.ref("CampaignSchedule"), _rule(Schedule.parse)),
        "throttle_per_minute": bodies.integer(minimum=1, maximum=MAX_THROTTLE),
        "frequency_cap": bodies.Field(bodies.nullable(bodies.ref("FrequencyCap")), _rule(FrequencyCap.parse)),
        "quiet_hours": bodies.Field(bodies.nullable(bodies.ref("QuietHours")), _rule(QuietHours.parse)),
    }
)
#: POST /campaigns/{id}/schedule: optionally a schedule replacing the draft's.
SCHEDULE = bodies.Body({"schedule": bodies.passed_on(bodies.ref("CampaignSchedule"))})


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def get(pool: asyncpg.Pool, campaign_id: str) -> Any:
    """The campaign, or ``not_found``."""
    row = await store.get(pool, campaign_id) if is_uuid(campaign_id) else None
    if row is None:
        raise CampaignError(Code.NOT_FOUND, f"campaign {campaign_id} does not exist")
    return row


def stored(row: Any) -> dict[str, Any]:
    """A campaign's own fields, as a create body would give them."""
    fields = {k: row[k] for k in DRAFT.fields}
    fields["segment_id"] = str(row["segment_id"]) if row["segment_id"] else None
    return fields


async def checked(pool: asyncpg.Pool, body: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The draft's fields: ``base`` with the body's fields laid over it, all checked."""
    merged = {**base, **{k: v for k, v in body.items() if k in DRAFT.fields}}
    fields = DRAFT.parse(merged)
    if fields["segment_id"] is not None and fields["filter"] is not None:
        raise CampaignError(
            Code.INVALID_PAYLOAD, "give segment_id or filter, not both", fields={"filter": "and segment_id"}
        )
    if "segment_id" in body and fields["segment_id"] and not await segment_store.get(pool, fields["segment_id"]):
        raise CampaignError(Code.UNPROCESSABLE, "segment_id: no such segment", fields={"segment_id": "no such segment"})
    if fields["filter"] is not None:
        compile_filter(fields["filter"])
    return fields


async def create(pool: asyncpg.Pool, body: dict[str, Any]) -> Any:
    return await store.insert(pool, await checked(pool, body, {}))


async def change(pool: asyncpg.Pool, row: Any, body: dict[str, Any]) -> Any:
    """The draft with the body's fields changed (fields left out keep their value)."""
    if row["status"] != "draft":
        raise CampaignError(Code.CONFLICT, f"only a draft can be changed; this campaign is {row['status']}")
    updated = await store.update_draft(pool, str(row["id"]), await checked(pool, body, stored(row)))
    if updated is None:
        raise CampaignError(Code.CONFLICT, "the campaign left the draft state meanwhile")
    return updated


async def delete(pool: asyncpg.Pool, row: Any) -> None:
    if not await store.delete(pool, str(row["id"])):
        raise CampaignError(Code.CONFLICT, f"a {row['status']} campaign cannot be deleted; cancel it first")


async def schedule(
    pool: asyncpg.Pool, arq: ArqRedis, row: Any, plan_json: object, *, queue_name: str, sweep_interval: float
) -> Any:
    """Freeze the audience of a draft and schedule it: queued now when it starts within a sweep,
    later ones by the workers' sweeper."""
    if row["status"] != "draft":
        raise CampaignError(Code.CONFLICT, f"only a draft can be scheduled; this campaign is {row['status']}")
    plan = Schedule.parse(plan_json)
    audience = row["filter"]
    if row["segment_id"] is not None:
        segment = await segment_store.get(pool, str(row["segment_id"]))
        audience = segment["filter"] if segment is not None else None
    if audience is None:
        raise CampaignError(Code.UNPROCESSABLE, "the campaign has no audience: give it a segment_id or a filter")
    compile_filter(audience)
    now = CLOCK.now()
    start = plan.start_at(now)
    updated = await store.schedule(pool, str(row["id"]), plan.to_json(), audience, start)
    if updated is None:
        raise CampaignError(Code.CONFLICT, "the campaign left the draft state meanwhile")
    wait = (start - now).total_seconds()
    if wait <= sweep_interval:
        await queue.enqueue_campaign(arq, queue_name, str(row["id"]), defer=wait or None)
    return updated


async def cancel(pool: asyncpg.Pool, row: Any) -> Any:
    """Stop sending: nothing more is queued, deliveries not yet sent are skipped (reason cancelled)."""
    async with pool.acquire() as conn:
        cancelled = await store.cancel(conn, str(row["id"]), CLOCK.now())
    if cancelled is None:
        raise CampaignError(Code.CONFLICT, f"a {row['status']} campaign cannot be cancelled")
    return cancelled
