"""Reading contacts back out: a segment's members, for export and review."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlmodel import col, select

from bot.workspaces import get_segment
from models import Contact, Database, SegmentKind, SegmentMember, Workspace

# The importer reads every one of these back (`subscribed` is one of its consent headers), so
# an export re-imports to the same contacts, consent included.
EXPORT_COLUMNS = ("first_name", "last_name", "email", "locale", "subscribed")
YES, NO = "yes", "no"  # consent values the importer's reader knows (bot/imports/rows.py)
STREAM_ROWS = 5000  # rows fetched at a time: a million-contact segment is never one list


async def segment_contacts(
    db: Database, team_id: str, segment_id: int
) -> AsyncIterator[tuple[str, str, str, str, str]]:
    """(first, last, email, locale, subscribed) of every contact in the segment, streamed in
    id order; a deleted segment or another workspace's is WorkspaceError."""
    segment = await get_segment(db, team_id, segment_id)
    async with db.session() as session:
        workspace = await session.get(Workspace, team_id)
        default = workspace.default_locale if workspace else "en"
        query = select(Contact.first_name, Contact.last_name, Contact.email, Contact.locale,
                       Contact.subscribed).where(Contact.team_id == team_id)  # fmt: skip
        if segment.kind != SegmentKind.ALL:
            query = query.join(SegmentMember, col(SegmentMember.contact_id) == Contact.id).where(
                SegmentMember.segment_id == segment_id, SegmentMember.team_id == team_id
            )
        result = await session.stream(
            query.order_by(col(Contact.id)).execution_options(yield_per=STREAM_ROWS)
        )
        async for first, last, email, locale, subscribed in result:
            yield first, last, email, locale or default, YES if subscribed else NO
