"""Unsubscribing: sticky, idempotent, and it stops every invite not yet sent."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from models import Database
from models.clock import utcnow

_UNSUBSCRIBE = text("""
    UPDATE contact SET subscribed = :no, unsubscribed_at = COALESCE(unsubscribed_at, :now),
                       updated_at = :now
    WHERE team_id = :t AND id = :c AND email_key = :k RETURNING email
""").bindparams(bindparam("now", type_=UTCDateTime()))

# shared with bot/contact_admin.py (a lead's Unsubscribe): what is being handed to the mail
# server can't be recalled, everything still waiting is stopped
STOP_INVITES = text("""
    UPDATE invite SET state = 'not_emailed', reason = 'unsubscribed', updated_at = :now
    WHERE team_id = :t AND contact_id = :c AND state IN ('queued', 'held')
""").bindparams(bindparam("now", type_=UTCDateTime()))


async def unsubscribe(db: Database, team_id: str, contact_id: int, email_key: str
                      ) -> str | None:  # fmt: skip
    """Unsubscribe a contact (again is fine); returns its email, None if no contact has that id
    and address key (any more).

    No later import re-subscribes it: `unsubscribed_at` stays set. The key is the one the
    link was checked against, in another transaction: SQLite gives a contact deleted since to
    the next one imported, which the id alone would unsubscribe.
    """
    params = {"t": team_id, "c": contact_id, "k": email_key, "no": False, "now": utcnow()}
    async with db.begin() as conn:
        row = (await conn.execute(_UNSUBSCRIBE, params)).first()
        if row is None:
            return None
        await conn.execute(STOP_INVITES, params)
        return str(row[0])


_RECIPIENT = text("""
    SELECT c.email_key, c.locale, w.default_locale, c.unsubscribed_at FROM contact c
    LEFT JOIN workspace w ON w.team_id = c.team_id
    WHERE c.team_id = :t AND c.id = :c
""")


class Recipient(NamedTuple):
    email_key: str  # what an unsubscribe token is signed over
    locale: str | None  # the contact's own; None: the workspace's default
    default_locale: str
    # they (or a lead) unsubscribed, which no import undoes; an import saying they accept no
    # marketing switches `subscribed` off until the next one says yes again
    unsubscribed: bool


async def recipient_of(db: Database, team_id: str, contact_id: int) -> Recipient | None:
    """The contact's email key, languages (its invites' language: the pages it reaches from
    them speak it too) and whether it unsubscribed; None if no contact has that id."""
    async with db.begin() as conn:
        row = (await conn.execute(_RECIPIENT, {"t": team_id, "c": contact_id})).first()
    return None if row is None else Recipient(str(row[0]), row[1], str(row[2] or "en"),
                                              row[3] is not None)  # fmt: skip
