"""Durable background work: a row per job, claimed under a lease so a dead worker's job resumes."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from models.clock import utcnow


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # out of retries; `last_error` says why
    CANCELLED = "cancelled"


class Job(SQLModel, table=True):
    __table_args__ = (
        Index("ix_job_claim", "state", "run_after"),
        Index("ix_job_dedupe", "team_id", "dedupe_key", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(max_length=32, foreign_key="workspace.team_id")
    kind: str = Field(max_length=40)
    payload: str = Field(default="{}", sa_type=Text)  # JSON of plain ids and values
    dedupe_key: str | None = Field(default=None, max_length=200)  # one job per key (double clicks)
    state: str = Field(default=JobState.QUEUED, max_length=16)
    attempts: int = 0
    max_attempts: int = 5
    last_error: str | None = Field(default=None, sa_type=Text)
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = None
    run_after: datetime = Field(default_factory=utcnow)
    progress_done: int = 0
    progress_total: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class WorkerProcess(SQLModel, table=True):
    """A running worker and the job kinds it can run; `jobs` shows what no live worker can take.

    A worker writes its row on start, refreshes `seen_at` every few seconds and deletes the row
    when it stops cleanly; a row not seen for a few lease periods is a dead worker's.
    """

    __tablename__ = "worker_process"

    owner: str = Field(primary_key=True, max_length=100)  # the lease owner it claims jobs as
    kinds: str = Field(default="", sa_type=Text)  # job kinds it runs, comma-separated
    pid: int
    host: str = Field(max_length=255)
    started_at: datetime = Field(default_factory=utcnow)
    seen_at: datetime = Field(default_factory=utcnow)

    @property
    def kind_set(self) -> frozenset[str]:
        return frozenset(kind for kind in self.kinds.split(",") if kind)
