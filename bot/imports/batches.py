"""Import batches: create one, queue sources into it, and approve it for the engine."""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol, TextIO

from sqlalchemy import bindparam, func, insert, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.audit import Act, by_whom, import_subject, record_in
from bot.campaigns.preview import inviting_campaigns
from bot.contacts import NO, YES
from bot.imports.job_kinds import IMPORT_JOB, SLACK_FILE_JOB, import_job_key, reading_job_key
from bot.imports.parallel import ParallelRows, file_path
from bot.imports.reading import (
    Columns,
    ColumnsError,
    ColumnsOf,
    CsvFileError,
    CsvReader,
    map_header,
)
from bot.imports.recognise import (
    PLAIN,
    FileKind,
    consent_note,
    join_notes,
    overlong_note,
    recognise,
)
from bot.imports.rows import INVALID_EMAIL, MISSING_EMAIL, Classifier, Tally
from bot.imports.source_names import names_of_all
from bot.imports.staging import copy_constants, refresh_statistics, stage_rows, take_staging
from bot.jobs.queue import database_now_in, enqueue_in, schedule_purge_in, shared_now
from bot.notify import BATCH_CHANGED, REJECTS_CHANGED, enqueue_report_in, reading_again_in
from bot.words import quoted
from bot.workspaces import WorkspaceError
from models import (
    BatchStatus,
    Database,
    FileFormat,
    ImportBatch,
    ImportSource,
    Outcome,
    SeenKey,
    Segment,
    SegmentKind,
    SourceKind,
    SourceStatus,
    StagedRow,
)
from models.clock import utcnow

log = logging.getLogger(__name__)


async def create_batch(
    db: Database, team_id: str, segment_id: int, requested_by: str, *,
    update_existing: bool = False, consent: bool = False, dry_run: bool = False,
) -> ImportBatch:  # fmt: skip
    """A draft batch; `consent`: the requester confirmed these people agreed to hear from us.
    A `dry_run` batch is staged only to be counted and then dropped: nothing is audited, and
    it is marked so, since the process dropping it may be killed before it does."""
    async with db.session() as session:
        batch = await _draft_in(session, team_id, segment_id, requested_by,
                                update_existing=update_existing, consent=consent,
                                dry_run=dry_run)  # fmt: skip
        await session.commit()
        return batch


async def _draft_in(
    session: AsyncSession, team_id: str, segment_id: int, requested_by: str, *,
    update_existing: bool, consent: bool, dry_run: bool = False,
) -> ImportBatch:  # fmt: skip
    """A draft batch, its segment held and its request audited (not a `dry_run`'s), in the
    session's transaction."""
    now = utcnow()
    batch = ImportBatch(team_id=team_id, segment_id=segment_id, requested_by=requested_by,
                        update_existing=update_existing,
                        consent_by=requested_by if consent else None,
                        consent_at=now if consent else None, dry_run=dry_run)  # fmt: skip
    session.add(batch)
    await session.flush()
    assert batch.id is not None
    conn = await session.connection()
    # after the INSERT: on SQLite the transaction (and its write lock) begins there, so a
    # deletion that another process commits meanwhile is seen; refused, it rolls back
    await _own_segment(conn, team_id, segment_id)
    # staged rows are deleted some time after their import ends: make sure that runs
    await schedule_purge_in(conn, team_id, await _in_an_hour(conn))
    if not dry_run:
        await _requested(conn, team_id, batch.id, segment_id, requested_by, consent)
    return batch


async def _in_an_hour(conn: AsyncConnection) -> datetime:
    """When a workspace's first purge is due: an hour on by the clock due times are compared
    with (the database server's on PostgreSQL, bot.jobs.queue), not this host's: queued from
    a host whose clock was hours behind, it ran at once, and hours ahead, that much late."""
    return await database_now_in(conn) + timedelta(hours=1)


async def create_background_batch(
    db: Database, team_id: str, segment_id: int, requested_by: str,
    files: Sequence[tuple[str, str]], payload: dict[str, object], *,
    update_existing: bool = False, max_attempts: int | None = None,
) -> int:  # fmt: skip
    """`import --background`'s draft, its sources (`files`: label, path) and its import job
    (`payload` and the batch's id) in one transaction; the job's id.

    Committed one after the other, a segment deleted in between found a draft with no job,
    which it withdraws as a shell's left behind (bot.segments), and the shell was then told
    its import was "already cancelled by <@U…>". Together, the deletion sees a queued import
    and is refused, or comes first and the batch is refused (_own_segment)."""
    async with db.session() as session:
        batch = await _draft_in(session, team_id, segment_id, requested_by,
                                update_existing=update_existing, consent=False)
        assert batch.id is not None
        for label, ref in files:
            session.add(ImportSource(team_id=team_id, batch_id=batch.id, kind=SourceKind.CSV,
                                     label=label[:255], ref=ref))  # fmt: skip
        await session.flush()
        job_id = await enqueue_in(await session.connection(), team_id, IMPORT_JOB,
                                  {"batch_id": batch.id, **payload},
                                  dedupe_key=import_job_key(batch.id),
                                  max_attempts=max_attempts)  # fmt: skip
        await session.commit()
        return job_id


async def create_upload_batch(
    db: Database, team_id: str, segment_id: int, requested_by: str, *, file_id: str, label: str
) -> tuple[int, bool]:
    """One review per uploaded file: (its batch id, whether this caller posts its review).

    The batch, its source, the reading job, the once-per-file key and the key of posting its
    review (review_post_key) commit together, so a failure part way leaves nothing, and a
    retry after a failed post (which forgets the posting key) finds the same batch. A second
    click while the first one's review is being posted, or after, changes nothing.
    """
    async with db.session() as session:
        session.add(SeenKey(team_id=team_id, key=f"review:{file_id}"[:200]))
        try:
            await session.flush()
        except IntegrityError:
            await session.rollback()
            existing = (await session.exec(
                select(ImportSource.batch_id).where(
                    ImportSource.team_id == team_id, ImportSource.ref == file_id,
                    ImportSource.kind == SourceKind.CSV,
                ).order_by(col(ImportSource.id)).limit(1)
            )).first()  # fmt: skip
            if existing is None:
                raise ReviewError("This file was already offered for review.") from None
            try:
                async with session.begin_nested():
                    await _take_posting_in(await session.connection(), team_id, existing)
            except IntegrityError:  # being posted, or posted: the first click's choice stands
                return existing, False
            await _rechoose(await session.connection(), team_id, existing, segment_id,
                            requested_by)  # fmt: skip
            await session.commit()
            return existing, True
        await _own_segment(await session.connection(), team_id, segment_id)
        batch = ImportBatch(team_id=team_id, segment_id=segment_id, requested_by=requested_by)
        session.add(batch)
        await session.flush()
        assert batch.id is not None
        await _requested(await session.connection(), team_id, batch.id, segment_id,
                         requested_by, consent=False)  # fmt: skip
        source = ImportSource(team_id=team_id, batch_id=batch.id, kind=SourceKind.CSV,
                              label=label[:255], ref=file_id)  # fmt: skip
        session.add(source)
        await session.flush()
        conn = await session.connection()
        await enqueue_in(conn, team_id, SLACK_FILE_JOB, {"source_id": source.id},
                         dedupe_key=reading_job_key(source.id or 0))  # fmt: skip
        await schedule_purge_in(conn, team_id, await _in_an_hour(conn))
        await _take_posting_in(conn, team_id, batch.id)
        await session.commit()
        return batch.id, True


def review_post_key(batch_id: int) -> str:
    """Held while an upload's review message is posted, and after: one message per batch."""
    return f"review-post:{batch_id}"


async def _take_posting_in(conn: AsyncConnection, team_id: str, batch_id: int) -> None:
    """Take the key of posting the batch's review (review_post_key), in the caller's
    transaction; IntegrityError if it is taken. Stamped by the clock bot.once judges it stale
    by (its `hold`, when a later click finds the review unposted): stamped by a host whose
    clock was behind, a click a moment later took a live poster's key as stale and posted
    a second review."""
    await conn.execute(insert(SeenKey).values(
        team_id=team_id, key=review_post_key(batch_id),
        created_at=shared_now(conn.dialect.name == "sqlite")))  # fmt: skip


async def _rechoose(conn: AsyncConnection, team_id: str, batch_id: int, segment_id: int,
                    requested_by: str) -> None:  # fmt: skip
    """A second *Review import* on an upload whose review wasn't posted (Slack refused it)
    posts that same review: with the segment and the requester of this click, not the first
    one's, which the offer would otherwise say they chose. A review already posted stays."""
    changed = await conn.execute(
        update(ImportBatch)
        .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id,
               col(ImportBatch.status) == BatchStatus.DRAFT,
               col(ImportBatch.message_ts).is_(None),
               (col(ImportBatch.segment_id) != segment_id)
               | (col(ImportBatch.requested_by) != requested_by))
        .values(segment_id=segment_id, requested_by=requested_by, updated_at=utcnow(),
                revision=col(ImportBatch.revision) + 1)
    )  # fmt: skip
    if changed.rowcount:
        await _own_segment(conn, team_id, segment_id)
        await _requested(conn, team_id, batch_id, segment_id, requested_by, consent=False)


async def _own_segment(conn: AsyncConnection, team_id: str, segment_id: int) -> None:
    """A batch goes only into a live segment of its own workspace (the database's foreign key
    knows the segment's id, neither its workspace nor that it was deleted); callers check
    first, this is the last word, in the batch's transaction. A segment deleted since it was
    chosen left a batch whose memberships nobody could see. On PostgreSQL the row stays
    locked (FOR SHARE) until the batch commits: a deletion under way is waited for and then
    seen, and one that comes later finds the batch and is refused (segments.delete_segment).
    On SQLite it must come after the transaction's first write (pysqlite begins there): read
    before it, another process's deletion could commit in between."""
    lock = " FOR SHARE" if conn.dialect.name == "postgresql" else ""
    live = (await conn.execute(text(
        "SELECT id FROM segment WHERE id = :s AND team_id = :t AND kind <> :deleted" + lock
    ), {"s": segment_id, "t": team_id, "deleted": SegmentKind.DELETED})).first()  # fmt: skip
    if live is not None:
        return
    name = (await conn.execute(select(Segment.name).where(
        col(Segment.id) == segment_id, col(Segment.team_id) == team_id))).scalar()  # fmt: skip
    if name is None:
        raise ReviewError("That segment doesn't exist in this workspace.")
    raise WorkspaceError(f"The segment {quoted(name)} was deleted; nothing was imported.")


async def _requested(conn: AsyncConnection, team_id: str, batch_id: int, segment_id: int,
                     requested_by: str, consent: bool) -> None:  # fmt: skip
    name = (await conn.execute(
        select(Segment.name).where(col(Segment.id) == segment_id,
                                   col(Segment.team_id) == team_id)
    )).scalar_one()  # fmt: skip
    subject = import_subject(batch_id)
    await record_in(conn, team_id, requested_by, Act.IMPORT_REQUESTED, subject, f"into {name}")
    if consent:
        await record_in(conn, team_id, requested_by, Act.IMPORT_CONSENT, subject,
                        "confirmed these people agreed to hear from us")  # fmt: skip


async def get_batch(db: Database, team_id: str, batch_id: int) -> ImportBatch | None:
    """The batch if it belongs to this workspace; another workspace's id finds nothing."""
    return await db.reader.get(ImportBatch, batch_id, team_id)


class ReviewError(Exception):
    """The action can't be done now; the message says why, for the person who acted."""


class ChangedSinceSeen(ReviewError):
    """An approval of a review that has changed since the message clicked was drawn."""

    def __init__(self) -> None:
        super().__init__("This import changed after the message you clicked was drawn (contacts "
                         "were added or removed, or a file was read): nothing was imported. "
                         "Check the review as it is now, and approve again if it is right.")


# A failed file's rows count nowhere (they are never imported): a reading cancelled while the
# rows were being staged left them, and those addresses were duplicates in every other file.
_LIVE_SOURCES = ("SELECT id FROM import_source WHERE team_id = :t AND batch_id = :b "
                 "AND removed = :no AND status <> 'failed'")  # fmt: skip


DRAFT_ONLY = (BatchStatus.DRAFT,)
UNDER_WAY = (BatchStatus.DRAFT, BatchStatus.QUEUED, BatchStatus.IMPORTING)


async def lock_batch(
    conn: AsyncConnection, team_id: str, batch_id: int, states: tuple[str, ...] = DRAFT_ONLY,
    *, seen: int | None = None,
) -> None:
    """Take the batch's row for this transaction if it is in one of `states`, else say why not.

    Every change to a batch starts here: a conditional UPDATE is the one place where two
    clicks (approve and reject, remove and approve, two files read at once) are put in order,
    on SQLite (one writer) and PostgreSQL (row lock) alike. The loser is told the real state.
    It counts up the batch's `revision`; `seen`, the revision a review message showed, is
    required to be the current one (ChangedSinceSeen otherwise).
    """
    changeable = (col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id,
                  col(ImportBatch.status).in_(list(states)))  # fmt: skip
    as_seen = () if seen is None else (col(ImportBatch.revision) == seen,)
    result = await conn.execute(
        update(ImportBatch).where(*changeable, *as_seen)
        .values(updated_at=utcnow(), revision=col(ImportBatch.revision) + 1)
    )  # fmt: skip
    if result.rowcount == 1:
        return
    if as_seen and await conn.scalar(
        select(func.count()).select_from(ImportBatch).where(*changeable)
    ):  # in a state it may be changed in: another revision than the one seen
        raise ChangedSinceSeen
    raise ReviewError(await state_sentence(conn, team_id, batch_id))


async def state_sentence(conn: AsyncConnection, team_id: str, batch_id: int) -> str:
    """Why a batch can't be changed, read as it stands now."""
    row = (
        await conn.execute(
            select(ImportBatch.status, ImportBatch.approved_by, ImportBatch.cancelled_by,
                   ImportBatch.undone_by, ImportBatch.error).where(
                col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id
            )
        )
    ).first()  # fmt: skip
    if row is None:
        return "That import doesn't exist in this workspace."
    return f"This import is already {status_words(*row)}."


# `cancelled_by` of a draft the daily purge ended, left in review untouched for weeks
# (bot.imports.retention): said as expired, not as cancelled by someone
EXPIRED_BY = "expiry"


def cancelled_words(cancelled_by: str | None) -> str:
    """" by <@U…>", " from the command line", ", expired (left in review untouched)" or "",
    after "cancelled"."""
    if cancelled_by == EXPIRED_BY:
        return ", expired (left in review untouched)"
    return f" {by_whom(cancelled_by)}" if cancelled_by else ""


def status_words(status: str, approved_by: str | None, cancelled_by: str | None = None,
                 undone_by: str | None = None, error: str | None = None) -> str:  # fmt: skip
    """`error`: the batch's, telling an undone import that failed part way from one that
    finished (as the thread's result does: handlers/messages.ended_as)."""
    who = f" {by_whom(approved_by)}" if approved_by else ""
    by = cancelled_words(cancelled_by)
    undo = f" {by_whom(undone_by)}" if undone_by else ""
    # what an import being undone had done: one cancelled or failed part way wasn't "imported"
    if cancelled_by:
        part = f"cancelled{by} part way (approved{who})"
    elif error:
        part = f"failed part way (approved{who})"
    else:
        part = f"imported (approved{who})"
    return {
        BatchStatus.DRAFT: "waiting for review",
        BatchStatus.QUEUED: f"approved{who} and waiting to run",
        BatchStatus.IMPORTING: f"approved{who} and importing",
        BatchStatus.DONE: f"imported (approved{who})",
        BatchStatus.FAILED: "failed",
        BatchStatus.REJECTED: f"rejected{who}",
        BatchStatus.CANCELLED: f"cancelled{by}",
        BatchStatus.UNDOING: f"{part}, being undone{undo}",
        BatchStatus.UNDONE: f"{part}, then undone{undo}",
    }.get(status, status)


async def batch_keys(
    conn: AsyncConnection, team_id: str, batch_id: int, source_id: int
) -> set[str]:
    """Emails already valid in the batch's other live sources: this source's repeats of them
    are duplicates (the first occurrence in staged order wins)."""
    return (await keys_and_removals(conn, team_id, batch_id, source_id))[0]


async def keys_and_removals(
    conn: AsyncConnection, team_id: str, batch_id: int, source_id: int
) -> tuple[set[str], bool]:
    """batch_keys, and whether someone removed a contact from the batch's other live sources
    (*Review contacts*): then the source's rows of those addresses are removed once staged
    (drop_removed). One pass over the rows batch_keys reads anyway: a removed contact's
    first row was a valid one, so nothing more is read to tell."""
    rows = await conn.execute(
        text("SELECT email_key, removed FROM staged_row WHERE team_id = :t AND batch_id = :b "
             "AND outcome = 'valid' AND source_id <> :s "
             f"AND source_id IN ({_LIVE_SOURCES})"),
        {"t": team_id, "b": batch_id, "s": source_id, "no": False},
    )  # fmt: skip
    keys: set[str] = set()
    removals = False
    for key, removed in rows:
        if removed:
            removals = True
        else:
            keys.add(key)
    return keys, removals


# "Remove" takes an address out of the import, every row of it: a file, a customer or a
# Mailchimp list added after brought it back, counted as new. Their rows of an address
# removed from another live source are removed as they are staged. The removed addresses are
# read once (an uncorrelated subquery, through the batch's index), as _PROMOTE does.
_DROP_REMOVED = text(f"""
    UPDATE staged_row SET removed = :yes
    WHERE team_id = :t AND batch_id = :b AND source_id = :s AND removed = :no
      AND outcome IN ('valid', 'duplicate')
      AND email_key IN (
          SELECT r.email_key FROM staged_row r
          WHERE r.team_id = :t AND r.batch_id = :b AND r.removed = :yes
            AND r.outcome = 'valid' AND r.source_id <> :s AND r.source_id IN ({_LIVE_SOURCES}))
""")  # fmt: skip
_ANY_REMOVED = text("SELECT 1 FROM staged_row WHERE team_id = :t AND batch_id = :b "
                    "AND removed = :yes AND outcome = 'valid' AND source_id <> :s "
                    f"AND source_id IN ({_LIVE_SOURCES}) LIMIT 1")  # fmt: skip


async def drop_removed(conn: AsyncConnection, team_id: str, batch_id: int, source_id: int, *,
                       removals: bool | None = None) -> int:  # fmt: skip
    """Remove the source's freshly staged rows of the addresses someone removed from the
    batch (see _DROP_REMOVED); how many. `removals`: whether there are any, when the caller
    knows (keys_and_removals); None looks. Without any, nothing else is read or written: a
    big file pays nothing for it. Its rows of those addresses were valid only because the
    removed rows didn't count (batch_keys), so no other row is promoted in their place.
    Counts come from the rows (count_rows): the ones removed count nowhere."""
    params = {"t": team_id, "b": batch_id, "s": source_id, "yes": True, "no": False}
    if removals is None:
        removals = (await conn.execute(_ANY_REMOVED, params)).first() is not None
    if not removals:
        return 0
    return (await conn.execute(_DROP_REMOVED, params)).rowcount


async def queued_files(db: Database, team_id: str, batch_id: int) -> set[str]:
    """The Slack file ids of the batch's files, as *Add more* sees them: a file added again
    was read and counted twice. A file removed from the review, or one that failed, may be
    added again (as queued_audiences does for Mailchimp lists)."""
    async with db.begin() as conn:
        found = await conn.execute(select(ImportSource.ref).where(
            col(ImportSource.team_id) == team_id, col(ImportSource.batch_id) == batch_id,
            col(ImportSource.kind) == SourceKind.CSV, col(ImportSource.removed).is_(False),
            col(ImportSource.status) != SourceStatus.FAILED))  # fmt: skip
        return {str(ref) for (ref,) in found if ref}


# After rows leave the batch (a source or a contact removed), the first remaining duplicate
# of each address they held becomes the valid one: duplicates are decided over what remains.
# Staged rows have no index on addresses (it would cost every import dearly), so both sets
# are uncorrelated subqueries: each is read once, through the batch's index, into a hash.
_PROMOTE = """
    UPDATE staged_row SET outcome = 'valid', reason = NULL
    WHERE id IN (
        SELECT MIN(d.id) FROM staged_row d
        WHERE d.team_id = :t AND d.batch_id = :b AND d.outcome = 'duplicate' AND d.removed = :no
          AND d.source_id IN ({live})
          AND d.email_key IN ({keys})
          AND d.email_key NOT IN (
              SELECT v.email_key FROM staged_row v
              WHERE v.team_id = :t AND v.batch_id = :b AND v.outcome = 'valid'
                AND v.removed = :no AND v.source_id IN ({live}) AND v.email_key IN ({keys}))
        GROUP BY d.email_key)
"""
_PROMOTE_AFTER_SOURCE = text(_PROMOTE.format(
    keys="SELECT r.email_key FROM staged_row r WHERE r.team_id = :t AND r.batch_id = :b "
         "AND r.source_id = :s AND r.outcome = 'valid'",
    live=_LIVE_SOURCES,
) + "RETURNING source_id")  # fmt: skip
_PROMOTE_AFTER_KEY = text(_PROMOTE.format(keys=":key", live=_LIVE_SOURCES) + "RETURNING source_id")
# A source about to be read again counts as gone already (its rows are replaced after)
_PROMOTE_BEFORE_REREAD = text(_PROMOTE.format(
    keys="SELECT r.email_key FROM staged_row r WHERE r.team_id = :t AND r.batch_id = :b "
         "AND r.source_id = :s AND r.outcome = 'valid' AND r.removed = :no",
    live=f"{_LIVE_SOURCES} AND id <> :s",
) + "RETURNING source_id")  # fmt: skip


async def promote_after_source(
    conn: AsyncConnection, team_id: str, batch_id: int, source_id: int
) -> set[int]:
    """Re-decide the duplicates of a removed source's addresses; returns the sources some of
    whose rows became valid (their counts, and the skipped rows shared of them, changed)."""
    result = await conn.execute(
        _PROMOTE_AFTER_SOURCE, {"t": team_id, "b": batch_id, "s": source_id, "no": False}
    )
    return {int(row[0]) for row in result}


async def promote_after_failure_in(conn: AsyncConnection, team_id: str, batch_id: int,
                                   source_id: int) -> None:  # fmt: skip
    """A source failed with rows staged (its reading cancelled or given up after they were
    written): the duplicates elsewhere of its addresses are decided again, as when a file is
    removed, and the skipped-rows CSVs the thread has of the sources whose rows became valid
    are shared anew (they list rows that will be imported now), after the review is redrawn
    with their counts."""
    promoted = sorted(await promote_after_source(conn, team_id, batch_id, source_id))
    if promoted:
        await enqueue_report_in(conn, team_id, batch_id, BATCH_CHANGED)
    for other in promoted:
        await reading_again_in(conn, team_id, other)
        await enqueue_report_in(conn, team_id, batch_id, REJECTS_CHANGED, source_id=other)


async def promote_before_reread(
    conn: AsyncConnection, team_id: str, batch_id: int, source_id: int
) -> set[int]:
    """The source is put back to be read (*Map columns*): the duplicates elsewhere of the
    addresses it holds become valid as if it were removed; returns the other sources some of
    whose rows became valid, as promote_after_source. Its rows are left as they are, for the
    caller to drop all but those removed by hand."""
    result = await conn.execute(
        _PROMOTE_BEFORE_REREAD, {"t": team_id, "b": batch_id, "s": source_id, "no": False}
    )
    return {int(row[0]) for row in result}


async def promote_after_key(conn: AsyncConnection, team_id: str, batch_id: int,
                            key: str) -> set[int]:  # fmt: skip
    """Re-decide the duplicates of one removed address; returns the source whose row became
    valid (none, or one: its counts, and the skipped rows shared of it, changed)."""
    result = await conn.execute(
        _PROMOTE_AFTER_KEY, {"t": team_id, "b": batch_id, "key": key, "no": False}
    )
    return {int(row[0]) for row in result}


async def add_source(db: Database, team_id: str, batch_id: int, kind: SourceKind, label: str,
                     ref: str | None = None, file_format: FileFormat | None = None,
                     read_by: str | None = None) -> ImportSource:  # fmt: skip
    """Queue a source into a draft batch (refused, with the reason, once it left draft).

    `read_by`: the kind of job that reads it, queued in the same transaction (a source with
    no job would stay pending for good, and the batch could never be approved)."""
    source = await add_source_once(db, team_id, batch_id, kind, label, ref=ref,
                                   file_format=file_format, read_by=read_by, once=False)
    assert source is not None
    return source


async def add_source_once(db: Database, team_id: str, batch_id: int, kind: SourceKind,
                          label: str, *, ref: str | None = None,
                          file_format: FileFormat | None = None, read_by: str | None = None,
                          once: bool = True) -> ImportSource | None:  # fmt: skip
    """add_source; with `once`, None (nothing added) when the batch has a live source of
    this kind and `ref` already: checked after the batch is taken, so two forms adding the
    same Mailchimp list at once add it once (each had checked before either added it, and
    the list was read and counted twice)."""
    try:
        source_id = await _added(db, team_id, batch_id, kind, label, ref=ref,
                                 file_format=file_format, read_by=read_by, once=once)
    except Unchanged:
        return None
    return await get_source(db, team_id, source_id)


class Unchanged(Exception):
    """A click that found nothing to change: raised inside the transaction that took the
    batch, so it rolls back (lock_batch counted its revision up, and an Approve on the review
    drawn before it would have been refused as changed)."""


async def _added(db: Database, team_id: str, batch_id: int, kind: SourceKind, label: str, *,
                 ref: str | None, file_format: FileFormat | None, read_by: str | None,
                 once: bool) -> int:  # fmt: skip
    async with db.begin() as conn:
        await lock_batch(conn, team_id, batch_id)
        if once and ref is not None and (await conn.execute(
            select(ImportSource.id).where(
                col(ImportSource.team_id) == team_id, col(ImportSource.batch_id) == batch_id,
                col(ImportSource.kind) == kind, col(ImportSource.ref) == ref,
                col(ImportSource.removed).is_(False),
                col(ImportSource.status) != SourceStatus.FAILED).limit(1)
        )).first() is not None:  # fmt: skip
            raise Unchanged  # the batch has that source already
        source_id = (
            await conn.execute(
                insert(ImportSource)
                .values(team_id=team_id, batch_id=batch_id, kind=kind, label=label[:255], ref=ref,
                        file_format=file_format, status=SourceStatus.PENDING, rows=0, valid=0,
                        duplicates=0, rejected=0, warnings=0, removed=False, created_at=utcnow())
                .returning(col(ImportSource.id))
            )
        ).scalar_one()  # fmt: skip
        if read_by is not None:
            await enqueue_in(conn, team_id, read_by, {"source_id": source_id},
                             dedupe_key=reading_job_key(source_id))  # fmt: skip
    return int(source_id)


class _NotPending(Exception):
    """The source was cancelled or failed while it was read: undo this staging."""


class Reader(Protocol):
    """What staging needs of a file reader: CsvReader, or XlsxReader for a workbook's sheet."""

    header: list[str]
    columns: Columns

    def records(self) -> Iterator[tuple[int, list[str] | str]]: ...

    def close(self) -> None: ...


async def stage_csv(
    db: Database,
    team_id: str,
    source_id: int,
    stream: BinaryIO,
    *,
    name: str | None = None,
    columns_of: ColumnsOf = map_header,
) -> ImportSource:
    """Parse a CSV into the source's staged rows; a file unreadable as a whole marks it failed.

    `name` is the file's name as its owner sees it (default: the source's label): with the
    header it tells Mailchimp's unsubscribed or cleaned export, whose people are staged as
    such. A big file on disk is parsed by a child process (parallel.py), unless its kind
    needs more than plain classifying; the child reads the columns this reader found
    (`columns_of`: by name, or as mapped, see bot.imports.mapping). See stage_reader for the
    transactions. Raises
    CsvFileError (after recording it on the source) so callers can tell the user.
    """
    source = await get_source(db, team_id, source_id)
    if source.status != SourceStatus.PENDING:
        return source  # read already (a retried job), failed or cancelled: leave it be
    try:
        reader = CsvReader(stream, columns_of=columns_of)
    except CsvFileError as exc:
        await fail_source(db, team_id, source_id, exc)
        raise
    kind = recognise(name or source.label, reader.header)
    path = file_path(stream) if kind.plain else None
    return await stage_reader(db, team_id, source, reader, kind=kind, path=path)


async def stage_reader(
    db: Database,
    team_id: str,
    source: ImportSource,
    reader: Reader,
    *,
    kind: FileKind = PLAIN,
    path: Path | None = None,
    notes: Sequence[str | None] = (),
) -> ImportSource:
    """Stage an open reader's records into a pending source, then close the reader.

    Two transactions. The first writes only staged rows: it starts by clearing the source's
    earlier rows, which takes the staging write lock (SQLite) or the batch's row (PostgreSQL),
    so two files of one batch are staged one after the other and each sees the addresses the
    other queued. It never holds the main database's write lock, however big the file. The
    second marks the source read, with `notes` and what the rows showed (kind, unreadable
    consent values) as its note, if the batch is still a draft (a short conditional UPDATE);
    if it isn't, the rows are taken out again.

    A file found damaged part way (a workbook's sheet, a ZIP entry larger than it declared)
    raises CsvFileError while its rows are read: the first transaction rolls back, the source
    is marked failed with the sentence, and the error is raised on. `path`: the CSV file on
    disk behind `reader`, for the parallel parser (only for a PLAIN kind).
    """
    source_id = source.id or 0
    parallel: ParallelRows | None = None
    try:
        try:
            async with db.begin() as conn:
                await _hold_batch(conn, team_id, source.batch_id)
                if not await _still_pending(conn, team_id, source_id):
                    # read (or given up) by another run meanwhile: its rows are the file's
                    log.info("import source %s of team %s was read meanwhile", source_id,
                             team_id)  # fmt: skip
                    return await get_source(db, team_id, source_id)
                by_hand = await removed_by_hand(conn, team_id, source.batch_id, source_id)
                await clear_staged(conn, team_id, source.batch_id, source_id)
                if not await _still_draft(conn, team_id, source.batch_id):
                    raise _NotPending
                keys, removals = await keys_and_removals(conn, team_id, source.batch_id,
                                                         source_id)  # fmt: skip
                # A big file is parsed by a child process while this one inserts; a small one
                # here. For PostgreSQL this process writes its rows as COPY CSV on a thread.
                constants = (copy_constants(team_id, source.batch_id, source_id)
                             if conn.dialect.name != "sqlite" else None)  # fmt: skip
                parallel = (ParallelRows(path, sorted(keys), constants, reader.columns)
                            if path else None)  # fmt: skip
                classifier = kind.classifier({hash(k) for k in keys})
                rows = parallel or classifier.records(reader.records(), reader.columns)
                try:
                    await stage_rows(conn, team_id=team_id, batch_id=source.batch_id,
                                     source_id=source_id, rows=rows)  # fmt: skip
                except BaseException:  # interrupted or failed: the child stops now (stop)
                    if parallel is not None:
                        parallel.stop()
                    raise
                await remove_again(conn, team_id, source.batch_id, source_id, by_hand)
                await drop_removed(conn, team_id, source.batch_id, source_id, removals=removals)
                tally = parallel.tally if parallel else classifier.tally
        except CsvFileError as exc:
            # nothing half-staged, even from an earlier attempt: unless another run read it
            await fail_source(db, team_id, source_id, exc, only_pending=True,
                              clear_rows_of=source.batch_id)  # fmt: skip
            raise
        await refresh_statistics(db, tally.rows)
        # what only reading the rows shows (the child's reader read them, if there is one)
        late = getattr(parallel or reader, "late_note", None)
        note = join_notes([*notes, kind.note, late() if late is not None else None])
        async with db.begin() as conn:
            try:
                await lock_batch(conn, team_id, source.batch_id)
            except ReviewError:
                raise _NotPending from None
            if not await record_counts(conn, source, tally, note=note, removals_dropped=True):
                raise _NotPending
    except _NotPending:  # the rows go, unless another run read the file meanwhile (its rows)
        await fail_source(db, team_id, source_id, only_pending=True,
                          error="The import was closed before this file was read.",
                          clear_rows_of=source.batch_id)  # fmt: skip
    finally:
        reader.close()
        if parallel is not None:
            parallel.close()
    return await get_source(db, team_id, source_id)


async def _hold_batch(conn: AsyncConnection, team_id: str, batch_id: int) -> None:
    """PostgreSQL: take the batch's row, so two readings of its files go one after the other
    (SQLite: the staging file's one writer orders them)."""
    if conn.dialect.name != "sqlite":
        await conn.execute(text("SELECT 1 FROM import_batch WHERE team_id = :t AND id = :b "
                                "FOR UPDATE"), {"t": team_id, "b": batch_id})  # fmt: skip


async def _status(conn: AsyncConnection, table: type[ImportBatch] | type[ImportSource],
                  team_id: str, row_id: int) -> str | None:  # fmt: skip
    """The status of the workspace's batch or source with this id (None: there is none)."""
    return (await conn.execute(select(table.status).where(
        col(table.id) == row_id, col(table.team_id) == team_id))).scalar_one_or_none()  # fmt: skip


async def _still_pending(conn: AsyncConnection, team_id: str, source_id: int) -> bool:
    return await _status(conn, ImportSource, team_id, source_id) == SourceStatus.PENDING


async def clear_staged(conn: AsyncConnection, team_id: str, batch_id: int, source_id: int, *,
                       keep_removed: bool = False) -> None:  # fmt: skip
    """Delete what the source staged before; on PostgreSQL, take the batch's row first.

    `keep_removed`: the rows removed by hand stay (a file that failed to be read again keeps
    them for its next reading, see removed_by_hand; removed, they count nowhere)."""
    await _hold_batch(conn, team_id, batch_id)
    await conn.execute(
        text("DELETE FROM staged_row WHERE team_id = :t AND batch_id = :b AND source_id = :s"
             + (" AND removed = :no" if keep_removed else "")),
        {"t": team_id, "b": batch_id, "s": source_id, "no": False},
    )  # fmt: skip


_REMOVED_BY_HAND = text("SELECT line, email_key FROM staged_row WHERE team_id = :t "
                        "AND batch_id = :b AND source_id = :s AND removed = :yes")  # fmt: skip
_ROWS_ON_LINES = text(
    "SELECT id, line, email_key, outcome FROM staged_row WHERE team_id = :t AND batch_id = :b "
    "AND source_id = :s AND line IN :lines AND removed = :no"
).bindparams(bindparam("lines", expanding=True))
_REMOVE_ROWS = text(
    "UPDATE staged_row SET removed = :yes WHERE team_id = :t AND batch_id = :b AND id IN :ids"
).bindparams(bindparam("ids", expanding=True))


async def removed_by_hand(conn: AsyncConnection, team_id: str, batch_id: int,
                          source_id: int) -> list[tuple[int, str]]:  # fmt: skip
    """(line, address) of the source's rows removed one by one (*Review contacts*): a file
    read again (*Map columns*) has only these left of its earlier reading (see
    mapping.reread_source), so its new rows can be removed again."""
    found = await conn.execute(_REMOVED_BY_HAND,
                               {"t": team_id, "b": batch_id, "s": source_id, "yes": True})
    return [(int(line), str(key)) for line, key in found]  # fmt: skip


async def remove_again(conn: AsyncConnection, team_id: str, batch_id: int, source_id: int,
                       removals: Sequence[tuple[int, str]]) -> None:  # fmt: skip
    """Remove the freshly staged rows that someone removed by hand from the earlier reading:
    the same line with the same address (a new email column makes it another contact). As
    when it was removed, its next duplicate takes a valid row's place."""
    if not removals:
        return
    params = {"t": team_id, "b": batch_id, "s": source_id, "no": False}
    wanted = set(removals)
    rows = [row for row in await conn.execute(_ROWS_ON_LINES, {**params, "lines": sorted(
        {line for line, _ in wanted})}) if (row[1], row[2]) in wanted]  # fmt: skip
    if not rows:
        return
    await conn.execute(_REMOVE_ROWS, {**params, "yes": True, "ids": [row[0] for row in rows]})
    for key in sorted({row[2] for row in rows if row[3] == Outcome.VALID}):
        await promote_after_key(conn, team_id, batch_id, key)


async def _still_draft(conn: AsyncConnection, team_id: str, batch_id: int) -> bool:
    return await _status(conn, ImportBatch, team_id, batch_id) == BatchStatus.DRAFT


async def stage_contact(
    db: Database, team_id: str, batch_id: int, *, email: str, first_name: str = "",
    last_name: str = "", locale: str = "",
) -> ImportSource:  # fmt: skip
    """Queue one customer typed in by hand as a source of its own."""
    source = await add_source(db, team_id, batch_id, SourceKind.CONTACT, email.strip())
    try:
        async with db.begin() as conn:
            await lock_batch(conn, team_id, batch_id)
            await take_staging(conn)
            keys, removals = await keys_and_removals(conn, team_id, batch_id, source.id or 0)
            classifier = Classifier(seen={hash(k) for k in keys})
            row = classifier.contact(1, email, first_name, last_name, locale)
            await stage_rows(conn, team_id=team_id, batch_id=batch_id,
                             source_id=source.id or 0, rows=iter([row]))  # fmt: skip
            await drop_removed(conn, team_id, batch_id, source.id or 0, removals=removals)
            await record_counts(conn, source, classifier.tally, removals_dropped=True)
    except Exception:  # no job reads it again: left pending, it blocked approval for good
        await fail_source(db, team_id, source.id or 0, "This customer couldn't be added: "
                          "remove this line and add them again.", only_pending=True)
        raise
    return await get_source(db, team_id, source.id or 0)


async def get_source(db: Database, team_id: str, source_id: int) -> ImportSource:
    """The source as it stands, if it belongs to this workspace (LookupError if not)."""
    async with db.session() as session:
        source = await session.get(ImportSource, source_id)
    if source is None or source.team_id != team_id:
        raise LookupError(f"No import source #{source_id} in this workspace.")
    return source


async def record_counts(conn: AsyncConnection, source: ImportSource, tally: Tally, *,
                        note: str | None = None,
                        removals_dropped: bool = False) -> bool:  # fmt: skip
    """Mark the source read with what the parser counted, what it recognised (`note`), and
    what needs a person's eye (its warning: the consent values it couldn't read, rows with
    cells past the header); False if it is no longer pending.

    Called in the transaction that staged its rows: unless the caller did already
    (`removals_dropped`), its rows of addresses removed from the batch are removed too
    (drop_removed: a Mailchimp list's members, staged in bot.mailchimp.importing)."""
    if not removals_dropped:
        await drop_removed(conn, source.team_id, source.batch_id, source.id or 0)
    result = await conn.execute(
        update(ImportSource)
        .where(col(ImportSource.id) == source.id, col(ImportSource.team_id) == source.team_id,
               col(ImportSource.status) == SourceStatus.PENDING)
        .values(status=SourceStatus.PARSED, error=None, failed_on_columns=False, note=note,
                warning=join_notes([consent_note(tally), overlong_note(tally),
                                    _no_rows(source, tally)]), rows=tally.rows,
                valid=tally.valid,
                duplicates=tally.duplicates, rejected=tally.rejected, warnings=tally.warnings)
    )  # fmt: skip
    return result.rowcount == 1


def _no_rows(source: ImportSource, tally: Tally) -> str | None:
    """A file with a header and nothing below it, among others: imported as nobody, with not
    a word (an empty file is refused; a file alone with no row fails the import)."""
    if source.kind != SourceKind.CSV or tally.rows:
        return None
    return "No rows below the header: nobody was imported from this file."


# An import that ends (failed, cancelled) having added nothing itself may still hold
# memberships: an earlier import's undo handed it those it had listed while it ran. Counted
# as added, so it can be undone (`undoable`): else nothing could ever take them out. Only
# for one that applied something (its cursor moved): a count of its segment's members.
HANDED_ON_COUNTED = text("""
    UPDATE import_batch SET added_to_segment = (
        SELECT COUNT(*) FROM segment_member m
        WHERE m.segment_id = import_batch.segment_id AND m.team_id = :t AND m.batch_id = :b)
    WHERE team_id = :t AND id = :b AND status IN ('failed', 'cancelled') AND apply_cursor > 0
      AND new_contacts = 0 AND added_to_segment = 0
    RETURNING added_to_segment
""")


async def fail_batch(db: Database, team_id: str, batch_id: int, error: str, *,
                     draft: bool = False) -> None:  # fmt: skip
    """Give up on an approved batch (out of retries); what was applied stays applied.
    `draft`: a draft too (an import approved when queued that failed before its approval)."""
    statuses = [BatchStatus.QUEUED, BatchStatus.IMPORTING, *([BatchStatus.DRAFT] * draft)]
    async with db.begin() as conn:
        await conn.execute(
            update(ImportBatch)
            .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id,
                   col(ImportBatch.status).in_(statuses))
            .values(status=BatchStatus.FAILED, error=error[:2000], finished_at=utcnow())
        )
        await conn.execute(HANDED_ON_COUNTED, {"t": team_id, "b": batch_id})


async def set_format(db: Database, source: ImportSource, file_format: FileFormat) -> None:
    """Record what the file turned out to be, once its bytes said so (see bot/imports/files.py);
    nothing to write when a reading before said the same (a retried job, a remap)."""
    if source.file_format == file_format:
        return
    async with db.begin() as conn:
        await conn.execute(
            update(ImportSource)
            .where(col(ImportSource.id) == source.id, col(ImportSource.team_id) == source.team_id)
            .values(file_format=file_format)
        )


async def fail_source(
    db: Database, team_id: str, source_id: int, error: str | CsvFileError, *,
    only_pending: bool = False, clear_rows_of: int | None = None,
) -> None:  # fmt: skip
    """The source can't be read as a whole; `error` is shown to the user (and logged: every
    way a file fails, a bomb, a damaged sheet, a missing column, passes here). Pass the
    exception as raised: a ColumnsError marks the file as one *Map columns* can fix.

    `clear_rows_of` (the batch): its staged rows go too, in the same transaction and only if
    this marked it failed: a file another run read meanwhile keeps the rows it staged.

    A failed source counts nowhere, so the rows of other files that repeat its addresses,
    staged as duplicates of its rows, become valid, as when it is removed (promote_after_
    failure_in): read while its rows stood, they were left duplicates of rows no one imports."""
    where = [col(ImportSource.id) == source_id, col(ImportSource.team_id) == team_id]
    if only_pending:
        where.append(col(ImportSource.status) == SourceStatus.PENDING)
    message = str(error)
    # rows an earlier attempt left (its run killed before it counted them), looked for apart:
    # on SQLite the staging file is only written to when there are some, so a file failing
    # at once never waits for another file's long staging
    left = None if clear_rows_of is not None else await _rows_left(db, team_id, source_id)
    async with db.begin() as conn:
        batch_id = clear_rows_of if clear_rows_of is not None else left
        if batch_id is not None:  # before the source's row: the order staging takes them in
            await _hold_batch(conn, team_id, batch_id)
        failed = await conn.execute(
            update(ImportSource).where(*where).values(
                status=SourceStatus.FAILED, error=message[:2000],
                failed_on_columns=isinstance(error, ColumnsError))
        )  # fmt: skip
        if clear_rows_of is not None and await _failed(conn, team_id, source_id):
            # failed by this call, or by someone else meanwhile (`jobs cancel` of its reading,
            # while the rows were being staged): its rows go either way, after their
            # duplicates elsewhere are decided again
            await promote_after_failure_in(conn, team_id, clear_rows_of, source_id)
            await clear_staged(conn, team_id, clear_rows_of, source_id, keep_removed=True)
        elif failed.rowcount and left is not None:
            await promote_after_failure_in(conn, team_id, left, source_id)
    if failed.rowcount:
        log.info("import source %s of team %s failed: %s", source_id, team_id, message[:300])


async def _rows_left(db: Database, team_id: str, source_id: int) -> int | None:
    """The batch of the source if it has valid staged rows (see fail_source), else None."""
    async with db.begin() as conn:
        return (await conn.execute(
            text("SELECT batch_id FROM staged_row WHERE team_id = :t AND batch_id = "
                 "(SELECT batch_id FROM import_source WHERE id = :s AND team_id = :t) "
                 "AND source_id = :s AND outcome = 'valid' LIMIT 1"),
            {"t": team_id, "s": source_id})).scalar()  # fmt: skip


async def _failed(conn: AsyncConnection, team_id: str, source_id: int) -> bool:
    status = (await conn.execute(
        text("SELECT status FROM import_source WHERE id = :s AND team_id = :t"),
        {"s": source_id, "t": team_id})).scalar()  # fmt: skip
    return status == SourceStatus.FAILED


@dataclass(frozen=True, slots=True)
class Totals:
    rows: int = 0
    valid: int = 0
    duplicates: int = 0
    rejected: int = 0
    warnings: int = 0


# One pass over the batch's index, grouped by source only: the index (batch_id, source_id)
# yields the rows already grouped, while grouping by (source_id, outcome) made SQLite sort a
# million rows in a temporary B-tree first (1M rows: 1.2 s -> 0.7 s). A valid row carries a
# reason only as a warning.
_COUNT_ROWS = text("""
    SELECT source_id,
           COUNT(CASE WHEN outcome = 'valid' THEN 1 END),
           COUNT(CASE WHEN outcome = 'duplicate' THEN 1 END),
           COUNT(CASE WHEN outcome = 'rejected' THEN 1 END),
           COUNT(CASE WHEN outcome = 'valid' THEN reason END)
    FROM staged_row
    WHERE team_id = :t AND batch_id = :b AND removed = :no
    GROUP BY source_id
""")


async def count_rows(conn: AsyncConnection, team_id: str, batch_id: int) -> dict[int, Totals]:
    """Each source's counts, counted from its staged rows as they stand (removals included)."""
    return {
        source_id: Totals(rows=valid + duplicates + rejected, valid=valid, duplicates=duplicates,
                          rejected=rejected, warnings=warnings)
        for source_id, valid, duplicates, rejected, warnings in await conn.execute(
            _COUNT_ROWS, {"t": team_id, "b": batch_id, "no": False}
        )
    }


# Only the Mailchimp sources' rows are read (through the batch's index): a big CSV's aren't.
_SKIPPED_BY_REASON = text("""
    SELECT s.source_id, s.reason, COUNT(*) FROM staged_row s
    WHERE s.team_id = :t AND s.batch_id = :b AND s.removed = :no AND s.outcome = 'rejected'
      AND s.source_id IN (SELECT id FROM import_source
                          WHERE team_id = :t AND batch_id = :b AND kind = 'mailchimp')
    GROUP BY s.source_id, s.reason
""")


def _skipped_as(reason: str | None) -> str:
    """How a Mailchimp member's skip is counted: by its status ("unsubscribed in Mailchimp"
    -> "unsubscribed"); a subscribed member whose address isn't one is skipped with the
    validator's sentence, which varies by address: those are counted together."""
    text_ = reason or ""
    if text_.endswith(" in Mailchimp"):
        return text_.removesuffix(" in Mailchimp")
    if text_.startswith(INVALID_EMAIL):
        return "invalid email"
    if text_.startswith(MISSING_EMAIL):
        return "missing email"
    return "other reason"


async def skipped_by_status(conn: AsyncConnection, team_id: str, batch_id: int
                            ) -> dict[int, dict[str, int]]:  # fmt: skip
    """Mailchimp sources: members skipped, by their status ("unsubscribed" -> n), or
    "invalid email" for a subscribed one whose address isn't valid."""
    out: dict[int, dict[str, int]] = {}
    for source_id, reason, count in await conn.execute(
        _SKIPPED_BY_REASON, {"t": team_id, "b": batch_id, "no": False}
    ):
        counted = out.setdefault(source_id, {})
        label = _skipped_as(reason)
        counted[label] = counted.get(label, 0) + count
    return out


async def skipped_by_status_of_all(conn: AsyncConnection, team_id: str,
                                   batch_id: int) -> dict[str, int]:  # fmt: skip
    """skipped_by_status added up over the batch's audiences (the shell's summary)."""
    total: dict[str, int] = {}
    for statuses in (await skipped_by_status(conn, team_id, batch_id)).values():
        for status, count in statuses.items():
            total[status] = total.get(status, 0) + count
    return total


def add_up(parts: list[Totals]) -> Totals:
    return Totals(*(sum(getattr(t, f) for t in parts)
                    for f in ("rows", "valid", "duplicates", "rejected", "warnings")))  # fmt: skip


async def freeze_counts(conn: AsyncConnection, team_id: str, batch_id: int) -> Totals:
    """Write the counts, as counted from the rows now, onto the sources and the batch.

    Runs in the transaction that takes the batch out of draft, so what is shown afterwards is
    exactly what was decided (staged rows may later be deleted after their retention).
    """
    counts = await count_rows(conn, team_id, batch_id)
    sources = (
        await conn.execute(
            select(ImportSource.id, ImportSource.status).where(
                col(ImportSource.team_id) == team_id, col(ImportSource.batch_id) == batch_id,
                col(ImportSource.removed).is_(False),
            )
        )
    ).all()  # fmt: skip
    live = []
    for source_id, status in sources:
        totals = counts.get(source_id, Totals())
        if status == SourceStatus.PARSED:
            live.append(totals)
        await conn.execute(
            update(ImportSource)
            .where(col(ImportSource.id) == source_id, col(ImportSource.team_id) == team_id)
            .values(rows=totals.rows, valid=totals.valid, duplicates=totals.duplicates,
                    rejected=totals.rejected, warnings=totals.warnings)
        )  # fmt: skip
    total = add_up(live)
    await conn.execute(
        update(ImportBatch)
        .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id)
        .values(rows=total.rows, valid=total.valid, duplicates=total.duplicates,
                rejected=total.rejected, warnings=total.warnings)
    )  # fmt: skip
    return total


async def approve_in(
    conn: AsyncConnection, team_id: str, batch_id: int, approved_by: str,
    seen: int | None = None,
) -> Totals:
    """Take a draft out of review for import, inside the caller's transaction.

    The conditional UPDATE decides a race with reject, cancel, remove or a file being read;
    the checks after it see everything committed before it and roll it all back if they fail.
    `seen`: the revision the review message clicked showed (None: no message, the shell).
    """
    await lock_batch(conn, team_id, batch_id, seen=seen)
    pending = (
        await conn.execute(
            select(func.count()).select_from(ImportSource).where(
                col(ImportSource.team_id) == team_id, col(ImportSource.batch_id) == batch_id,
                col(ImportSource.removed).is_(False),
                col(ImportSource.status) == SourceStatus.PENDING,
            )
        )
    ).scalar_one()  # fmt: skip
    if pending:
        raise ReviewError("Some files are still being read: approve once their counts show.")
    total = await freeze_counts(conn, team_id, batch_id)
    if total.valid == 0:
        raise ReviewError("There is nothing valid to import: add contacts or reject it.")
    await conn.execute(
        update(ImportBatch)
        .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id)
        .values(status=BatchStatus.QUEUED, approved_by=approved_by, updated_at=utcnow())
    )
    return total


async def record_approval_in(conn: AsyncConnection, team_id: str, batch_id: int,
                             approved_by: str, totals: Totals) -> None:  # fmt: skip
    """The audit entry of an approval, in its transaction: the audit log shows what became of
    an import only under it, whether it was approved in Slack or run from the shell."""
    await record_in(conn, team_id, approved_by, Act.IMPORT_APPROVED, import_subject(batch_id),
                    f"{totals.valid} contact{'' if totals.valid == 1 else 's'} to import"
                    )  # fmt: skip


async def own_live_segment_in(conn: AsyncConnection, team_id: str, batch_id: int) -> None:
    """The batch's segment is still live, and held so until this transaction commits (see
    _own_segment); else WorkspaceError ("The segment 'VIP' was deleted; ..."). A shell import
    checks this as it approves: its draft doesn't keep its segment from being deleted."""
    segment_id = (await conn.execute(select(ImportBatch.segment_id).where(
        col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id))).scalar_one()
    await _own_segment(conn, team_id, segment_id)


async def require_static_segment(conn: AsyncConnection, team_id: str, batch_id: int) -> None:
    """The batch's segment still exists: a segment deleted while its import was being created
    can't receive it (deleting refuses segments with imports under way, this closes the gap)."""
    kind = (await conn.execute(
        select(Segment.kind).join(ImportBatch, col(ImportBatch.segment_id) == col(Segment.id))
        .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id,
               col(Segment.team_id) == team_id)
    )).scalar_one_or_none()  # fmt: skip
    if kind != SegmentKind.STATIC:
        raise ReviewError("The segment of this import was deleted: cancel it and start again "
                          "with /referral import.")  # fmt: skip


async def require_consent(conn: AsyncConnection, team_id: str, batch_id: int) -> None:
    """A live campaign emails this segment: someone must have confirmed consent first.

    Checked when a lead approves in Slack; shell users (`referral-bot import`) are trusted
    admins, like the rest of the CLI's pipeline."""
    segment_id, consent_by, requester = (await conn.execute(
        select(ImportBatch.segment_id, ImportBatch.consent_by, ImportBatch.requested_by)
        .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id)
    )).one()  # fmt: skip
    if consent_by is not None:
        return
    names = await inviting_campaigns(conn, team_id, segment_id)
    if names:
        raise ReviewError(
            f"{esc_names(names)} sends these people an invite email: <@{requester}> or a team "
            "lead must first confirm they agreed to hear from us (*Confirm consent* on this "
            "message)."
        )


def esc_names(names: list[str]) -> str:
    """Campaign names for a ReviewError (mrkdwn, told as is): escaped here, quoted."""
    shown = ", ".join("*" + n.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                      + "*" for n in names[:3])  # fmt: skip
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


async def confirm_consent(db: Database, team_id: str, batch_id: int, user_id: str) -> bool:
    """Record "these people agreed to hear from us" on a draft; False if already recorded
    (a double click's second: rolled back, see Unchanged)."""
    try:
        async with db.begin() as conn:
            await lock_batch(conn, team_id, batch_id)
            done = await conn.execute(
                update(ImportBatch)
                .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id,
                       col(ImportBatch.consent_by).is_(None))
                .values(consent_by=user_id, consent_at=utcnow())
            )  # fmt: skip
            if done.rowcount != 1:
                raise Unchanged
            await record_in(conn, team_id, user_id, Act.IMPORT_CONSENT, import_subject(batch_id),
                            "confirmed these people agreed to hear from us")  # fmt: skip
    except Unchanged:
        return False
    return True


async def queue_batch(db: Database, team_id: str, batch_id: int, approved_by: str) -> ImportBatch:
    """Approve a draft for trusted callers (CLI, background imports); an approved batch as is."""
    try:
        async with db.begin() as conn:
            totals = await approve_in(conn, team_id, batch_id, approved_by)
            await record_approval_in(conn, team_id, batch_id, approved_by, totals)
    except ReviewError:  # not a draft (approved already: audited then), or nothing valid
        batch = await get_batch(db, team_id, batch_id)
        if batch is None:
            raise LookupError(f"No import #{batch_id} in this workspace.") from None
        if batch.status == BatchStatus.DRAFT:
            raise
        return batch
    batch = await get_batch(db, team_id, batch_id)
    assert batch is not None
    return batch


# The file a merchant fixes rows in and imports again: `locale` and `subscribed` are headers
# the importer reads back (reading.HEADER_ALIASES), so a row imported from it keeps its consent
# (a blank one is no consent column, which counts as yes) and locale; the others it ignores.
REJECTS_HEADER = ("source", "line", "email", "first_name", "last_name", "locale", "subscribed",
                  "outcome", "reason")  # fmt: skip


def _consent(subscribed: bool | None) -> str:
    """A staged row's consent as the importer reads it back; blank when the file gave none."""
    return "" if subscribed is None else YES if subscribed else NO


async def write_rejects(
    db: Database, team_id: str, batch_id: int, out: TextIO, *, source_id: int | None = None
) -> int:
    """Every rejected or duplicate row of the batch (or one source), with line and reason,
    and what importing it again needs (its locale and consent)."""
    writer = csv.writer(out)
    writer.writerow(REJECTS_HEADER)
    count = 0
    async with db.session() as session:
        # every source of the batch, in one query, to name each told apart as the review
        # message does: two customers.csv filled the file column with one name
        sources = (await session.exec(
            select(ImportSource.id, ImportSource.label, ImportSource.removed, ImportSource.kind)
            .where(ImportSource.team_id == team_id, ImportSource.batch_id == batch_id)
            .order_by(col(ImportSource.id))
        )).all()  # fmt: skip
        kinds = {source.id: source.kind for source in sources}
        names = labels = names_of_all(sources)
        if source_id is not None:
            labels = {source_id: labels[source_id]} if source_id in labels else {}
        firsts = await _rows_repeated(session, team_id, batch_id, list(labels))
        result = await session.stream(
            select(StagedRow.source_id, StagedRow.line, StagedRow.email, StagedRow.first_name,
                   StagedRow.last_name, StagedRow.locale, StagedRow.subscribed,
                   StagedRow.outcome, StagedRow.reason, StagedRow.email_key)
            .where(StagedRow.team_id == team_id, StagedRow.batch_id == batch_id,
                   col(StagedRow.source_id).in_(list(labels)), StagedRow.outcome != Outcome.VALID,
                   col(StagedRow.removed).is_(False))  # a contact removed from the review
            .order_by(col(StagedRow.id))
        )  # fmt: skip
        async for source_id, line, email, first, last, locale, subscribed, outcome, reason, key in (
            result
        ):
            if outcome == Outcome.DUPLICATE and (repeated := firsts.get(key)):
                reason = _duplicate_of(kinds.get(repeated[0]), names.get(repeated[0], ""),
                                       repeated[1])  # fmt: skip
            label, *cells = neutralise([labels.get(source_id, ""), email, first, last,
                                        locale or "", _consent(subscribed), outcome,
                                        reason or ""])  # every text cell, the file name too
            writer.writerow([label, line, *cells])
            count += 1
    return count


async def _rows_repeated(session: AsyncSession, team_id: str, batch_id: int,
                         source_ids: list[int]) -> dict[str, tuple[int, int]]:  # fmt: skip
    """The row each duplicate of `source_ids` repeats, by address key: (source id, line) of
    the batch's valid row of that address, the one imported (duplicates are decided over the
    rows still in the review: an address has one valid row in a batch)."""
    repeating = select(StagedRow.email_key).where(
        StagedRow.team_id == team_id, StagedRow.batch_id == batch_id,
        col(StagedRow.source_id).in_(source_ids), StagedRow.outcome == Outcome.DUPLICATE,
        col(StagedRow.removed).is_(False))  # fmt: skip
    if (await session.exec(repeating.limit(1))).first() is None:
        return {}  # none: the valid rows aren't read (a million-row file's took 0.8 s)
    # a removed file's rows stay as they were staged: its address's valid row is another's now
    live = select(ImportSource.id).where(
        col(ImportSource.team_id) == team_id, col(ImportSource.batch_id) == batch_id,
        col(ImportSource.removed).is_(False))  # fmt: skip
    rows = await session.exec(
        select(StagedRow.email_key, StagedRow.source_id, StagedRow.line)
        .where(StagedRow.team_id == team_id, StagedRow.batch_id == batch_id,
               StagedRow.outcome == Outcome.VALID, col(StagedRow.removed).is_(False),
               col(StagedRow.source_id).in_(live), col(StagedRow.email_key).in_(repeating))
    )  # fmt: skip
    return {key: (source, line) for key, source, line in rows}


def _duplicate_of(kind: SourceKind | None, name: str, line: int) -> str:
    """A duplicate's reason, naming the row it repeats, as a merchant finds it again."""
    if kind == SourceKind.MAILCHIMP:
        return f"Duplicate of a member of the Mailchimp audience {quoted(name)}"
    if kind == SourceKind.CONTACT:
        return f"Duplicate of {name}, added by hand"
    return f"Duplicate of line {line:,} of {quoted(name)}"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cells: list[str]) -> list[str]:
    """Prefix cells a spreadsheet would run as a formula (CSV injection) with a quote."""
    return [f"'{c}" if c and c.startswith(_FORMULA_START) else c for c in cells]
