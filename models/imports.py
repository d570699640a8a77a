"""Import batches, their sources and the rows staged for review before they become contacts."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from models.clock import utcnow


class BatchStatus(StrEnum):
    DRAFT = "draft"  # sources being added and reviewed
    QUEUED = "queued"  # approved, waiting for a worker
    IMPORTING = "importing"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"  # a lead said no
    CANCELLED = "cancelled"  # the requester withdrew it
    UNDOING = "undoing"  # a lead asked to undo it; the undo job is running
    UNDONE = "undone"  # what it added was taken out again


class SourceKind(StrEnum):
    CSV = "csv"
    MAILCHIMP = "mailchimp"
    CONTACT = "contact"  # one customer typed in by hand


class SourceStatus(StrEnum):
    PENDING = "pending"  # waiting to be downloaded or parsed
    PARSED = "parsed"
    FAILED = "failed"  # unreadable as a whole; `error` says why


class FileFormat(StrEnum):
    """What a file source turned out to be when it was read (told by its bytes, not its name)."""

    CSV = "csv"
    XLSX = "xlsx"
    ZIP = "zip"  # the archive as a whole: refused before any CSV in it was read
    ZIP_CSV = "zip_csv"  # one CSV inside a ZIP


class Outcome(StrEnum):
    VALID = "valid"
    DUPLICATE = "duplicate"  # same case-folded email earlier in this batch
    REJECTED = "rejected"  # `reason` says why


class ImportBatch(SQLModel, table=True):
    """One request to add contacts to a segment; counts are filled in as it runs."""

    __tablename__ = "import_batch"

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32, foreign_key="workspace.team_id", index=True)
    segment_id: int = Field(foreign_key="segment.id")
    requested_by: str = Field(max_length=64)
    approved_by: str | None = Field(default=None, max_length=64)
    cancelled_by: str | None = Field(default=None, max_length=64)
    status: str = Field(default=BatchStatus.DRAFT, max_length=16)
    update_existing: bool = False
    rows: int = 0
    valid: int = 0
    duplicates: int = 0
    rejected: int = 0
    warnings: int = 0
    new_contacts: int = 0
    existing_contacts: int = 0
    added_to_segment: int = 0
    already_in_segment: int = 0
    apply_cursor: int = 0  # staged_row ids below this are applied
    channel_id: str | None = Field(default=None, max_length=32)  # where the review message is
    message_ts: str | None = Field(default=None, max_length=32)  # the review message (and thread)
    progress_ts: str | None = Field(default=None, max_length=32)  # progress reply in the thread
    error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    # "These people agreed to hear from us", ticked in the import form (who, when)
    consent_by: str | None = Field(default=None, max_length=64)
    consent_at: datetime | None = None
    # undo: who asked, when, whether advocates go too, and what it removed (counted by its
    # deletes, in the transaction that made them)
    undone_by: str | None = Field(default=None, max_length=64)
    undone_at: datetime | None = None
    undo_advocates: bool = False
    undo_removed: int = 0  # memberships of the segment this import had added
    undo_deleted: int = 0  # contacts it created that were in no other segment
    undo_invites_cancelled: int = 0
    undo_advocates_removed: int = 0
    # memberships it had added that stayed: a later import still standing had listed those
    # contacts too, and now holds them (segment_member_listing)
    undo_handed_on: int = 0
    # contacts it had re-subscribed that its undo unsubscribed again (a consent changed: said
    # in its result and the audit log)
    undo_unsubscribed: int = 0
    # `import --dry-run`'s: staged only to be counted, then dropped. It is no import: no
    # list of imports shows it, and the purge drops one a killed dry run left behind
    dry_run: bool = False
    # counted up by every change to a draft (lock_batch): the review's Approve carries the
    # revision it showed, and approving another is refused
    revision: int = 0


class ImportSource(SQLModel, table=True):
    """A CSV file, a Mailchimp list or a single contact queued in a batch."""

    __tablename__ = "import_source"

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32, foreign_key="workspace.team_id")
    batch_id: int = Field(foreign_key="import_batch.id", index=True)
    kind: str = Field(max_length=16)
    label: str = Field(max_length=255)
    ref: str | None = Field(default=None, max_length=255)  # Slack file id, Mailchimp list id
    status: str = Field(default=SourceStatus.PENDING, max_length=16)
    error: str | None = Field(default=None, max_length=2000)
    # it failed because its columns don't say where the addresses are: *Map columns* can fix it
    failed_on_columns: bool = False
    file_format: str | None = Field(default=None, max_length=8)  # a FileFormat once read
    # what needs a person's eye (consent values nobody could read), shown apart from `note`
    warning: str | None = Field(default=None, max_length=500)
    # what was recognised while reading it (a Mailchimp export's kind, the sheet read...),
    # one sentence a line, shown under the source on the review message; `error` is failures
    note: str | None = Field(default=None, max_length=500)
    # the file's header row as JSON, kept when *Map columns* reads it: the mapping modal's
    # choices are column positions, and a mapping is remembered by header names
    header: str | None = Field(default=None, sa_type=Text)
    rows: int = 0
    valid: int = 0
    duplicates: int = 0
    rejected: int = 0
    warnings: int = 0
    removed: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class StagedRow(SQLModel, table=True):
    """One input row as parsed, with its verdict; nothing here is a contact yet.

    On SQLite the table lives in a staging file of its own (models/staging.py). One index:
    a batch's rows, source by source, in staged order; they are written in that order, so it
    costs little, where an index on addresses would cost a big import a third of its time.
    """

    __tablename__ = "staged_row"
    __table_args__ = (Index("ix_staged_row_batch", "batch_id", "source_id"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32)
    batch_id: int
    source_id: int
    line: int
    email: str = Field(default="", max_length=320)
    email_key: str = Field(default="", max_length=320)
    first_name: str = Field(default="", max_length=200)
    last_name: str = Field(default="", max_length=200)
    locale: str | None = Field(default=None, max_length=35)
    outcome: str = Field(max_length=10)
    reason: str | None = Field(default=None, max_length=500)
    removed: bool = False
    subscribed: bool | None = None  # from a consent column; None: the file had none
