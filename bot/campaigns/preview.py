"""Before a lead approves an import: who of it a live campaign will invite, and who not.

Counted from the batch's queued rows against what the database holds now (existing contacts,
their consent, advocates, excluded segments, suppressed addresses), for every live campaign
targeting the segment; the segment itself may be one the campaign excludes (it targets All
Customers), and then every row is excluded, new contacts too.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.campaigns.enroll import (
    NOT_SUBSCRIBED,
    UNDONE_REASONS,
    UNSUBSCRIBED,
    in_excluded_segment,
)
from bot.imports.engine import UNSUBSCRIBING_REPEATS
from models import Database, SegmentKind

# Targeting the segment or All Customers: every contact an import adds is in All Customers
# too, and enroll_after_import_in enrolls (and emails) them for both alike.
_LIVE_TARGETING = text("""
    SELECT c.id, c.name, c.invite_email, c.invite_delay_days FROM campaign c
    WHERE c.team_id = :t AND c.state = 'live' AND EXISTS (
        SELECT 1 FROM campaign_segment cs JOIN segment g ON g.id = cs.segment_id AND g.team_id = :t
        WHERE cs.campaign_id = c.id AND cs.team_id = :t AND cs.role = 'target'
          AND (cs.segment_id = :s OR g.kind = :all))
    ORDER BY c.name_key
""")

_COUNTS = text(f"""
    SELECT COUNT(*),
           COALESCE(SUM(CASE WHEN q.advocate THEN 1 ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN NOT q.advocate AND q.excluded THEN 1 ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN NOT q.advocate AND NOT q.excluded AND q.unsubscribed
                             AND NOT q.opted_out THEN 1 ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN NOT q.advocate AND NOT q.excluded AND q.unsubscribed
                             AND q.opted_out THEN 1 ELSE 0 END), 0),
           COALESCE(SUM(CASE WHEN NOT q.advocate AND NOT q.excluded
                             AND NOT COALESCE(q.unsubscribed, :no) AND q.invited_before
                             THEN 1 ELSE 0 END), 0)
    FROM (
        SELECT EXISTS (SELECT 1 FROM advocate a WHERE a.campaign_id = :c
                       AND a.contact_id = k.id
                       -- one whose invite an undo cancelled is invited again (enroll.py)
                       AND NOT EXISTS (SELECT 1 FROM invite i WHERE i.campaign_id = :c
                                       AND i.contact_id = k.id AND i.state = 'cancelled'
                                       AND i.reason LIKE '{UNDONE_REASONS}')) AS advocate,
               ({in_excluded_segment("k.id")}
                OR EXISTS (SELECT 1 FROM campaign_segment cs WHERE cs.campaign_id = :c
                           AND cs.team_id = :t AND cs.role = 'exclude'
                           AND cs.segment_id = :s)) AS excluded,
               (s.subscribed = :no
                OR (k.subscribed = :no
                    AND NOT COALESCE(:resubscribes AND k.unsubscribed_at IS NULL
                                     AND s.subscribed = :yes, :no))
                OR s.email_key IN ({UNSUBSCRIBING_REPEATS})
                OR (k.id IS NULL AND EXISTS (SELECT 1 FROM suppressed_address x
                                             WHERE x.team_id = :t
                                               AND x.email_key = s.email_key))
               ) AS unsubscribed,
               -- enroll.consent_reason's UNSUBSCRIBED: `unsubscribed_at` set, which the apply
               -- sets only on a suppressed address it creates again (engine._SUPPRESSED)
               (k.unsubscribed_at IS NOT NULL
                OR (k.id IS NULL AND EXISTS (SELECT 1 FROM suppressed_address x
                                             WHERE x.team_id = :t
                                               AND x.email_key = s.email_key))
               ) AS opted_out,
               -- a deleted contact this campaign emailed, created again (InvitedAddress)
               (k.id IS NULL AND EXISTS (SELECT 1 FROM invited_address x WHERE x.team_id = :t
                                         AND x.campaign_id = :c
                                         AND x.email_key = s.email_key)) AS invited_before
        FROM staged_row s
        LEFT JOIN contact k ON k.team_id = s.team_id AND k.email_key = s.email_key
        WHERE s.team_id = :t AND s.batch_id = :b AND s.outcome = 'valid' AND s.removed = :no
          AND s.source_id IN (SELECT id FROM import_source WHERE team_id = :t
                              AND batch_id = :b AND removed = :no AND status = 'parsed')
    ) q
""")


@dataclass(frozen=True, slots=True)
class CampaignPreview:
    campaign: str
    will_invite: int
    invite_in_days: int  # 0: at once
    without_email: dict[str, int]  # reason -> count
    already_advocates: int
    excluded: int
    invites_on: bool = True  # the campaign sends invite emails (consent must be confirmed)


def _targeting(team_id: str, segment_id: int | None) -> dict[str, object]:
    """_LIVE_TARGETING's parameters; a segment not created yet (None) is targeted by nobody,
    but All Customers still is."""
    return {"t": team_id, "s": segment_id or 0, "all": SegmentKind.ALL}


async def inviting_campaigns(conn: AsyncConnection, team_id: str,
                             segment_id: int | None) -> list[str]:  # fmt: skip
    """Names of the live campaigns targeting the segment (or All Customers) that send invite
    emails: an import into it needs the requester's word that these people agreed to hear
    from us."""
    rows = (await conn.execute(_LIVE_TARGETING, _targeting(team_id, segment_id))).all()
    return [str(name) for _, name, invite_email, _ in rows if invite_email]


async def preview_batch(db: Database, team_id: str, batch_id: int, segment_id: int | None
                        ) -> list[CampaignPreview]:  # fmt: skip
    """One preview per live campaign that targets the segment or All Customers (none: an
    empty list)."""
    out = []
    async with db.begin() as conn:
        campaigns = (await conn.execute(_LIVE_TARGETING, _targeting(team_id, segment_id))).all()
        # --update-existing gives a known contact its consent back when the file says yes
        # (not after it unsubscribed through our link): the apply's _GIVE_CONSENT
        resubscribes = bool((await conn.execute(text(
            "SELECT update_existing FROM import_batch WHERE team_id = :t AND id = :b"),
            {"t": team_id, "b": batch_id})).scalar())  # fmt: skip
        for campaign_id, name, invite_email, delay in campaigns:
            row = (await conn.execute(_COUNTS, {
                "t": team_id, "b": batch_id, "c": campaign_id, "no": False, "yes": True,
                "s": segment_id or 0, "resubscribes": resubscribes})).one()  # fmt: skip
            total, already, excluded, not_subscribed, unsubscribed, before = row
            no_consent = not_subscribed + unsubscribed
            enrolling = total - already - excluded
            # worded as the invites will record it (enroll.consent_reason), consent first, as
            # each invite's start checks it: one not subscribed is never "invite email off"
            without: dict[str, int] = {}
            if not invite_email:
                without["invite email off"] = enrolling - no_consent
            without.update({NOT_SUBSCRIBED: not_subscribed, UNSUBSCRIBED: unsubscribed})
            if invite_email:
                without["invited before"] = before
            invited = 0 if not invite_email else enrolling - no_consent - before
            out.append(CampaignPreview(name, invited, delay if invite_email else 0,
                                       {k: v for k, v in without.items() if v},
                                       already, excluded, bool(invite_email)))  # fmt: skip
    return out
