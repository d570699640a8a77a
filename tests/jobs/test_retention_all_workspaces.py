"""Every workspace that runs jobs gets its purge, not only one that imports.

Ended jobs are deleted a month after they end by the workspace's daily purge (bot.jobs.
retention), and only the creation of an import's batch queued a purge that wasn't running
already: a workspace that never imported, or whose purge had stopped (its import's rows
purged, nothing left to forget), and since then only enrolled contacts and sent invites,
kept every enroll and send run's job for good. A job's end now queues the purge, a day on,
when none waits and something is left for it to forget; one waits per workspace, however
many queue it at once.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.campaigns import service
from bot.campaigns.enroll import SEND_JOB
from bot.campaigns.service import ENROLL_JOB
from bot.imports.job_kinds import PURGE_JOB
from bot.imports.retention import schedule_purge_in
from bot.jobs import queue
from bot.jobs.kinds import handlers
from bot.jobs.retention import JOB_RETENTION_DAYS
from bot.jobs.worker import Worker, WorkerConfig
from bot.settings import Settings
from bot.workspaces import ensure_workspace
from models import CampaignState, Database
from tests.campaigns.conftest import SECRET, TEAM, World, people
from tests.conftest import BACKEND
from tests.jobs.test_purge_schedule import _waiting

_TIMES = (bindparam("at", type_=UTCDateTime()),)
_A_MONTH_AGO = text("UPDATE job SET finished_at = :at WHERE team_id = :t "
                    "AND finished_at IS NOT NULL").bindparams(*_TIMES)  # fmt: skip
_IMPORTS_A_MONTH_AGO = text("UPDATE import_batch SET finished_at = :at "
                            "WHERE team_id = :t").bindparams(*_TIMES)  # fmt: skip
_PURGE_DUE = text("UPDATE job SET run_after = :at WHERE team_id = :t AND kind = :k "
                  "AND state = 'queued'").bindparams(*_TIMES)  # fmt: skip


def _worker(db: Database, outbox: Path) -> Worker:
    """A worker as `referral-bot worker` runs one, writing invites into `outbox`."""
    settings = Settings(_env_file=None, outbox_dir=str(outbox), secret_key=SECRET,  # type: ignore[call-arg]
                        public_url="https://bot.example")  # fmt: skip
    return Worker(db, handlers(settings), WorkerConfig(retry_base_seconds=0, poll_seconds=0.05))


async def _a_month_on(world: World) -> None:
    """Everything that ended did so a month ago, and the waiting purge is due."""
    now = await queue.database_now(world.db)
    params = {"t": TEAM, "k": PURGE_JOB}
    async with world.db.begin() as conn:
        await conn.execute(_A_MONTH_AGO, {**params, "at": now - timedelta(JOB_RETENTION_DAYS + 1)})
        await conn.execute(_IMPORTS_A_MONTH_AGO, {**params,
                                                  "at": now - timedelta(JOB_RETENTION_DAYS + 1)})
        await conn.execute(_PURGE_DUE, {**params, "at": now})


async def _jobs(world: World, kind: str) -> list[tuple[int, str]]:
    return await world.rows("SELECT id, state FROM job WHERE team_id = :t AND kind = :k "
                            "ORDER BY id", t=TEAM, k=kind)  # fmt: skip


async def test_a_workspace_that_only_enrolls_and_sends_gets_its_old_jobs_purged(
    db: Database, tmp_path: Path
) -> None:
    await ensure_workspace(db, TEAM)
    world = World(db)
    worker = _worker(db, tmp_path / "outbox")
    # its contacts came in once, long ago; that import's purge ran and, nothing left, stopped
    await world.import_csv("VIP", people("a@example.com,A,en", "b@example.com,B,en"))
    await _a_month_on(world)
    assert await asyncio.wait_for(worker.run_until_idle(), 60) == 1
    assert await _waiting(db, TEAM) == []

    # since then it only enrolls and sends: Spring goes live on VIP, and a worker runs its
    # enrollment's job and then its send job
    spring = await world.campaign(live=False)
    await service.target(db, TEAM, spring, await world.segment_id("VIP"), requested_by="U1")
    await service.set_state(db, TEAM, spring, CampaignState.LIVE, requested_by="U1")
    assert await asyncio.wait_for(worker.run_until_idle(), 60) == 2
    assert [state for _, state in await _jobs(world, ENROLL_JOB)] == ["done"]
    assert [state for _, state in await _jobs(world, SEND_JOB)] == ["done"]
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2  # the invites went out
    (due,) = await _waiting(db, TEAM)  # their end queued the purge, a day on
    wait = due - await queue.database_now(db)
    assert timedelta(hours=23) < wait <= timedelta(days=1), wait
    ran = [job_id for job_id, _ in await _jobs(world, ENROLL_JOB) + await _jobs(world, SEND_JOB)]

    # a month on, the purge deletes those jobs (it ran them and they ended long ago)
    await _a_month_on(world)
    assert await asyncio.wait_for(worker.run_until_idle(), 60) == 1
    assert await _jobs(world, ENROLL_JOB) == [] and await _jobs(world, SEND_JOB) == [], ran


async def test_a_jobs_end_writes_nothing_while_a_purge_waits(db: Database) -> None:
    """The purge almost always waits (each run queues the next): a job's end then only looks
    it up, and leaves it as it was (no write per job)."""
    await ensure_workspace(db, "T1")
    for key in ("a", "b"):  # the second's end finds the first to forget, and queues the purge
        await _done(db, "T1", key)
    before = await _purge_row(db, "T1")
    assert before is not None
    await _done(db, "T1", "c")
    assert await _purge_row(db, "T1") == before


async def _done(db: Database, team: str, key: str) -> None:
    """A job of `team` that a worker ran and finished."""
    await queue.enqueue(db, team, "x", {}, dedupe_key=key)
    claimed = await queue.claim_by_key(db, team, key, "w", 600)
    assert claimed is not None and await queue.finish(db, claimed, "w")


async def _purge_row(db: Database, team: str) -> tuple[object, ...] | None:
    async with db.begin() as conn:
        row = (await conn.execute(
            text("SELECT id, dedupe_key, state, run_after, updated_at FROM job "
                 "WHERE team_id = :t AND kind = :k"), {"t": team, "k": PURGE_JOB})).all()
    assert len(row) <= 1, row
    return tuple(row[0]) if row else None


@pytest.mark.skipif(BACKEND != "postgres", reason="needs two writers at once: row locks")
async def test_two_transactions_queueing_the_purge_at_once_queue_one(db: Database) -> None:
    """Neither sees the other's purge before it commits: keyed by the minute each was due
    (an import's, an hour on; a job's end, a day on), both went in, and the purge ran twice a
    day for good, each run queueing its own next. Now the second waits on the key the first
    took, and joins its purge (due when the sooner wanted)."""
    await ensure_workspace(db, "T1")
    now = await queue.database_now(db)
    soon, later = now + timedelta(hours=1), now + timedelta(days=1)
    async with db.begin() as first:
        await schedule_purge_in(first, "T1", later)
        second = asyncio.create_task(_schedule(db, "T1", soon))
        await asyncio.sleep(0.5)  # the second is under way, waiting on the first's key
        assert not second.done()
    await asyncio.wait_for(second, 30)
    waiting = await _waiting(db, "T1")
    assert waiting == [soon], waiting


async def _schedule(db: Database, team: str, when: datetime) -> None:
    async with db.begin() as conn:
        await schedule_purge_in(conn, team, when)
