"""The audit log: who did what to which import, contact, segment or connection, and when.

An entry is written by `record_in` on the connection of the change it describes, so the log
and the change commit (or roll back) together: an entry never claims what didn't happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select

from models import AuditEntry, Database
from models.clock import utcnow

CLI = "cli"  # the actor of a shell command (shell users are trusted admins)


class Act(StrEnum):
    IMPORT_REQUESTED = "import.requested"
    IMPORT_CONSENT = "import.consent"  # "These people agreed to hear from us" was ticked
    IMPORT_SOURCE_REMOVED = "import.source_removed"
    IMPORT_CONTACT_REMOVED = "import.contact_removed"  # one contact taken out during review
    IMPORT_APPROVED = "import.approved"
    IMPORT_REJECTED = "import.rejected"
    IMPORT_CANCELLED = "import.cancelled"
    IMPORT_UNDONE = "import.undone"
    SEGMENT_CREATED = "segment.created"
    SEGMENT_RENAMED = "segment.renamed"
    SEGMENT_DELETED = "segment.deleted"
    SEGMENT_EXPORTED = "segment.exported"
    CONTACT_REMOVED_FROM_SEGMENT = "contact.removed_from_segment"
    CONTACT_UNSUBSCRIBED = "contact.unsubscribed"
    CONTACT_RESUBSCRIBED = "contact.resubscribed"
    CONTACT_DELETED = "contact.deleted"
    MAILCHIMP_CONNECTED = "mailchimp.connected"
    MAILCHIMP_DISCONNECTED = "mailchimp.disconnected"
    LEAD_ADDED = "lead.added"
    LEAD_REMOVED = "lead.removed"


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: str


async def record_in(conn: AsyncConnection, team_id: str, actor: str, action: Act,
                    subject: str = "", detail: str = "") -> None:  # fmt: skip
    """Add an entry in the caller's transaction (commits with the change it describes)."""
    await conn.execute(
        insert(AuditEntry).values(team_id=team_id, at=utcnow(), actor=actor[:64],
                                  action=str(action), subject=subject[:200], detail=detail)
    )  # fmt: skip


async def record(db: Database, team_id: str, actor: str, action: Act, subject: str = "",
                 detail: str = "") -> None:  # fmt: skip
    """An entry on its own, for acts with no row of ours to change (an export)."""
    async with db.begin() as conn:
        await record_in(conn, team_id, actor, action, subject, detail)


async def recent(db: Database, team_id: str, *, limit: int = 50, since: datetime | None = None,
                 before_id: int | None = None) -> list[Entry]:  # fmt: skip
    """The workspace's newest entries first; `before_id` pages further back."""
    query = select(AuditEntry).where(AuditEntry.team_id == team_id)
    if since is not None:
        query = query.where(col(AuditEntry.at) >= since)
    if before_id is not None:
        query = query.where(col(AuditEntry.id) < before_id)
    query = query.order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc()).limit(limit)
    async with db.session() as session:
        rows = (await session.exec(query)).all()
    return [Entry(r.id or 0, r.at, r.actor, r.action, r.subject, r.detail) for r in rows]


def import_subject(batch_id: int) -> str:
    return f"import #{batch_id}"
