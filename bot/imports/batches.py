"""Import batches: create one, queue sources into it, and approve it for the engine."""

from __future__ import annotations

import csv
from typing import BinaryIO, TextIO

from sqlalchemy import func, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select

from bot.imports.parallel import ParallelRows, file_path
from bot.imports.reading import CsvFileError, CsvReader
from bot.imports.rows import Classifier, Tally
from bot.imports.staging import stage_rows
from models import (
    BatchStatus,
    Database,
    ImportBatch,
    ImportSource,
    Outcome,
    SourceKind,
    SourceStatus,
    StagedRow,
)
from models.clock import utcnow


async def create_batch(
    db: Database, team_id: str, segment_id: int, requested_by: str, *, update_existing: bool = False
) -> ImportBatch:
    async with db.session() as session:
        batch = ImportBatch(team_id=team_id, segment_id=segment_id, requested_by=requested_by,
                            update_existing=update_existing)  # fmt: skip
        session.add(batch)
        await session.commit()
        return batch


async def get_batch(db: Database, team_id: str, batch_id: int) -> ImportBatch | None:
    """The batch if it belongs to this workspace; another workspace's id finds nothing."""
    async with db.session() as session:
        batch = await session.get(ImportBatch, batch_id)
    return batch if batch is not None and batch.team_id == team_id else None


async def _batch_keys(db: Database, team_id: str, batch_id: int) -> set[str]:
    """Emails already queued in the batch, so later sources mark them as duplicates."""
    async with db.begin() as conn:
        rows = await conn.execute(
            text("SELECT email_key FROM staged_row WHERE team_id = :t AND batch_id = :b "
                 "AND outcome = 'valid' AND removed = :no"),
            {"t": team_id, "b": batch_id, "no": False},
        )  # fmt: skip
        return {row[0] for row in rows}


async def add_source(db: Database, team_id: str, batch_id: int, kind: SourceKind, label: str,
                     ref: str | None = None) -> ImportSource:  # fmt: skip
    async with db.session() as session:
        source = ImportSource(team_id=team_id, batch_id=batch_id, kind=kind, label=label[:255],
                              ref=ref)  # fmt: skip
        session.add(source)
        await session.commit()
        return source


async def stage_csv(
    db: Database,
    team_id: str,
    source_id: int,
    stream: BinaryIO,
) -> ImportSource:
    """Parse a CSV into the source's staged rows; a file unreadable as a whole marks it failed.

    Raises CsvFileError (after recording it on the source) so callers can tell the user.
    """
    source = await _source(db, team_id, source_id)
    try:
        reader = CsvReader(stream)
    except CsvFileError as exc:
        await fail_source(db, team_id, source_id, str(exc))
        raise
    keys = await _batch_keys(db, team_id, source.batch_id)
    path = file_path(stream)
    # A big file is parsed by a child process while this one inserts; a small one right here.
    parallel = ParallelRows(path, sorted(keys)) if path is not None else None
    classifier = Classifier(seen={hash(k) for k in keys})
    rows = iter(parallel) if parallel else classifier.records(reader.records(), reader.columns)
    try:
        async with db.begin() as conn:
            await stage_rows(conn, team_id=team_id, batch_id=source.batch_id,
                             source_id=source_id, rows=rows)  # fmt: skip
            tally = parallel.tally if parallel else classifier.tally
            await _record_counts(conn, source, tally)
    finally:
        reader.close()
        if parallel is not None:
            parallel.close()
    return await _source(db, team_id, source_id)


async def stage_contact(
    db: Database, team_id: str, batch_id: int, *, email: str, first_name: str = "",
    last_name: str = "", locale: str = "",
) -> ImportSource:  # fmt: skip
    """Queue one customer typed in by hand as a source of its own."""
    source = await add_source(db, team_id, batch_id, SourceKind.CONTACT, email.strip())
    classifier = Classifier(seen={hash(k) for k in await _batch_keys(db, team_id, batch_id)})
    row = classifier.contact(1, email, first_name, last_name, locale)
    async with db.begin() as conn:
        await stage_rows(conn, team_id=team_id, batch_id=batch_id, source_id=source.id or 0,
                         rows=iter([row]))  # fmt: skip
        await _record_counts(conn, source, classifier.tally)
    return await _source(db, team_id, source.id or 0)


async def _source(db: Database, team_id: str, source_id: int) -> ImportSource:
    async with db.session() as session:
        source = await session.get(ImportSource, source_id)
    if source is None or source.team_id != team_id:
        raise LookupError(f"No import source #{source_id} in this workspace.")
    return source


async def _record_counts(conn: AsyncConnection, source: ImportSource, tally: Tally) -> None:
    await conn.execute(
        update(ImportSource)
        .where(col(ImportSource.id) == source.id, col(ImportSource.team_id) == source.team_id)
        .values(status=SourceStatus.PARSED, error=None, rows=tally.rows, valid=tally.valid,
                duplicates=tally.duplicates, rejected=tally.rejected, warnings=tally.warnings)
    )  # fmt: skip


async def fail_batch(db: Database, team_id: str, batch_id: int, error: str) -> None:
    """Give up on an approved batch (out of retries); what was applied stays applied."""
    async with db.begin() as conn:
        await conn.execute(
            update(ImportBatch)
            .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id)
            .values(status=BatchStatus.FAILED, error=error[:2000], finished_at=utcnow())
        )


async def fail_source(db: Database, team_id: str, source_id: int, error: str) -> None:
    """The source can't be read as a whole; `error` is shown to the user."""
    async with db.begin() as conn:
        await conn.execute(
            update(ImportSource)
            .where(col(ImportSource.id) == source_id, col(ImportSource.team_id) == team_id)
            .values(status=SourceStatus.FAILED, error=error[:2000])
        )


async def queue_batch(db: Database, team_id: str, batch_id: int, approved_by: str) -> ImportBatch:
    """Approve a draft: freeze its totals from the live sources and hand it to the engine."""
    async with db.session() as session:
        batch = await session.get(ImportBatch, batch_id)
        if batch is None or batch.team_id != team_id:
            raise LookupError(f"No import #{batch_id} in this workspace.")
        if batch.status != BatchStatus.DRAFT:
            return batch
        totals = (
            await session.exec(
                select(
                    func.coalesce(func.sum(ImportSource.rows), 0),
                    func.coalesce(func.sum(ImportSource.valid), 0),
                    func.coalesce(func.sum(ImportSource.duplicates), 0),
                    func.coalesce(func.sum(ImportSource.rejected), 0),
                    func.coalesce(func.sum(ImportSource.warnings), 0),
                ).where(
                    ImportSource.team_id == team_id,
                    ImportSource.batch_id == batch_id,
                    col(ImportSource.removed).is_(False),
                    ImportSource.status == SourceStatus.PARSED,
                )
            )
        ).one()
        batch.rows, batch.valid, batch.duplicates, batch.rejected, batch.warnings = totals
        batch.status = BatchStatus.QUEUED
        batch.approved_by = approved_by
        session.add(batch)
        await session.commit()
        return batch


REJECTS_HEADER = ("source", "line", "email", "first_name", "last_name", "outcome", "reason")


async def write_rejects(
    db: Database, team_id: str, batch_id: int, out: TextIO, *, source_id: int | None = None
) -> int:
    """Every rejected or duplicate row of the batch (or one source), with line and reason."""
    writer = csv.writer(out)
    writer.writerow(REJECTS_HEADER)
    count = 0
    async with db.session() as session:
        sources = select(ImportSource.id, ImportSource.label).where(
            ImportSource.team_id == team_id, ImportSource.batch_id == batch_id
        )
        if source_id is not None:
            sources = sources.where(ImportSource.id == source_id)
        labels = dict((await session.exec(sources)).all())
        result = await session.stream(
            select(StagedRow.source_id, StagedRow.line, StagedRow.email, StagedRow.first_name,
                   StagedRow.last_name, StagedRow.outcome, StagedRow.reason)
            .where(StagedRow.team_id == team_id, col(StagedRow.source_id).in_(list(labels)),
                   StagedRow.outcome != Outcome.VALID)
            .order_by(col(StagedRow.id))
        )  # fmt: skip
        async for source_id, line, email, first, last, outcome, reason in result:
            writer.writerow([labels.get(source_id, ""), line, *neutralise([email, first, last]),
                             outcome, reason or ""])  # fmt: skip
            count += 1
    return count


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cells: list[str]) -> list[str]:
    """Prefix cells a spreadsheet would run as a formula (CSV injection) with a quote."""
    return [f"'{c}" if c and c.startswith(_FORMULA_START) else c for c in cells]
