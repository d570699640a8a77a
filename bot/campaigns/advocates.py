"""Reading advocates back: who is enrolled, their link, and where their invite stands."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.campaigns.links import referral_link
from models import Database

_ROWS = text("""
    SELECT c.email, a.code, c.subscribed, c.unsubscribed_at IS NOT NULL,
           COALESCE(i.state, 'not_emailed'), a.clicks, i.reason, i.send_after,
           CASE WHEN i.fell_back THEN i.locale END, c.locale
    FROM advocate a
    JOIN contact c ON c.id = a.contact_id AND c.team_id = a.team_id
    LEFT JOIN invite i ON i.campaign_id = a.campaign_id AND i.contact_id = a.contact_id
      AND i.team_id = a.team_id
    WHERE a.team_id = :t AND a.campaign_id = :c
    ORDER BY a.id
""").columns(send_after=UTCDateTime())
# states whose reason a merchant needs (why it failed, why nobody emailed them, what is
# uncertain), and those waiting for a time (held, delayed, retried later)
_WHY = frozenset({"failed", "not_emailed", "uncertain", "cancelled"})
_WAITING = frozenset({"queued", "held"})


async def advocate_rows(db: Database, team_id: str, campaign_id: int, public_url: str
                        ) -> AsyncIterator[dict[str, Any]]:  # fmt: skip
    """email, code, link, subscribed, unsubscribed (through our link: not merely never
    subscribed), invite state, its reason (failed, not emailed, uncertain, cancelled: the
    command line said `failed` and never why), when a waiting one is due, and clicks of each
    advocate, streamed; `fell_back_to`: the language an invite was sent in instead of the
    contact's own (`locale`), which has no template (Slack's report said so, the shell
    didn't)."""
    async with db.engine.connect() as conn:
        result = await conn.stream(_ROWS, {"t": team_id, "c": campaign_id})
        async for (email, code, subscribed, unsubscribed, state, clicks, why, due, fell_back_to,
                   locale) in result:
            yield {"email": email, "code": code, "link": referral_link(public_url, code),
                   "subscribed": bool(subscribed), "unsubscribed": bool(unsubscribed),
                   "invite": state, "clicks": clicks,
                   "invite_reason": why if state in _WHY else None,
                   "invite_due": due.isoformat() if due and state in _WAITING else None,
                   "locale": locale, "fell_back_to": fell_back_to}
