"""The review step: what a batch holds, removing sources or contacts, and its decisions.

Every function takes the team id and re-reads the batch, so a stale button, a double click
or another workspace's id changes nothing and gets an explanation back (ReviewError).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, update
from sqlmodel import col, select

from bot.imports.batches import queue_batch
from models import (
    BatchStatus,
    Database,
    ImportBatch,
    ImportSource,
    Outcome,
    Segment,
    SourceStatus,
    StagedRow,
)
from models.clock import utcnow


class ReviewError(Exception):
    """The action can't be done now; the message says why, for the person who clicked."""


@dataclass(frozen=True, slots=True)
class Totals:
    rows: int = 0
    valid: int = 0
    duplicates: int = 0
    rejected: int = 0
    warnings: int = 0


@dataclass(frozen=True, slots=True)
class BatchView:
    batch: ImportBatch
    segment: Segment
    sources: list[ImportSource]
    totals: Totals

    @property
    def pending(self) -> int:
        return sum(1 for s in self.sources if s.status == SourceStatus.PENDING)


async def load(db: Database, team_id: str, batch_id: int) -> BatchView:
    async with db.session() as session:
        batch = await session.get(ImportBatch, batch_id)
        if batch is None or batch.team_id != team_id:
            raise ReviewError("That import doesn't exist in this workspace.")
        segment = await session.get(Segment, batch.segment_id)
        assert segment is not None
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
    parsed = [s for s in sources if s.status == SourceStatus.PARSED]
    totals = Totals(*(sum(getattr(s, f) for s in parsed) for f in
                      ("rows", "valid", "duplicates", "rejected", "warnings")))  # fmt: skip
    return BatchView(batch, segment, sources, totals)


async def _draft(db: Database, team_id: str, batch_id: int) -> ImportBatch:
    view = await load(db, team_id, batch_id)
    if view.batch.status != BatchStatus.DRAFT:
        raise ReviewError(f"This import is already {describe_status(view.batch)}.")
    return view.batch


def describe_status(batch: ImportBatch) -> str:
    who = f" by <@{batch.approved_by}>" if batch.approved_by else ""
    return {
        BatchStatus.QUEUED: f"approved{who} and waiting to run",
        BatchStatus.IMPORTING: f"approved{who} and importing",
        BatchStatus.DONE: f"imported (approved{who})",
        BatchStatus.FAILED: "failed",
        BatchStatus.REJECTED: f"rejected{who}",
        BatchStatus.CANCELLED: "cancelled",
    }.get(BatchStatus(batch.status), batch.status)


async def remove_source(db: Database, team_id: str, batch_id: int, source_id: int) -> None:
    await _draft(db, team_id, batch_id)
    async with db.begin() as conn:
        result = await conn.execute(
            update(ImportSource)
            .where(col(ImportSource.id) == source_id, col(ImportSource.team_id) == team_id,
                   col(ImportSource.batch_id) == batch_id)
            .values(removed=True)
        )  # fmt: skip
    if result.rowcount != 1:
        raise ReviewError("That source is not part of this import.")


@dataclass(frozen=True, slots=True)
class ContactRow:
    id: int
    email: str
    first_name: str
    last_name: str
    locale: str | None
    source: str


async def contacts_page(
    db: Database, team_id: str, batch_id: int, *, query: str = "", offset: int = 0, limit: int = 10
) -> tuple[list[ContactRow], int]:
    """Valid queued contacts of the batch (search by email or name), and how many match."""
    await load(db, team_id, batch_id)
    live = select(ImportSource.id).where(
        ImportSource.team_id == team_id, ImportSource.batch_id == batch_id,
        col(ImportSource.removed).is_(False),
    )  # fmt: skip
    where = [
        StagedRow.team_id == team_id,
        col(StagedRow.source_id).in_(live),
        StagedRow.outcome == Outcome.VALID,
        col(StagedRow.removed).is_(False),
    ]
    if query.strip():
        like = f"%{query.strip().casefold()}%"
        where.append(or_(col(StagedRow.email_key).like(like),
                         func.lower(StagedRow.first_name).like(like),
                         func.lower(StagedRow.last_name).like(like)))  # fmt: skip
    async with db.session() as session:
        total = (
            await session.exec(select(func.count()).select_from(StagedRow).where(*where))
        ).one()
        rows = (
            await session.exec(
                select(StagedRow.id, StagedRow.email, StagedRow.first_name, StagedRow.last_name,
                       StagedRow.locale, ImportSource.label)
                .join(ImportSource, col(ImportSource.id) == StagedRow.source_id)
                .where(*where).order_by(col(StagedRow.id)).offset(offset).limit(limit)
            )
        ).all()  # fmt: skip
    return [ContactRow(*row) for row in rows], total  # type: ignore[arg-type]


async def remove_contact(db: Database, team_id: str, batch_id: int, staged_id: int) -> str:
    """Drop one queued contact; its source's counts follow. Returns the email removed."""
    await _draft(db, team_id, batch_id)
    async with db.session() as session:
        row = await session.get(StagedRow, staged_id)
        if row is None or row.team_id != team_id or row.batch_id != batch_id:
            raise ReviewError("That contact is not part of this import.")
        if row.removed:
            return row.email
        row.removed = True
        session.add(row)
        source = await session.get(ImportSource, row.source_id)
        if source is not None and row.outcome == Outcome.VALID:
            source.rows -= 1
            source.valid -= 1
            session.add(source)
        await session.commit()
        return row.email


async def approve(db: Database, team_id: str, batch_id: int, user_id: str) -> ImportBatch:
    """Freeze the batch for import. Idempotent: approving an approved batch just says so."""
    view = await load(db, team_id, batch_id)
    if view.batch.status != BatchStatus.DRAFT:
        raise ReviewError(f"This import is already {describe_status(view.batch)}.")
    if view.pending:
        raise ReviewError("Some files are still being read: approve once their counts show.")
    if view.totals.valid == 0:
        raise ReviewError("There is nothing valid to import: add contacts or reject it.")
    return await queue_batch(db, team_id, batch_id, user_id)


async def close(
    db: Database, team_id: str, batch_id: int, user_id: str, status: BatchStatus
) -> None:
    """Reject (a lead) or cancel (the requester) a draft."""
    batch = await _draft(db, team_id, batch_id)
    if status == BatchStatus.CANCELLED and batch.requested_by != user_id:
        raise ReviewError(
            f"Only <@{batch.requested_by}>, who asked for this import, can cancel it."
        )
    async with db.begin() as conn:
        await conn.execute(
            update(ImportBatch)
            .where(col(ImportBatch.id) == batch_id, col(ImportBatch.team_id) == team_id,
                   col(ImportBatch.status) == BatchStatus.DRAFT)
            .values(status=status, approved_by=user_id if status == BatchStatus.REJECTED else None,
                    finished_at=utcnow(), updated_at=utcnow())
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
