"""SQLModel tables and the database handle. Imports nothing else of ours."""

from models.contacts import Contact, SeenKey, Segment, SegmentKind, SegmentMember, Workspace
from models.db import Database
from models.imports import (
    BatchStatus,
    ImportBatch,
    ImportSource,
    Outcome,
    SourceKind,
    SourceStatus,
    StagedRow,
)
from models.jobs import Job, JobState, WorkerProcess

__all__ = [
    "BatchStatus",
    "Contact",
    "Database",
    "ImportBatch",
    "ImportSource",
    "Job",
    "JobState",
    "Outcome",
    "SeenKey",
    "Segment",
    "SegmentKind",
    "SegmentMember",
    "SourceKind",
    "SourceStatus",
    "StagedRow",
    "WorkerProcess",
    "Workspace",
]
