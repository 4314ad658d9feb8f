"""Campaigns: the marketer's domain, between the hub (REST, console) and the store.

- :mod:`campaigns.filters` (with :mod:`campaigns.filter_values`): the segment filter language,
  validated and compiled to a SQL condition for :mod:`store.segments`;
- :mod:`campaigns.segments`: saved segments and the audience a filter selects;
- :mod:`campaigns.content`: per-locale content and its ``{{attribute|fallback}}`` personalisation;
- :mod:`campaigns.schedule`: schedules, quiet hours and frequency caps (pure rules);
- :mod:`campaigns.drafts`: a campaign's lifecycle, draft to cancelled;
- :mod:`campaigns.preview` and :mod:`campaigns.stats`: what the marketer sees.

Errors are :class:`campaigns.errors.CampaignError` (a :class:`config.errors.HeraldError`).
The runner that sends a scheduled campaign is a worker job (``workers/campaigns.py``).
"""
