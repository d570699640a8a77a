"""Imports as durable jobs: stage any files still pending, approve if asked, apply in chunks.

Every step is safe to repeat: staging a source is one transaction that replaces what it
staged before, and the engine's chunks commit with their cursor. So a worker killed at any
point leaves a job that the next worker finishes with exactly the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlmodel import select

from bot.imports.batches import add_source, create_batch, get_batch, queue_batch, stage_csv
from bot.imports.engine import BatchStateError, Progress, apply_batch
from bot.imports.reading import CsvFileError, CsvReader
from bot.jobs import queue
from bot.jobs.worker import Handler, JobContext, PermanentJobError
from bot.workspaces import import_target
from models import BatchStatus, Database, ImportSource, Job, SourceKind, SourceStatus

IMPORT_JOB = "import"


class ImportRejected(Exception):
    """A file can't be imported at all; nothing was queued."""


async def enqueue_file_import(
    db: Database,
    team_id: str,
    paths: Sequence[Path],
    *,
    segment: str,
    create_segment: bool = False,
    update_existing: bool = False,
    requested_by: str = "cli",
    max_attempts: int = 5,
) -> Job:
    """Check the files now (so a bad one is reported at once), then leave the work to a job."""
    for path in paths:
        try:
            with path.open("rb") as stream:
                CsvReader(stream).close()
        except CsvFileError as exc:
            raise ImportRejected(f"{path.name}: {exc} Nothing was imported.") from None
    target = await import_target(db, team_id, segment, create=create_segment)
    assert target.id is not None
    batch = await create_batch(
        db, team_id, target.id, requested_by, update_existing=update_existing
    )
    assert batch.id is not None
    for path in paths:
        await add_source(db, team_id, batch.id, SourceKind.CSV, path.name, ref=str(path.resolve()))
    return await queue.enqueue(
        db, team_id, IMPORT_JOB, {"batch_id": batch.id, "approved_by": requested_by},
        dedupe_key=f"import:{batch.id}", max_attempts=max_attempts,
    )  # fmt: skip


def import_handler(chunk_size: int) -> Handler:
    async def run(ctx: JobContext) -> None:
        await run_import(ctx, chunk_size)

    return run


async def run_import(ctx: JobContext, chunk_size: int) -> None:
    db, team_id = ctx.db, ctx.team_id
    batch_id = int(ctx.payload["batch_id"])
    batch = await get_batch(db, team_id, batch_id)
    if batch is None:
        raise PermanentJobError(f"Import #{batch_id} no longer exists.")
    if batch.status == BatchStatus.DRAFT:
        await _stage_pending_files(db, team_id, batch_id)
        ctx.checkpoint()
        approver = ctx.payload.get("approved_by")
        if not approver:
            return  # staged for review; approval enqueues the apply
        await queue_batch(db, team_id, batch_id, str(approver))

    async def report(progress: Progress) -> None:
        await ctx.progress(progress.done, progress.total)

    try:
        await apply_batch(db, team_id, batch_id, on_progress=report, chunk_size=chunk_size)
    except BatchStateError as exc:
        raise PermanentJobError(str(exc)) from None


async def _stage_pending_files(db: Database, team_id: str, batch_id: int) -> None:
    async with db.session() as session:
        pending = (
            await session.exec(
                select(ImportSource).where(
                    ImportSource.team_id == team_id,
                    ImportSource.batch_id == batch_id,
                    ImportSource.kind == SourceKind.CSV,
                    ImportSource.status == SourceStatus.PENDING,
                )
            )
        ).all()
    for source in pending:
        assert source.id is not None and source.ref is not None
        with Path(source.ref).open("rb") as stream:  # a vanished file fails and retries
            try:
                await stage_csv(db, team_id, source.id, stream)
            except CsvFileError as exc:
                raise PermanentJobError(f"{source.label}: {exc}") from None
