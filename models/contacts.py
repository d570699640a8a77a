"""Workspaces, contacts and segments: the merchant's audience."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.clock import utcnow

ALL_CUSTOMERS = "All Customers"


class Workspace(SQLModel, table=True):
    """A Slack workspace (or the CLI's local one); owns every other row through `team_id`."""

    team_id: str = Field(primary_key=True, max_length=32)
    name: str = Field(default="", max_length=200)
    default_locale: str = Field(default="en", max_length=35)
    leads_seeded: bool = False  # TEAM_LEADS copied into team_lead (once: removals stick)
    # Imports that finished before this can't be undone, whatever UNDO_WINDOW_DAYS says now:
    # the window of the time let an apply skip their listings and the purge clear their
    # records (bot/imports/undo_window.py). Only ever moves forward.
    undo_closed_before: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Contact(SQLModel, table=True):
    """A customer; the case-folded `email_key` makes one contact per address per workspace.

    Contacts and memberships are written in bulk by the import engine only, which takes
    their workspace and segment from rows it has checked. They declare no foreign keys:
    per-row constraint triggers cost ~40% of a bulk import on PostgreSQL.
    """

    __table_args__ = (UniqueConstraint("team_id", "email_key", name="uq_contact_team_email"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    email: str = Field(max_length=320)
    email_key: str = Field(max_length=320)
    first_name: str = Field(default="", max_length=200)
    last_name: str = Field(default="", max_length=200)
    locale: str | None = Field(default=None, max_length=35)  # None: the workspace default
    subscribed: bool = True  # False: enrolled as advocates, but never sent an invite
    unsubscribed_at: datetime | None = None  # set through the bot's link: no import undoes it
    source: str = Field(default="manual", max_length=20)
    batch_id: int | None = None  # the import that created it (undo deletes only those)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SegmentKind(StrEnum):
    ALL = "all"  # built in: every contact, no membership rows
    STATIC = "static"  # holds the contacts imported into it
    DELETED = "deleted"  # kept for the imports that name it; no members, name freed


class Segment(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("team_id", "name_key", name="uq_segment_team_name"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32, foreign_key="workspace.team_id", index=True)
    name: str = Field(max_length=100)
    name_key: str = Field(max_length=100)
    kind: str = Field(default=SegmentKind.STATIC, max_length=10)
    created_at: datetime = Field(default_factory=utcnow)


class SegmentMember(SQLModel, table=True):
    """Membership of a static segment; All Customers needs none. On SQLite a WITHOUT ROWID
    table: the key is the row, stored once."""

    __tablename__ = "segment_member"
    __table_args__ = (
        Index("ix_segment_member_contact", "contact_id"),
        {"sqlite_with_rowid": False},
    )

    segment_id: int = Field(primary_key=True)
    contact_id: int = Field(primary_key=True)
    team_id: str = Field(max_length=32)
    batch_id: int | None = Field(default=None)
    added_at: datetime = Field(default_factory=utcnow)


class SegmentMemberListing(SQLModel, table=True):
    """A later import also listed a contact that was already in its segment through an
    earlier import's membership (the engine's insert of it conflicted): undoing the earlier
    import hands the membership on to the earliest such import still standing, instead of
    taking the contact out of a segment the later import's requester expects it in.

    Written only when the membership was another import's (`segment_member.batch_id` set).
    It goes with that membership (every delete of a membership deletes these with it: SQLite
    gives a deleted contact's id to the next contact), when its own import is undone, and
    once the import holding the membership can no longer be undone (the daily purge).
    WITHOUT ROWID on SQLite, like segment_member; found by (segment, contact)."""

    __tablename__ = "segment_member_listing"
    __table_args__ = ({"sqlite_with_rowid": False},)

    segment_id: int = Field(primary_key=True)
    contact_id: int = Field(primary_key=True)
    batch_id: int = Field(primary_key=True)  # the import that listed it
    team_id: str = Field(max_length=32)


class ResubscribedContact(SQLModel, table=True):
    """An --update-existing import re-subscribed this contact: it had said no (an earlier
    file), and this import's file said yes. Undoing the import unsubscribes it again, unless
    its consent changed since (see bot/imports/undo.py); without this row the undo left the
    contact subscribed, and the next campaign emailed someone who had opted out.

    Only the latest import to re-subscribe a contact keeps a row for it (an earlier one's
    yes was withdrawn in between, or it couldn't have re-subscribed it). The rows go with the
    undo that uses them, with the contact, when a lead resubscribes it (their word, not the
    import's), and once the import can no longer be undone (the daily purge). WITHOUT ROWID
    on SQLite; found by import and by contact (SQLite gives a deleted contact's id to the
    next contact, which a row left behind would unsubscribe)."""

    __tablename__ = "resubscribed_contact"
    __table_args__ = (
        Index("ix_resubscribed_contact_contact", "contact_id"),
        {"sqlite_with_rowid": False},
    )

    team_id: str = Field(primary_key=True, max_length=32)
    batch_id: int = Field(primary_key=True)  # the import that re-subscribed it
    contact_id: int = Field(primary_key=True)


class SeenKey(SQLModel, table=True):
    """Keys of things done once per workspace (Slack event ids, file offers): retries dedupe."""

    __tablename__ = "seen_key"

    team_id: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
