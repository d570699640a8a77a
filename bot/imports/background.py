"""Imports as durable jobs: stage any files still pending, approve if asked, apply in chunks.

Every step is safe to repeat: staging a source is one transaction that replaces what it
staged before, and the engine's chunks commit with their cursor. So a worker killed at any
point leaves a job that the next worker finishes with exactly the same result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import update
from sqlmodel import col, select

from bot.campaigns.after_import import enroll_imported
from bot.imports.archives import is_zip, open_archive
from bot.imports.batches import (
    ReviewError,
    create_background_batch,
    fail_batch,
    fail_source,
    get_batch,
    get_source,
    queue_batch,
)
from bot.imports.engine import BatchStateError, Progress, apply_batch
from bot.imports.files import (
    DEFAULT_MAX_UNZIPPED_BYTES,
    MAX_RATIO,
    archive_prefix,
    entry_labels,
    is_workbook,
    stage_entry,
    stage_file,
)
from bot.imports.importer import check_files
from bot.imports.mapping import ColumnMapper, mapper_for, mapper_submitted
from bot.imports.reading import CsvFileError
from bot.imports.recognise import ignored_note
from bot.imports.review import source_names
from bot.jobs import queue

# database_words, failure_words and surely live with the jobs: defined here, bot.mailchimp.jobs
# (which this module imports through the review and `jobs cancel`) had to import them inside
# a function. joined too: the worker ends a give-up's error with what giving up did (GivingUp)
from bot.jobs.worker import (
    GivingUp,
    Handler,
    JobContext,
    JobStopped,
    PermanentJobError,
    ToldJobError,
    database_words,
    failure_words,
    joined,
    surely,
)
from bot.notify import ImportNotifier, Silent
from bot.segments import segment_withdrawn, withdraw_segment
from bot.temp_files import disk_temporary_file
from bot.workspaces import find_segment, import_target
from models import (
    BatchStatus,
    Database,
    ImportBatch,
    ImportSource,
    Job,
    Segment,
    SegmentKind,
    SourceKind,
    SourceStatus,
)

log = logging.getLogger(__name__)


async def enqueue_file_import(
    db: Database,
    team_id: str,
    paths: Sequence[Path],
    *,
    segment: str,
    labels: Sequence[str] | None = None,
    create_segment: bool = False,
    update_existing: bool = False,
    requested_by: str = "cli",
    max_attempts: int = 5,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
    column_map: dict[str, str] | None = None,
) -> Job:
    """Check the files now (so a bad one is reported at once), then leave the work to a job.

    `labels`: what the import calls each file, its sources' names (and so its errors and
    notes, in `jobs`, on Home and in the audit log): the paths as the shell's user typed
    them, as the foreground import names them (bot.cli._labels); without, each file's name.
    The job stages each file under its label, a ZIP's CSVs as "LABEL › entry.csv".

    A `column_map` (`--map`) goes with the job, which reads the files with it and remembers
    it for their headers only once the import is approved with valid rows: a mapping of the
    wrong column, which finds none, would otherwise read every later export of that tool.

    A segment `create_segment` makes here is withdrawn again (segments.withdraw_segment) if
    the job fails or finds nothing valid, as the foreground import's is when nothing was
    imported: left, it sat empty in every segment menu and its name was taken."""
    names = [path.name for path in paths] if labels is None else list(labels)
    if len(names) != len(paths):
        raise ValueError("one label per file")
    mapper = await mapper_for(db, team_id, column_map)
    for path, name in zip(paths, names, strict=True):
        with path.open("rb") as stream:
            check_files([(name, stream)], max_unzipped_bytes=max_unzipped_bytes,
                        columns_of=mapper)  # fmt: skip
    made = create_segment and await find_segment(db, team_id, segment) is None
    target = await import_target(db, team_id, segment, create=create_segment)
    assert target.id is not None
    # the labels again, in the files' order (their sources' ids): a ZIP's source is renamed
    # after its first CSV once read, and a retry reads the ZIP under its label again. Not
    # by the path read (absolute), which `jobs --json` would show: only what was typed
    payload: dict[str, object] = {"approved_by": requested_by, "labels": names}
    if made:  # withdrawn if the import comes to nothing (_withdraw_made)
        payload["made_segment"] = target.id
    if column_map:
        payload["column_map"] = dict(column_map)
    job_id = await create_background_batch(
        db, team_id, target.id, requested_by,
        [(name, str(path.resolve())) for name, path in zip(names, paths, strict=True)],
        payload, update_existing=update_existing, max_attempts=max_attempts,
    )  # fmt: skip
    job = await queue.get_job(db, team_id, job_id)
    assert job is not None
    return job


NOTHING_VALID = "Nothing to import: no row of the files has a valid new address."
# Seconds between progress updates of an import's thread reply: each is a chat.update, which
# Slack allows about 50 times a minute (Tier 3) for all of the bot's updates in a workspace,
# so one a second used up the budget alone; a rate-limited one is skipped (SlackNotifier).
PROGRESS_SECONDS = 3.0


def import_handler(chunk_size: int, notifier: ImportNotifier | None = None, *,
                   max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
                   undo_window_days: int | None = None) -> Handler:  # fmt: skip
    reports = notifier or Silent()

    async def run(ctx: JobContext) -> None:
        await run_import(ctx, chunk_size, reports, max_unzipped_bytes=max_unzipped_bytes,
                         undo_window_days=undo_window_days)  # fmt: skip

    async def give_up(ctx: JobContext, error: str) -> str:
        # the job's own error is the worker's ("gave up: ..."): it ends with the sentence
        # saying the segment made for the import was withdrawn, if it was, as the import's
        # error does (`jobs` showed the worker's words alone)
        return await _fail_import_surely(ctx, int(ctx.payload["batch_id"]), error, reports,
                                         draft=bool(ctx.payload.get("approved_by")))  # fmt: skip

    return GivingUp(run, give_up, done_when=import_applied)


# An import's batch is `done` in the transaction that ends its apply (engine.apply_batch),
# or undone since: its job's work is complete, whatever became of the run that did it. Not
# an undone import that had failed (an error) or been cancelled part way (what it applied
# can be undone too): its job, given up on, ended "done" of an import that failed
_APPLIED = ("EXISTS (SELECT 1 FROM import_batch WHERE import_batch.team_id = job.team_id "
            "AND import_batch.id = :done_batch "
            f"AND (import_batch.status = '{BatchStatus.DONE}' OR (import_batch.status IN "
            f"('{BatchStatus.UNDOING}', '{BatchStatus.UNDONE}') "
            "AND import_batch.error IS NULL AND import_batch.cancelled_by IS NULL)))")


def import_applied(ctx: JobContext) -> queue.Done:
    """The import job's work is complete (GivingUp.done_when): its batch applied. Its
    give-up step on such a batch enrolls its contacts and tells its thread the result, as
    its run would have (`_fail_import`)."""
    return queue.Done(_APPLIED, {"done_batch": int(ctx.payload["batch_id"])})


async def _fail_import(db: Database, team_id: str, batch_id: int, error: str,
                       notifier: ImportNotifier, *, draft: bool = False,
                       made_segment: int | None = None, actor: str = "cli") -> str:  # fmt: skip
    """Out of attempts: the import is failed and its thread told. What was applied stays, so
    contacts it added to a targeted segment are enrolled like any others; a batch found done
    (its last run died after the apply) is finished as that run would have. `draft`: an
    import approved when queued (`import --background`) that never got as far as its
    approval fails too; left a draft, nobody could review it, and its segment couldn't be
    deleted.

    `made_segment`: the segment `import --background --create-segment` made for it, withdrawn
    now if nothing is in it (_withdraw_made); returns the sentence saying so, or ""."""
    await fail_batch(db, team_id, batch_id, error, draft=draft)
    ended = await get_batch(db, team_id, batch_id)
    if ended is None or ended.status not in (BatchStatus.FAILED, BatchStatus.DONE):
        return ""
    if ended.status == BatchStatus.DONE or ended.added_to_segment:
        await enroll_imported(db, ended, hold=None)
    removed = ""
    if ended.status == BatchStatus.FAILED and made_segment == ended.segment_id:
        removed = await _withdraw_made(db, team_id, ended, actor)
    await notifier.import_finished(team_id, batch_id)  # Home shows the error with `removed`
    return removed


async def _withdraw_made(db: Database, team_id: str, batch: ImportBatch, actor: str) -> str:
    """Withdraw the segment made for the failed import `batch`, as the foreground import does
    (segments.withdraw_segment: only while nothing is in it and no campaign or other import
    uses it; the audit log says it was deleted, holding no contacts). The import's error
    then says so too (on Home, and in `jobs`, see run_import); returns that sentence, or ""
    if the segment stays, or was deleted by someone else first (the error says why)."""
    segment = await _segment(db, team_id, batch.segment_id)
    if segment is None:
        return ""
    said = segment_withdrawn(segment.name)
    error = batch.error or ""
    if segment.kind == SegmentKind.DELETED and error.endswith(said):
        return said  # this step, taken again (`surely`), withdrew it and said it already
    if segment.kind != SegmentKind.STATIC or not await withdraw_segment(
            db, team_id, batch.segment_id, actor):  # fmt: skip
        return ""  # kept: it holds contacts, or a campaign or another import uses it
    kept = 2000 - len(said) - 2  # as fail_batch keeps it, and the full stop and space
    async with db.begin() as conn:
        await conn.execute(
            update(ImportBatch)
            .where(col(ImportBatch.id) == batch.id, col(ImportBatch.team_id) == team_id,
                   col(ImportBatch.status) == BatchStatus.FAILED)
            .values(error=joined(error[:kept], said))
        )  # fmt: skip
    return said


async def _segment(db: Database, team_id: str, segment_id: int) -> Segment | None:
    async with db.session() as session:
        found = await session.get(Segment, segment_id)
    return found if found is not None and found.team_id == team_id else None


async def _fail_import_surely(ctx: JobContext, batch_id: int, error: str,
                              notifier: ImportNotifier, *,
                              draft: bool = False) -> str:  # fmt: skip
    """`_fail_import` from a run that ends the job for good, through a database outage
    (`surely`): the database down, failing the import failed too, and the import said
    "importing" for good (only a cancel ended it). The segment `import --background
    --create-segment` made (the payload's "made_segment") is withdrawn if nothing is in it:
    returns the sentence saying so, or ""."""
    made = ctx.payload.get("made_segment")
    actor = str(ctx.payload.get("approved_by") or "cli")
    return await surely(ctx, f"import {batch_id}: recording its failure", lambda: _fail_import(
        ctx.db, ctx.team_id, batch_id, error, notifier, draft=draft,
        made_segment=int(made) if made is not None else None, actor=actor))  # fmt: skip


async def run_import(ctx: JobContext, chunk_size: int, notifier: ImportNotifier, *,
                     max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
                     undo_window_days: int | None = None) -> None:  # fmt: skip
    db, team_id = ctx.db, ctx.team_id
    batch_id = int(ctx.payload["batch_id"])
    batch = await get_batch(db, team_id, batch_id)
    if batch is None:
        raise PermanentJobError(f"Import #{batch_id} no longer exists.")
    if batch.status == BatchStatus.DRAFT:
        approver = ctx.payload.get("approved_by")
        mapper = await mapper_for(db, team_id, ctx.payload.get("column_map"))
        try:
            await _stage_pending_files(db, team_id, batch_id, max_unzipped_bytes, mapper,
                                       ctx.payload.get("labels") or [])  # fmt: skip
            ctx.checkpoint()
            if not approver:
                return  # staged for review; approval enqueues the apply
            await queue_batch(db, team_id, batch_id, str(approver))
            # only now, as in the foreground: approved, so it found valid rows; and only for
            # the headers of files that did (found_rows)
            await mapper.remember_given(db, team_id, str(approver))
        except JobStopped:
            raise
        except ReviewError as exc:  # nothing valid, or its segment deleted: no retry helps
            staged = await get_batch(db, team_id, batch_id)
            error = NOTHING_VALID if staged is not None and not staged.valid else str(exc)
            removed = ""
            if approver:
                removed = await _fail_import_surely(ctx, batch_id, error, notifier, draft=True)
            raise PermanentJobError(joined(error, removed)) from None
        except Exception as exc:  # a file gone or unreadable since it was queued
            # a file that failed (PermanentJobError: no retry) ends the job at once, so the
            # import fails with it then, not only on the last attempt: it stayed a draft
            # nobody could review, with no error
            permanent = isinstance(exc, PermanentJobError)
            if approver and (ctx.last_attempt or permanent):
                error = str(exc) if permanent else failure_words(exc)
                removed = await _fail_import_surely(ctx, batch_id, error, notifier, draft=True)
                if removed:  # the job's error says it too (`jobs`): it ends here either way
                    if not permanent:  # a ToldJobError's words say all of it: no traceback
                        told = isinstance(exc, ToldJobError)
                        log.error("import %s failed on its last attempt%s", batch_id,
                                  f": {exc}" if told else "", exc_info=None if told else exc)
                    raise PermanentJobError(joined(error, removed)) from exc
            raise
    last = 0.0

    async def report(progress: Progress) -> None:
        nonlocal last
        await ctx.progress(progress.done, progress.total)
        if time.monotonic() - last >= PROGRESS_SECONDS and progress.done < progress.total:
            last = time.monotonic()
            await notifier.import_progress(team_id, batch_id, progress.done, progress.total)

    try:
        result = await apply_batch(db, team_id, batch_id, on_progress=report,
                                   chunk_size=chunk_size, undo_window_days=undo_window_days)
    except JobStopped:
        raise
    except Exception as exc:
        final = isinstance(exc, BatchStateError) or ctx.last_attempt
        removed = ""
        if final:
            # a database error in words, never its SQL and parameters (Home, the thread)
            error = database_words(exc) or str(exc) or type(exc).__name__
            removed = await _fail_import_surely(ctx, batch_id, error, notifier)
        if isinstance(exc, BatchStateError):
            raise PermanentJobError(joined(str(exc), removed)) from None
        if removed:  # nothing was applied: the segment made for it went (`jobs` says so)
            log.error("import %s failed on its last attempt", batch_id, exc_info=exc)
            raise PermanentJobError(joined(failure_words(exc), removed)) from exc
        raise
    # through a database outage (`surely`): failing on the last attempt, the job failed with
    # the import done, and nothing enrolled its contacts in the campaigns targeting its
    # segment (the review had said they would be invited), nor told its thread
    if result.status == BatchStatus.DONE:
        await surely(ctx, f"import {batch_id}: enrolling its contacts",
                     lambda: enroll_imported(db, result, hold=None))  # fmt: skip
    if result.status != BatchStatus.CANCELLED:  # a cancellation reports itself
        await surely(ctx, f"import {batch_id}: reporting it",
                     lambda: notifier.import_finished(team_id, batch_id))  # fmt: skip


async def _stage_pending_files(db: Database, team_id: str, batch_id: int,
                               max_unzipped_bytes: int, mapper: ColumnMapper,
                               labels: Sequence[str] = ()) -> None:  # fmt: skip
    """Stage every file of the batch not read yet, with `mapper`'s columns. A ZIP's entries
    share its ref (the path): the file is staged again from its first source, which stages
    only those still pending.

    `labels`: the files' names as typed, in the order of their sources (enqueue_file_import);
    each file is read under its own, as the foreground import reads it: by the path's last
    part, "customers.csv: No email column" didn't say which of `a/customers.csv` and
    `b/customers.csv` (a job queued without them reads a file under that name)."""
    async with db.session() as session:
        files = (
            await session.exec(
                select(ImportSource).where(
                    ImportSource.team_id == team_id,
                    ImportSource.batch_id == batch_id,
                    ImportSource.kind == SourceKind.CSV,
                ).order_by(col(ImportSource.id))
            )
        ).all()
    # the first sources are the files, in the order they were queued (a ZIP's CSVs after)
    typed = {source.id: str(label) for source, label in zip(files, labels, strict=False)}
    origins: dict[str, ImportSource] = {}
    for source in files:
        if source.ref is not None:
            origins.setdefault(source.ref, source)
    pending = {s.ref for s in files if s.status == SourceStatus.PENDING and not s.removed}
    done = {s.id for s in files if s.status != SourceStatus.PENDING or s.removed}
    for ref, origin in origins.items():
        if ref not in pending:
            continue
        assert origin.id is not None
        path = Path(ref)
        name = typed.get(origin.id, path.name)
        since = len(mapper.read)
        try:
            stream = path.open("rb")
        except OSError as exc:  # a vanished file fails and retries, named as typed
            raise ToldJobError(_unopened(exc, name)) from exc
        with stream:
            staged = await stage_file(db, team_id, origin.id, stream, name=name,
                                      max_unzipped_bytes=max_unzipped_bytes,
                                      columns_of=mapper)  # fmt: skip
        failed = next((s for s in staged if s.status == SourceStatus.FAILED), None)
        if failed is not None:
            raise PermanentJobError(f"{await _name(db, team_id, failed)}: {failed.error}")
        # which headers found valid rows, of the sources read now (a ZIP's CSVs read by an
        # earlier attempt, or removed, are not read again): only those are remembered
        mapper.found_rows(since, [s for s in staged if s.id not in done])


def _unopened(exc: OSError, name: str) -> str:
    """Why the file couldn't be opened, in words, naming it `name` (as typed): it said
    "FileNotFoundError: [Errno 2] No such file or directory: '/home/ana/exports/a.csv'", the
    class and the absolute path the job reads, which `jobs` and Home (the import's error)
    showed, whatever path the person had typed. Retried all the same: a file being replaced,
    or a share mounted again, is back for a later attempt."""
    if isinstance(exc, FileNotFoundError):
        return f"{name}: no such file (moved or deleted since the import was queued?)"
    reason = exc.strerror or type(exc).__name__
    return f"{name}: {reason[:1].lower()}{reason[1:]}"


async def _name(db: Database, team_id: str, source: ImportSource) -> str:
    """The source's name as the review message shows it, told apart from the import's other
    files of its name: "customers.csv: No email column" did not say which of two (`import
    --background a/customers.csv b/customers.csv`, two uploads of one export) failed."""
    names = await source_names(db, team_id, source.batch_id)
    return names.get(source.id or 0, source.label)


class FileRejected(Exception):
    """The file can't be fetched or can't be imported; the message is meant for the user."""


# Writes the shared file with this id into `dest` and returns its name as its owner sees it;
# raises FileRejected with a sentence when it can't or mustn't (Slack's side:
# handlers/slack_files.py, which alone holds the bot token).
FileFetcher = Callable[[str, BinaryIO], Awaitable[str]]


def slack_file_handler(
    fetch: FileFetcher, *, notifier: ImportNotifier,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
) -> Handler:  # fmt: skip
    """Read a file shared in Slack into its source: fetch it, then stage it.

    A ZIP fills one source per CSV in it; a retried job stages only those still pending.
    A payload with "again" (*Map columns*) reads that one source again, the ZIP's entry of
    its name for a CSV in a ZIP, and nothing else of the file.

    Failing a file that can't be read and reporting the reading ride out a database outage
    (`surely`): failing with the database, the job failed and the review said "Reading…" for
    good, nobody able to approve or remove it."""

    async def fail(ctx: JobContext, source: ImportSource, error: str, alone: bool) -> None:
        await surely(ctx, f"Slack file source {source.id}: recording its failure",
                     lambda: _fail_unread(ctx.db, ctx.team_id, source, error,
                                          alone=alone))  # fmt: skip

    async def report(ctx: JobContext, staged: Sequence[ImportSource]) -> None:
        await surely(ctx, "reporting a Slack file's reading",
                     lambda: _report_read(notifier, ctx.team_id, staged))  # fmt: skip

    async def run(ctx: JobContext) -> None:
        db, team_id = ctx.db, ctx.team_id
        source_id, again = int(ctx.payload["source_id"]), bool(ctx.payload.get("again"))
        source = await (_pending_source if again else _unread_source)(db, team_id, source_id)
        if source is None:
            # read already: by this job before it was retried, whose report may not have gone
            # out (a report is safe to repeat: the message is refreshed, a CSV shared once)
            await _report_read_before(notifier, db, team_id, source_id, again)
            return
        assert source.id is not None and source.ref is not None
        staged: list[ImportSource] = [source]
        try:
            with disk_temporary_file() as tmp:  # on disk: a big download isn't held in RAM
                name = await fetch(source.ref, tmp)
                tmp.seek(0)
                staged = (
                    [await _stage_again(db, team_id, source, tmp, name, max_unzipped_bytes,
                                        await mapper_submitted(db, team_id, ctx.payload))]
                    if again else
                    await stage_file(db, team_id, source.id, tmp, name=name,
                                     max_unzipped_bytes=max_unzipped_bytes)
                )  # fmt: skip
        except FileRejected as exc:  # not Slack's file host, too big, not a CSV...: say why
            log.warning("import %s (team %s): Slack file %s refused: %s", source.batch_id,
                        team_id, source.ref, exc)  # fmt: skip
            await fail(ctx, source, str(exc), again)
        except Exception as exc:
            if not ctx.last_attempt:
                raise  # retried later; the review keeps showing "Reading…"
            log.exception("import %s (team %s): Slack file %s could not be read after %s "
                          "attempts", source.batch_id, team_id, source.ref,
                          ctx.job.attempts)  # fmt: skip
            why = database_words(exc) or str(exc)
            await fail(ctx, source, f"Could not read the file: {why}", again)
        await report(ctx, staged)

    async def give_up(ctx: JobContext, error: str) -> None:
        source_id, again = int(ctx.payload["source_id"]), bool(ctx.payload.get("again"))
        source = await surely(ctx, f"Slack file source {source_id}: reading it", lambda: (
            _pending_source if again else _unread_source)(ctx.db, ctx.team_id, source_id))
        if source is not None:
            await fail(ctx, source, f"Could not read the file: {error}", again)
            await report(ctx, [source])
            return
        # read by a run killed before its job was marked done, and perhaps before its report:
        # the job ends done (slack_file_read), the review said "Reading…" until redrawn
        await surely(ctx, "reporting a Slack file's reading", lambda: _report_read_before(
            notifier, ctx.db, ctx.team_id, source_id, again))  # fmt: skip

    return GivingUp(run, give_up, done_when=slack_file_read)


async def _report_read_before(notifier: ImportNotifier, db: Database, team_id: str,
                              source_id: int, again: bool) -> None:  # fmt: skip
    """Report a reading of the source that an earlier run of its job made (`again`: of that
    source alone; else of its upload's, a ZIP's CSVs with it)."""
    async with db.session() as session:
        done = await session.get(ImportSource, source_id)
    if done is not None and done.team_id == team_id:
        await _report_read(notifier, team_id,
                           [done] if again else await _upload_sources(db, team_id, done))


# A Slack file's reading ended (read, or failed with why), as its run leaves it done: no
# source of the upload pending (its ZIP's CSVs: same import and file, added after it), nor
# the source itself for a reading of it alone. Stricter than _unread_source (a later share of
# the same file in the same import counts too): when it can't tell, the job fails as before.
_UPLOAD_READ = ("NOT EXISTS (SELECT 1 FROM import_source o JOIN import_source s "
                "ON s.team_id = o.team_id AND s.batch_id = o.batch_id AND s.ref = o.ref "
                f"AND s.kind = '{SourceKind.CSV}' AND s.id >= o.id "
                "WHERE o.team_id = job.team_id AND o.id = :done_source "
                f"AND s.status = '{SourceStatus.PENDING}' AND (s.id = o.id OR NOT s.removed))")
_SOURCE_READ = ("NOT EXISTS (SELECT 1 FROM import_source s WHERE s.team_id = job.team_id "
                f"AND s.id = :done_source AND s.status = '{SourceStatus.PENDING}' "
                "AND NOT s.removed)")


def slack_file_read(ctx: JobContext) -> queue.Done:
    """The Slack file job's work is complete (GivingUp.done_when): what it reads is no
    longer pending. Its give-up step then fails nothing and reports the reading."""
    sql = _SOURCE_READ if ctx.payload.get("again") else _UPLOAD_READ
    return queue.Done(sql, {"done_source": int(ctx.payload["source_id"])})


async def _report_read(notifier: ImportNotifier, team_id: str,
                       staged: Sequence[ImportSource]) -> None:  # fmt: skip
    """Report the file's reading: the review message redrawn once, and each source's skipped
    rows shared. A report per source redrew the message with the same content each time: a
    ZIP of 50 CSVs made 50 chat.updates of it within seconds, past Slack's budget (about 50
    a minute), and the rate-limit retries held the reading job and the review for minutes.
    All are staged by now, so the first source's report draws them all."""
    if not staged:
        return
    first, *rest = staged
    await notifier.source_read(team_id, first.batch_id, first.id or 0)
    for read in rest:  # only a reading of one source (Map columns) has All sources lists
        await notifier.rejects_changed(team_id, read.batch_id, read.id or 0)


async def _stage_again(db: Database, team_id: str, source: ImportSource, stream: BinaryIO,
                       name: str, max_unzipped_bytes: int,
                       columns_of: ColumnMapper) -> ImportSource:  # fmt: skip
    """Stage the source alone from its file (called `name`) with `columns_of` (the mapping
    submitted in *Map columns*): a CSV or a workbook as a whole;
    from a ZIP, the CSV its label names (as the *Map columns* modal found it), however the
    ZIP's other sources stand: the first one, which a reading of the whole ZIP starts from,
    may have been removed from the review."""
    if is_workbook(stream, name) or not is_zip(stream):
        (staged, *_) = await stage_file(db, team_id, source.id or 0, stream, name=name,
                                        max_unzipped_bytes=max_unzipped_bytes,
                                        columns_of=columns_of)  # fmt: skip
        return staged
    try:
        archive = open_archive(stream, max_total_bytes=max_unzipped_bytes, max_ratio=MAX_RATIO)
    except CsvFileError as exc:
        await fail_source(db, team_id, source.id or 0, exc, only_pending=True)
        return await get_source(db, team_id, source.id or 0)
    with archive:
        labels = [label[:255] for label in entry_labels(name, archive.entries)]
        if source.label not in labels:
            await fail_source(db, team_id, source.id or 0, f"{await _name(db, team_id, source)} "
                              f"is no longer in {name}.", only_pending=True)  # fmt: skip
            return await get_source(db, team_id, source.id or 0)
        index = labels.index(source.label)
        entry = archive.entries[index]
        notes = [ignored_note(name, archive.ignored)] if index == 0 else []
        return await stage_entry(db, team_id, source, entry, notes, columns_of)


async def _upload_sources(db: Database, team_id: str, origin: ImportSource) -> list[ImportSource]:
    """The origin and the sources a reading of its ZIP added (same batch and ref, after it)."""
    async with db.session() as session:
        return list((await session.exec(
            select(ImportSource).where(
                ImportSource.team_id == team_id, ImportSource.batch_id == origin.batch_id,
                ImportSource.ref == origin.ref, ImportSource.kind == SourceKind.CSV,
                col(ImportSource.id) >= (origin.id or 0),
            ).order_by(col(ImportSource.id))
        )).all())  # fmt: skip


async def _unread_source(db: Database, team_id: str, source_id: int) -> ImportSource | None:
    """The upload's source if it, or a source its ZIP added, is still to be read."""
    async with db.session() as session:
        source = await session.get(ImportSource, source_id)
    if source is None or source.team_id != team_id:
        return None
    if source.status == SourceStatus.PENDING:
        return source
    unread = [s for s in await _upload_sources(db, team_id, source)
              if s.status == SourceStatus.PENDING and not s.removed and s.label.startswith(
                  archive_prefix(source.label))]  # fmt: skip
    return source if unread else None


async def _pending_source(db: Database, team_id: str, source_id: int) -> ImportSource | None:
    """The source, if it is still to be read (and still part of its import's review)."""
    async with db.session() as session:
        source = await session.get(ImportSource, source_id)
    if source is None or source.team_id != team_id or source.removed:
        return None
    return source if source.status == SourceStatus.PENDING else None


async def _fail_unread(db: Database, team_id: str, origin: ImportSource, error: str, *,
                       alone: bool = False) -> None:  # fmt: skip
    """The file can't be read at all: every source of it still pending fails with `error`
    (`alone`: only `origin`, read again by itself; the others are not this job's)."""
    for source in [origin] if alone else await _upload_sources(db, team_id, origin):
        if source.status == SourceStatus.PENDING and (
            source.id == origin.id or source.label.startswith(archive_prefix(origin.label))
        ):
            await fail_source(db, team_id, source.id or 0, error, only_pending=True)
