"""Workspaces and segments: the scope every other service works in."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select

from models import Contact, Database, Segment, SegmentKind, SegmentMember, Workspace
from models.contacts import ALL_CUSTOMERS

LOCAL_TEAM = "local"  # the CLI's workspace when no Slack workspace exists yet
MAX_SEGMENT_NAME = 100


class WorkspaceError(Exception):
    """A workspace or segment can't be found or used as asked; the message says why."""


def segment_key(name: str) -> str:
    return " ".join(name.split()).casefold()


async def ensure_workspace(db: Database, team_id: str, *, default_locale: str = "en") -> Workspace:
    """The workspace row (created with its built-in All Customers segment on first use)."""
    async with db.session() as session:
        workspace = await session.get(Workspace, team_id)
        if workspace is not None:
            return workspace
        workspace = Workspace(team_id=team_id, default_locale=default_locale)
        session.add(workspace)
        await session.flush()  # the segment's foreign key needs the workspace row first
        session.add(
            Segment(team_id=team_id, name=ALL_CUSTOMERS, name_key=segment_key(ALL_CUSTOMERS),
                    kind=SegmentKind.ALL)
        )  # fmt: skip
        await session.commit()
        return workspace


async def resolve_team(db: Database, team_id: str | None, *, default_locale: str = "en") -> str:
    """The team to work in: the one named, else the only one, else a new local one."""
    async with db.session() as session:
        teams = list((await session.exec(select(Workspace.team_id).limit(2))).all())
    if team_id is not None:
        if team_id not in teams and not await _exists(db, team_id):
            raise WorkspaceError(f"No workspace {team_id!r}. Known: {', '.join(teams) or 'none'}.")
        return team_id
    if len(teams) > 1:
        raise WorkspaceError("There are several workspaces: choose one with --team.")
    if teams:
        return teams[0]
    await ensure_workspace(db, LOCAL_TEAM, default_locale=default_locale)
    return LOCAL_TEAM


async def _exists(db: Database, team_id: str) -> bool:
    async with db.session() as session:
        return await session.get(Workspace, team_id) is not None


async def find_segment(db: Database, team_id: str, name: str) -> Segment | None:
    async with db.session() as session:
        query = select(Segment).where(
            Segment.team_id == team_id, Segment.name_key == segment_key(name)
        )
        return (await session.exec(query)).first()


async def get_segment(db: Database, team_id: str, segment_id: int) -> Segment:
    async with db.session() as session:
        segment = await session.get(Segment, segment_id)
    if segment is None or segment.team_id != team_id:
        raise WorkspaceError("That segment no longer exists.")
    return segment


async def create_segment(db: Database, team_id: str, name: str) -> Segment:
    """A new static segment; names are unique per workspace, ignoring case and spacing."""
    name = " ".join(name.split())
    if not name:
        raise WorkspaceError("A segment needs a name.")
    if len(name) > MAX_SEGMENT_NAME:
        raise WorkspaceError(f"Segment names are at most {MAX_SEGMENT_NAME} characters.")
    existing = await find_segment(db, team_id, name)
    if existing is not None:
        if existing.kind == SegmentKind.ALL:
            raise WorkspaceError(f"{ALL_CUSTOMERS} is built in and already holds every contact.")
        raise WorkspaceError(f"A segment named {existing.name!r} already exists.")
    async with db.session() as session:
        segment = Segment(team_id=team_id, name=name, name_key=segment_key(name))
        session.add(segment)
        await session.commit()
        return segment


async def import_target(db: Database, team_id: str, name: str, *, create: bool) -> Segment:
    """The static segment an import goes into, created if asked; never All Customers."""
    segment = await find_segment(db, team_id, name)
    if segment is None:
        if not create:
            raise WorkspaceError(f"No segment named {name!r}. Create it with --create-segment.")
        return await create_segment(db, team_id, name)
    if segment.kind == SegmentKind.ALL:
        raise WorkspaceError(
            f"{ALL_CUSTOMERS} is built in and holds every contact: import into a static segment."
        )
    return segment


async def segment_sizes(db: Database, team_id: str) -> list[tuple[Segment, int]]:
    """Every segment of the workspace with its number of contacts, All Customers first."""
    async with db.session() as session:
        segments = (
            await session.exec(
                select(Segment).where(Segment.team_id == team_id).order_by(col(Segment.name_key))
            )
        ).all()
        counts = dict(
            (
                await session.exec(
                    select(SegmentMember.segment_id, func.count())
                    .where(SegmentMember.team_id == team_id)
                    .group_by(col(SegmentMember.segment_id))
                )
            ).all()
        )
        everyone = (
            await session.exec(select(func.count()).where(Contact.team_id == team_id))
        ).one()
    sized = [(s, everyone if s.kind == SegmentKind.ALL else counts.get(s.id, 0)) for s in segments]
    sized.sort(key=lambda pair: pair[0].kind != SegmentKind.ALL)
    return sized
