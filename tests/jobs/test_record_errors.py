"""Recording a job's outcome retries an outage only, not every database error.

Worker._record retried any database error for as long as the worker ran: a constraint the
database refused (here a real trigger's, as a CHECK or a bad value would) failed the same way
every 30 s, the job `running` under a lease the worker kept renewing, and the worker took no
other job meanwhile. It now logs the job (id, kind, workspace) with the error and leaves it
to its lease, which lapses: another run takes it again, as the worker's callers expect of a
result that couldn't be recorded. An outage is still waited out (tests/jobs/test_worker_faults).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from bot.jobs import queue
from bot.jobs.worker import JobContext, Worker, WorkerConfig
from bot.workspaces import ensure_workspace
from models import Database
from tests.conftest import BACKEND
from tests.jobs.test_worker_faults import logged, state_of

REFUSED = "refused"  # the kind of job whose leaving `running` the database refuses
LEASE = 1.0
# An outage's retries wait 0.05 s doubling to 0.2 s: retried for ever, a run never ends.
CONFIG = WorkerConfig(lease_seconds=LEASE, poll_seconds=0.05, retry_base_seconds=0,
                      backoff_seconds=0.05, max_backoff_seconds=0.2)  # fmt: skip


def _trigger_sql(db: Database, errcode: str) -> list[str]:
    """A trigger refusing every update that takes a REFUSED job out of `running` (done,
    failed or queued again): the worker's recording of its outcome; claims and heartbeats
    go through."""
    when = f"OLD.kind = '{REFUSED}' AND OLD.state = 'running' AND NEW.state <> 'running'"
    if db.is_sqlite:
        return [f"CREATE TRIGGER refuse_outcome BEFORE UPDATE ON job WHEN {when} "
                "BEGIN SELECT RAISE(ABORT, 'outcome refused by a trigger'); END"]  # fmt: skip
    return [
        "CREATE FUNCTION refuse_outcome() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"RAISE EXCEPTION 'outcome refused by a trigger' USING ERRCODE = '{errcode}'; END $$",
        f"CREATE TRIGGER refuse_outcome BEFORE UPDATE ON job FOR EACH ROW WHEN ({when}) "
        "EXECUTE FUNCTION refuse_outcome()",
    ]


async def _refuse(db: Database, errcode: str = "check_violation") -> None:
    async with db.begin() as conn:
        for statement in _trigger_sql(db, errcode):
            await conn.execute(text(statement))


async def _allow(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(text("DROP TRIGGER refuse_outcome" if db.is_sqlite
                                else "DROP TRIGGER refuse_outcome ON job"))  # fmt: skip


@pytest.fixture
async def team(db: Database) -> AsyncIterator[str]:
    await ensure_workspace(db, "T1")
    yield "T1"


async def _work(ctx: JobContext) -> None:
    pass


async def _fails(ctx: JobContext) -> None:
    raise RuntimeError("the work failed")


@pytest.mark.parametrize(("run", "what"), [(_work, "marking it done"),
                                           (_fails, "recording its failure")])  # fmt: skip
async def test_an_outcome_the_database_refuses_is_logged_and_left_to_the_lease(
    db: Database, team: str, caplog: pytest.LogCaptureFixture, run: object, what: str
) -> None:
    refused = await queue.enqueue(db, team, REFUSED, {"batch_id": 7})
    other = await queue.enqueue(db, team, "x", {})
    await _refuse(db)
    worker = Worker(db, {REFUSED: run, "x": _work}, CONFIG)  # type: ignore[dict-item]
    with caplog.at_level(logging.INFO, logger="bot.jobs.worker"):
        # retried for ever, this never ended
        ran = await asyncio.wait_for(worker.run_until_idle(), 20)
    assert ran == 2
    assert await state_of(db, other) == "done", "the worker took no other job"
    assert await state_of(db, refused) == "running"  # left to its lease
    assert logged(caplog, f"{what} failed, and retrying can't help", refused)
    retries = [r.getMessage() for r in caplog.records if f"job {refused.id} " in r.getMessage()
               and "retrying in" in r.getMessage()]  # fmt: skip
    assert retries == [], retries
    assert '"batch_id": 7' in next(r.getMessage() for r in caplog.records
                                   if "retrying can't help" in r.getMessage())  # fmt: skip

    # the database accepts it again: once its lease lapsed, a run takes the job again
    await _allow(db)
    await asyncio.sleep(LEASE + 0.2)
    again = Worker(db, {REFUSED: _work}, CONFIG)
    assert await asyncio.wait_for(again.run_until_idle(), 20) == 1
    assert await state_of(db, refused) == "done"
    job = await queue.get_job(db, team, refused.id or 0)
    assert job is not None and job.attempts == 2


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLSTATEs are PostgreSQL's")
async def test_a_unique_key_lost_is_tried_once_more_then_left_to_the_lease(
    db: Database, team: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A unique violation may be a race lost to a transaction that committed first (a key
    given back as another enqueue takes it): tried once more, and only once."""
    refused = await queue.enqueue(db, team, REFUSED, {})
    await _refuse(db, "unique_violation")
    worker = Worker(db, {REFUSED: _work}, CONFIG)
    with caplog.at_level(logging.INFO, logger="bot.jobs.worker"):
        assert await asyncio.wait_for(worker.run_until_idle(), 20) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert sum("lost a race for a unique key" in m for m in messages) == 1, messages
    assert logged(caplog, "marking it done failed, and retrying can't help", refused)
    assert await state_of(db, refused) == "running"
