"""Team leads, per workspace: who may approve, undo, delete and export.

`TEAM_LEADS` seeds a workspace's list the first time it is read (a conditional UPDATE of
`workspace.leads_seeded`, so two processes seed once); from then on the list is the
workspace's own, and someone removed from it stays removed whatever TEAM_LEADS says.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select

from bot.audit import Act, record_in
from bot.workspaces import ensure_workspace
from models import Database, TeamLead, Workspace
from models.clock import utcnow

MAX_LEADS = 100


class LeadsError(Exception):
    """The lead list can't change as asked; the message says why."""


async def _seed_in(conn: AsyncConnection, team_id: str, seed: Sequence[str]) -> None:
    claimed = await conn.execute(
        update(Workspace)
        .where(col(Workspace.team_id) == team_id, col(Workspace.leads_seeded).is_(False))
        .values(leads_seeded=True)
    )
    if claimed.rowcount != 1:
        return
    now = utcnow()
    for user_id in dict.fromkeys(seed):
        await conn.execute(insert(TeamLead).values(team_id=team_id, user_id=user_id,
                                                   added_by="seed", added_at=now))  # fmt: skip


async def lead_ids(db: Database, team_id: str, seed: Sequence[str] = ()) -> list[str]:
    """The workspace's leads, oldest first (seeded from `seed` on first use)."""
    await ensure_workspace(db, team_id)
    async with db.begin() as conn:
        await _seed_in(conn, team_id, seed)
        rows = await conn.execute(
            select(TeamLead.user_id).where(col(TeamLead.team_id) == team_id)
            .order_by(col(TeamLead.added_at), col(TeamLead.user_id))
        )  # fmt: skip
        return [str(u) for u in rows.scalars()]


async def is_listed(db: Database, team_id: str, user_id: str, seed: Sequence[str] = ()) -> bool:
    return user_id in await lead_ids(db, team_id, seed)


async def add_lead(db: Database, team_id: str, user_id: str, *, by: str,
                   seed: Sequence[str] = ()) -> bool:  # fmt: skip
    """Add a lead; False if they already were one."""
    current = await lead_ids(db, team_id, seed)
    if user_id in current:
        return False
    if len(current) >= MAX_LEADS:
        raise LeadsError(f"A workspace has at most {MAX_LEADS} team leads.")
    async with db.begin() as conn:
        same = (col(TeamLead.team_id) == team_id, col(TeamLead.user_id) == user_id)
        if (await conn.execute(select(TeamLead.user_id).where(*same))).first() is not None:
            return False
        await conn.execute(insert(TeamLead).values(team_id=team_id, user_id=user_id,
                                                   added_by=by, added_at=utcnow()))  # fmt: skip
        await record_in(conn, team_id, by, Act.LEAD_ADDED, f"<@{user_id}>")
    return True


async def remove_lead(db: Database, team_id: str, user_id: str, *, by: str,
                      seed: Sequence[str] = ()) -> bool:  # fmt: skip
    """Remove a lead; False if they weren't one."""
    await lead_ids(db, team_id, seed)
    async with db.begin() as conn:
        gone = await conn.execute(delete(TeamLead).where(
            col(TeamLead.team_id) == team_id, col(TeamLead.user_id) == user_id))  # fmt: skip
        if gone.rowcount != 1:
            return False
        await record_in(conn, team_id, by, Act.LEAD_REMOVED, f"<@{user_id}>")
    return True
