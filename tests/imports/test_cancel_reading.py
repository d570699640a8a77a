"""`jobs cancel` of a file's reading job: a ZIP whose reading stopped part way, and a job
that ended long before while the file is being read again by another (*Map columns*)."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

import pytest
from sqlalchemy import text

from bot.imports.archives import open_archive
from bot.imports.background import slack_file_handler
from bot.imports.batches import ReviewError, create_upload_batch, get_source
from bot.imports.cancel import try_cancel_job
from bot.imports.files import entry_labels, entry_sources, stage_entry
from bot.imports.job_kinds import SLACK_FILE_JOB
from bot.imports.mapping import ColumnMap, mapper_for, reread_source
from bot.imports.review import approve
from bot.jobs import queue
from bot.jobs.queue import list_jobs
from bot.jobs.worker import Worker, WorkerConfig
from bot.notify import Silent
from bot.workspaces import create_segment, ensure_workspace
from models import Database, Job, SourceStatus

TEAM, LEAD = "T0001", "U0002"


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("a.csv", "email\na@example.com\n")
        z.writestr("b.csv", "email\nb@example.com\n")
        z.writestr("c.csv", "email\nc@example.com\n")
    return out.getvalue()


async def test_cancelling_a_zips_reading_stopped_part_way_leaves_no_file_reading(
    db: Database,
) -> None:
    """The reading of a ZIP shared in Slack stopped after its first CSV (its worker killed,
    or an attempt failed and waits for its retry), and someone cancels its job: the cancel
    failed the first source only, read already, and the ZIP's other CSVs said "Reading…"
    for good, Approve refused with "Some files are still being read"."""
    await ensure_workspace(db, TEAM)
    segment = await create_segment(db, TEAM, "VIP", actor=LEAD)
    batch, _ = await create_upload_batch(db, TEAM, segment.id or 0, LEAD, file_id="F0001",
                                         label="export.zip")  # fmt: skip
    (job,) = [j for j in await list_jobs(db, TEAM) if j.kind == SLACK_FILE_JOB]
    origin_id = int(json.loads(job.payload)["source_id"])
    # the reading's first attempt, as far as the ZIP's first CSV: its entries' sources are
    # added and the first one is staged, then the worker dies (or the attempt fails)
    archive = open_archive(io.BytesIO(_zip()), max_total_bytes=10**7)
    with archive:
        origin = await get_source(db, TEAM, origin_id)
        sources = await entry_sources(db, TEAM, origin,
                                      entry_labels("export.zip", archive.entries))
        await stage_entry(db, TEAM, sources[0], archive.entries[0], [None],
                          await mapper_for(db, TEAM))  # fmt: skip
    cancelling = await try_cancel_job(db, TEAM, job.id or 0)  # `referral-bot jobs cancel`
    assert cancelling is not None and cancelling.job.state == "cancelled"
    async with db.begin() as conn:
        sources_now = (await conn.execute(text(
            "SELECT label, status, error FROM import_source WHERE batch_id = :b ORDER BY id"),
            {"b": batch})).all()  # fmt: skip
    assert [tuple(s) for s in sources_now] == [
        ("export.zip › a.csv", "parsed", None),
        ("export.zip › b.csv", "failed", "Reading this file was cancelled."),
        ("export.zip › c.csv", "failed", "Reading this file was cancelled.")], sources_now
    try:
        await approve(db, TEAM, batch, LEAD)
        refused = ""
    except ReviewError as exc:
        refused = str(exc)
    assert "still being read" not in refused, refused


WORK = (b"Full Name,Work Contact,Given\n"
        b"Ada Lovelace,ada@work.example,Ada\nBob Byte,bob@work.example,Bob\n")  # fmt: skip


async def _fetch(ref: str, dest: BinaryIO) -> str:  # Slack's side: the file's bytes
    dest.write(WORK)
    return "work.csv"


async def test_cancelling_an_ended_reading_job_leaves_the_files_new_reading_alone(
    db: Database,
) -> None:
    """The file's first reading ended (it failed on its columns); a lead mapped its columns,
    which queues a reading of its own; then someone cancelled the first reading's job, long
    done: the file failed "Reading this file was cancelled." and the new reading found
    nothing to read, while the shell said only a queued or running job can be cancelled."""
    await ensure_workspace(db, TEAM)
    segment = await create_segment(db, TEAM, "VIP", actor=LEAD)
    batch, _ = await create_upload_batch(db, TEAM, segment.id or 0, LEAD, file_id="F0001",
                                         label="work.csv")  # fmt: skip
    worker = Worker(db, {SLACK_FILE_JOB: slack_file_handler(_fetch, notifier=Silent())},
                    WorkerConfig(lease_seconds=5, poll_seconds=0.05))  # fmt: skip
    await asyncio.wait_for(worker.run_until_idle(), 30)  # read: no email column it knows
    (first,) = [j for j in await list_jobs(db, TEAM) if j.kind == SLACK_FILE_JOB]
    source = await get_source(db, TEAM, int(json.loads(first.payload)["source_id"]))
    assert first.state == "done" and source.status == SourceStatus.FAILED
    await reread_source(db, TEAM, batch, source.id or 0,
                        ["Full Name", "Work Contact", "Given"],
                        ColumnMap("Work Contact", "Given"), LEAD)  # fmt: skip
    cancelling = await try_cancel_job(db, TEAM, first.id or 0)
    assert cancelling is not None and cancelling.job.state == "done"  # nothing cancelled
    await asyncio.wait_for(worker.run_until_idle(), 30)
    read = await get_source(db, TEAM, source.id or 0)
    assert (read.status, read.valid, read.error) == (SourceStatus.PARSED, 2, None), (
        read.status, read.valid, read.error)


HEADER = ["Full Name", "Work Contact", "Given"]


async def _uploaded(db: Database, label: str,
                    fetch: Callable[[str, BinaryIO], Awaitable[str]]) -> tuple[int, Job, Worker]:
    """(batch, its reading job, a worker with Slack's side `fetch`) of a file shared in Slack
    for an import into VIP; not read yet."""
    await ensure_workspace(db, TEAM)
    segment = await create_segment(db, TEAM, "VIP", actor=LEAD)
    batch, _ = await create_upload_batch(db, TEAM, segment.id or 0, LEAD, file_id="F0001",
                                         label=label)  # fmt: skip
    (first,) = [j for j in await list_jobs(db, TEAM) if j.kind == SLACK_FILE_JOB]
    worker = Worker(db, {SLACK_FILE_JOB: slack_file_handler(fetch, notifier=Silent())},
                    WorkerConfig(lease_seconds=5, poll_seconds=0.05))  # fmt: skip
    return batch, first, worker


async def _map_again(db: Database, batch: int, source_id: int) -> None:
    """A lead's *Map columns* of the file (Work Contact, Given): a reading of its own."""
    await reread_source(db, TEAM, batch, source_id, HEADER, ColumnMap("Work Contact", "Given"),
                        LEAD)  # fmt: skip


async def _read_with_the_mapping(db: Database, source_id: int) -> None:
    read = await get_source(db, TEAM, source_id)
    assert (read.status, read.valid, read.error) == (SourceStatus.PARSED, 2, None), (
        read.status, read.valid, read.error)


def _hold_first_finish(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """The first run's end (its job marked done) held until released: the window where the
    file is read but its job still says running."""
    real, reached, release = queue.finish, asyncio.Event(), asyncio.Event()

    async def finish(*args: Any) -> Any:
        if not reached.is_set():
            reached.set()
            await asyncio.wait_for(release.wait(), 30)
        return await real(*args)

    monkeypatch.setattr(queue, "finish", finish)
    return reached, release


async def test_a_reading_job_ending_as_it_is_cancelled_leaves_the_files_new_reading_alone(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, with the first reading ending and the columns mapped between the cancel's
    look at the job (queued) and its transaction: it failed the new reading on what it had
    seen, while the shell said the job was done and nothing could be cancelled."""
    batch, first, worker = await _uploaded(db, "work.csv", _fetch)
    source_id = int(json.loads(first.payload)["source_id"])
    real, looks = queue.get_job, 0

    async def get_job(*args: Any) -> Any:
        nonlocal looks
        looks += 1
        seen = await real(*args)
        if looks == 1:  # the cancel has seen it queued: it is read now, and mapped
            await asyncio.wait_for(worker.run_until_idle(), 30)
            await _map_again(db, batch, source_id)
        return seen

    monkeypatch.setattr(queue, "get_job", get_job)
    cancelling = await try_cancel_job(db, TEAM, first.id or 0)
    assert cancelling is not None and cancelling.job.state == "done"
    await asyncio.wait_for(worker.run_until_idle(), 30)
    await _read_with_the_mapping(db, source_id)


async def test_a_reading_job_not_yet_marked_done_leaves_the_files_new_reading_alone(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first reading has read the file (it failed on its columns) but its job is still
    `running`: its worker hasn't recorded the end yet (or was killed right then, its lease
    not lapsed). A lead maps the columns, which queues a reading of its own; `jobs cancel` of
    the first job took it (running) and failed the file, whose pending state is the new
    reading's: that reading then found nothing to read."""
    batch, first, worker = await _uploaded(db, "work.csv", _fetch)
    source_id = int(json.loads(first.payload)["source_id"])
    reached, release = _hold_first_finish(monkeypatch)
    running = asyncio.create_task(worker.run_until_idle())
    await asyncio.wait_for(reached.wait(), 30)
    await _first_cancelled_after_mapping_again(db, batch, source_id, first, worker, release,
                                               running)  # fmt: skip


async def _first_cancelled_after_mapping_again(
    db: Database, batch: int, source_id: int, first: Job, worker: Worker,
    release: asyncio.Event, running: asyncio.Task[None],
) -> None:  # fmt: skip
    """The first reading (held before it is marked done) failed the file; a lead maps its
    columns again, `jobs cancel` of the first job lands, the first run ends and the worker
    runs on: the new reading reads the file with the mapping."""
    assert (await get_source(db, TEAM, source_id)).status == SourceStatus.FAILED
    await _map_again(db, batch, source_id)
    cancelling = await try_cancel_job(db, TEAM, first.id or 0)
    assert cancelling is not None and cancelling.job.state == "cancelled"
    release.set()
    await asyncio.wait_for(running, 30)
    await asyncio.wait_for(worker.run_until_idle(), 30)
    await _read_with_the_mapping(db, source_id)


async def test_cancelling_a_plain_csvs_queued_reading_fails_its_file(db: Database) -> None:
    """One CSV shared in Slack (no ZIP): its label has no archive prefix, whose NUL byte
    PostgreSQL refused, and the cancel failed."""
    await ensure_workspace(db, TEAM)
    segment = await create_segment(db, TEAM, "VIP", actor=LEAD)
    await create_upload_batch(db, TEAM, segment.id or 0, LEAD, file_id="F0001",
                              label="customers.csv")  # fmt: skip
    (job,) = [j for j in await list_jobs(db, TEAM) if j.kind == SLACK_FILE_JOB]
    cancelling = await try_cancel_job(db, TEAM, job.id or 0)
    assert cancelling is not None and cancelling.job.state == "cancelled"
    source = await get_source(db, TEAM, int(json.loads(job.payload)["source_id"]))
    assert (source.status, source.error) == (SourceStatus.FAILED,
                                             "Reading this file was cancelled.")  # fmt: skip


async def _fetch_zip(ref: str, dest: BinaryIO) -> str:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("a.csv", "email\na@example.com\n")
        z.writestr("b.csv", WORK)
    dest.write(out.getvalue())
    return "export.zip"


async def test_a_zips_reading_not_yet_marked_done_leaves_an_entrys_new_reading_alone(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for a CSV in a ZIP: its re-read is keyed by the entry's source, not the
    ZIP's, and the cancel failed it with the ZIP's CSVs still pending."""
    batch, first, worker = await _uploaded(db, "export.zip", _fetch_zip)
    reached, release = _hold_first_finish(monkeypatch)
    running = asyncio.create_task(worker.run_until_idle())
    await asyncio.wait_for(reached.wait(), 30)
    async with db.begin() as conn:
        entry = (await conn.execute(text(
            "SELECT id FROM import_source WHERE batch_id = :b AND label LIKE '%b.csv'"),
            {"b": batch})).scalar_one()  # fmt: skip
    await _first_cancelled_after_mapping_again(db, batch, entry, first, worker, release,
                                               running)  # fmt: skip


async def test_cancelling_the_new_reading_while_the_first_isnt_marked_done_fails_the_file(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other way round: the *Map columns* reading is cancelled while the first (which
    read the file already) isn't marked done yet; counted as the file's reader, it left the
    file "Reading…" for good, with nothing to read it."""
    batch, first, worker = await _uploaded(db, "work.csv", _fetch)
    source_id = int(json.loads(first.payload)["source_id"])
    reached, release = _hold_first_finish(monkeypatch)
    running = asyncio.create_task(worker.run_until_idle())
    await asyncio.wait_for(reached.wait(), 30)
    await _map_again(db, batch, source_id)
    (again,) = [j for j in await list_jobs(db, TEAM)
                if j.kind == SLACK_FILE_JOB and j.id != first.id]  # fmt: skip
    cancelling = await try_cancel_job(db, TEAM, again.id or 0)
    assert cancelling is not None and cancelling.job.state == "cancelled"
    release.set()
    await asyncio.wait_for(running, 30)
    await asyncio.wait_for(worker.run_until_idle(), 30)
    read = await get_source(db, TEAM, source_id)
    assert (read.status, read.error) == (
        SourceStatus.FAILED, "Reading this file was cancelled."), (read.status, read.error)
