"""Stopping work that is under way: an approved import, a file or a Mailchimp audience still
being read, invites being sent.

Each is one transaction: the batch (or source) changes state, its job is cancelled and the
people following it are told through a report job. A running import's worker notices at its
next chunk (its job is no longer its own) and stops; a chunk never commits after the
cancellation, because the engine claims each chunk only while the batch is importing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.audit import Act, import_subject, record_in
from bot.campaigns.enroll import SEND_JOB, fail_enrollment_in
from bot.campaigns.invites import SEND_JOB_CANCELLED, cancel_send_jobs_in, stop_sending_in
from bot.campaigns.service import ENROLL_JOB, Thread, enroll_after_import_in
from bot.imports.batches import HANDED_ON_COUNTED, UNDER_WAY, ReviewError, lock_batch
from bot.imports.files import NO_ARCHIVE, archive_prefix
from bot.imports.job_kinds import (
    IMPORT_JOB,
    SLACK_FILE_JOB,
    UNDO_JOB,
    import_job_key,
    reads_source_sql,
)
from bot.jobs import queue
from bot.mailchimp.jobs import MAILCHIMP_JOB
from bot.notify import (
    BATCH_CHANGED,
    IMPORT_FINISHED,
    UNDO_STOPPED,
    enqueue_enrollment_report_in,
    enqueue_report_in,
)
from bot.segments import segment_withdrawn, withdraw_segment
from models import BatchStatus, Database, EnrollmentStatus, Job, JobState, SegmentKind
from models.clock import utcnow

# The jobs that read a source into a review, and what its source says once one is cancelled.
READING_JOBS = {SLACK_FILE_JOB: "Reading this file was cancelled.",
                MAILCHIMP_JOB: "Reading this audience was cancelled."}  # fmt: skip

# Valid rows of the batch the engine has passed (its cursor is a staged-row id).
_PROCESSED = text("""
    SELECT COUNT(*) FROM staged_row s
    WHERE s.team_id = :t AND s.batch_id = :b AND s.id < :cursor
      AND s.outcome = 'valid' AND s.removed = :no
      AND s.source_id IN (SELECT id FROM import_source
                          WHERE team_id = :t AND batch_id = :b AND removed = :no
                            AND status = 'parsed')
""")

_STOP_BATCH = text("""
    UPDATE import_batch SET status = :cancelled, cancelled_by = :who, finished_at = :now,
        updated_at = :now, existing_contacts = :processed - new_contacts,
        already_in_segment = :processed - added_to_segment
    WHERE team_id = :t AND id = :b
""").bindparams(bindparam("now", type_=UTCDateTime()))

async def stop_import_in(conn: AsyncConnection, team_id: str, batch_id: int, who: str) -> None:
    """Cancel an approved (or CLI background) import whose batch row this transaction holds.

    What was imported stays imported; the batch's counts say how much that was. The contacts
    it already added to a segment that live campaigns target are enrolled, as a failed
    import's are: nothing else would ever enrol them (a later import enrols only its own).
    The audit log records who stopped it (`jobs cancel` of its job was missing there).
    """
    batch = (await conn.execute(
        text("SELECT apply_cursor, segment_id, channel_id, message_ts, "
             "COALESCE(approved_by, requested_by), added_to_segment, status FROM import_batch "
             "WHERE team_id = :t AND id = :b"),
        {"t": team_id, "b": batch_id},
    )).one()  # fmt: skip
    cursor, segment_id, channel_id, message_ts, requested_by, added, status = batch
    await record_in(conn, team_id, who, Act.IMPORT_CANCELLED, import_subject(batch_id),
                    f"stopped while {status}")  # fmt: skip
    params = {"t": team_id, "b": batch_id, "no": False, "cursor": cursor}
    processed = (await conn.execute(_PROCESSED, params)).scalar_one() if cursor else 0
    await conn.execute(_STOP_BATCH, {"t": team_id, "b": batch_id, "who": who, "now": utcnow(),
                                     "processed": processed,
                                     "cancelled": BatchStatus.CANCELLED})  # fmt: skip
    await queue.cancel_jobs_in(conn, team_id, "dedupe_key = :key AND state IN ('queued', "
                               "'running')", key=import_job_key(batch_id))  # fmt: skip
    # memberships handed on to it while it ran count too (HANDED_ON_COUNTED)
    counted = await conn.execute(HANDED_ON_COUNTED, {"t": team_id, "b": batch_id})
    added = added or (counted.scalar() or 0)
    await enqueue_report_in(conn, team_id, batch_id, IMPORT_FINISHED)
    if added:  # the chunks' own count, committed with their memberships
        thread = Thread(channel_id, message_ts) if channel_id and message_ts else None
        await enroll_after_import_in(conn, team_id, batch_id, segment_id, thread,
                                     requested_by)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cancelling:
    """What `jobs cancel` made of a job (try_cancel_job)."""

    job: Job  # as it now stands
    # its state as the cancel found it: one cancelled already is said so ("was cancelled
    # already"), not as if this cancel stopped it
    found: str
    # Its work (an import, an enrollment, an undo) had finished when the cancel got to it:
    # nothing was stopped or cancelled, and the job, still queued or running until its
    # runner records the end, is done in effect. "Cancelled" would tell the person they
    # stopped work whose invites then went out; "only a queued or running job can be
    # cancelled" of a job shown running contradicts itself.
    finished_first: bool = False
    # the sentence saying the segment `import --background --create-segment` made for the
    # cancelled import was withdrawn with it (_withdraw_made_segment), or ""
    segment_withdrawn: str = ""


async def cancel_job(db: Database, team_id: str, job_id: int, who: str = "cli") -> Job | None:
    """Cancel a queued or running job; returns it as it now stands (None: no such job).
    try_cancel_job says, besides, whether its work finished before it could be stopped."""
    cancelling = await try_cancel_job(db, team_id, job_id, who)
    return None if cancelling is None else cancelling.job


async def try_cancel_job(db: Database, team_id: str, job_id: int,
                         who: str = "cli") -> Cancelling | None:  # fmt: skip
    """Cancel a queued or running job, in one transaction (None: no such job).

    An import job takes its batch with it (cancelled, with the partial result reported); a
    job reading a file or a Mailchimp audience marks its source failed with the reason; a
    send job stops its enrollment's sending (its report offers Retry sending). A job whose
    import, enrollment or undo finished first is left as it is (`finished_first`): the work's
    row is taken before the job is cancelled, so a cancel made while the run commits waits
    for it and sees it done.

    The segment `import --background --create-segment` made for a cancelled import (its
    payload's "made_segment") is withdrawn if nothing is in it, as when its job fails
    (`segment_withdrawn` says so): left, it sat empty in every segment menu, its name taken.
    """
    job = await queue.get_job(db, team_id, job_id)
    if job is None:
        return None
    async with db.begin() as conn:
        finished_first = await _stop_work_in(conn, team_id, job, who)
        if not finished_first:
            await _cancel_job_in(conn, team_id, job_id)
    now = await queue.get_job(db, team_id, job_id)
    if now is None:
        return None
    withdrawn = ""
    if now.state == JobState.CANCELLED and not finished_first:
        withdrawn = await _withdraw_made_segment(db, team_id, job, who)
    return Cancelling(now, job.state, finished_first, withdrawn)


async def _withdraw_made_segment(db: Database, team_id: str, job: Job, who: str) -> str:
    """Withdraw the segment `import --background --create-segment` made for the import job
    `job`, now that its import stands cancelled (segments.withdraw_segment: only while nothing
    is in it and no campaign or other import uses it; the audit log says it was deleted,
    holding no contacts). Returns the sentence saying so, or "" when it stays (or was gone)."""
    payload = json.loads(job.payload or "{}")
    made = payload.get("made_segment")
    if job.kind != IMPORT_JOB or made is None or "batch_id" not in payload:
        return ""
    async with db.begin() as conn:
        row = (await conn.execute(
            text("SELECT 1 FROM import_batch b JOIN segment g ON g.id = b.segment_id "
                 "WHERE b.team_id = :t AND b.id = :b AND b.status = :cancelled "
                 "AND g.team_id = :t AND g.id = :s AND g.kind = :static"),
            {"t": team_id, "b": int(payload["batch_id"]), "s": int(made),
             "cancelled": BatchStatus.CANCELLED, "static": SegmentKind.STATIC},
        )).first()  # fmt: skip
    if row is None:  # not this import's segment, or deleted already
        return ""
    # kept (None) if it holds contacts, or a campaign or another import uses it
    name = await withdraw_segment(db, team_id, int(made), who)
    return segment_withdrawn(name) if name else ""


async def _stop_work_in(conn: AsyncConnection, team_id: str, job: Job, who: str) -> bool:
    """Stop what the job is doing, before the job itself is cancelled; True when that work
    had finished already (the job is then left as it is)."""
    payload = json.loads(job.payload or "{}")
    under_way = job.state in (JobState.QUEUED, JobState.RUNNING)
    if job.kind == IMPORT_JOB and "batch_id" in payload:
        return await _stop_importing_in(conn, team_id, int(payload["batch_id"]), who)
    if job.kind in READING_JOBS and "source_id" in payload:
        # the job's row taken first, not `under_way` (read before this transaction): a job
        # ended since may have had its file put back to be read by another (Map columns),
        # whose reading this failed (see _FAIL_READING for one whose end isn't recorded yet)
        if await _cancel_job_in(conn, team_id, job.id or 0):
            await _fail_reading_in(conn, team_id, int(payload["source_id"]), job.id or 0,
                                   READING_JOBS[job.kind],
                                   alone=bool(payload.get("again")))  # fmt: skip
    elif job.kind == SEND_JOB and "enrollment_id" in payload:
        # the job's row first, as its run takes it for its last writes (one order, no
        # deadlock); cancelled by someone else meanwhile: nothing more to stop
        if await _cancel_job_in(conn, team_id, job.id or 0):
            await _stop_sending_in(conn, team_id, int(payload["enrollment_id"]))
    elif job.kind == ENROLL_JOB and "enrollment_id" in payload and under_way:
        return await _stop_enrolling_in(conn, team_id, int(payload["enrollment_id"]))
    elif job.kind == UNDO_JOB and "batch_id" in payload and under_way:
        return await _stop_undoing_in(conn, team_id, job.id or 0, int(payload["batch_id"]),
                                      who)  # fmt: skip
    return False


async def _stop_importing_in(conn: AsyncConnection, team_id: str, batch_id: int,
                             who: str) -> bool:  # fmt: skip
    """Stop the import job's batch; True when its import had finished."""
    try:
        await lock_batch(conn, team_id, batch_id, UNDER_WAY)
    except ReviewError:
        # the batch already ended; the job alone is cancelled, unless its import finished:
        # then it is done in effect (its enrollment runs), and saying "cancelled" would tell
        # the person they stopped it
        ended = (await conn.execute(
            text("SELECT status FROM import_batch WHERE team_id = :t AND id = :b"),
            {"t": team_id, "b": batch_id})).scalar()  # fmt: skip
        return bool(ended == BatchStatus.DONE)
    await stop_import_in(conn, team_id, batch_id, who)
    return False


async def _cancel_job_in(conn: AsyncConnection, team_id: str, job_id: int) -> bool:
    """The job is cancelled if it was queued or running; False if it had ended."""
    return bool(await queue.cancel_jobs_in(
        conn, team_id, "id = :id AND state IN ('queued', 'running')", id=job_id))


async def _stop_sending_in(conn: AsyncConnection, team_id: str, enrollment_id: int) -> None:
    """A cancelled send job leaves its invites queued: the report says sending stopped and
    offers Retry sending (nothing else would ever send them). The enrollment's other send
    jobs waiting to run are cancelled too: one its run queued as it ended (retries, delayed
    invites), or a Resend's, sent anyway. The stop first: it takes the enrollment's row, which
    going live again or a new invite delay takes before queuing its send job
    (invites.schedule_waiting_in), so the cancel then sees that job."""
    stopped = await stop_sending_in(conn, team_id, enrollment_id, SEND_JOB_CANCELLED)
    await cancel_send_jobs_in(conn, team_id, enrollment_id)
    if stopped:
        await enqueue_enrollment_report_in(conn, team_id, enrollment_id)


# The enrollment's row, taken (not read) with what it is: a run committing it holds it, and
# a plain read made then (PostgreSQL) saw it queued while the run marked it done. (Columns
# only: SQLite 3.40 returned 1 for `batch_id IS NOT NULL` of a null batch_id here.)
_TAKE_ENROLLMENT = text("UPDATE enrollment SET status = status WHERE id = :e AND team_id = :t "
                        "RETURNING status, batch_id")  # fmt: skip


async def _stop_enrolling_in(conn: AsyncConnection, team_id: str, enrollment_id: int) -> bool:
    """A cancelled job enrolling an import's contacts: the enrollment stayed "queued" for
    ever (nothing queues an import's enrollment again), its thread's report saying "Enrolling
    contacts…". It fails, saying so. A targeting's or Go live's is left waiting: the next
    Target or Go live queues its job again (service._pending_in).

    True when the enrollment is done: its run committed before this took its row (or while
    this waited for it; the run takes it before the job's, as this does), its advocates and
    invites made and their send job queued. The job is then done in effect: cancelling it
    said "cancelled" of invites that were emailed."""
    row = (await conn.execute(_TAKE_ENROLLMENT, {"e": enrollment_id, "t": team_id})).first()
    if row is None:
        return False
    status, batch_id = row
    if status == EnrollmentStatus.DONE:
        return True
    of_an_import = batch_id is not None
    if of_an_import and await fail_enrollment_in(conn, team_id, enrollment_id, ENROLL_CANCELLED):
        await enqueue_enrollment_report_in(conn, team_id, enrollment_id)
    return False


# The undo job's row while it is under way (the run takes it before the batch's, in each
# range and in its last transaction: taking the batch's first would deadlock with a run
# between the two), then the batch's, each waiting for a run committing it.
_TAKE_UNDO_JOB = text("UPDATE job SET updated_at = updated_at WHERE id = :j AND team_id = :t "
                      "AND state IN ('queued', 'running') RETURNING id")  # fmt: skip
_TAKE_UNDONE_BATCH = text("UPDATE import_batch SET status = status WHERE team_id = :t "
                          "AND id = :b RETURNING status")  # fmt: skip


async def _stop_undoing_in(conn: AsyncConnection, team_id: str, job_id: int, batch_id: int,
                           who: str) -> bool:  # fmt: skip
    """A cancelled undo job: its import stays half undone ("being undone"), and nobody was
    told; its thread now offers *Finish the undo* (a cancelled undo job is a stalled one) and
    the audit log says who stopped it, as for a stop on its own.

    True when the undo is done: its run's last transaction committed first. The job is done
    in effect, and the audit log said both "done: …" and "stopped part way"."""
    if (await conn.execute(_TAKE_UNDO_JOB, {"j": job_id, "t": team_id})).first() is None:
        return False  # it ended meanwhile: there is nothing to cancel
    status = (await conn.execute(_TAKE_UNDONE_BATCH, {"t": team_id, "b": batch_id})).scalar()
    if status == BatchStatus.UNDONE:
        return True
    if status != BatchStatus.UNDOING:
        return False
    await record_in(conn, team_id, who, Act.IMPORT_UNDONE, import_subject(batch_id),
                    "stopped part way: its job was cancelled")  # fmt: skip
    await enqueue_report_in(conn, team_id, batch_id, UNDO_STOPPED)
    return False


ENROLL_CANCELLED = "its job was cancelled (`referral-bot jobs cancel`)."


# The source a reading job reads, and (unless it reads that one alone) the CSVs its ZIP
# added: same batch and ref, after it, labelled "export.zip › …" (background._fail_unread)
# A source a reading queued after the cancelled one's (:j) is to read is left to it: its
# first reading's ("stage:<id>") or a *Map columns* re-read's ("remap:<id>:<time>",
# mapping._read_again_in), of the file or of one CSV of its ZIP. The cancelled job may have
# read the file already, its end not recorded yet, when the file was put back to be read.
_FAIL_READING = text(f"""
    UPDATE import_source SET status = 'failed', error = :why
    WHERE team_id = :t AND status = 'pending' AND (id = :s OR (
        NOT :alone AND batch_id = :b AND ref = :ref AND kind = 'csv' AND id > :s
        AND substr(label, 1, :n) = :prefix))
    AND NOT EXISTS (SELECT 1 FROM job WHERE job.team_id = :t AND job.id > :j
                    AND job.state IN ('queued', 'running')
                    AND {reads_source_sql("job.dedupe_key", "import_source.id")})
    RETURNING batch_id
""")


async def _fail_reading_in(conn: AsyncConnection, team_id: str, source_id: int, job_id: int,
                           why: str, *, alone: bool = False) -> None:  # fmt: skip
    """A source whose reading job is cancelled would say "Reading…" for good (and Approve
    "still being read"): it fails with `why`, and its review is refreshed to say so. So do
    the CSVs its ZIP added that aren't read yet (`alone`: a re-read of that one source):
    a reading stopped after the ZIP's first CSV left the others pending for good, and a
    cancel while it read stopped nothing past the CSV in hand."""
    origin = (await conn.execute(
        text("SELECT batch_id, ref, label FROM import_source WHERE id = :s AND team_id = :t"),
        {"s": source_id, "t": team_id})).first()  # fmt: skip
    if origin is None:
        return
    prefix = archive_prefix(str(origin[2]))
    no_zip = prefix == NO_ARCHIVE  # its "\0" is no text PostgreSQL takes
    failed = (await conn.execute(_FAIL_READING, {
        "s": source_id, "t": team_id, "j": job_id, "why": why, "alone": alone or no_zip,
        "b": origin[0],
        "ref": origin[1], "n": 0 if no_zip else len(prefix),
        "prefix": "" if no_zip else prefix})).first()  # fmt: skip
    if failed is not None:
        await enqueue_report_in(conn, team_id, int(failed[0]), BATCH_CHANGED)
