"""`jobs cancel` of the enrollment a shell import (`referral-bot import`) is about to run.

The import queues its enrollments' jobs, then runs them itself and marks each job done
(after_import.enroll_imported_now). A job cancelled meanwhile has its enrollment failed
("cancelled", nobody enrolled), and was then marked done all the same: `jobs` listed as
done a job whose enrollment was cancelled and never ran.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from bot.campaigns.service import ENROLL_JOB
from bot.imports.cancel import cancel_job
from bot.jobs import queue
from bot.workspaces import ensure_workspace
from models import Database
from tests.campaigns.conftest import TEAM, World, people
from tests.conftest import BACKEND
from tests.waiting import backend_pid, until_waiting_or_done

pytestmark = pytest.mark.skipif(BACKEND != "postgres",
                                reason="needs two writers at once: row locks")  # fmt: skip


async def test_a_shell_imports_enrollment_cancelled_before_it_ran_stays_cancelled(
    db: Database,
) -> None:
    await ensure_workspace(db, TEAM)
    world = World(db)
    await world.import_csv("VIP", people("a@example.com,A,"))
    spring, vip = await world.campaign(), await world.segment_id("VIP")
    async with db.begin() as conn:  # Spring targets VIP: an import into VIP enrolls its contacts
        await conn.execute(text("INSERT INTO campaign_segment (campaign_id, segment_id, "
                                "team_id, role, created_at) VALUES (:c, :s, :t, 'target', "
                                "CURRENT_TIMESTAMP)"), {"c": spring, "s": vip, "t": TEAM})
    async with db.engine.connect() as blocker:
        await blocker.begin()  # the import's enrollment run waits for Spring's row
        await blocker.execute(text("SELECT id FROM campaign WHERE id = :c FOR UPDATE"),
                              {"c": spring})  # fmt: skip
        importing = asyncio.create_task(world.import_csv("VIP", people("b@example.com,B,")))
        assert await until_waiting_or_done(db, await backend_pid(blocker), importing)
        (job,) = await world.rows("SELECT id, state FROM job WHERE kind = :k", k=ENROLL_JOB)
        assert job[1] == "queued", job
        cancelled = await cancel_job(db, TEAM, int(job[0]))  # `jobs cancel` from another shell
        assert cancelled is not None and cancelled.state == "cancelled", cancelled
        await blocker.rollback()
        await importing
    assert await world.rows("SELECT status FROM enrollment") == [("failed",)]
    assert await world.scalar("SELECT COUNT(*) FROM advocate") == 0
    listed = {j.id: j.state for j in await queue.list_jobs(db, TEAM)}  # what `jobs` shows
    assert listed[int(job[0])] == "cancelled", listed
