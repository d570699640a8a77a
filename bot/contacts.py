"""Reading contacts back out: a segment's members, for export and review."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlmodel import col, select

from bot.workspaces import get_segment
from models import Contact, Database, SegmentKind, SegmentMember, Workspace

EXPORT_COLUMNS = ("first_name", "last_name", "email", "locale")


async def segment_contacts(
    db: Database, team_id: str, segment_id: int
) -> AsyncIterator[tuple[str, str, str, str]]:
    """(first, last, email, locale) of every contact in the segment, streamed in id order."""
    segment = await get_segment(db, team_id, segment_id)
    async with db.session() as session:
        workspace = await session.get(Workspace, team_id)
        default = workspace.default_locale if workspace else "en"
        query = select(Contact.first_name, Contact.last_name, Contact.email, Contact.locale).where(
            Contact.team_id == team_id
        )
        if segment.kind != SegmentKind.ALL:
            query = query.join(SegmentMember, col(SegmentMember.contact_id) == Contact.id).where(
                SegmentMember.segment_id == segment_id, SegmentMember.team_id == team_id
            )
        result = await session.stream(
            query.order_by(col(Contact.id)).execution_options(yield_per=5000)
        )
        async for first, last, email, locale in result:
            yield first, last, email, locale or default
