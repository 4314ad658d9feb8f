"""A campaign's content as one user of its audience gets it (the marketer's preview)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from campaigns import content
from campaigns.errors import CampaignError
from campaigns.segments import audience
from config.errors import Code
from store import users as user_store


async def sample_user(pool: asyncpg.Pool, tree: Any) -> str | None:
    """The first user (by id) of an audience, to preview personalised content with."""
    if tree is None:
        return None
    figures = await audience(pool, tree, 1)
    return str(figures["sample"][0]["id"]) if figures["sample"] else None


async def personalised(pool: asyncpg.Pool, campaign_content: Mapping[str, Any], user_id: str) -> dict[str, Any]:
    """``campaign_content`` as ``user_id`` gets it, with the variant chosen; ``PushError`` when the
    personalised notification is too large for a provider."""
    profile = await user_store.preview_profile(pool, user_id)
    if profile is None:
        raise CampaignError(Code.NOT_FOUND, f"There is no user {user_id}.")
    locale = profile["locale"] or profile["device_locale"]
    rendered = content.render(campaign_content, locale, profile["attributes"] or {})
    content.message(campaign_content, locale, profile["attributes"] or {})
    chosen = content.variant_for(campaign_content, locale)
    locales: Mapping[str, Any] = campaign_content.get("locales") or {}
    variant = next((k for k, v in locales.items() if dict(v) == dict(chosen)), "default")
    return {
        "user_id": user_id,
        "locale": locale,
        "variant": variant,
        "title": rendered.get("title") or "",
        "body": rendered.get("body") or "",
    }
