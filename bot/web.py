"""The public pages `serve` answers beside Slack: referral links and unsubscribe links.

They are served in HTTP and Socket Mode alike, to anyone on the internet, so they reveal
nothing: an unknown code is a plain 404, a forged unsubscribe token a plain 400, and a GET
never unsubscribes (mail scanners follow links); only the POST does (RFC 8058 one-click).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import text

from bot.campaigns.codes import normalise
from bot.campaigns.consent import unsubscribe
from bot.campaigns.links import BadToken, read_unsubscribe_token
from bot.settings import Settings
from models import Database

log = logging.getLogger(__name__)
_PAGES = Environment(loader=PackageLoader("bot", "pages"),
                     autoescape=select_autoescape(["html", "html.j2"]))  # fmt: skip

_CLICK = text("""
    UPDATE advocate SET clicks = clicks + 1 WHERE code = :code
    RETURNING (SELECT store_url FROM campaign WHERE campaign.id = advocate.campaign_id)
""")


def with_ref(store_url: str, code: str) -> str:
    """The store URL with `ref=<code>` in its query (replacing any `ref` already there)."""
    parts = urlsplit(store_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "ref"]
    query.append(("ref", code))
    return urlunsplit(parts._replace(query=urlencode(query)))


def page(title: str, message: str, *, status: int = 200, action: str | None = None,
         button: str = "") -> web.Response:  # fmt: skip
    body = _PAGES.get_template("page.html.j2").render(title=title, message=message, action=action,
                                                      button=button)  # fmt: skip
    return web.Response(text=body, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store"})  # fmt: skip


def public_routes(db: Database, settings: Settings) -> list[web.RouteDef]:
    async def referral(request: web.Request) -> web.StreamResponse:
        code = normalise(request.match_info["code"])
        async with db.begin() as conn:
            row = (await conn.execute(_CLICK, {"code": code})).first()
        if row is None or not row[0]:
            return page("Link not found", "This referral link doesn't exist.", status=404)
        raise web.HTTPFound(with_ref(str(row[0]), code))

    def _contact(request: web.Request) -> tuple[str, int] | None:
        try:
            return read_unsubscribe_token(settings.secret_key, request.match_info["token"])
        except BadToken as exc:
            log.warning("refused an unsubscribe token (%s) from %s", exc, request.remote)
            return None

    async def unsubscribe_form(request: web.Request) -> web.Response:
        if _contact(request) is None:
            return page("Link not valid", "This unsubscribe link isn't valid.", status=400)
        return page("Unsubscribe", "Stop receiving referral invitations at this address?",
                    action=request.path, button="Unsubscribe")  # fmt: skip

    async def unsubscribe_now(request: web.Request) -> web.Response:
        found = _contact(request)
        if found is None:
            return page("Link not valid", "This unsubscribe link isn't valid.", status=400)
        await unsubscribe(db, *found)
        return page("You're unsubscribed", "You won't receive referral invitations from us "
                    "at this address any more.")  # fmt: skip

    return [
        web.get("/r/{code}", referral),
        web.get("/u/{token}", unsubscribe_form),
        web.post("/u/{token}", unsubscribe_now),
    ]
