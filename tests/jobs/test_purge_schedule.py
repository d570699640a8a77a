"""The daily purge keeps its schedule while the workspace has ended jobs it will forget.

Each run queued the next only while some import still held staged rows: a workspace that
stopped importing stopped purging, and its jobs (a Home refresh, a report, a send run each)
were never deleted, though bot.jobs.retention deletes them a month after they ended. It now
goes on while ended jobs are left that a later run forgets (not the ones always kept: the
workspace's newest, an undo under way; nor its own runs, which would keep it going for
ever), one waiting per workspace, due a day on by the database's clock.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.imports.job_kinds import PURGE_JOB
from bot.imports.retention import purge_handler, purge_staged, schedule_purge_in
from bot.jobs import queue
from bot.jobs.retention import JOB_RETENTION_DAYS
from bot.jobs.worker import Worker, WorkerConfig
from bot.workspaces import ensure_workspace
from models import Database
from tests.conftest import BACKEND
from tests.jobs.clock import skew_clock
from tests.jobs.test_job_retention import _ended_days_ago, _ids, _job
from tests.jobs.test_queue import csv_file
from tests.shell import run

# A day on, the waiting purge is due; its key (the minute it is due) is then a day behind
# the one its run queues, not the same minute's.
_A_DAY_ON = text(
    "UPDATE job SET run_after = :now, dedupe_key = 'purge:a-day-before:' || CAST(id AS "
    "VARCHAR(20)) WHERE team_id = :t AND kind = :k AND state = 'queued'"
).bindparams(bindparam("now", type_=UTCDateTime()))


async def _waiting(db: Database, team: str) -> list[datetime]:
    """When the workspace's queued purges are due."""
    async with db.begin() as conn:
        rows = await conn.execute(
            text("SELECT run_after FROM job WHERE team_id = :t AND kind = :k "
                 "AND state = 'queued'").columns(run_after=UTCDateTime()),
            {"t": team, "k": PURGE_JOB},
        )  # fmt: skip
        return [r[0] for r in rows]


async def _run_due_purges(db: Database, team: str) -> None:
    """A day (or a month) on: the workspace's waiting purge is due, and a worker runs it."""
    async with db.begin() as conn:
        await conn.execute(_A_DAY_ON, {"now": await queue.database_now(db), "t": team,
                                      "k": PURGE_JOB})  # fmt: skip
    worker = Worker(db, {PURGE_JOB: purge_handler(30, 7)}, WorkerConfig(retry_base_seconds=0))
    assert await asyncio.wait_for(worker.run_until_idle(), 60) == 1


def _a_day_on(due: datetime, now: datetime) -> bool:
    return abs((due - now - timedelta(days=1)).total_seconds()) < 60


async def test_a_workspace_that_stopped_importing_keeps_purging_until_its_jobs_are_gone(
    db: Database,
) -> None:
    await ensure_workspace(db, "T1")
    await ensure_workspace(db, "T2")
    # T1 never imported (no staged rows): its Home refreshes and reports ended lately
    recent = {await _job(db, "T1", state, 2) for state in ("done", "failed", "cancelled")}
    other = await _job(db, "T2", "done", 2)  # another workspace's: T1's purge leaves it
    async with db.begin() as conn:
        await schedule_purge_in(conn, "T1", await queue.database_now_in(conn))

    await _run_due_purges(db, "T1")
    waiting = await _waiting(db, "T1")
    assert len(waiting) == 1, waiting  # tomorrow's: those jobs are forgotten in a month
    assert _a_day_on(waiting[0], await queue.database_now(db)), waiting
    assert await _waiting(db, "T2") == []  # T1's run queues nothing of T2's
    assert recent <= await _ids(db, "T1")

    # the next days' runs go on while they are there (each run's own row doesn't count)
    await _run_due_purges(db, "T1")
    assert len(await _waiting(db, "T1")) == 1

    # a month on they are forgotten, with the purges' own rows: nothing is left to forget, and
    # no run is queued again
    for job_id in await _ids(db, "T1"):
        await _ended_days_ago(db, job_id, JOB_RETENTION_DAYS + 1)
    await _run_due_purges(db, "T1")
    assert await _waiting(db, "T1") == []
    left = await _ids(db, "T1")
    assert len(left) == 1 and not recent & left, left  # the last run, the newest: it stays
    assert await _ids(db, "T2") == {other}


async def test_the_jobs_always_kept_dont_keep_the_purge_going(db: Database) -> None:
    """The workspace's newest job stays whatever its age (bot.jobs.retention): the only
    ended job left, it queues no purge for ever."""
    await ensure_workspace(db, "T1")
    await _job(db, "T1", "done", 2)  # the newest, and the only one
    await purge_staged(db, "T1", 30)
    assert await _waiting(db, "T1") == []
    await _job(db, "T1", "done", 2)  # another: the first will be forgotten
    await purge_staged(db, "T1", 30)
    assert len(await _waiting(db, "T1")) == 1


async def test_one_purge_waits_per_workspace(db: Database) -> None:
    """A purge already waiting (an import's, due within the hour) is the next run: the run
    queues no second one."""
    await ensure_workspace(db, "T1")
    await _job(db, "T1", "done", 2)
    await _job(db, "T1", "done", 1)
    async with db.begin() as conn:
        soon = await queue.database_now_in(conn) + timedelta(hours=1)
        await schedule_purge_in(conn, "T1", soon)
    await purge_staged(db, "T1", 30)
    await purge_staged(db, "T1", 30)
    assert await _waiting(db, "T1") == [soon]


@pytest.mark.skipif(BACKEND != "postgres", reason="one host shares SQLite's file and clock")
async def test_the_next_purge_is_due_a_day_on_by_the_database_clock(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queued from a host whose clock is three hours ahead, the next purge was due three
    hours late (its due time was that host's now plus a day)."""
    await ensure_workspace(db, "T1")
    imported = run(db_env, "import", str(csv_file(tmp_path, "a.csv", 3)), "--segment", "S",
                   "--create-segment")  # fmt: skip
    assert imported.returncode == 0, imported.stderr  # its staged rows are kept a month
    skew_clock(monkeypatch, 3 * 3600)
    await _run_due_purges(db, "T1")
    waiting = await _waiting(db, "T1")
    assert len(waiting) == 1 and _a_day_on(waiting[0], await queue.database_now(db)), waiting
