"""A database outage during an import's last attempt still ends with the import failed.

The last attempt's apply fails because the database is down, and so does marking the import
failed: the job was recorded `failed` once the database came back (the worker retries that),
but the import stayed `importing` for good, its thread saying so. The fault is real, as in
test_worker_faults: another client holds the write lock while the worker's connections give
up waiting after 100 ms.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy import text

from bot.imports.background import enqueue_file_import, import_handler
from bot.imports.batches import get_batch
from bot.imports.job_kinds import IMPORT_JOB
from bot.jobs import queue
from bot.jobs.worker import Worker, WorkerConfig
from bot.notify import Silent
from bot.workspaces import ensure_workspace
from models import Database
from tests.jobs.test_queue import csv_file
from tests.jobs.test_worker_faults import JobTableLock, impatient
from tests.waiting import Retries, until_retried


class WriteLock(JobTableLock):
    """Another client holding the write lock of the import's tables (SQLite: the whole file)."""

    async def hold(self) -> None:
        if self.db.is_sqlite:
            await super().hold()
            return
        self.conn = await self.db.engine.connect()
        await self.conn.execute(text("LOCK TABLE job, import_batch IN EXCLUSIVE MODE"))


class OutageAtFirstProgress(Silent):
    """The import's thread: the database goes away as its first progress is shown, and comes
    back once the worker met it (a step retried: not after a fixed 1.5 s, which a loaded
    machine could spend before the import's next write); the results it is told are
    counted."""

    def __init__(self, lock: WriteLock) -> None:
        self.lock = lock
        self.finished: list[int] = []
        self.releasing: list[asyncio.Task[None]] = []

    async def import_progress(self, team_id: str, batch_id: int, done: int, total: int) -> None:
        if not self.releasing:
            await self.lock.hold()
            self.releasing.append(asyncio.create_task(self._release_later(Retries.watch())))

    async def _release_later(self, retries: Retries) -> None:
        try:
            await until_retried(retries)
            await self.lock.release()
        finally:
            retries.stop()

    async def import_finished(self, team_id: str, batch_id: int) -> None:
        self.finished.append(batch_id)


async def test_an_outage_in_the_last_attempt_fails_the_import_once_the_database_is_back(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    await ensure_workspace(db, "T1")
    job = await enqueue_file_import(db, "T1", [csv_file(tmp_path, "a.csv", 10)], segment="S",
                                    create_segment=True, max_attempts=1)  # fmt: skip
    batch_id = json.loads(job.payload or "{}")["batch_id"]
    lock = WriteLock(db)
    thread = OutageAtFirstProgress(lock)
    worker_db = impatient(db_env)
    worker = Worker(worker_db, {IMPORT_JOB: import_handler(3, thread)},
                    WorkerConfig(lease_seconds=5, poll_seconds=0.05, retry_base_seconds=0))
    try:
        await asyncio.wait_for(worker.run_until_idle(), 60)
    finally:
        await lock.release()
        await worker_db.dispose()
    ended = await queue.get_job(db, "T1", job.id or 0)
    assert ended is not None and ended.state == "failed", ended
    batch = await get_batch(db, "T1", batch_id)
    assert batch is not None and batch.status == "failed", batch
    assert batch.error, "the import's error isn't said"
    assert thread.finished == [batch_id], "the thread wasn't told the import failed, once"
