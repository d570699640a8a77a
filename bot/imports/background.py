"""Imports as durable jobs: stage any files still pending, approve if asked, apply in chunks.

Every step is safe to repeat: staging a source is one transaction that replaces what it
staged before, and the engine's chunks commit with their cursor. So a worker killed at any
point leaves a job that the next worker finishes with exactly the same result.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from sqlmodel import select

from bot.campaigns.after_import import enroll_imported
from bot.imports.batches import (
    add_source,
    create_batch,
    fail_batch,
    fail_source,
    get_batch,
    queue_batch,
    stage_csv,
)
from bot.imports.engine import BatchStateError, Progress, apply_batch
from bot.imports.importer import check_files
from bot.imports.job_kinds import IMPORT_JOB
from bot.imports.reading import CsvFileError
from bot.imports.slack_files import FileRejected, check_csv, describe, download
from bot.jobs import queue
from bot.jobs.worker import Handler, JobContext, JobStopped, PermanentJobError
from bot.notify import ImportNotifier, Silent
from bot.workspaces import import_target
from models import (
    BatchStatus,
    Database,
    ImportSource,
    Job,
    SourceKind,
    SourceStatus,
)


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
        with path.open("rb") as stream:
            check_files([(path.name, stream)])
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


def import_handler(chunk_size: int, notifier: ImportNotifier | None = None) -> Handler:
    async def run(ctx: JobContext) -> None:
        await run_import(ctx, chunk_size, notifier or Silent())

    return run


async def run_import(ctx: JobContext, chunk_size: int, notifier: ImportNotifier) -> None:
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
    last = 0.0

    async def report(progress: Progress) -> None:
        nonlocal last
        await ctx.progress(progress.done, progress.total)
        if time.monotonic() - last >= 1.0 and progress.done < progress.total:
            last = time.monotonic()
            await notifier.import_progress(team_id, batch_id, progress.done, progress.total)

    try:
        result = await apply_batch(db, team_id, batch_id, on_progress=report,
                                   chunk_size=chunk_size)  # fmt: skip
    except JobStopped:
        raise
    except Exception as exc:
        final = isinstance(exc, BatchStateError) or ctx.job.attempts >= ctx.job.max_attempts
        if final:
            await fail_batch(db, team_id, batch_id, str(exc) or type(exc).__name__)
            ended = await get_batch(db, team_id, batch_id)
            if ended is not None and ended.status == BatchStatus.FAILED:
                await notifier.import_finished(team_id, batch_id)
        if isinstance(exc, BatchStateError):
            raise PermanentJobError(str(exc)) from None
        raise
    if result.status == BatchStatus.DONE:
        await enroll_imported(db, result, hold=True)
    if result.status != BatchStatus.CANCELLED:  # a cancellation reports itself
        await notifier.import_finished(team_id, batch_id)


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



# Looks a Slack file up by id (files.info) and returns its file object.
FileLookup = Callable[[str], Awaitable[dict[str, Any]]]


def slack_file_handler(
    lookup: FileLookup, *, token: str, hosts: list[str], max_bytes: int, notifier: ImportNotifier
) -> Handler:
    """Read a CSV shared in Slack into its source: look it up, check it, download, stage."""

    async def run(ctx: JobContext) -> None:
        db, team_id = ctx.db, ctx.team_id
        source = await _pending_source(db, team_id, int(ctx.payload["source_id"]))
        if source is None:
            return
        assert source.id is not None and source.ref is not None
        try:
            file = describe(await lookup(source.ref))
            check_csv(file, max_bytes)
            with tempfile.TemporaryFile() as tmp:
                await download(file, token=token, hosts=hosts, max_bytes=max_bytes, dest=tmp)
                tmp.seek(0)
                await stage_csv(db, team_id, source.id, tmp)
        except FileRejected as exc:
            await fail_source(db, team_id, source.id, str(exc))
        except CsvFileError:
            pass  # stage_csv recorded the reason on the source
        except Exception as exc:
            if ctx.job.attempts < ctx.job.max_attempts:
                raise  # retried later; the review keeps showing "Reading…"
            await fail_source(db, team_id, source.id, f"Could not read the file: {exc}")
        await notifier.source_read(team_id, source.batch_id, source.id)

    return run


async def _pending_source(db: Database, team_id: str, source_id: int) -> ImportSource | None:
    async with db.session() as session:
        source = await session.get(ImportSource, source_id)
    if source is None or source.team_id != team_id or source.status != SourceStatus.PENDING:
        return None
    return source
