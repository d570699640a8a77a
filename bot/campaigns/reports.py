"""What an enrollment's report says, counted from its advocates and invite rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.campaigns.invite_sql import has_its_advocate, left_by_a_dead_run, with_now
from models import Campaign, Database, Enrollment
from models.clock import utcnow

# Why an invite went unsent because its campaign's invite email was off (enrolled while it
# was, or waiting when it was turned off): once it is on again a lead may send them
# (invites.email_unsent), never the bot by itself (a Klaviyo flow may have invited them).
INVITE_EMAIL_OFF = "invite email off"


@dataclass(frozen=True, slots=True)
class EnrollmentSummary:
    enrollment: Enrollment
    campaign: Campaign
    segment: str | None
    by_state: dict[str, int] = field(default_factory=dict)
    not_emailed: dict[str, int] = field(default_factory=dict)  # reason -> count
    fell_back: dict[str, int] = field(default_factory=dict)  # locale used instead -> count
    # when the first held invite goes: the hold's end, or later with the campaign's delay
    held_until: datetime | None = None
    # its advocates still there, counted from the rows: an undo with its advocates removes
    # some after the enrollment recorded how many it made
    advocates: int = 0
    # uncertain invites a resend can send (its advocate an undo didn't take out; one a dead
    # run left `sending` too): the report's *Resend uncertain* is offered for these
    resendable: int = 0

    def count(self, state: str) -> int:
        return self.by_state.get(state, 0)

    @property
    def unsent_while_off(self) -> int:
        """Invites the invite email being off left unsent, which a lead may send now that it
        is on again (0 while it is off)."""
        return self.not_emailed.get(INVITE_EMAIL_OFF, 0) if self.campaign.invite_email else 0

    @property
    def holding(self) -> bool:
        """Whether invites are still held (*Cancel invites* can stop them): until the held
        invites' own time, which a campaign's delay makes days past the hold window; by the
        window alone the button went after 5 minutes while the report said "held until" in
        three days, and Cancel invites still worked."""
        hold = self.held_until or self.enrollment.hold_until
        return self.count("held") > 0 and hold is not None and hold > utcnow()


_REPORTED_WAITING = text("""
    SELECT e.id FROM enrollment e
    WHERE e.team_id = :t AND e.campaign_id = :c AND e.report_ts IS NOT NULL
      AND EXISTS (SELECT 1 FROM invite i WHERE i.team_id = :t AND i.enrollment_id = e.id
                  AND i.state IN ('queued', 'held'))
    ORDER BY e.id
""")


_REPORTED_UNSENT_WHILE_OFF = text("""
    SELECT e.id FROM enrollment e
    WHERE e.team_id = :t AND e.campaign_id = :c AND e.report_ts IS NOT NULL
      AND EXISTS (SELECT 1 FROM invite i WHERE i.team_id = :t AND i.enrollment_id = e.id
                  AND i.state = 'not_emailed' AND i.reason = :off)
    ORDER BY e.id
""")


async def reported_unsent_while_off_in(conn: AsyncConnection, team_id: str,
                                           campaign_id: int) -> list[int]:  # fmt: skip
    """The campaign's enrollments with a report in a thread and invites its invite email
    being off left unsent: their *Email them* comes and goes with the invite email."""
    rows = await conn.execute(_REPORTED_UNSENT_WHILE_OFF,
                              {"t": team_id, "c": campaign_id, "off": INVITE_EMAIL_OFF})
    return [int(r[0]) for r in rows]


async def unsent_while_off(db: Database, team_id: str, campaign_id: int) -> int:
    """How many of the campaign's invites its invite email being off left unsent."""
    async with db.begin() as conn:
        return int((await conn.execute(text(
            "SELECT COUNT(*) FROM invite WHERE team_id = :t AND campaign_id = :c "
            "AND state = 'not_emailed' AND reason = :off"),
            {"t": team_id, "c": campaign_id, "off": INVITE_EMAIL_OFF})).scalar_one())  # fmt: skip


async def reported_waiting_in(conn: AsyncConnection, team_id: str, campaign_id: int) -> list[int]:
    """The campaign's enrollments with a report in a thread and invites not sent yet: what
    those reports say (held until, Cancel invites) changes when the campaign's invite email
    or delay does, or it is paused or goes live again, so they are drawn again then."""
    rows = await conn.execute(_REPORTED_WAITING, {"t": team_id, "c": campaign_id})
    return [int(r[0]) for r in rows]


async def enrollment_summary(db: Database, team_id: str, enrollment_id: int) -> EnrollmentSummary:
    async with db.session() as session:
        enrollment = await session.get(Enrollment, enrollment_id)
        if enrollment is None or enrollment.team_id != team_id:
            raise LookupError("That enrollment doesn't exist in this workspace.")
        campaign = await session.get(Campaign, enrollment.campaign_id)
        assert campaign is not None and campaign.team_id == team_id
        segment = None
        if enrollment.segment_id is not None:
            segment = (await session.exec(text(  # type: ignore[call-overload]
                "SELECT name FROM segment WHERE id = :s AND team_id = :t"
            ).bindparams(s=enrollment.segment_id, t=team_id))).scalar()  # fmt: skip
        rows = (await session.exec(text(  # type: ignore[call-overload]
            "SELECT state, reason, fell_back, locale, COUNT(*) FROM invite "
            "WHERE team_id = :t AND enrollment_id = :e GROUP BY state, reason, fell_back, locale"
        ).bindparams(t=team_id, e=enrollment_id))).all()  # fmt: skip
        held_until = (await session.exec(text(  # type: ignore[call-overload]
            "SELECT MIN(send_after) AS due FROM invite WHERE team_id = :t AND enrollment_id = :e "
            "AND state = 'held'").bindparams(t=team_id, e=enrollment_id)
            .columns(due=UTCDateTime()))).scalar()  # fmt: skip
        advocates = (await session.exec(text(  # type: ignore[call-overload]
            "SELECT COUNT(*) FROM advocate WHERE team_id = :t AND enrollment_id = :e"
        ).bindparams(t=team_id, e=enrollment_id))).scalar()  # fmt: skip
        resendable = (await session.exec(with_now(text(  # type: ignore[call-overload]
            "SELECT COUNT(*) FROM invite WHERE team_id = :t AND enrollment_id = :e "
            f"AND state IN ('uncertain', 'sending') AND {has_its_advocate('invite')} AND "
            f"(state = 'uncertain' OR {left_by_a_dead_run('invite', db.is_sqlite)})"
        ), db.is_sqlite).bindparams(t=team_id, e=enrollment_id))).scalar()  # fmt: skip
    by_state: dict[str, int] = {}
    not_emailed: dict[str, int] = {}
    fell_back: dict[str, int] = {}
    for state, reason, fell, locale, n in rows:
        by_state[state] = by_state.get(state, 0) + n
        if state == "not_emailed":
            not_emailed[reason or "not emailed"] = not_emailed.get(reason or "not emailed", 0) + n
        if state == "sent" and fell:
            fell_back[locale or "?"] = fell_back.get(locale or "?", 0) + n
    return EnrollmentSummary(enrollment, campaign, segment, by_state, not_emailed, fell_back,
                             held_until, int(advocates or 0), int(resendable or 0))  # fmt: skip


async def failed_invites(db: Database, team_id: str, enrollment_id: int) -> list[tuple[str, str]]:
    """(email, why) of every invite that failed or may not have arrived, for the CSV."""
    async with db.begin() as conn:
        rows = await conn.execute(text(
            "SELECT c.email, i.state, COALESCE(i.reason, '') FROM invite i "
            "JOIN contact c ON c.id = i.contact_id WHERE i.team_id = :t AND i.enrollment_id = :e "
            "AND i.state IN ('failed', 'uncertain') ORDER BY i.id"),
            {"t": team_id, "e": enrollment_id})  # fmt: skip
        return [(email, f"{state}: {reason}") for email, state, reason in rows]


async def claim_report(db: Database, team_id: str, enrollment_id: int, ts: str) -> str:
    """Keep `ts` as the enrollment's one report reply unless another was kept first; returns
    the reply kept (two reports posted at once: the loser deletes its own)."""
    params = {"ts": ts, "e": enrollment_id, "t": team_id}
    async with db.begin() as conn:
        await conn.execute(text("UPDATE enrollment SET report_ts = :ts "
                                "WHERE id = :e AND team_id = :t AND report_ts IS NULL"), params)
        kept = (await conn.execute(text("SELECT report_ts FROM enrollment "
                                        "WHERE id = :e AND team_id = :t"), params)).scalar()
    return str(kept or ts)


async def forget_report(db: Database, team_id: str, enrollment_id: int, ts: str) -> None:
    """The report `ts` is gone (someone deleted it): the next refresh posts anew."""
    async with db.begin() as conn:
        await conn.execute(text("UPDATE enrollment SET report_ts = NULL "
                                "WHERE id = :e AND team_id = :t AND report_ts = :ts"),
                           {"e": enrollment_id, "t": team_id, "ts": ts})  # fmt: skip
