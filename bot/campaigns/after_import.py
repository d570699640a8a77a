"""Contacts an import adds to a targeted segment become advocates right after the import."""

from __future__ import annotations

import logging

from sqlalchemy import text

from bot.campaigns.enroll import EnrollResult, run_enrollment
from bot.campaigns.service import Thread, enroll_after_import_in, import_enrollment_key
from bot.jobs.queue import done_by_hand_in
from models import Database, ImportBatch

log = logging.getLogger(__name__)


async def enroll_imported(db: Database, batch: ImportBatch, *, hold: bool | None,
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


async def enroll_imported_now(db: Database, batch: ImportBatch) -> list[EnrollResult]:
    """The command line's import: its enrollments are run here, at once, but each is queued
    as a job first: a run cut short (Ctrl-C, a dropped SSH session) left an enrollment with
    no job, its contacts never enrolled and nothing to say so; a worker now finishes it. The
    job is marked done once this process has run it."""
    results = []
    for enrollment in await enroll_imported(db, batch, hold=False):
        results.append(await run_enrollment(db, batch.team_id, enrollment, hold_seconds=0))
        async with db.begin() as conn:
            campaign = (await conn.execute(
                text("SELECT campaign_id FROM enrollment WHERE id = :e AND team_id = :t"),
                {"e": enrollment, "t": batch.team_id})).scalar_one()  # fmt: skip
            key = import_enrollment_key(campaign, batch.id or 0)
            if not await done_by_hand_in(conn, batch.team_id, key):
                # cancelled first (`jobs cancel`: the enrollment failed, nobody enrolled),
                # or a worker runs or ran it (its run records the end): left as it is
                log.info("enrollment %s of import %s: its job was not marked done (cancelled "
                         "or run by a worker)", enrollment, batch.id)  # fmt: skip
    return results
