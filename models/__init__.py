"""SQLModel tables and the database handle. Imports nothing else of ours."""

from models.admin import (
    AuditEntry,
    HomeViewer,
    InvitedAddress,
    RetiredCode,
    SuppressedAddress,
    TeamLead,
)
from models.campaigns import (
    Advocate,
    Campaign,
    CampaignSegment,
    CampaignState,
    Enrollment,
    EnrollmentStatus,
    Invite,
    InviteState,
    SegmentRole,
)
from models.contacts import (
    Contact,
    ResubscribedContact,
    SeenKey,
    Segment,
    SegmentKind,
    SegmentMember,
    SegmentMemberListing,
    Workspace,
)
from models.db import Database
from models.imports import (
    BatchStatus,
    FileFormat,
    ImportBatch,
    ImportSource,
    Outcome,
    SourceKind,
    SourceStatus,
    StagedRow,
)
from models.jobs import Job, JobState, WorkerProcess
from models.mailchimp import MailchimpAccount
from models.mapping import ColumnMapping

__all__ = [
    "Advocate",
    "AuditEntry",
    "BatchStatus",
    "Campaign",
    "CampaignSegment",
    "CampaignState",
    "ColumnMapping",
    "Contact",
    "Database",
    "Enrollment",
    "EnrollmentStatus",
    "FileFormat",
    "HomeViewer",
    "ImportBatch",
    "ImportSource",
    "Invite",
    "InviteState",
    "InvitedAddress",
    "Job",
    "JobState",
    "MailchimpAccount",
    "Outcome",
    "ResubscribedContact",
    "RetiredCode",
    "SeenKey",
    "Segment",
    "SegmentKind",
    "SegmentMember",
    "SegmentMemberListing",
    "SegmentRole",
    "SourceKind",
    "SourceStatus",
    "StagedRow",
    "SuppressedAddress",
    "TeamLead",
    "WorkerProcess",
    "Workspace",
]
