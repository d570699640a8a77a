"""Unsubscribing: sticky, idempotent, and it stops every invite not yet sent."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.campaigns.enroll import UNSUBSCRIBED
from bot.notify import enqueue_enrollment_report_in
from models import Database, SuppressedAddress
from models.clock import utcnow
from models.db import upsert
from models.locks import lock_contacts

_UNSUBSCRIBE = text("""
    UPDATE contact SET subscribed = :no, unsubscribed_at = COALESCE(unsubscribed_at, :now),
                       updated_at = :now
    WHERE team_id = :t AND id = :c AND email_key = :k RETURNING email
""").bindparams(bindparam("now", type_=UTCDateTime()))

# what is being handed to the mail server can't be recalled, everything still waiting is
# stopped; "unsubscribed": every caller sets `unsubscribed_at` (enroll.consent_reason)
_STOP_INVITES = text(f"""
    UPDATE invite SET state = 'not_emailed', reason = '{UNSUBSCRIBED}', updated_at = :now
    WHERE team_id = :t AND contact_id = :c AND state IN ('queued', 'held')
    RETURNING enrollment_id
""").bindparams(bindparam("now", type_=UTCDateTime()))


async def stop_invites_in(conn: AsyncConnection, params: dict[str, Any]) -> int:
    """Stop the invites of contact :c not yet sent (params :t, :c, :now), and queue a redraw
    of the enrollment reports they belong to (their held count and *Cancel invites* would
    stay as they were). Returns how many. Shared with bot/contact_admin.py (a lead's
    Unsubscribe)."""
    stopped = (await conn.execute(_STOP_INVITES, params)).scalars().all()
    await redraw_reports_in(conn, str(params["t"]), stopped)
    return len(stopped)


async def redraw_reports_in(conn: AsyncConnection, team_id: str,
                            enrollment_ids: Iterable[int | None]) -> None:  # fmt: skip
    """Queue a redraw of each of these enrollments' reports (None: no enrollment), once each,
    inside the caller's transaction."""
    for enrollment_id in sorted({int(e) for e in enrollment_ids if e is not None}):
        await enqueue_enrollment_report_in(conn, team_id, enrollment_id)


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
        await stop_invites_in(conn, params)
        return str(row[0])


# The addresses of deleted contacts a workspace still knows: those a campaign emailed
# (models.InvitedAddress), whose links may still be clicked, and those suppressed already.
_REMEMBERED = text("""
    SELECT email_key FROM invited_address WHERE team_id = :t
    UNION SELECT email_key FROM suppressed_address WHERE team_id = :t
""")


async def remembered_addresses(db: Database, team_id: str) -> list[str]:
    """The address keys an unsubscribe link whose contact is gone may have been made for."""
    async with db.begin() as conn:
        return [str(key) for key in (await conn.execute(_REMEMBERED, {"t": team_id})).scalars()]


_OFF_THE_LIST = text("""
    SELECT 1 FROM suppressed_address x WHERE x.team_id = :t AND x.email_key = :k
      AND NOT EXISTS (SELECT 1 FROM contact c WHERE c.team_id = :t AND c.email_key = :k
                                                AND c.unsubscribed_at IS NULL)
""")
_UNSUBSCRIBE_ADDRESS = text("""
    UPDATE contact SET subscribed = :no, unsubscribed_at = COALESCE(unsubscribed_at, :now),
                       updated_at = :now
    WHERE team_id = :t AND email_key = :k RETURNING id
""").bindparams(bindparam("now", type_=UTCDateTime()))


async def suppressed(db: Database, team_id: str, email_key: str) -> bool:
    """Whether a deleted contact's address is unsubscribed for good: suppressed (an import
    creates it again unsubscribed), and any contact with it now unsubscribed too."""
    async with db.begin() as conn:
        found = await conn.execute(_OFF_THE_LIST, {"t": team_id, "k": email_key})
        return found.first() is not None


async def suppress(db: Database, team_id: str, email_key: str) -> None:
    """Unsubscribe a deleted contact's address, as deleting it after it unsubscribed does
    (models.SuppressedAddress): the import that creates it again creates it unsubscribed,
    and a contact an import has made of it already is unsubscribed, its invites stopped.

    The contacts lock, exclusive, waits for an import's chunk under way, which would create
    the contact subscribed after this reads none (models/locks.py)."""
    params = {"t": team_id, "k": email_key, "no": False, "now": utcnow()}
    async with db.begin() as conn:
        await lock_contacts(conn, team_id, exclusive=True)
        await conn.execute(upsert(conn, SuppressedAddress).values(
            team_id=team_id, email_key=email_key, suppressed_at=params["now"],
        ).on_conflict_do_nothing(index_elements=["team_id", "email_key"]))  # fmt: skip
        for contact_id in (await conn.execute(_UNSUBSCRIBE_ADDRESS, params)).scalars().all():
            await stop_invites_in(conn, {**params, "c": contact_id})


# ... and the language its latest invite went out in: the pages it reaches from it speak it,
# though the contact's locale or the workspace's default changed since (a German page for an
# English invite, after DEFAULT_LOCALE=de). An `uncertain` invite went out too, as far as
# anyone knows (a click on its link says it arrived); it has no sent_at
_RECIPIENT = text("""
    SELECT c.email_key, c.locale, w.default_locale, c.unsubscribed_at,
           (SELECT i.locale FROM invite i WHERE i.team_id = c.team_id AND i.contact_id = c.id
              AND i.state IN ('sent', 'uncertain') AND i.locale IS NOT NULL
            ORDER BY COALESCE(i.sent_at, i.updated_at) DESC, i.id DESC LIMIT 1) AS sent_in
    FROM contact c LEFT JOIN workspace w ON w.team_id = c.team_id
    WHERE c.team_id = :t AND c.id = :c
""")


class Recipient(NamedTuple):
    email_key: str  # what an unsubscribe token is signed over
    locale: str | None  # the contact's own; None: the workspace's default
    default_locale: str
    # they (or a lead) unsubscribed, which no import undoes; an import saying they accept no
    # marketing switches `subscribed` off until the next one says yes again
    unsubscribed: bool
    sent_in: str | None = None  # the language of the latest invite sent to them

    def language(self) -> str:
        """The language their pages speak: their latest invite's, else chosen as an invite's
        would be."""
        from bot.email.render import choose_locale  # the email package: only when asked

        return self.sent_in or choose_locale(self.locale, self.default_locale)[0]


async def recipient_of(db: Database, team_id: str, contact_id: int) -> Recipient | None:
    """The contact's email key, languages (its invites' language: the pages it reaches from
    them speak it too) and whether it unsubscribed; None if no contact has that id."""
    async with db.begin() as conn:
        row = (await conn.execute(_RECIPIENT, {"t": team_id, "c": contact_id})).first()
    return None if row is None else Recipient(str(row[0]), row[1], str(row[2] or "en"),
                                              row[3] is not None, row[4])  # fmt: skip
