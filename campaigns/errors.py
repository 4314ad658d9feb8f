"""The campaigns domain's root exception, and the filter error that names the bad node."""

from __future__ import annotations

from config.errors import Code, HeraldError


class CampaignError(HeraldError):
    """A campaign or segment request Herald refuses (drafts, schedules, content, filters)."""


invalid = CampaignError.invalid


class SegmentError(CampaignError):
    """An invalid filter (code ``invalid_filter``); ``path`` names the node (``filter.any[1].op``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(Code.INVALID_FILTER, f"{path}: {message}", fields={path: message})
        self.path = path
        self.message = message
