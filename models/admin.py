"""Who may do what, what was done, and what is gone: team leads, the audit log, retired
referral codes and the people whose App Home is kept up to date."""

from datetime import datetime

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from models.clock import utcnow


class TeamLead(SQLModel, table=True):
    """A person who may approve, undo, delete and export in this workspace.

    `TEAM_LEADS` seeds the list once per workspace (see `Workspace.leads_seeded`); after that
    the list is the workspace's own and is changed from Slack.
    """

    __tablename__ = "team_lead"

    team_id: str = Field(primary_key=True, max_length=32)
    user_id: str = Field(primary_key=True, max_length=64)
    added_by: str = Field(default="seed", max_length=64)
    added_at: datetime = Field(default_factory=utcnow)
    # when Slack last said they may be a lead (None: not since `added_at`): a lead's first
    # click RECHECK_AFTER later asks again (bot.leads), for a demotion whose event was lost
    checked_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    """One thing a person did: written in the same transaction as the change it records."""

    __tablename__ = "audit_entry"
    __table_args__ = (Index("ix_audit_entry_team_at", "team_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=64)  # a Slack user id, or "cli"
    action: str = Field(max_length=40)  # e.g. "import.approved", see bot.audit.Act
    subject: str = Field(default="", max_length=200)  # "import #12", "contact ada@example.com"
    detail: str = Field(default="", sa_type=Text)  # plain words for people


class RetiredCode(SQLModel, table=True):
    """A referral code whose advocate was deleted: its link answers 410 Gone, never reused."""

    __tablename__ = "retired_code"

    code: str = Field(primary_key=True, max_length=16)
    team_id: str = Field(max_length=32)
    retired_at: datetime = Field(default_factory=utcnow)


class SuppressedAddress(SQLModel, table=True):
    """The address of a contact deleted after it unsubscribed: an import that creates it again
    creates it unsubscribed. Deleting the contact deleted its unsubscribe with it, and the
    next import of the same list emailed the person who had asked not to be. Kept as the
    address key (what makes two spellings one contact), as mailing lists keep their
    suppression lists; a resubscribe by a lead lifts it."""

    __tablename__ = "suppressed_address"
    __table_args__ = ({"sqlite_with_rowid": False},)

    team_id: str = Field(primary_key=True, max_length=32)
    email_key: str = Field(primary_key=True, max_length=320)
    suppressed_at: datetime = Field(default_factory=utcnow)


class InvitedAddress(SQLModel, table=True):
    """The address of a deleted contact that a campaign had emailed (its invite sent, or
    perhaps sent): enrolled again in that campaign (the address imported anew), it is not
    emailed a second time. Deleting the contact deleted its invites with it, and the next
    import of the same list emailed the person again, with a new link."""

    __tablename__ = "invited_address"
    __table_args__ = ({"sqlite_with_rowid": False},)

    team_id: str = Field(primary_key=True, max_length=32)
    campaign_id: int = Field(primary_key=True)
    email_key: str = Field(primary_key=True, max_length=320)
    invited_at: datetime = Field(default_factory=utcnow)


class HomeViewer(SQLModel, table=True):
    """Someone who opened the App Home: their tab is republished when things change.

    The row also keeps how far they expanded its lists with *Show more* (None: the first
    page), so a republish after a change shows them what they were reading instead of
    folding it back. It lives here rather than in a table of its own because it is the
    same (team, person) key, read by the same republish and pruned with the viewer; it
    counts only while they keep using Home (`opened_at`, their last open or click, is
    recent: see handlers/home_publish.py), so an expansion never outlives the visit.
    """

    __tablename__ = "home_viewer"

    team_id: str = Field(primary_key=True, max_length=32)
    user_id: str = Field(primary_key=True, max_length=64)
    opened_at: datetime = Field(default_factory=utcnow)
    segments_shown: int | None = None  # *Show more* on segments: how many they see
    imports_shown: int | None = None  # and on recent imports
