"""JSON endpoints for the console's script (session cookie + X-CSRF-Token; not part of /api/v1)."""

from __future__ import annotations

from aiohttp import web

from campaigns import content as campaign_content
from campaigns import drafts
from campaigns.preview import personalised, sample_user
from campaigns.segments import audience
from campaigns.stats import stats_of
from config import bodies
from config.errors import Code
from hub.console.compose import content_of
from hub.errors import HubError
from hub.rest.common import hub_of, json_body
from store import segments as segment_store

routes = web.RouteTableDef()
SAMPLE = 5
_ANY: bodies.Schema = {}
#: The filter builder's live count.
PREVIEW = bodies.Body({"filter": bodies.passed_on(_ANY, required=True)})
#: The compose page's live preview: the form's content, and whom to show it as.
RENDER = bodies.Body({name: bodies.passed_on(_ANY) for name in ("title", "body", "locales", "segment_id", "user_id")})


@routes.post("/api/segments/preview")
async def preview(request: web.Request) -> web.Response:
    """The live audience of the filter being built: exact counts and the first few user ids."""
    body = PREVIEW.parse(await json_body(request, PREVIEW))
    figures = await audience(hub_of(request).pool, body["filter"], SAMPLE)
    return web.json_response(
        {
            "users": figures["users"],
            "devices": figures["devices"],
            "opted_out": figures["opted_out"],
            "sample": [s["id"] for s in figures["sample"]],
        }
    )


@routes.post("/api/campaigns/render")
async def render_preview(request: web.Request) -> web.Response:
    """The message as one user gets it (their variant, personalised), rendered by campaigns/content.py."""
    body = await json_body(request, RENDER)
    locales = body.get("locales") or []
    if not isinstance(locales, list) or not all(isinstance(r, list) and len(r) == 3 for r in locales):
        raise HubError(Code.INVALID_PAYLOAD, "locales: a list of [locale, title, body]")
    rows = [[str(x) for x in r] for r in locales if r[0] or r[1] or r[2]]
    content = campaign_content.validate(content_of(str(body.get("title") or ""), str(body.get("body") or ""), rows))
    pool = hub_of(request).pool
    user_id = str(body.get("user_id") or "").strip()
    if not user_id:
        segment_id = str(body.get("segment_id") or "")
        segment = await segment_store.get(pool, segment_id) if drafts.is_uuid(segment_id) else None
        user_id = (await sample_user(pool, segment["filter"]) if segment is not None else None) or ""
    if not user_id:
        raise HubError(Code.NOT_FOUND, "Choose a segment with users, or type a user id, to see a preview.")
    return web.json_response(await personalised(pool, content, user_id))


@routes.get("/api/campaigns/{campaign_id}/stats")
async def stats(request: web.Request) -> web.Response:
    """The same figures as GET /api/v1/campaigns/{id}/stats."""
    pool = hub_of(request).pool
    return web.json_response(await stats_of(pool, await drafts.get(pool, request.match_info["campaign_id"])))
