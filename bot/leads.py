"""Team leads, per workspace: who may approve, undo, delete and export.

`TEAM_LEADS` seeds a workspace's list the first time it is read (a conditional UPDATE of
`workspace.leads_seeded`, so two processes seed once); from then on the list is the
workspace's own, and someone removed from it stays removed whatever TEAM_LEADS says.

Adding and removing are one transaction each, decided by the rows they change (an insert that
does nothing on conflict, a delete's rowcount), with their audit entries in that transaction:
of two people adding (or removing) the same person at once, one does it and the other is told
it was done already. Workspace admins and owners count as leads too, but that is Slack's to
say (`handlers.context.is_lead`), not this list's.

A lead listed by hand is trusted without asking Slack at each click; Slack's word that one was
deactivated, made a guest or moved to another workspace (`user_change`) takes them off the
list (`drop_demoted`), audited as Slack's. That word is lost when Slack sent it while serve was
down, so a lead's first click RECHECK_AFTER after Slack last vouched for them asks again
(`Listing.due`, `vouched`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import case, delete, func, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select

from bot.audit import CLI, SLACK, Act, record_in
from bot.ids import USER_ID
from bot.workspaces import ensure_workspace
from models import Database, TeamLead, Workspace
from models.clock import as_utc, utcnow
from models.db import upsert

MAX_LEADS = 100
MAX_ADDED_AT_ONCE = 10
# How long Slack's word that a listed lead may be one holds: their first click after it asks
# Slack again. user_change takes a demoted lead off at once, but an event sent while serve was
# down (a deploy, a crash), or past Slack's last retry while the database was, never comes
# again: a lead made a guest kept approving imports and exporting the customers for good.
RECHECK_AFTER = timedelta(days=1)


class LeadsError(Exception):
    """The lead list can't change as asked; the message says why."""


class Role(StrEnum):
    """Who someone is to a workspace, as its leads list and Slack say."""

    LEAD = "lead"  # listed, or an admin or owner of this workspace
    MEMBER = "member"
    OUTSIDER = "outsider"  # of another organisation (one a channel is shared with), or a guest


SEEDED = "seed"  # team_lead.added_by of the leads TEAM_LEADS listed ...
SEEDED_CHECKED = "seed:member"  # ... once Slack said they are members of that workspace
# The release before's mark of a checked lead: checked by team alone, a guest passed (and was
# then a lead without asking Slack again, exporting the customers). Asked about again, once.
CHECKED_BY_TEAM = "seed:checked"
# A lead the shell added (`referral-bot leads add`, by id, with no Slack at hand) is asked
# about once too, when they first act: a guest's id, pasted there, made a lead for good
# (approving imports, exporting the customers) where `/referral leads` refuses guests.
CLI_CHECKED = "cli:member"  # ... once Slack said they are members of the workspace
_UNCHECKED = (SEEDED, CHECKED_BY_TEAM, CLI)
NOT_A_MEMBER = "not a member of this workspace in Slack"  # the audit's why of a shell's lead


def is_seeded(added_by: str) -> bool:
    return added_by in (SEEDED, CHECKED_BY_TEAM, SEEDED_CHECKED)


def unchecked(added_by: str | None) -> bool:
    """Is this a lead TEAM_LEADS or the shell listed whom Slack must still be asked about
    (`check_listed`)?"""
    return added_by in _UNCHECKED


async def check_listed(db: Database, team_id: str, user_id: str, *, member: bool) -> None:
    """Slack said whether a lead TEAM_LEADS or the shell listed is a member of this workspace
    (of it, not a guest): they stay (checked once), or leave its list. TEAM_LEADS seeds every
    workspace alike, so its non-members leave silently; the shell's addition was audited, and
    so is its end (actor Slack)."""
    async with db.begin() as conn:
        where = (col(TeamLead.team_id) == team_id, col(TeamLead.user_id) == user_id,
                 col(TeamLead.added_by).in_(_UNCHECKED))  # fmt: skip
        if member:
            checked = case((col(TeamLead.added_by) == CLI, CLI_CHECKED), else_=SEEDED_CHECKED)
            await conn.execute(update(TeamLead).where(*where).values(added_by=checked,
                                                                     checked_at=utcnow()))
            return
        gone = await conn.execute(delete(TeamLead).where(*where).returning(TeamLead.added_by))
        if CLI in gone.scalars().all():
            await record_in(conn, team_id, SLACK, Act.LEAD_REMOVED, mention(user_id),
                            NOT_A_MEMBER)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Lead:
    user_id: str
    added_by: str  # a Slack user id, "cli", or "seed" (TEAM_LEADS)
    added_at: datetime


@dataclass(frozen=True, slots=True)
class Added:
    """What an add did: who became a lead, and who already was one."""

    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)


def is_user_id(value: str) -> bool:
    return bool(USER_ID.match(value))


def mention(user_id: str) -> str:
    """The audit subject of a lead change (a stored id, safe to show as a mention)."""
    return f"<@{user_id}>"


async def _seed_in(conn: AsyncConnection, team_id: str, seed: Sequence[str]) -> None:
    # Read first: every is_lead() passes here, and an UPDATE (even of no row) would take
    # SQLite's write lock, queueing behind an import's chunk for nothing once seeded.
    seeded = (await conn.execute(
        select(Workspace.leads_seeded).where(col(Workspace.team_id) == team_id)
    )).scalar_one_or_none()  # fmt: skip
    if seeded:
        return
    claimed = await conn.execute(
        update(Workspace)
        .where(col(Workspace.team_id) == team_id, col(Workspace.leads_seeded).is_(False))
        .values(leads_seeded=True)
    )
    if claimed.rowcount != 1:
        return
    now = utcnow()
    for user_id in dict.fromkeys(seed):
        await _insert_in(conn, team_id, user_id, SEEDED, now)


async def _insert_in(conn: AsyncConnection, team_id: str, user_id: str, by: str,
                     now: datetime) -> bool:  # fmt: skip
    """Insert unless they are a lead already (the primary key decides, races included)."""
    stmt = upsert(conn, TeamLead).values(team_id=team_id, user_id=user_id, added_by=by[:64],
                                           added_at=now)  # fmt: skip
    done = await conn.execute(stmt.on_conflict_do_nothing(index_elements=["team_id", "user_id"]))
    return done.rowcount == 1


async def _seeded(db: Database, team_id: str, seed: Sequence[str]) -> None:
    await ensure_workspace(db, team_id)
    async with db.begin() as conn:
        await _seed_in(conn, team_id, seed)


async def leads(db: Database, team_id: str, seed: Sequence[str] = ()) -> list[Lead]:
    """The workspace's listed leads with who added them, oldest first (seeded on first use)."""
    await ensure_workspace(db, team_id)
    async with db.begin() as conn:
        await _seed_in(conn, team_id, seed)
        rows = await conn.execute(
            select(TeamLead.user_id, TeamLead.added_by, TeamLead.added_at)
            .where(col(TeamLead.team_id) == team_id)
            .order_by(col(TeamLead.added_at), col(TeamLead.user_id))
        )  # fmt: skip
        # checked or not, shown as listed by TEAM_LEADS or the shell (listed_by tells them
        # apart)
        return [Lead(str(u), SEEDED if is_seeded(str(by)) else CLI if by == CLI_CHECKED
                     else str(by), at) for u, by, at in rows]  # fmt: skip


async def lead_ids(db: Database, team_id: str, seed: Sequence[str] = ()) -> list[str]:
    """The workspace's leads, oldest first (seeded from `seed` on first use)."""
    return [lead.user_id for lead in await leads(db, team_id, seed)]


async def is_listed(db: Database, team_id: str, user_id: str, seed: Sequence[str] = ()) -> bool:
    """Is this person a listed lead?"""
    return await listed_by(db, team_id, user_id, seed) is not None


@dataclass(frozen=True, slots=True)
class Listing:
    """A listed lead: who listed them, and since when Slack's word for them holds (when it
    last said they may be a lead, else when they were listed)."""

    added_by: str
    vouched_at: datetime

    def due(self, now: datetime) -> bool:
        """Is Slack to be asked about them again (RECHECK_AFTER since its last word)?"""
        return now - self.vouched_at >= RECHECK_AFTER


async def listing(db: Database, team_id: str, user_id: str,
                  seed: Sequence[str] = ()) -> Listing | None:  # fmt: skip
    """How this person is listed as a lead, or None if they aren't. One indexed read once the
    workspace is seeded (on the database's reader: every lead-only click asks, and it must
    not queue behind an import's write nor cost the event loop a millisecond)."""
    rows = await db.reader.rows(_LISTED, {"t": team_id, "u": user_id})
    if rows and rows[0][0]:
        _, by, at = rows[0]
        return None if by is None else Listing(str(by), _stamp(at))
    for lead in await leads(db, team_id, seed):  # first use: seeds the list
        if lead.user_id == user_id:
            return Listing(lead.added_by, lead.added_at)
    return None


async def listed_by(db: Database, team_id: str, user_id: str,
                    seed: Sequence[str] = ()) -> str | None:  # fmt: skip
    """Who listed this person as a lead ("seed": TEAM_LEADS), or None if nobody did."""
    found = await listing(db, team_id, user_id, seed)
    return None if found is None else found.added_by


def _stamp(value: datetime | str) -> datetime:
    """A time the reader read raw: SQLite's text ("2026-12-07 10:00:00.123456", UTC) or
    PostgreSQL's datetime, as aware UTC."""
    return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))


_LISTED = ("SELECT w.leads_seeded, l.added_by, COALESCE(l.checked_at, l.added_at) "
           "FROM workspace w LEFT JOIN team_lead l ON l.team_id = w.team_id AND l.user_id = :u "
           "WHERE w.team_id = :t")


async def vouched(db: Database, team_id: str, user_id: str) -> None:
    """Slack said again that this listed lead may be one: its word holds RECHECK_AFTER more."""
    async with db.begin() as conn:
        await conn.execute(update(TeamLead).where(
            col(TeamLead.team_id) == team_id, col(TeamLead.user_id) == user_id,
        ).values(checked_at=utcnow()))  # fmt: skip


async def add_leads(db: Database, team_id: str, user_ids: Iterable[str], *, by: str,
                    seed: Sequence[str] = ()) -> Added:  # fmt: skip
    """Add people in one transaction (each with its audit entry); callers check who they are
    (same workspace, not a bot) first: this only knows ids."""
    wanted = list(dict.fromkeys(user_ids))
    if bad := [u for u in wanted if not is_user_id(u)]:
        raise LeadsError(f"{bad[0][:40]!r} isn't a Slack user id (like U012AB3CD).")
    if len(wanted) > MAX_ADDED_AT_ONCE:
        raise LeadsError(f"Add at most {MAX_ADDED_AT_ONCE} team leads at a time.")
    await _seeded(db, team_id, seed)
    result = Added()
    async with db.begin() as conn:
        # two additions at once go one after the other, each counting the other's leads
        # (PostgreSQL; SQLite's one writer orders them already)
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT 1 FROM workspace WHERE team_id = :t FOR UPDATE"),
                               {"t": team_id})  # fmt: skip
        now = utcnow()
        for user_id in wanted:
            if not await _insert_in(conn, team_id, user_id, by, now):
                result.already.append(user_id)
                continue
            result.added.append(user_id)
            await record_in(conn, team_id, by, Act.LEAD_ADDED, mention(user_id))
        count = (await conn.execute(
            select(func.count()).select_from(TeamLead).where(col(TeamLead.team_id) == team_id)
        )).scalar_one()  # fmt: skip
        if count > MAX_LEADS:  # the whole transaction rolls back: nobody is added
            raise LeadsError(f"A workspace has at most {MAX_LEADS} team leads.")
    return result


async def add_lead(db: Database, team_id: str, user_id: str, *, by: str,
                   seed: Sequence[str] = ()) -> bool:  # fmt: skip
    """Add a lead; False if they already were one."""
    return bool((await add_leads(db, team_id, [user_id], by=by, seed=seed)).added)


async def remove_lead(db: Database, team_id: str, user_id: str, *, by: str,
                      seed: Sequence[str] = ()) -> bool:  # fmt: skip
    """Remove a lead; False if they weren't one (or someone removed them a moment ago)."""
    await _seeded(db, team_id, seed)
    async with db.begin() as conn:
        gone = await conn.execute(delete(TeamLead).where(
            col(TeamLead.team_id) == team_id, col(TeamLead.user_id) == user_id))  # fmt: skip
        if gone.rowcount != 1:
            return False
        await record_in(conn, team_id, by, Act.LEAD_REMOVED, mention(user_id))
    return True


_LISTED_NOW = "SELECT 1 FROM team_lead WHERE team_id = :t AND user_id = :u"


async def drop_demoted(db: Database, team_id: str, user_id: str, why: str) -> bool:
    """Take off the list a lead Slack says may no longer be one (`why`: "deactivated in
    Slack", "made a guest in Slack"...); False if they weren't listed (or a retry of the
    same news took them off a moment ago).

    A listed lead is trusted without asking Slack at each click (`role_in`), so this is what
    ends a deactivated or downgraded lead's approvals and exports. Slack tells of every
    profile change of every guest, so the list is read first (on the reader: no write lock
    taken, nothing queued behind an import) and the conditional delete, with its audit entry
    (actor SLACK), runs only for a listed lead: of two deliveries of the same event, one
    deletes and records, the other changes nothing."""
    if not await db.reader.rows(_LISTED_NOW, {"t": team_id, "u": user_id}):
        return False
    async with db.begin() as conn:
        gone = await conn.execute(delete(TeamLead).where(
            col(TeamLead.team_id) == team_id, col(TeamLead.user_id) == user_id))  # fmt: skip
        if gone.rowcount != 1:
            return False
        await record_in(conn, team_id, SLACK, Act.LEAD_REMOVED, mention(user_id), why)
    return True
