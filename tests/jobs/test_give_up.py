"""A job's give-up (GivingUp): taken once, by the handler or else by the worker, and waiting
out only an outage.

A handler gives up in its own `except` when its last attempt fails; a failure before it got
there (its first read) was left to nobody, so the worker gives up on such a run itself,
but never a second time after a handler that did. A give-up step (`surely`) that fails on a
bug, a constraint violated, was retried for as long as the worker ran, the job never ending.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import text

from bot.jobs import queue
from bot.jobs.worker import GivingUp, JobContext, Worker, WorkerConfig, surely
from bot.workspaces import ensure_workspace
from models import Database, Job

KIND = "x"


async def _queued(db: Database, attempts: int = 1) -> Job:
    await ensure_workspace(db, "T1")
    return await queue.enqueue(db, "T1", KIND, {}, max_attempts=attempts)


async def _run(db: Database, handler: GivingUp) -> Job:
    """A worker runs the job until it ends (each retry due at once); the job as it ended."""
    worker = Worker(db, {KIND: handler}, WorkerConfig(lease_seconds=5, poll_seconds=0.05,
                                                      retry_base_seconds=0))  # fmt: skip
    await asyncio.wait_for(worker.run_until_idle(), 30)
    (job,) = await queue.list_jobs(db, "T1")
    return job


async def test_a_last_attempt_failing_before_its_handler_gave_up_is_given_up_on_once(
    db: Database,
) -> None:
    await _queued(db, attempts=2)
    given: list[str] = []

    async def run(ctx: JobContext) -> None:
        raise RuntimeError("its first read failed")

    async def give_up(ctx: JobContext, error: str) -> None:
        given.append(error)

    job = await _run(db, GivingUp(run, give_up))
    assert (job.state, job.attempts) == ("failed", 2)
    assert given == ["RuntimeError: its first read failed"]  # the last attempt's, only


async def test_a_handler_that_gave_up_itself_is_not_given_up_on_again(db: Database) -> None:
    await _queued(db)
    given: list[str] = []

    async def run(ctx: JobContext) -> None:
        try:
            raise RuntimeError("its work failed")
        except RuntimeError:
            await surely(ctx, "failing its work", lambda: give_up(ctx, "in its own words"))
            raise

    async def give_up(ctx: JobContext, error: str) -> None:
        given.append(error)

    job = await _run(db, GivingUp(run, give_up))
    assert job.state == "failed" and given == ["in its own words"]


async def test_a_give_up_step_failing_on_a_bug_is_not_retried_for_ever(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.jobs")
    queued = await _queued(db)
    tries: list[int] = []
    insert = text("INSERT INTO seen_key (team_id, key, created_at) "
                  "VALUES ('T1', 'once', CURRENT_TIMESTAMP)")  # fmt: skip
    async with db.begin() as conn:
        await conn.execute(insert)

    async def run(ctx: JobContext) -> None:
        try:
            raise RuntimeError("its work failed")
        except RuntimeError as exc:
            await give_up(ctx, str(exc))
            raise

    async def give_up(ctx: JobContext, error: str) -> None:
        async def record() -> None:
            tries.append(1)
            async with ctx.db.begin() as conn:
                await conn.execute(insert)  # the key is taken: a constraint violated

        await surely(ctx, "recording its failure", record)

    job = await _run(db, GivingUp(run, give_up))
    assert job.state == "failed" and len(tries) == 1
    assert any(f"job {queued.id} ({KIND}, team T1, " in r.getMessage()
               and "recording its failure failed, and waiting can't mend it" in r.getMessage()
               and r.exc_info for r in caplog.records), caplog.text  # fmt: skip


# the kind's work, recorded complete: a row of its own (as an import's batch is `done`)
_DONE_ROW = text("INSERT INTO seen_key (team_id, key, created_at) "
                 "VALUES ('T1', 'work', CURRENT_TIMESTAMP)")  # fmt: skip


def _work_done(ctx: JobContext) -> queue.Done:
    return queue.Done("EXISTS (SELECT 1 FROM seen_key WHERE seen_key.team_id = job.team_id "
                      "AND seen_key.key = :done_key)", {"done_key": "work"})  # fmt: skip


async def test_a_last_attempt_failing_at_its_first_read_of_complete_work_ends_done(
    db: Database,
) -> None:
    """Its earlier attempt did the work and died before its job was marked done; the last
    failed at its first read (the database going away), and the job failed, though the work
    was complete."""
    await _queued(db, attempts=2)
    given: list[str] = []

    async def run(ctx: JobContext) -> None:
        if ctx.job.attempts == 1:
            async with ctx.db.begin() as conn:
                await conn.execute(_DONE_ROW)
            raise RuntimeError("killed after its work was committed")
        raise RuntimeError("its first read failed")

    async def give_up(ctx: JobContext, error: str) -> None:
        given.append(error)  # what tells the work's real result

    job = await _run(db, GivingUp(run, give_up, done_when=_work_done))
    assert (job.state, job.attempts, job.last_error) == ("done", 2, None)
    assert given == ["RuntimeError: its first read failed"]


async def test_complete_work_whose_give_up_step_fails_on_a_bug_still_fails(db: Database) -> None:
    """Its result never told (the step that tells it failed), the job says it failed."""
    await _queued(db)
    async with db.begin() as conn:
        await conn.execute(_DONE_ROW)

    async def run(ctx: JobContext) -> None:
        raise RuntimeError("its first read failed")

    async def give_up(ctx: JobContext, error: str) -> None:
        raise ValueError("a bug in telling the result")

    job = await _run(db, GivingUp(run, give_up, done_when=_work_done))
    assert job.state == "failed" and job.last_error == "RuntimeError: its first read failed"


async def test_work_not_complete_fails_as_before(db: Database) -> None:
    await _queued(db)

    async def run(ctx: JobContext) -> None:
        raise RuntimeError("its first read failed")

    async def give_up(ctx: JobContext, error: str) -> None:
        pass

    job = await _run(db, GivingUp(run, give_up, done_when=_work_done))
    assert job.state == "failed"
