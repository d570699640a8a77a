"""Reading contacts back out: a segment's members, for export and review."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Select
from sqlmodel import col, select

from bot.workspaces import get_segment
from models import Contact, Database, SegmentKind, SegmentMember

# The importer reads every one of these back (`subscribed` is one of its consent headers), so
# an export re-imports to the same contacts, consent included.
EXPORT_COLUMNS = ("first_name", "last_name", "email", "locale", "subscribed")
YES, NO = "yes", "no"  # consent values the importer's reader knows (bot/imports/rows.py)
# Rows fetched, and written, at a time: a million-contact segment is never one list, and the
# event loop that acks Slack (an export from Slack runs in serve) is never held for long: a 1M
# export held it up to 100 ms at a time before (5,000 ORM rows a fetch), 12 ms now (p99 1 ms).
STREAM_ROWS = 500
Row = tuple[str, str, str, str, str]


def members_query(team_id: str, segment_id: int, *, every_contact: bool) -> Select[Any]:
    """The segment's contacts' exported columns, in an order an index already has: a static
    segment's in contact id order (its members' key), All Customers' (every contact of the
    workspace) by address.

    All Customers is read through the workspace's unique address index: only this workspace's
    rows, no sort. By id it had no index to use on SQLite but a name index (that sorted every
    row first) or the whole table in id order, every workspace's rows in a shared file."""
    columns = (Contact.first_name, Contact.last_name, Contact.email, Contact.locale,
               Contact.subscribed)  # fmt: skip
    query = select(*columns).where(Contact.team_id == team_id)
    if every_contact:
        return query.order_by(col(Contact.email_key))
    # The same order by the members' key, which already has it: ordered by contact.id, SQLite
    # sorted every row in a temporary b-tree before returning the first (0.3 s a million).
    return (query.join(SegmentMember, col(SegmentMember.contact_id) == Contact.id)
            .where(SegmentMember.segment_id == segment_id, SegmentMember.team_id == team_id)
            .order_by(col(SegmentMember.contact_id)))  # fmt: skip


async def segment_contacts(db: Database, team_id: str, segment_id: int) -> AsyncIterator[list[Row]]:
    """(first, last, email, locale, subscribed) of every contact in the segment (in
    `members_query`'s order), STREAM_ROWS at a time; a deleted segment or another workspace's
    is WorkspaceError.

    By the chunk, not the row, and as Core rows: an ORM result iterated row by row cost a
    greenlet switch and the ORM's bookkeeping a row, and a million-contact export took 15 s
    of the event loop's CPU in stretches of ~100 ms during which serve acked nothing."""
    segment = await get_segment(db, team_id, segment_id)
    query = members_query(team_id, segment_id, every_contact=segment.kind == SegmentKind.ALL)
    async with db.engine.connect() as conn:  # Core rows: the ORM's cost ~10 us a row more
        result = await conn.stream(query.execution_options(yield_per=STREAM_ROWS))
        async for rows in result.partitions(STREAM_ROWS):
            # a contact without a locale of its own: an empty cell, not the workspace's
            # default, which an export imported again (--update-existing) made its own, so a
            # later DEFAULT_LOCALE left it in the old language
            yield [(first, last, email, locale or "", YES if subscribed else NO)
                   for first, last, email, locale, subscribed in rows]  # fmt: skip
