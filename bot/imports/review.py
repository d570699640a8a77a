"""The review step: what a batch holds, removing sources or contacts, and its decisions.

Every function takes the team id and re-reads the batch, so a stale button, a double click
or another workspace's id changes nothing and gets an explanation back (ReviewError).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, text, update
from sqlmodel import col, select
from sqlmodel.sql.expression import Select

from bot.audit import Act, import_subject, record_in
from bot.casefold import contains, like_pattern
from bot.imports.batches import (
    DRAFT_ONLY,
    UNDER_WAY,
    ReviewError,
    Totals,
    Unchanged,
    add_up,
    approve_in,
    count_rows,
    freeze_counts,
    get_batch,
    lock_batch,
    promote_after_source,
    record_approval_in,
    require_consent,
    require_static_segment,
    skipped_by_status,
    status_words,
)
from bot.imports.cancel import stop_import_in
from bot.imports.job_kinds import IMPORT_JOB, import_job_key
from bot.imports.source_names import names_by_id
from bot.imports.staging import take_staging
from bot.jobs.queue import enqueue_in
from bot.notify import reading_again_in
from models import (
    BatchStatus,
    Database,
    ImportBatch,
    ImportSource,
    Outcome,
    Segment,
    SourceKind,
    SourceStatus,
    StagedRow,
)
from models.clock import utcnow

__all__ = ["BatchView", "ContactRow", "ReviewError", "Totals"]


@dataclass(frozen=True, slots=True)
class BatchView:
    batch: ImportBatch
    segment: Segment
    sources: list[ImportSource]
    counts: dict[int, Totals]  # source id -> counts (live while in draft, then as decided)
    totals: Totals  # of the sources that were read
    skipped: dict[int, dict[str, int]] = field(default_factory=dict)  # Mailchimp: by status

    @property
    def pending(self) -> int:
        return sum(1 for s in self.sources if s.status == SourceStatus.PENDING)

    def counts_of(self, source: ImportSource) -> Totals:
        return self.counts.get(source.id or 0, Totals())


async def load(db: Database, team_id: str, batch_id: int, *,
               by_status: bool = True) -> BatchView:  # fmt: skip
    """The batch with its sources; a draft's counts are counted from its staged rows now.
    `by_status`: count Mailchimp members skipped by status too (read from the staged rows:
    a caller that shows no source lines, such as a progress line each second, skips it)."""
    async with db.session() as session:
        batch = await session.get(ImportBatch, batch_id)
        if batch is None or batch.team_id != team_id:
            raise ReviewError("That import doesn't exist in this workspace.")
        segment = await session.get(Segment, batch.segment_id)
        assert segment is not None and segment.team_id == team_id
        sources = list(
            (
                await session.exec(
                    select(ImportSource)
                    .where(ImportSource.team_id == team_id, ImportSource.batch_id == batch_id,
                           col(ImportSource.removed).is_(False))
                    .order_by(col(ImportSource.id))
                )
            ).all()
        )  # fmt: skip
    skipped: dict[int, dict[str, int]] = {}
    mailchimp = by_status and any(s.kind == SourceKind.MAILCHIMP for s in sources)
    if batch.status == BatchStatus.DRAFT:
        async with db.begin() as conn:
            counts = await count_rows(conn, team_id, batch_id)
            if mailchimp:
                skipped = await skipped_by_status(conn, team_id, batch_id)
    else:  # frozen when it left draft: staged rows may since have been deleted
        counts = {s.id or 0: Totals(s.rows, s.valid, s.duplicates, s.rejected, s.warnings)
                  for s in sources}  # fmt: skip
        if mailchimp:
            skipped = await _skipped_as_decided(db, team_id, batch_id, counts)
    parsed = [counts.get(s.id or 0, Totals()) for s in sources if s.status == SourceStatus.PARSED]
    return BatchView(batch, segment, sources, counts, add_up(parsed), skipped)


async def _skipped_as_decided(db: Database, team_id: str, batch_id: int,
                              counts: dict[int, Totals]) -> dict[int, dict[str, int]]:  # fmt: skip
    """The Mailchimp members skipped, by status, of an import out of review, as its review
    showed them (approving redrew "2 rejected" in place of "1 cleaned, 1 unsubscribed").
    They are counted from the staged rows, which stay as decided but are deleted after their
    retention: a source whose rows no longer add up to its frozen count gets none (its line
    then says how many were skipped, not why)."""
    async with db.begin() as conn:
        found = await skipped_by_status(conn, team_id, batch_id)
    return {source_id: statuses for source_id, statuses in found.items()
            if sum(statuses.values()) == counts.get(source_id, Totals()).rejected}


def describe_status(batch: ImportBatch) -> str:
    return status_words(batch.status, batch.approved_by, batch.cancelled_by, batch.undone_by,
                        batch.error)


def _live_labels(team_id: str, batch_id: int) -> Select[tuple[int | None, str]]:
    """The batch's sources not removed, by id and label, in the review message's order: the
    sources a source's name is told apart among (bot/imports/source_names.py)."""
    return (select(ImportSource.id, ImportSource.label)
            .where(ImportSource.team_id == team_id, ImportSource.batch_id == batch_id,
                   col(ImportSource.removed).is_(False))
            .order_by(col(ImportSource.id)))  # fmt: skip


async def source_names(db: Database, team_id: str, batch_id: int) -> dict[int, str]:
    """The name of each source still in the batch, by id, told apart as the review message
    tells them ("customers (2).csv"), in one query: for a modal that names one source."""
    async with db.session() as session:
        return names_by_id((await session.exec(_live_labels(team_id, batch_id))).all())


async def remove_source(
    db: Database, team_id: str, batch_id: int, source_id: int, *, actor: str = "cli"
) -> list[int]:
    """Take a source out of a draft; its addresses' duplicates elsewhere become valid.

    Returns the other sources with rows that became valid: the skipped-rows CSV the thread
    has of each lists rows that will be imported now, so each is shared anew once told
    (notifier.source_read), as after a file is read again."""
    async with db.begin() as conn:
        await lock_batch(conn, team_id, batch_id)
        # named as the review showed it, among the sources it is removed from: "removed
        # customers.csv" didn't say which of two customers.csv went
        names = names_by_id((await conn.execute(_live_labels(team_id, batch_id))).all())
        result = await conn.execute(
            update(ImportSource)
            .where(col(ImportSource.id) == source_id, col(ImportSource.team_id) == team_id,
                   col(ImportSource.batch_id) == batch_id, col(ImportSource.removed).is_(False))
            .values(removed=True)
        )  # fmt: skip
        if result.rowcount != 1:
            raise ReviewError("That source is not part of this import (or was already removed).")
        promoted = sorted(await promote_after_source(conn, team_id, batch_id, source_id))
        for other in promoted:
            await reading_again_in(conn, team_id, other)
        await record_in(conn, team_id, actor, Act.IMPORT_SOURCE_REMOVED,
                        import_subject(batch_id), f"removed {names[source_id]}")  # fmt: skip
    return promoted


MAX_SEARCH_WORDS = 8  # a pasted paragraph is no name: its first words search


@dataclass(frozen=True, slots=True)
class ContactRow:
    id: int
    email: str
    first_name: str
    last_name: str
    locale: str | None
    source: str  # its file's name told apart from the import's others (customers (2).csv)
    source_id: int


async def batch_of(db: Database, team_id: str, batch_id: int) -> ImportBatch:
    """The batch alone (no counting), if it belongs to this workspace."""
    batch = await get_batch(db, team_id, batch_id)
    if batch is None:
        raise ReviewError("That import doesn't exist in this workspace.")
    return batch


async def contacts_page(
    db: Database, team_id: str, batch_id: int, *, query: str = "", after: int = 0,
    before: int | None = None, last: bool = False, limit: int = 10,
) -> tuple[list[ContactRow], int]:
    """Valid queued contacts of the batch (search by email or name), and how many match:
    the first `limit` whose row comes after row `after`, or, with `before`, the last `limit`
    before that row (`last`: the list's last `limit`). Paged by row, not by offset: rows
    removed while the list is open (a file, on the review message) moved an offset's page
    past contacts never shown.

    Each row names its source as the review message does: two files called customers.csv
    listed their contacts "from customers.csv" alike. The names come from one query of the
    batch's sources per page."""
    await batch_of(db, team_id, batch_id)
    where = _matching(team_id, batch_id, query, db)
    page = [*where, col(StagedRow.id) > after]
    order = col(StagedRow.id)
    if before is not None or last:
        page = where if last else [*where, col(StagedRow.id) < before]
        order = col(StagedRow.id).desc()
    async with db.session() as session:
        total = (
            await session.exec(select(func.count()).select_from(StagedRow).where(*where))
        ).one()
        rows = (
            await session.exec(
                select(StagedRow.id, StagedRow.email, StagedRow.first_name, StagedRow.last_name,
                       StagedRow.locale, ImportSource.label, StagedRow.source_id)
                .join(ImportSource, col(ImportSource.id) == StagedRow.source_id)
                .where(*page).order_by(order).limit(limit)
            )
        ).all()  # fmt: skip
        names = names_by_id((await session.exec(_live_labels(team_id, batch_id))).all()
                            if rows else [])  # fmt: skip
    if before is not None or last:
        rows = rows[::-1]
    # a source removed since the rows were read keeps its label
    return [ContactRow(staged, email, first, last, locale, names.get(source, label), source)
            for staged, email, first, last, locale, label, source in rows], total  # fmt: skip


async def contacts_before(db: Database, team_id: str, batch_id: int, staged_id: int, *,
                          query: str = "") -> int:  # fmt: skip
    """How many of the list's contacts (as contacts_page matches them) come before row
    `staged_id`: a page's place in the list ("showing 11-20", *Previous*)."""
    where = _matching(team_id, batch_id, query, db)
    async with db.session() as session:
        return (await session.exec(select(func.count()).select_from(StagedRow).where(
            *where, col(StagedRow.id) < staged_id))).one()  # fmt: skip


def _matching(team_id: str, batch_id: int, query: str, db: Database) -> list[Any]:
    """The conditions of the batch's valid queued contacts matching `query`."""
    live = select(ImportSource.id).where(
        ImportSource.team_id == team_id, ImportSource.batch_id == batch_id,
        col(ImportSource.removed).is_(False),
    )  # fmt: skip
    where: list[Any] = [
        StagedRow.team_id == team_id,
        StagedRow.batch_id == batch_id,
        col(StagedRow.source_id).in_(live),
        StagedRow.outcome == Outcome.VALID,
        col(StagedRow.removed).is_(False),
    ]
    # every word in the address or a name: "Jane Doe" finds the contact listed so (the whole
    # query was matched against each column, and found nothing)
    for word in query.split()[:MAX_SEARCH_WORDS]:
        where.append(or_(col(StagedRow.email_key).like(like_pattern(word.casefold()),
                                                       escape="\\"),
                         contains(StagedRow.first_name, word, db.dialect),
                         contains(StagedRow.last_name, word, db.dialect)))  # fmt: skip
    return where


_STAGED = text("SELECT email, email_key, outcome, removed FROM staged_row "
               "WHERE id = :id AND team_id = :t AND batch_id = :b")  # fmt: skip


async def remove_contact(
    db: Database, team_id: str, batch_id: int, staged_id: int, *, actor: str = "cli"
) -> list[int]:
    """Drop one queued contact: the address, with every row of it in the import.

    Only the row clicked went before, and the address's next row (a repeat customer is a row
    per order in a shop's export) took its place: the contact removed stayed listed, and was
    imported, unless Remove was pressed once per line. Returns the sources that had its
    repeats: their skipped-rows CSV the thread has lists rows that are removed now, so it is
    shared anew once told; a contact without repeats changes no CSV.

    A second click on a contact already removed changes nothing, so its transaction rolls
    back: lock_batch had counted the revision up, and a lead's Approve on the review drawn
    after the first click was refused as "changed"."""
    try:
        return await _remove_contact(db, team_id, batch_id, staged_id, actor)
    except Unchanged:
        return []


async def _remove_contact(db: Database, team_id: str, batch_id: int, staged_id: int,
                          actor: str) -> list[int]:  # fmt: skip
    async with db.begin() as conn:
        await lock_batch(conn, team_id, batch_id)
        await take_staging(conn)
        row = (await conn.execute(_STAGED, {"id": staged_id, "t": team_id, "b": batch_id})).first()
        if row is None:
            raise ReviewError("That contact is not part of this import.")
        email, key, _outcome, removed = row
        if removed:
            raise Unchanged
        gone = await conn.execute(
            update(StagedRow)
            .where(col(StagedRow.team_id) == team_id, col(StagedRow.batch_id) == batch_id,
                   col(StagedRow.email_key) == key, col(StagedRow.removed).is_(False),
                   col(StagedRow.outcome).in_([Outcome.VALID, Outcome.DUPLICATE]))
            .values(removed=True)
            .returning(col(StagedRow.source_id), col(StagedRow.outcome))
        )  # fmt: skip
        repeated = sorted({int(source) for source, outcome in gone
                           if outcome == Outcome.DUPLICATE})  # fmt: skip
        for source in repeated:
            await reading_again_in(conn, team_id, source)
        await record_in(conn, team_id, actor, Act.IMPORT_CONTACT_REMOVED,
                        import_subject(batch_id), f"removed {email}")  # fmt: skip
        return repeated


async def approve(
    db: Database, team_id: str, batch_id: int, user_id: str, *, max_attempts: int = 5,
    seen: int | None = None,
) -> Totals:
    """Approve a draft and queue its import job, in one transaction (a double click: one job).
    `seen`: the revision the clicked review showed; approving another is refused."""
    async with db.begin() as conn:
        totals = await approve_in(conn, team_id, batch_id, user_id, seen)
        await require_static_segment(conn, team_id, batch_id)
        await require_consent(conn, team_id, batch_id)
        await enqueue_in(conn, team_id, IMPORT_JOB, {"batch_id": batch_id},
                         dedupe_key=import_job_key(batch_id),
                         max_attempts=max_attempts)  # fmt: skip
        await record_approval_in(conn, team_id, batch_id, user_id, totals)
    return totals


async def reject(db: Database, team_id: str, batch_id: int, user_id: str) -> None:
    """A lead turns a draft down; nothing of it is imported."""
    async with db.begin() as conn:
        await lock_batch(conn, team_id, batch_id)
        await freeze_counts(conn, team_id, batch_id)
        await _close(conn, team_id, batch_id, BatchStatus.REJECTED, approved_by=user_id)
        await record_in(conn, team_id, user_id, Act.IMPORT_REJECTED, import_subject(batch_id))


async def cancel(
    db: Database, team_id: str, batch_id: int, user_id: str, *, is_lead: bool,
    draft_only: bool = False, why: str = "withdrawn before approval",
) -> BatchStatus:
    """The requester (or a lead) withdraws a draft, or stops an approved import.

    Returns the state the batch was in. A running import stops before its next chunk: what
    was imported stays, and the thread is told how much that was. `draft_only`: a draft or
    nothing (the review's Cancel, which says nothing will be imported): approved meanwhile,
    the ReviewError says so. `why`: the audit entry's detail for a draft closed so.
    """
    batch = await batch_of(db, team_id, batch_id)
    if not is_lead and batch.requested_by != user_id:
        raise ReviewError(f"Only <@{batch.requested_by}>, who asked for this import, or a team "
                          "lead can cancel it.")  # fmt: skip
    async with db.begin() as conn:
        await lock_batch(conn, team_id, batch_id, DRAFT_ONLY if draft_only else UNDER_WAY)
        status = (await conn.execute(
            select(ImportBatch.status).where(col(ImportBatch.id) == batch_id)
        )).scalar_one()  # fmt: skip
        if status == BatchStatus.DRAFT:
            await freeze_counts(conn, team_id, batch_id)
            await _close(conn, team_id, batch_id, BatchStatus.CANCELLED, cancelled_by=user_id)
            await record_in(conn, team_id, user_id, Act.IMPORT_CANCELLED,
                            import_subject(batch_id), why)  # fmt: skip
        else:  # audited there, as every stop of an import under way
            await stop_import_in(conn, team_id, batch_id, user_id)
    return BatchStatus(status)


async def _close(conn: Any, team_id: str, batch_id: int, status: BatchStatus,
                 **who: str) -> None:  # fmt: skip
    await conn.execute(
        update(ImportBatch)
        .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id)
        .values(status=status, finished_at=utcnow(), updated_at=utcnow(), **who)
    )


async def claim_progress(db: Database, team_id: str, batch_id: int, ts: str) -> str:
    """Keep `ts` as the batch's one progress reply unless another was kept first; returns
    the reply kept. Two posters (the approving click, the worker, a report job) may each post
    before either has kept theirs: the loser deletes its own."""
    async with db.begin() as conn:
        await conn.execute(
            update(ImportBatch)
            .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id,
                   col(ImportBatch.progress_ts).is_(None))
            .values(progress_ts=ts)
        )  # fmt: skip
        kept = (await conn.execute(select(ImportBatch.progress_ts).where(
            col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id))).scalar()
    return str(kept or ts)


async def forget_progress(db: Database, team_id: str, batch_id: int, ts: str) -> None:
    """The progress reply `ts` is gone (someone deleted it): the next report posts anew."""
    async with db.begin() as conn:
        await conn.execute(
            update(ImportBatch)
            .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id,
                   col(ImportBatch.progress_ts) == ts)
            .values(progress_ts=None)
        )  # fmt: skip


async def set_message(
    db: Database, team_id: str, batch_id: int, *, channel_id: str | None = None,
    message_ts: str | None = None, progress_ts: str | None = None,
) -> None:  # fmt: skip
    values = {k: v for k, v in (("channel_id", channel_id), ("message_ts", message_ts),
                                ("progress_ts", progress_ts)) if v is not None}  # fmt: skip
    async with db.begin() as conn:
        await conn.execute(
            update(ImportBatch)
            .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id)
            .values(**values)
        )


async def adopt_message(db: Database, team_id: str, batch_id: int, channel_id: str,
                        message_ts: str) -> bool:  # fmt: skip
    """Record `channel_id`/`message_ts` as the batch's review message if it has none; True if
    this did. For a review posted whose recording failed (the database down a while): a click
    on it says where it is. Conditional, so a message recorded meanwhile is never replaced."""
    async with db.begin() as conn:
        result = await conn.execute(
            update(ImportBatch)
            .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id,
                   col(ImportBatch.message_ts).is_(None))
            .values(channel_id=channel_id, message_ts=message_ts)
        )  # fmt: skip
    return bool(result.rowcount == 1)
