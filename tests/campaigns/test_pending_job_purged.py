"""An enrollment whose job was given up gets a job again, even when the purge deletes the old one.

Go live (or targeting the segment again) finds the enrollment still to run and queues its job
again (service._pending_in): `enqueue_in` finds the old job of the enrollment's key (ON
CONFLICT DO NOTHING, which locks nothing) and an UPDATE queues it again. The daily purge
(bot.jobs.retention.forget_finished_jobs) deletes jobs that ended a month ago: on PostgreSQL,
one that deleted the old job and committed between the two statements left the UPDATE nothing
to match, and the enrollment no job at all until the next Go live, its report saying
"Enrolling contacts…" meanwhile. The old job is locked first: a deletion under way is waited
for, and a new job made once it is gone.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text

from bot.campaigns import service
from bot.campaigns.service import ENROLL_JOB, enrollment_job_key
from bot.jobs import queue
from bot.jobs.retention import JOB_RETENTION_DAYS, forget_finished_jobs
from models import CampaignState
from tests.campaigns.conftest import TEAM, World, people
from tests.imports.test_cancel_finished_work import _enroll_worker
from tests.waiting import backend_pid, until_waiting_or_done

HOW = ["go live", "target"]


async def _given_up(world: World, how: str) -> tuple[int, int]:
    """Spring (VIP: two contacts) enrolling by `how`, its enrollment's job given up a month
    ago (its last attempt failed), a newer job after it (the purge keeps a workspace's newest):
    (Spring's id, the enrollment's)."""
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    spring = await world.campaign(live=how == "target")  # live, no target: nobody enrolled
    enrollment = await _again(world, how, spring)
    assert enrollment is not None
    old = await queue.database_now(world.db) - timedelta(days=JOB_RETENTION_DAYS + 1)
    async with world.db.begin() as conn:
        await conn.execute(text(
            "UPDATE job SET state = 'failed', attempts = 5, last_error = 'boom', "
            "finished_at = :old, updated_at = :old WHERE kind = :k"),
            {"old": old, "k": ENROLL_JOB})  # fmt: skip
    await queue.enqueue(world.db, TEAM, "later", {}, dedupe_key="later")
    assert await world.rows("SELECT dedupe_key, state FROM job WHERE kind = :k",
                            k=ENROLL_JOB) == [(enrollment_job_key(enrollment), "failed")]
    return spring, enrollment


async def _again(world: World, how: str, spring: int) -> int | None:
    """Go live (Spring targeting VIP), or target VIP (Spring live): the enrollment."""
    vip = await world.segment_id("VIP")
    if how == "target":
        return await service.target(world.db, TEAM, spring, vip, requested_by="U1")
    if await world.scalar("SELECT state FROM campaign WHERE id = :c", c=spring) == "draft":
        await service.target(world.db, TEAM, spring, vip, requested_by="U1")
    return await service.set_state(world.db, TEAM, spring, CampaignState.LIVE,
                                   requested_by="U1")  # fmt: skip


async def _runs(world: World, enrollment: int) -> None:
    """Its job is queued under the enrollment's key, and a worker enrolls both contacts."""
    assert await world.rows("SELECT state FROM job WHERE kind = :k AND dedupe_key = :key",
                            k=ENROLL_JOB, key=enrollment_job_key(enrollment)) == [("queued",)]
    assert await _enroll_worker(world.db).run_until_idle() == 1
    assert await world.rows("SELECT status, enrolled FROM enrollment WHERE id = :e",
                            e=enrollment) == [("done", 2)]  # fmt: skip


@pytest.mark.parametrize("how", HOW)
async def test_an_enrollment_whose_given_up_job_was_purged_gets_a_new_job(
    world: World, how: str
) -> None:
    """The purge came first (a month after the job gave up): the next Go live or targeting
    makes the enrollment a new job."""
    spring, enrollment = await _given_up(world, how)
    assert await forget_finished_jobs(world.db, TEAM) == 1
    assert await world.scalar("SELECT COUNT(*) FROM job WHERE kind = :k", k=ENROLL_JOB) == 0
    assert await _again(world, how, spring) == enrollment
    await _runs(world, enrollment)


@pytest.mark.parametrize("how", HOW)
async def test_a_purge_deleting_the_old_job_meanwhile_leaves_the_enrollment_a_job(
    world: World, how: str
) -> None:
    """The purge deletes the old job while Go live (or the targeting) is queuing it again:
    another transaction holds the row's lock, and deletes the row once Go live waits for it."""
    if world.db.dialect != "postgresql":
        pytest.skip("SQLite's one writer can't interleave the two")
    spring, enrollment = await _given_up(world, how)
    job = await world.scalar("SELECT id FROM job WHERE kind = :k", k=ENROLL_JOB)
    holder = await world.db.engine.connect()
    transaction = await holder.begin()
    try:
        await holder.execute(text("SELECT id FROM job WHERE id = :j FOR UPDATE"), {"j": job})
        again = asyncio.create_task(_again(world, how, spring))
        waiting = await until_waiting_or_done(world.db, await backend_pid(holder), again)
        assert waiting is not None, "queuing it again never reached the old job"
        # the purge's deletion, committed while Go live is between its statements
        deleted = await holder.execute(text("DELETE FROM job WHERE id = :j"), {"j": job})
        assert deleted.rowcount == 1
        await transaction.commit()
    finally:
        await holder.close()
    assert await again == enrollment
    await _runs(world, enrollment)
