"""Jobs that ended more than JOB_RETENTION_DAYS ago are deleted by the daily purge.

No job row was ever deleted: every Home refresh, report, send run and purge left one, and
the `job` table grew for ever. The workspace's purge run now deletes its jobs that ended
(done, failed, cancelled) a month ago, but not the undo job of an import still being undone
(*Finish the undo* and `undo N` queue that row again) nor the workspace's newest job (SQLite
would hand a deleted newest id to the next job). What an old import shows doesn't read its
job: its page and `referral-bot jobs` work on without it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.imports.batches import get_batch
from bot.imports.job_kinds import PURGE_JOB, import_job_key
from bot.imports.retention import purge_handler, purge_staged, schedule_purge_in
from bot.imports.review import load
from bot.imports.undo import request_undo, undo_key
from bot.jobs import queue
from bot.jobs.retention import JOB_RETENTION_DAYS
from bot.jobs.worker import Worker, WorkerConfig
from bot.workspaces import ensure_workspace
from models import Database
from models.clock import utcnow
from tests.jobs.test_queue import csv_file
from tests.shell import run

_BACKDATE = text("UPDATE job SET finished_at = :at WHERE id = :id").bindparams(
    bindparam("at", type_=UTCDateTime()))  # fmt: skip


async def _ended_days_ago(db: Database, job_id: int, days: float) -> None:
    """The job ended `days` ago (as if it had then)."""
    async with db.begin() as conn:
        await conn.execute(_BACKDATE, {"at": utcnow() - timedelta(days=days), "id": job_id})


_KEYS = itertools.count()


async def _job(db: Database, team: str, state: str, days: float | None = None) -> int:
    """A job of `team` that ended `state` (done, failed, cancelled) `days` ago, or one still
    queued or running; its id."""
    key = f"k{next(_KEYS)}"
    job = await queue.enqueue(db, team, "x", {}, dedupe_key=key)
    assert job.id is not None
    if state == "cancelled":
        await queue.cancel(db, team, job.id)
    elif state != "queued":
        claimed = await queue.claim_by_key(db, team, key, "w", 600)
        assert claimed is not None
        if state == "done":
            assert await queue.finish(db, claimed, "w")
        elif state == "failed":
            assert await queue.fail(db, claimed, "w", "it broke", retry_base=0, permanent=True)
    if days is not None:
        await _ended_days_ago(db, job.id, days)
    return job.id


async def _ids(db: Database, team: str) -> set[int]:
    async with db.begin() as conn:
        rows = await conn.execute(text("SELECT id FROM job WHERE team_id = :t"), {"t": team})
        return {int(r[0]) for r in rows}


async def test_the_daily_purge_deletes_the_workspaces_jobs_that_ended_a_month_ago(
    db: Database,
) -> None:
    await ensure_workspace(db, "T1")
    await ensure_workspace(db, "T2")
    old, recent = JOB_RETENTION_DAYS + 1, JOB_RETENTION_DAYS - 1
    gone = {await _job(db, "T1", state, old) for state in ("done", "failed", "cancelled")}
    kept = {await _job(db, "T1", "done", recent), await _job(db, "T1", "failed", recent),
            await _job(db, "T1", "queued"), await _job(db, "T1", "running")}  # fmt: skip
    others = {await _job(db, "T2", "done", old), await _job(db, "T2", "queued")}
    # the purge as it runs every day: a job of the workspace's, run by a worker
    async with db.begin() as conn:
        await schedule_purge_in(conn, "T1", utcnow())
    purge = await queue.find_by_key(db, "T1", queue.PURGE_KEY)
    worker = Worker(db, {PURGE_JOB: purge_handler(30, 7)}, WorkerConfig(retry_base_seconds=0))
    assert await asyncio.wait_for(worker.run_until_idle(), 60) == 1
    left = await _ids(db, "T1")
    assert purge is not None and purge.id in left
    # and tomorrow's run, queued: the recent ones are forgotten in a month
    tomorrow = {job.id for job in await queue.list_jobs(db, "T1", limit=None)
                if job.kind == PURGE_JOB and job.state == "queued"}  # fmt: skip
    assert len(tomorrow) == 1, tomorrow
    assert left - {purge.id} - tomorrow == kept, (left, gone)
    assert await _ids(db, "T2") == others  # another workspace's jobs are its own purge's


async def test_the_newest_job_stays_so_that_no_id_is_given_twice(db: Database) -> None:
    """SQLite gives a new row the table's largest id plus one: with the newest jobs deleted,
    the next job took a deleted one's id, and `jobs cancel` of an id from an old log line
    cancelled another job."""
    await ensure_workspace(db, "T1")
    ended = [await _job(db, "T1", "done", JOB_RETENTION_DAYS + 1) for _ in range(3)]
    await purge_staged(db, "T1", 30)
    waiting = await queue.find_by_key(db, "T1", queue.PURGE_KEY)  # their ends queued it
    assert waiting is not None and await _ids(db, "T1") == {max(ended), waiting.id}
    new = await _job(db, "T1", "queued")
    assert new > max(ended)


async def test_an_import_being_undone_keeps_the_undo_job_that_finishes_it(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """An undo whose job was cancelled part way leaves its import being undone: `undo N` and
    *Finish the undo* queue that job's row again. Deleted, nothing could finish it. The
    import's own job goes, and its page and `jobs` don't miss it."""
    await ensure_workspace(db, "T1")
    imported = run(db_env, "import", str(csv_file(tmp_path, "a.csv", 5)), "--segment", "S",
                   "--create-segment", "--json")  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    batch_id = int(json.loads(imported.stdout)["import_id"])
    await request_undo(db, "T1", batch_id, "U0001", remove_advocates=False, window_days=7)
    undo = await queue.find_by_key(db, "T1", undo_key(batch_id))
    assert undo is not None and undo.id is not None
    cancelled = run(db_env, "jobs", "cancel", str(undo.id))
    assert cancelled.returncode == 0, cancelled.stderr
    for job_id in await _ids(db, "T1"):
        await _ended_days_ago(db, job_id, JOB_RETENTION_DAYS + 1)
    await _job(db, "T1", "queued")  # the workspace's newest, which would stay anyway

    await purge_staged(db, "T1", 30)
    assert await queue.find_by_key(db, "T1", import_job_key(batch_id)) is None
    view = await load(db, "T1", batch_id)  # the import's page
    assert view.batch.status == "undoing" and view.batch.added_to_segment == 5
    listed = run(db_env, "jobs")
    assert listed.returncode == 0, listed.stderr
    assert f"import #{batch_id}" in listed.stdout  # its undo's job

    finished = run(db_env, "undo", str(batch_id))
    assert finished.returncode == 0, finished.stderr
    batch = await get_batch(db, "T1", batch_id)
    assert batch is not None and batch.status == "undone"
    again = await queue.find_by_key(db, "T1", undo_key(batch_id))
    assert again is not None and (again.id, again.state) == (undo.id, "done")
