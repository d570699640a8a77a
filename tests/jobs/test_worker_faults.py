"""A worker rides out database errors: it logs them, backs off, retries and keeps taking jobs.

The fault is real: another client holds the write lock on the job table while the worker's
connections give up waiting after 100 ms, as they would against a busy or restarting database
(SQLite: BEGIN EXCLUSIVE and a short busy_timeout; PostgreSQL: LOCK TABLE and lock_timeout).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.jobs import queue
from bot.jobs.worker import JobContext, PermanentJobError, Worker, WorkerConfig
from bot.workspaces import ensure_workspace
from models import Database, Job
from models.clock import utcnow
from tests.jobs.test_worker_processes import wait_for
from tests.waiting import Retries, until_retried, watching_retries


def impatient(db_env: dict[str, str], ms: int = 100) -> Database:
    """The worker's own engine, whose statements fail after waiting `ms` for a lock."""
    database = Database(db_env["DATABASE_URL"], schema=db_env.get("DATABASE_SCHEMA"))

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        if database.is_sqlite:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout={ms}")  # after the default 30 s one
            cursor.close()
        else:
            dbapi_conn.run_async(lambda conn: conn.execute(f"SET lock_timeout = '{ms}ms'"))

    event.listen(database.engine.sync_engine, "connect", on_connect)
    return database


class JobTableLock:
    """Another client writing: holds the lock every write to the job table needs."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.sqlite: sqlite3.Connection | None = None
        self.conn: AsyncConnection | None = None

    async def hold(self) -> None:
        if self.db.is_sqlite:
            path = make_url(self.db.url).database
            assert path is not None
            # on a thread: waiting here on the event loop could wait for a write of this same
            # loop (the worker's heartbeat) that can't finish meanwhile ("database is locked")
            self.sqlite = sqlite3.connect(path, timeout=10, isolation_level=None,
                                          check_same_thread=False)  # fmt: skip
            await asyncio.to_thread(self.sqlite.execute, "BEGIN EXCLUSIVE")
        else:
            self.conn = await self.db.engine.connect()
            await self.conn.execute(text("LOCK TABLE job IN EXCLUSIVE MODE"))  # reads still work

    async def release(self) -> None:
        if self.sqlite is not None:
            self.sqlite.execute("ROLLBACK")
            self.sqlite.close()
            self.sqlite = None
        if self.conn is not None:
            await self.conn.rollback()
            await self.conn.close()
            self.conn = None


async def state_of(db: Database, job: Job) -> str:
    found = await queue.get_job(db, job.team_id, job.id or 0)
    assert found is not None
    return found.state


def logged(caplog: pytest.LogCaptureFixture, words: str, job: Job) -> bool:
    """An error naming the job, its kind, its workspace and what failed, with its traceback."""
    return any(
        words in r.getMessage() and f"job {job.id} ({job.kind}, team {job.team_id}, {{"
        in r.getMessage() and r.exc_info
        for r in caplog.records
    )


async def test_finishing_fails_for_a_while_then_the_job_ends_done_and_work_goes_on(
    db: Database, db_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.jobs")
    await ensure_workspace(db, "T1")
    first = await queue.enqueue(db, "T1", "x", {})
    second = await queue.enqueue(db, "T1", "x", {})
    lock = JobTableLock(db)
    ran: list[int | None] = []
    releasing: list[asyncio.Task[None]] = []

    async def release_later(retries: Retries) -> None:
        try:  # once marking it done failed and is retried (not after a fixed time: see Retries)
            await until_retried(retries)
            await lock.release()
        finally:
            retries.stop()

    async def work(ctx: JobContext) -> None:
        ran.append(ctx.job.id)
        if len(ran) == 1:  # the database "goes away" just as the first job is to be marked done
            await lock.hold()
            releasing.append(asyncio.create_task(release_later(Retries.watch("marking it done"))))

    worker_db = impatient(db_env)
    worker = Worker(worker_db, {"x": work}, WorkerConfig(lease_seconds=5, poll_seconds=0.05))
    running = asyncio.create_task(worker.run())
    try:

        async def both_done() -> bool:
            return [await state_of(db, first), await state_of(db, second)] == ["done", "done"]

        await wait_for(both_done, 30, "both jobs to end done")
        assert not running.done(), "the worker loop ended"
        assert ran == [first.id, second.id] and worker.completed == 2
        assert logged(caplog, "marking it done failed; retrying", first)
    finally:
        await lock.release()
        worker.stop()
        await asyncio.wait_for(running, 30)
        await worker_db.dispose()


async def test_renewing_the_lease_fails_for_a_while_and_the_heartbeat_goes_on(
    db: Database, db_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.jobs")
    await ensure_workspace(db, "T1")
    job = await queue.enqueue(db, "T1", "x", {})
    lock = JobTableLock(db)
    leases: list[tuple[datetime | None, datetime]] = []  # (lease expiry, when it was read)

    async def work(ctx: JobContext) -> None:
        await lock.hold()  # lease renewals (every 0.5 s) fail ...
        with watching_retries("renewing its lease") as retries:
            await until_retried(retries)  # (not a fixed 1.2 s: a loaded machine may renew later)
        await lock.release()
        await asyncio.sleep(2.0)  # ... then more than a whole lease passes
        found = await queue.get_job(db, "T1", ctx.job.id or 0)
        assert found is not None
        leases.append((found.lease_expires_at, utcnow()))

    worker_db = impatient(db_env)
    worker = Worker(worker_db, {"x": work}, WorkerConfig(lease_seconds=1.5, poll_seconds=0.05))
    running = asyncio.create_task(worker.run())
    try:

        async def done() -> bool:
            return await state_of(db, job) == "done"

        await wait_for(done, 30, "the job to end done")
        assert not running.done(), "the worker loop ended"
        ((lease, read_at),) = leases
        assert lease is not None and lease > read_at, "the lease was no longer being renewed"
        assert logged(caplog, "renewing its lease failed; retrying", job)
        assert worker.completed == 1
    finally:
        await lock.release()
        worker.stop()
        await asyncio.wait_for(running, 30)
        await worker_db.dispose()


async def test_a_failing_job_is_logged_with_its_workspace_and_ids(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await ensure_workspace(db, "T1")
    crashing = await queue.enqueue(db, "T1", "send", {"enrollment_id": 42}, max_attempts=1)
    hopeless = await queue.enqueue(db, "T1", "import", {"batch_id": 999})

    async def boom(ctx: JobContext) -> None:
        raise RuntimeError("smtp exploded")

    async def gone(ctx: JobContext) -> None:
        raise PermanentJobError("Import #999 no longer exists.")

    with caplog.at_level(logging.INFO, logger="bot.jobs.worker"):
        await Worker(db, {"send": boom, "import": gone},
                     WorkerConfig(retry_base_seconds=0)).run_until_idle()  # fmt: skip
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "bot.jobs.worker"]
    assert any(level == logging.ERROR and f"job {crashing.id} (send, team T1, " in text
               and '"enrollment_id": 42' in text for level, text in logged), logged  # fmt: skip
    assert any(level == logging.ERROR and f"job {hopeless.id} (import, team T1, " in text
               and "no longer exists" in text for level, text in logged), logged  # fmt: skip


async def test_an_error_retrying_cannot_fix_is_logged_and_the_worker_goes_on(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Recording a job's result failed with a bug, not the database (the retry wait of a job
    with many attempts overflowed): the worker retried it for ever, its job `running` under a
    lease it kept renewing, and took no other job. It now logs the job and gives up: the
    lease lapses and the job is taken again."""
    await ensure_workspace(db, "T1")
    job = await queue.enqueue(db, "T1", "x", {})
    claimed = await queue.claim(db, "w", lease_seconds=5)
    assert claimed is not None and claimed.id == job.id
    worker = Worker(db, {}, WorkerConfig(lease_seconds=5))
    calls: list[int] = []

    async def record() -> bool:
        calls.append(1)
        raise OverflowError("days=1018066322; must have magnitude <= 999999999")

    with caplog.at_level(logging.ERROR, logger="bot.jobs.worker"):
        recorded = await asyncio.wait_for(worker._record(claimed, "recording its failure",
                                                         record), 10)  # fmt: skip
    assert recorded is False and calls == [1]
    assert logged(caplog, "recording its failure failed, and retrying can't help", job)
    assert await state_of(db, job) == "running"  # left to its lease



async def test_a_loop_whose_lease_lapsed_learns_another_loop_of_its_worker_took_the_job(
    db: Database,
) -> None:
    """A worker running jobs side by side (`--concurrency 2`) held them all under one lease
    owner: when one loop's lease lapsed (a run only slow) and the other loop took its job
    over, the slow run's heartbeats still matched, so it never learnt and worked on beside
    the new run, every check that a run still holds its job (a send's) passing for both."""
    from datetime import timedelta

    from sqlalchemy import bindparam
    from sqlmodel.sql.sqltypes import UTCDateTime

    await ensure_workspace(db, "T1")
    job = await queue.enqueue(db, "T1", "slow", {})
    runs: list[JobContext] = []
    done = asyncio.Event()
    lost: list[bool] = []

    async def slow(ctx: JobContext) -> None:
        runs.append(ctx)
        if len(runs) > 1:  # the loop that took it over
            await done.wait()
            return
        expire = text("UPDATE job SET lease_expires_at = :then WHERE id = :id").bindparams(
            bindparam("then", type_=UTCDateTime()))  # fmt: skip
        while len(runs) < 2:  # its lease lapses (again, if a heartbeat renewed it first)
            async with db.begin() as conn:
                await conn.execute(expire, {"then": utcnow() - timedelta(seconds=5),
                                            "id": job.id})  # fmt: skip
            await asyncio.sleep(0.02)
        for _ in range(100):  # a heartbeat or two: 0.2 s apart
            if ctx.lost.is_set():
                break
            await asyncio.sleep(0.02)
        lost.append(ctx.lost.is_set())
        done.set()

    worker = Worker(db, {"slow": slow}, WorkerConfig(lease_seconds=0.6, poll_seconds=0.02,
                                                      concurrency=2))  # fmt: skip
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(done.wait(), 30)
    worker.stop()
    await asyncio.wait_for(running, 30)
    assert lost == [True]
    assert runs[0].owner != runs[1].owner
