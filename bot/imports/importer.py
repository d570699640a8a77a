"""The whole pipeline in one call, for trusted callers (the CLI): check, stage, approve, apply.

Files may be CSV, .xlsx workbooks or ZIPs of CSVs (Mailchimp's audience export): files.py
tells them apart and a ZIP becomes one source per CSV in it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import BinaryIO, TextIO

from sqlmodel import col, select

from bot.campaigns.after_import import enroll_imported_now
from bot.imports.batches import (
    add_source,
    approve_in,
    create_batch,
    get_source,
    own_live_segment_in,
    record_approval_in,
    skipped_by_status_of_all,
    write_rejects,
)
from bot.imports.dry_run import DryRun, drop_batch, dry_run
from bot.imports.engine import APPLY_CHUNK, Progress, apply_batch
from bot.imports.files import DEFAULT_MAX_UNZIPPED_BYTES, check_file, stage_file
from bot.imports.job_kinds import IMPORT_JOB, import_job_key
from bot.imports.locale_notes import unknown_locale_notes
from bot.imports.mapping import ColumnMapper, mapper_for
from bot.imports.reading import (
    ChosenColumnMissing,
    ColumnsError,
    ColumnsOf,
    CsvFileError,
    map_header,
)
from bot.imports.recognise import archive_note
from bot.imports.review import ReviewError, cancel
from bot.imports.source_names import names_by_id
from bot.jobs.here import running_here, shell_owner
from bot.jobs.queue import enqueue_running_in, report_progress
from bot.mailchimp.accounts import refused_from_now_on, stamp_of
from bot.mailchimp.api import Audience, Credentials, MailchimpError, ReconnectNeeded
from bot.mailchimp.importing import read_audience
from bot.progress import ProgressBar
from bot.segments import withdraw_segment
from bot.words import listed, plural, quoted
from bot.workspaces import WorkspaceError, find_segment, free_name, import_target
from models import (
    BatchStatus,
    Database,
    ImportBatch,
    ImportSource,
    Segment,
    SegmentKind,
    SourceKind,
    SourceStatus,
)
from models.contacts import ALL_CUSTOMERS
from models.db import let_go_of_interrupted

log = logging.getLogger(__name__)


class ImportFailed(Exception):
    """A file can't be imported at all; nothing was imported. `segment_removed`: the name of
    the segment `--create-segment` made for the import, if it was removed again (_unmake):
    the shell says so after the failure (bot.cli), in import --background's words."""

    def __init__(self, message: str, segment_removed: str | None = None) -> None:
        super().__init__(message)
        self.segment_removed = segment_removed


DRY_RUN_GONE = "the dry run has nothing to count"


def check_files(files: Sequence[tuple[str, BinaryIO]], *,
                max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
                columns_of: ColumnsOf = map_header) -> None:  # fmt: skip
    """Fail before anything is written if any file can't be read: a CSV with emails, an
    .xlsx workbook whose first sheet has them, or a ZIP whose every CSV has them (told by
    `columns_of`: a column mapping, see bot.imports.mapping)."""
    for name, stream in files:
        try:
            check_file(stream, name=name, max_unzipped_bytes=max_unzipped_bytes,
                       columns_of=columns_of)  # fmt: skip
        except CsvFileError as exc:
            hint = _MAP_HINT if _mappable(exc, columns_of) else ""
            raise ImportFailed(f"{name}: {exc}{hint} Nothing was imported.") from None


# Said of a file whose columns weren't recognised: `--map` names them (a value of its first
# row, for a file without a header), and the message never told the shell's user so.
_MAP_HINT = (' Name the email column with --map email="COLUMN" (its header, or a value of the '
             'first row in a file without one).')


def _mappable(exc: CsvFileError, columns_of: ColumnsOf) -> bool:
    """No email column recognised, and none chosen that is missing, nor one given with --map:
    `--map email=phone --map first_name=phone` was refused for the column given twice, then
    told to name the email column it had named."""
    if not isinstance(exc, ColumnsError) or isinstance(exc, ChosenColumnMissing):
        return False
    return not (isinstance(columns_of, ColumnMapper) and "email" in columns_of.given)


@dataclass(frozen=True, slots=True)
class ImportResult:
    batch: ImportBatch
    segment_name: str
    rejected_rows: int
    enrolled: int = 0  # new advocates of live campaigns that target the segment
    invites_queued: int = 0
    skipped_by_status: dict[str, int] = field(default_factory=dict)  # Mailchimp members
    # what the review message says of each file (a consent value nobody could read, sheets
    # not read, formulas without results, the export recognised): (file, sentence)
    notes: list[tuple[str, str]] = field(default_factory=list)
    # the enrolled not emailed, reason -> count, summed over the campaigns (invite email off)
    not_emailed: dict[str, int] = field(default_factory=dict)


async def import_files(
    db: Database,
    team_id: str,
    files: Sequence[tuple[str, BinaryIO]],
    *,
    segment: str,
    create_segment: bool = False,
    update_existing: bool = False,
    rejects: TextIO | None = None,
    progress: ProgressBar | None = None,
    requested_by: str = "cli",
    chunk_size: int = APPLY_CHUNK,
    mailchimp: tuple[Credentials, Sequence[Audience]] | None = None,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
    column_map: dict[str, str] | None = None,
    undo_window_days: int | None = None,
    lease_seconds: float = 30.0,
) -> ImportResult:
    """Import seekable streams (CSV, .xlsx, ZIP of CSVs) into a static segment; every file is
    checked first, and a file found unreadable while staging cancels the import unapplied.

    `column_map` (field -> header, `--map`) maps every file's columns, over the guess; once
    the import is approved (it found valid rows) it is remembered for their headers, as a
    mapping chosen in Slack."""
    mapper = await mapper_for(db, team_id, column_map)
    check_files(files, max_unzipped_bytes=max_unzipped_bytes, columns_of=mapper)
    made = create_segment and await find_segment(db, team_id, segment) is None
    target = await import_target(db, team_id, segment, create=create_segment)
    assert target.id is not None
    # the segment this command created, removed again if nothing is imported into it
    made_here = target if made else None
    batch = await create_batch(
        db, team_id, target.id, requested_by, update_existing=update_existing
    )
    assert batch.id is not None
    try:
        await _stage(db, team_id, batch.id, files, progress, mailchimp, max_unzipped_bytes,
                     mapper)  # fmt: skip
    except MailchimpError as exc:  # out of retries, a revoked key, an audience deleted
        await _withdraw(db, team_id, batch.id, requested_by)
        gone = await _deleted_under(db, team_id, target)
        removed = await _unmake(db, team_id, made_here, requested_by)  # once that was asked
        raise gone or ImportFailed(f"{exc} Nothing was imported.", removed) from None
    except BaseException as exc:  # unreadable, or interrupted (Ctrl-C): no draft left behind
        let_go_of_interrupted(exc)
        await asyncio.shield(_withdraw(db, team_id, batch.id, requested_by))
        gone = await _deleted_under(db, team_id, target) if isinstance(exc, Exception) else None
        removed = await asyncio.shield(_unmake(db, team_id, made_here, requested_by))
        if gone:
            raise gone from None  # its file was closed by that, or its next one refused
        if isinstance(exc, ImportFailed):  # a file found unreadable while it was staged
            exc.segment_removed = removed
        raise
    async with db.begin() as conn:
        skipped = await skipped_by_status_of_all(conn, team_id, batch.id)
    bar = progress or ProgressBar(0, enabled=False)
    owner = shell_owner()
    try:
        job_id = await _approve_here(db, team_id, batch.id, requested_by, owner, lease_seconds)
    except (ReviewError, WorkspaceError):
        if gone := await _deleted_under(db, team_id, target):
            await _withdraw(db, team_id, batch.id, requested_by)
            raise gone from None
        # no valid row: the rows are all accounted for, none imported
        written = await write_rejects(db, team_id, batch.id, rejects) if rejects else 0
        await cancel(db, team_id, batch.id, requested_by, is_lead=True,
                     why="nothing valid to import")  # fmt: skip
        removed = await _unmake(db, team_id, made_here, requested_by)
        raise ImportFailed(await _nothing_valid(db, team_id, batch.id, written),
                           removed) from None
    # only now, and only for the headers of files that found valid rows (found_rows): a
    # mapping that found no valid row (the wrong column) would otherwise be kept, and every
    # later import of that export read with it
    await mapper.remember_given(db, team_id, requested_by)
    bar.phase("Importing")
    shown = 0.0
    applied: Progress | None = None  # how far it got, said if it is interrupted

    async def show(progress: Progress) -> None:
        """The bar, and (once a second) the job's progress, which `jobs` shows."""
        nonlocal shown, applied
        applied = progress
        bar.update(progress.done, progress.total)
        if time.monotonic() - shown >= 1.0 or progress.done >= progress.total:
            shown = time.monotonic()
            await report_progress(db, job, owner, progress.done, progress.total)

    def stopped() -> str:
        """The import stopped part way (Ctrl-C), in words (see bot.jobs.here.running_here)."""
        if applied is None:
            return f"Import #{batch.id} stopped before any row was applied"
        return (f"Import #{batch.id} stopped part way ({applied.done:,} of "
                f"{plural(applied.total, 'row')} applied)")

    enrolled = invites = 0
    not_emailed: Counter[str] = Counter()
    async with running_here(db, team_id, job_id, owner, lease_seconds, stopped=stopped,
                            undo=batch.id) as job:  # fmt: skip
        result = await apply_batch(db, team_id, batch.id, on_progress=show,
                                   chunk_size=chunk_size,
                                   undo_window_days=undo_window_days)  # fmt: skip
        for counts in await enroll_imported_now(db, result):
            enrolled += counts.enrolled
            invites += counts.invites_queued
            not_emailed.update(counts.not_emailed)
    bar.close()
    written = await write_rejects(db, team_id, batch.id, rejects) if rejects is not None else 0
    if result.status == BatchStatus.CANCELLED:  # `jobs cancel` from another shell
        raise ImportFailed(
            f"Import #{batch.id} was cancelled part way: {result.new_contacts:,} new contacts "
            f"and {result.added_to_segment:,} memberships of '{target.name}' were added "
            f"before it stopped (`referral-bot undo {batch.id}` takes them out)."
        )  # fmt: skip
    return ImportResult(result, target.name, written, enrolled, invites, skipped,
                        await _notes(db, team_id, batch.id), dict(not_emailed))  # fmt: skip


async def _notes(db: Database, team_id: str, batch_id: int) -> list[tuple[str, str]]:
    """Each file's warning, then its note, as the review message shows them, under its name
    told apart (`import x.csv x.csv`: both files got the note of Mailchimp's export).

    One sentence a line, each under the name it is about: a note of several lines (a sheet
    not read, then formulas without results) printed its second line with no file named,
    and what a ZIP held besides its CSVs was said of its first CSV, not of the ZIP."""
    async with db.session() as session:
        sources = (await session.exec(select(ImportSource).where(
            ImportSource.team_id == team_id, ImportSource.batch_id == batch_id,
            col(ImportSource.removed).is_(False),
        ).order_by(col(ImportSource.id)))).all()  # fmt: skip
    names = names_by_id(sources)
    notes: list[tuple[str, str]] = []
    for source in sources:
        for text in (source.warning, source.note):
            for line in (text or "").splitlines():
                if line.strip():
                    notes.append(archive_note(line) or (names[source.id or 0], line))
    return notes


async def _withdraw(db: Database, team_id: str, batch_id: int, requested_by: str) -> None:
    """Cancel the import's draft, so that none is left behind; a draft closed already (its
    segment was deleted meanwhile, which withdrew it) is left as it is."""
    try:
        await cancel(db, team_id, batch_id, requested_by, is_lead=True)
    except ReviewError:
        pass
    except Exception:
        log.exception("import #%s of %s could not be cancelled after its files failed: "
                      "it stays a draft", batch_id, team_id)  # fmt: skip


async def _unmake(db: Database, team_id: str, made: Segment | None,
                  actor: str) -> str | None:  # fmt: skip
    """Remove the segment `--create-segment` made for an import that imported nothing (it
    was left behind, empty, and the audit log said it was created for an import it then said
    was cancelled): segments.withdraw_segment, so the audit log says that too. Its name if
    it is gone (the shell says so, as import --background's error does); None if it stays
    (someone chose it meanwhile) or the database can't tell. The callers check first that
    nobody deleted it while the files were read (_deleted_under: they say that instead)."""
    if made is None or made.id is None:
        return None
    return await withdraw_segment(db, team_id, made.id, actor)


async def _kind(db: Database, team_id: str, segment: Segment) -> SegmentKind | None:
    async with db.session() as session:
        return (await session.exec(select(Segment.kind).where(
            Segment.id == segment.id, Segment.team_id == team_id))).first()  # fmt: skip


async def _deleted_under(db: Database, team_id: str, segment: Segment,
                         what: str = "nothing was imported") -> ImportFailed | None:  # fmt: skip
    """What to say if the segment was deleted while the import read its files (deleting it
    withdraws the import's draft, see bot.segments): the failure then, whatever it was."""
    if await _kind(db, team_id, segment) != SegmentKind.DELETED:
        return None
    return ImportFailed(f"The segment {quoted(segment.name)} was deleted while the files were "
                        f"being read; {what}.")


async def _approve_here(db: Database, team_id: str, batch_id: int, requested_by: str,
                        owner: str, lease_seconds: float) -> int:  # fmt: skip
    """Approve the draft and queue its import job as this process's own, in one transaction:
    if the process dies applying it, a worker finishes the import and its enrollments."""
    async with db.begin() as conn:
        totals = await approve_in(conn, team_id, batch_id, requested_by)
        await own_live_segment_in(conn, team_id, batch_id)  # deleted while it was read?
        await record_approval_in(conn, team_id, batch_id, requested_by, totals)
        return await enqueue_running_in(conn, team_id, IMPORT_JOB, {"batch_id": batch_id},
                                        dedupe_key=import_job_key(batch_id), owner=owner,
                                        lease_seconds=lease_seconds)  # fmt: skip


async def _nothing_valid(db: Database, team_id: str, batch_id: int, written: int) -> str:
    """Why nothing was imported, counted from the sources' rows."""
    async with db.session() as session:
        sources = (await session.exec(select(ImportSource).where(
            ImportSource.team_id == team_id, ImportSource.batch_id == batch_id))).all()  # fmt: skip
    rows = sum(s.rows for s in sources)
    duplicates = sum(s.duplicates for s in sources)
    rejected = sum(s.rejected for s in sources)
    if not rows:
        return f"Nothing to import: {_empty(sources)}. Nothing was imported."
    where = " Each is in the rejects file with its reason." if written else (
        " --rejects FILE lists each with its reason.")
    return (f"Nothing to import: no row has a valid new address ({plural(rows, 'row')}: "
            f"{rejected:,} rejected, {plural(duplicates, 'duplicate')}).{where} Nothing was "
            "imported.")  # fmt: skip


def _empty(sources: Sequence[ImportSource]) -> str:
    """What an import of no row at all held, each file and audience by its name: "the files
    have a header but no rows" was said of one file, and named none. (An audience has no
    header: "a header" puzzled people who imported only an empty one.)"""
    named = names_by_id(sources)
    files = [named[s.id or 0] for s in sources if s.kind != SourceKind.MAILCHIMP]
    audiences = [named[s.id or 0] for s in sources if s.kind == SourceKind.MAILCHIMP]
    said = []
    if files:
        said.append(f"{_listed(files)} {'has' if len(files) == 1 else 'have'} a header but "
                    "no rows")  # fmt: skip
    if audiences:
        which = "audience" if len(audiences) == 1 else "audiences"
        said.append(f"the Mailchimp {which} {_listed(audiences)} "
                    f"{'has' if len(audiences) == 1 else 'have'} no members")  # fmt: skip
    return "; ".join(said) or "there is nothing to read"


def _listed(names: Sequence[str], most: int = 5) -> str:
    """"a.csv", "a.csv and b.csv", "a.csv, b.csv and c.csv", "... and 3 more"."""
    if len(names) > most:
        return listed([*names[:most], f"{len(names) - most} more"])
    return listed(names)


async def _stage(db: Database, team_id: str, batch_id: int,
                 files: Sequence[tuple[str, BinaryIO]], progress: ProgressBar | None,
                 mailchimp: tuple[Credentials, Sequence[Audience]] | None,
                 max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
                 mapper: ColumnMapper | None = None) -> None:  # fmt: skip
    """Every file and audience into the batch's staged rows (the progress bar follows bytes).

    ImportFailed if a file turns out unreadable part way (a damaged sheet or ZIP entry): the
    CLI imports all its files or none."""
    bar = progress or ProgressBar(0, enabled=False)
    done_bytes = 0
    for name, stream in files:
        source = await add_source(db, team_id, batch_id, SourceKind.CSV, name)
        assert source.id is not None
        ticker = asyncio.create_task(_tick(bar, stream, done_bytes))
        since = len(mapper.read) if mapper is not None else 0
        try:
            staged = await stage_file(db, team_id, source.id, stream, name=name,
                                      max_unzipped_bytes=max_unzipped_bytes,
                                      columns_of=mapper)  # fmt: skip
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        failed = [s for s in staged if s.status == SourceStatus.FAILED]
        if failed:
            raise ImportFailed(f"{failed[0].label}: {failed[0].error} Nothing was imported.")
        if mapper is not None:  # which headers found valid rows: only those are remembered
            mapper.found_rows(since, staged)
        done_bytes += stream.tell()
    if mailchimp is not None:
        creds, audiences = mailchimp
        # the connection they came from: a Disconnect in Slack (or another account connected)
        # during a long read stages none of its members, as for the Slack side's reads
        stamp = await stamp_of(db, team_id, creds)
        for audience in audiences:
            source = await add_source(db, team_id, batch_id, SourceKind.MAILCHIMP, audience.name,
                                      ref=audience.id)  # fmt: skip
            # named, as a file is: of two audiences, "couldn't read that audience" said neither
            named = f"Mailchimp audience {quoted(audience.name)}"
            try:
                await read_audience(db, team_id, source, creds, read_from=stamp)
            except ReconnectNeeded as exc:  # App Home says so from now on, as after a worker's
                await refused_from_now_on(db, team_id, stamp)
                raise ImportFailed(f"{named}: {exc} Nothing was imported.") from None
            except MailchimpError as exc:
                raise ImportFailed(f"{named}: {exc} Nothing was imported.") from None
            read = await get_source(db, team_id, source.id or 0)
            if read.status == SourceStatus.FAILED:  # all or none, as for files
                raise ImportFailed(f"{named}: {read.error} Nothing was imported.")


async def preview_files(
    db: Database,
    team_id: str,
    files: Sequence[tuple[str, BinaryIO]],
    *,
    segment: str,
    create_segment: bool = False,
    progress: ProgressBar | None = None,
    mailchimp: tuple[Credentials, Sequence[Audience]] | None = None,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
    column_map: dict[str, str] | None = None,
) -> tuple[DryRun, bool]:
    """`import --dry-run`: every count of importing now, and whether the segment exists.

    The rows are staged in a throwaway batch (in All Customers' name when the segment doesn't
    exist yet) that is dropped afterwards: no contact, membership or segment is written, and
    a `column_map` is used but not remembered."""
    mapper = await mapper_for(db, team_id, column_map)
    check_files(files, max_unzipped_bytes=max_unzipped_bytes, columns_of=mapper)
    target = await find_segment(db, team_id, segment)
    if (target is None and not create_segment) or (target and target.kind == SegmentKind.ALL):
        await import_target(db, team_id, segment, create=False)  # raises, saying why
    if target is None:  # a name the import would refuse to create ('', too long) is refused
        await free_name(db, team_id, segment)
    holder = target if target is not None else await find_segment(db, team_id, ALL_CUSTOMERS)
    assert holder is not None and holder.id is not None
    batch = await create_batch(db, team_id, holder.id, "cli", dry_run=True)
    assert batch.id is not None
    try:
        await _stage(db, team_id, batch.id, files, progress, mailchimp, max_unzipped_bytes,
                     mapper)  # fmt: skip
        counted = await dry_run(db, team_id, batch.id, target.id if target else None)
        # the notes an import prints (a consent value not recognised, a locale unknown, a
        # sheet not read): the dry run showed the warnings' count alone
        counted = replace(counted, notes=[*await _notes(db, team_id, batch.id),
                                          *await unknown_locale_notes(db, team_id, batch.id)])
        async with db.begin() as conn:  # the audiences' members skipped, as an import says
            counted = replace(counted, skipped_by_status=await skipped_by_status_of_all(
                conn, team_id, batch.id))  # fmt: skip
    except MailchimpError as exc:
        raise await _deleted_under(db, team_id, holder, DRY_RUN_GONE) or ImportFailed(
            f"{exc} Nothing was imported.") from None
    except (ImportFailed, ReviewError):  # a file closed, or the next one refused
        if gone := await _deleted_under(db, team_id, holder, DRY_RUN_GONE):
            raise gone from None
        raise
    finally:
        await drop_batch(db, team_id, batch.id)
    if gone := await _deleted_under(db, team_id, holder, DRY_RUN_GONE):
        raise gone  # counted against a segment that is no more
    return counted, bool(target)


async def _tick(bar: ProgressBar, stream: BinaryIO, base: int) -> None:
    while True:
        bar.update(base + stream.tell())
        await asyncio.sleep(0.2)
