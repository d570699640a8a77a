"""Cancelling a job from the command line: an import's batch and a file's source follow it."""

from __future__ import annotations

from bot.jobs import queue
from models import Database, Job


async def cancel_job(db: Database, team_id: str, job_id: int) -> Job | None:
    """Cancel a queued or running job; returns it as it now stands (None: no such job)."""
    return await queue.cancel(db, team_id, job_id)
