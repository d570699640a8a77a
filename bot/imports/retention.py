"""Staged rows are kept only while they are useful: deleted STAGED_RETENTION_DAYS after their
import ended (done, failed, rejected or cancelled, and undone: an undone import ended too, and
leaving it out kept its rows on disk for good, the purge queueing itself again every day for
them). An import being undone keeps its rows until its undo has finished. A draft untouched
for as long is cancelled ("expired"), so it ends too (_STALE_DRAFTS).

A purge job runs about once a day per workspace: creating a batch queues one (due within the
hour, or one waiting brought forward to then), the end of any job of the workspace queues one
a day on when none waits (bot.jobs.queue.schedule_purge_after_in), and each run queues the
next (a day later by the database's clock, as due times go) while any batch still holds
staged rows or the workspace has ended jobs it will forget (bot.jobs.retention: a workspace
that stopped importing kept every Home refresh, report and send run's job for good). One
waits per workspace, whoever queues it (bot.jobs.queue.PURGE_KEY). The counts shown on an
ended import were frozen when it left review, so deleting its rows changes nothing anyone
sees.

The same run forgets the later imports' listings of memberships (segment_member_listing) whose
import can no longer be undone (it ended more than UNDO_WINDOW_DAYS ago, and isn't being
undone): no undo will hand those on any more, and a workspace that imports its whole list
into the same segment every month kept a row per contact and import for good. So it forgets
whom such an import re-subscribed (resubscribed_contact): only its undo needs that.

It also drops what a killed dry run left: `import --dry-run` stages its rows in a batch of its
own (marked `dry_run`) and drops it when it ends, but one killed part way (kill -9, a dropped
SSH session) never does. No list of imports shows such a batch; once it is older than any dry
run takes (DRY_RUN_LEFT_AFTER), its rows, its sources and itself go, as the dry run would have
dropped them (bot.imports.dry_run.drop_batch).

On SQLite the staged rows live in a file of their own (models/staging.py), which a delete
leaves at its biggest size: a purge that leaves most of it free rewrites it (`VACUUM`), so a
million-row import's 120 MB don't stay on disk for good.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.audit import Act, import_subject, import_subject_sql, record_in
from bot.imports.batches import EXPIRED_BY, freeze_counts
from bot.imports.job_kinds import PURGE_JOB, import_job_key_sql, reads_source_sql
from bot.imports.mapping import kept_header
from bot.imports.reading import is_data_row
from bot.imports.undo_window import close_undo_before
from bot.jobs.forgettable import jobs_left_to_forget_in
from bot.jobs.queue import database_now_in, schedule_purge_in
from bot.jobs.retention import forget_finished_jobs
from bot.jobs.worker import Handler, JobContext
from bot.notify import BATCH_CHANGED, enqueue_report_in
from models import Database, ImportBatch
from models.clock import utcnow
from models.staging import SCHEMA

# Rewrite the staging file when at least this many of its pages (4 KiB) are free, and they are
# most of it: rewriting copies what is left, so it is cheap exactly when it pays.
SHRINK_FREE_PAGES = 2_048

log = logging.getLogger(__name__)
ENDED = ("done", "failed", "rejected", "cancelled", "undone")  # never 'undoing': not yet
_ENDED = "(" + ", ".join(f"'{status}'" for status in ENDED) + ")"


def rows_purged(batch: ImportBatch, retention_days: float, now: datetime) -> bool:
    """Whether the purge may have deleted the batch's staged rows by `now`: a CSV of its
    skipped rows asked for then is empty because they are gone, not because none is
    skipped."""
    ended = batch.finished_at if batch.status in ENDED else None
    return ended is not None and ended < now - timedelta(days=retention_days)

_PURGE = text(f"""
    DELETE FROM staged_row WHERE team_id = :t AND batch_id IN (
        SELECT id FROM import_batch
        WHERE team_id = :t AND status IN {_ENDED} AND finished_at < :cutoff)
""").bindparams(bindparam("cutoff", type_=UTCDateTime()))

# An address a lead took out in *Review contacts* is named in the audit log ("edited import
# #12 (removed zed@example.com)"): someone never imported, often the one who asked to be left
# out. It is forgotten with the import's staged rows, which are all that knew it.
FORGOTTEN_REMOVAL = "removed an address, forgotten with the import's rows"
_FORGET_REMOVED_ADDRESSES = text(f"""
    UPDATE audit_entry SET detail = :forgotten
    WHERE team_id = :t AND action = :removed AND detail <> :forgotten
      AND subject IN (SELECT {import_subject_sql("id")} FROM import_batch
                      WHERE team_id = :t AND status IN {_ENDED} AND finished_at < :cutoff)
""").bindparams(bindparam("cutoff", type_=UTCDateTime()))

# So is a customer typed in by hand: its source is labelled with the address (the review
# lists it so), and sources are kept with their import for good.
FORGOTTEN_CUSTOMER = "a customer typed in (forgotten with the import's rows)"
_FORGET_TYPED_ADDRESSES = text(f"""
    UPDATE import_source SET label = :forgotten
    WHERE team_id = :t AND kind = 'contact' AND label <> :forgotten
      AND batch_id IN (SELECT id FROM import_batch
                       WHERE team_id = :t AND status IN {_ENDED} AND finished_at < :cutoff)
""").bindparams(bindparam("cutoff", type_=UTCDateTime()))

# ... and the header kept on a source for *Map columns* when it may be a row of data (a file
# without a header row: its first customer's address and name), needed by nothing once its
# import ended. The test is reading.is_data_row (a cell holding an @ and no space, or an
# address in <>), looser than the reading's reading.holds_an_address_cell on purpose:
# whatever may be a customer's address goes. A real header that only mentions an address
# among words ("Questions? (ask help@shop.example)") stays, and `referral-bot mappings`
# shows it beside its mapping; one with an address-like column name ("mail@work",
# "Backup(name@domain)") is forgotten too, its mapping then listed with its headers not
# kept (unless a newer file of the same headers keeps them): a privacy choice.
_ENDED_HEADERS = text(f"""
    SELECT id, header FROM import_source
    WHERE team_id = :t AND header LIKE '%@%'
      AND batch_id IN (SELECT id FROM import_batch
                       WHERE team_id = :t AND status IN {_ENDED} AND finished_at < :cutoff)
""").bindparams(bindparam("cutoff", type_=UTCDateTime()))
_FORGET_HEADER = text("UPDATE import_source SET header = NULL WHERE team_id = :t AND id = :s")


async def _forget_data_headers_in(conn: AsyncConnection, team_id: str,
                                  ended_before: dict[str, object]) -> None:  # fmt: skip
    for source_id, kept in (await conn.execute(_ENDED_HEADERS, ended_before)).all():
        columns, _sheet = kept_header(kept)
        if is_data_row(columns):
            await conn.execute(_FORGET_HEADER, {"t": team_id, "s": source_id})


_PURGE_LISTINGS = text("""
    DELETE FROM segment_member_listing WHERE team_id = :t AND EXISTS (
        SELECT 1 FROM segment_member m JOIN import_batch b ON b.id = m.batch_id
        WHERE m.segment_id = segment_member_listing.segment_id
          AND m.contact_id = segment_member_listing.contact_id AND m.team_id = :t
          AND b.team_id = :t AND b.status IN ('done', 'failed', 'cancelled')
          AND b.finished_at < :cutoff)
""").bindparams(bindparam("cutoff", type_=UTCDateTime()))

# Imports that can't be undone any more (nor are being undone) need no record of whom they
# re-subscribed: only their undo reads it.
_PURGE_RESUBSCRIBED = text(f"""
    DELETE FROM resubscribed_contact WHERE team_id = :t AND batch_id IN (
        SELECT id FROM import_batch
        WHERE team_id = :t AND status IN {_ENDED} AND finished_at < :cutoff)
""").bindparams(bindparam("cutoff", type_=UTCDateTime()))

# A dry run counts a million rows in seconds: a dry run's batch this old was left by a process
# killed before it could drop it. Well under the hour after which a batch's creation queues
# the purge, so that purge finds it.
DRY_RUN_LEFT_AFTER = timedelta(minutes=30)
_LEFT_BY_DRY_RUNS = ("SELECT id FROM import_batch WHERE team_id = :t AND dry_run = :yes "
                     "AND created_at < :before")  # fmt: skip
# what such a batch holds, and then itself (its sources refer to it)
_DROP_LEFT_BY_DRY_RUNS = [
    text(f"DELETE FROM {table} WHERE team_id = :t AND {column} IN ({_LEFT_BY_DRY_RUNS})")
    .bindparams(bindparam("before", type_=UTCDateTime()))
    for table, column in (("staged_row", "batch_id"), ("import_source", "batch_id"),
                          ("import_batch", "id"))
]  # fmt: skip

# Drafts nobody approved, rejected or cancelled for weeks (left in review, a shell import
# killed part way, a review never posted): they never ended, so their rows, every customer of
# their files, stayed for good. Untouched (no change bumps `updated_at`) for the retention's
# days, and at least DRAFT_EXPIRY_MIN_DAYS, whatever a short retention says (0 cancelled a
# review in progress within the hour), and with no file still being read, one ends,
# cancelled as expired (batches.EXPIRED_BY), and its rows go the retention's days later, as
# any ended import's (a dry run's batch is dropped apart, above).
DRAFT_EXPIRY_MIN_DAYS = 30
def _still_at_work(batch: str) -> str:
    """SQL: whether a job is queued or running for the batch whose id is the column `batch`:
    one reading a file of it (job_kinds.reads_source_sql), or its import's own. A source
    pending with no job (a shell import killed while reading it) is read by nobody, and
    doesn't hold the draft."""
    return f"""EXISTS (
        SELECT 1 FROM job j WHERE j.team_id = :t AND j.state IN ('queued', 'running')
          AND (j.dedupe_key = {import_job_key_sql(batch)} OR EXISTS (
              SELECT 1 FROM import_source s WHERE s.team_id = :t AND s.batch_id = {batch}
                AND {reads_source_sql("j.dedupe_key", "s.id")})))"""


_STALE_DRAFTS = text(f"""
    SELECT b.id FROM import_batch b
    WHERE b.team_id = :t AND b.status = 'draft' AND b.dry_run = :no AND b.updated_at < :cutoff
      AND NOT {_still_at_work("b.id")}
""").bindparams(bindparam("cutoff", type_=UTCDateTime()))
# taken only if still untouched: a change made since the draft was picked leaves it be
_EXPIRE = text(f"""
    UPDATE import_batch SET status = 'cancelled', cancelled_by = :expired, finished_at = :now,
                            updated_at = :now, revision = revision + 1
    WHERE team_id = :t AND id = :b AND status = 'draft' AND updated_at < :cutoff
      AND NOT {_still_at_work("import_batch.id")}
""").bindparams(bindparam("cutoff", type_=UTCDateTime()), bindparam("now", type_=UTCDateTime()))
EXPIRED = "expired: left in review untouched for {days:g} days"
PURGE_ACTOR = "The purge"  # who the audit log says did it (no person, no shell; 12 wide)

# Any batch still holding staged rows, ended or not: an import still in review when this run
# came ends later, and its rows must be purged then too (only the first batch's creation
# queued a purge, so a review longer than an hour left its rows on disk for good).
_LEFT = text("""
    SELECT 1 FROM import_batch b
    WHERE b.team_id = :t
      AND EXISTS (SELECT 1 FROM staged_row s WHERE s.team_id = :t AND s.batch_id = b.id)
    LIMIT 1
""")


async def purge_staged(db: Database, team_id: str, days: float,
                       undo_days: float | None = None) -> int:  # fmt: skip
    """The workspace's retention run; returns how many staged rows it deleted (a killed dry
    run's too). In order:

    - the jobs that ended long enough ago are forgotten (bot.jobs.retention), first, so the
      next run is queued only for what is left then;
    - drafts untouched for `days` (at least DRAFT_EXPIRY_MIN_DAYS) end, cancelled as
      expired (_STALE_DRAFTS), each audited and its review redrawn;
    - the staged rows of imports that ended more than `days` ago are deleted, and with them
      what else named their customers: addresses taken out in review, in the audit log
      (FORGOTTEN_REMOVAL); a customer typed in, as its source's label (FORGOTTEN_CUSTOMER);
      a header kept on a source that may be a row of data (_ENDED_HEADERS says which);
    - the batches killed dry runs left go, with their sources and staged rows;
    - given the undo window (`undo_days`), for the imports that ended before it: the
      listings no undo can hand on any more and the re-subscriptions no undo can take back
      go, and their undo is closed for good (close_undo_before: what it needs is gone);
    - the next run is queued a day on while any batch holds staged rows or ended jobs are
      left to forget;
    - on SQLite, the staging file is rewritten when the delete left most of it free."""
    await forget_finished_jobs(db, team_id)
    await _expire_stale_drafts(db, team_id, days)
    async with db.begin() as conn:
        ended_before = {"t": team_id, "cutoff": utcnow() - timedelta(days)}
        result = await conn.execute(_PURGE, ended_before)
        await conn.execute(_FORGET_REMOVED_ADDRESSES, {
            **ended_before, "removed": Act.IMPORT_CONTACT_REMOVED,
            "forgotten": FORGOTTEN_REMOVAL})  # fmt: skip
        await conn.execute(_FORGET_TYPED_ADDRESSES, {**ended_before,
                                                     "forgotten": FORGOTTEN_CUSTOMER})
        await _forget_data_headers_in(conn, team_id, ended_before)
        purged = result.rowcount + await _drop_left_by_dry_runs_in(conn, team_id)
        if undo_days is not None:
            cutoff = utcnow() - timedelta(undo_days)
            past_undo = {"t": team_id, "cutoff": cutoff}
            await conn.execute(_PURGE_LISTINGS, past_undo)
            await conn.execute(_PURGE_RESUBSCRIBED, past_undo)
            await close_undo_before(conn, team_id, cutoff)  # what undoing them needs is gone
        if ((await conn.execute(_LEFT, {"t": team_id})).first() is not None
                or await jobs_left_to_forget_in(conn, team_id, PURGE_JOB)):
            # due by the clock due times are compared with (PostgreSQL's), not this host's
            tomorrow = await database_now_in(conn) + timedelta(days=1)
            await schedule_purge_in(conn, team_id, tomorrow)
    if db.is_sqlite and purged:
        try:
            await shrink_staging(db)
        except sqlite3.OperationalError as exc:  # busy past the timeout; the rows are gone anyway
            log.warning("staging file not shrunk this time (%s): %s", team_id, exc)
    return purged


async def _expire_stale_drafts(db: Database, team_id: str, days: float) -> None:
    """End the drafts left untouched (_STALE_DRAFTS), each in a transaction of its own."""
    days = max(days, DRAFT_EXPIRY_MIN_DAYS)
    params = {"t": team_id, "no": False, "cutoff": utcnow() - timedelta(days)}
    async with db.begin() as conn:
        stale = (await conn.execute(_STALE_DRAFTS, params)).scalars().all()
    for batch_id in stale:
        if await _expire(db, team_id, int(batch_id), params, days):
            log.info("draft %s (team %s) expired after %g days untouched", batch_id, team_id,
                     days)  # fmt: skip


async def _expire(db: Database, team_id: str, batch_id: int, params: dict[str, object],
                  days: float) -> bool:  # fmt: skip
    """End one draft picked as stale, if it still is (a change since leaves it be), with its
    counts frozen, the audit entry and its review's redraw queued, as a Cancel does."""
    async with db.begin() as conn:
        taken = await conn.execute(_EXPIRE, {**params, "b": batch_id, "now": utcnow(),
                                             "expired": EXPIRED_BY})  # fmt: skip
        if taken.rowcount != 1:
            return False
        await freeze_counts(conn, team_id, batch_id)
        await record_in(conn, team_id, PURGE_ACTOR, Act.IMPORT_CANCELLED,
                        import_subject(batch_id), EXPIRED.format(days=days))  # fmt: skip
        await enqueue_report_in(conn, team_id, batch_id, BATCH_CHANGED)
    return True


async def _drop_left_by_dry_runs_in(conn: AsyncConnection, team_id: str) -> int:
    """Drop the batches killed dry runs left (DRY_RUN_LEFT_AFTER), with their sources and
    staged rows, in the purge's transaction; how many staged rows went."""
    params = {"t": team_id, "yes": True, "before": utcnow() - DRY_RUN_LEFT_AFTER}
    staged, _, batches = [(await conn.execute(drop, params)).rowcount
                          for drop in _DROP_LEFT_BY_DRY_RUNS]  # fmt: skip
    if batches:
        log.info("dropped %d batches killed dry runs left (team=%s, %d staged rows)", batches,
                 team_id, staged)  # fmt: skip
    return staged


async def shrink_staging(db: Database) -> bool:
    """VACUUM the SQLite staging file if it is mostly free pages; True if it was.

    Outside any transaction (VACUUM can't run in one); it waits, like any writer, for a file
    being staged meanwhile, and blocks the staging file for as long as it copies what is left.
    """
    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        free = (await raw.execute_fetchall(f"PRAGMA {SCHEMA}.freelist_count"))[0][0]
        pages = (await raw.execute_fetchall(f"PRAGMA {SCHEMA}.page_count"))[0][0]
        if free < SHRINK_FREE_PAGES or free * 2 < pages:
            return False
        await raw.execute_fetchall(f"VACUUM {SCHEMA}")
    return True


def purge_handler(days: float, undo_days: float | None = None) -> Handler:
    async def run(ctx: JobContext) -> None:
        await purge_staged(ctx.db, ctx.team_id, days, undo_days)

    return run
