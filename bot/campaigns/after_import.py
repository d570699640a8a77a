"""Contacts an import adds to a targeted segment become advocates right after the import."""

from __future__ import annotations

from bot.campaigns.service import Thread, enroll_after_import_in
from models import Database, ImportBatch


async def enroll_imported(db: Database, batch: ImportBatch, *, hold: bool,
                          queue_job: bool = True) -> list[int]:  # fmt: skip
    """Contacts an import added to a segment that live campaigns target are enrolled right away
    (the job's key makes a second run of this a no-op); returns the enrollments."""
    thread = (Thread(batch.channel_id, batch.message_ts)
              if batch.channel_id and batch.message_ts else None)  # fmt: skip
    async with db.begin() as conn:
        return await enroll_after_import_in(
            conn, batch.team_id, batch.id or 0, batch.segment_id, thread,
            batch.approved_by or batch.requested_by, hold=hold, queue_job=queue_job,
        )  # fmt: skip
