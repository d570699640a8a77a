"""An enrollment whose job was cancelled or given up is queued again due by the database clock.

Targeting the segment again (or Go live) finds the enrollment still to run and queues its job
again (service._pending_in). Its run_after was this host's now, while workers compare due
times with the database server's clock (bot.jobs.queue.lease_now): asked for on a host 90 s
ahead, the enrollment waited another 90 s, its report saying "Enrolling contacts…" meanwhile.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from bot.campaigns import service
from bot.campaigns.service import ENROLL_JOB
from bot.imports.cancel import cancel_job
from bot.jobs import queue
from tests.campaigns.conftest import TEAM, World, people
from tests.imports.test_cancel_finished_work import _enroll_worker
from tests.jobs.clock import POSTGRES_ONLY, skew_clock

pytestmark = POSTGRES_ONLY


@pytest.mark.parametrize("how", ["cancelled", "failed"])
async def test_an_enrollment_job_queued_again_on_a_host_whose_clock_is_ahead_runs_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    spring = await world.campaign()
    vip = await world.segment_id("VIP")
    enrollment = await service.target(world.db, TEAM, spring, vip, requested_by="U1")
    assert enrollment is not None
    job = int(str(await world.scalar("SELECT id FROM job WHERE kind = :k", k=ENROLL_JOB)))
    if how == "cancelled":  # `referral-bot jobs cancel`: a targeting's enrollment stays queued
        assert await cancel_job(world.db, TEAM, job) is not None
    else:  # given up (its last attempt failed, say)
        async with world.db.begin() as conn:
            await conn.execute(text("UPDATE job SET state = 'failed', attempts = 5, "
                                          "last_error = 'boom' WHERE id = :j"), {"j": job})
    assert await world.rows("SELECT state FROM job WHERE id = :j", j=job) == [(how,)]

    with monkeypatch.context() as m:  # a lead targets VIP again, on a host 90 s ahead
        skew_clock(m, 90)
        again = await service.target(world.db, TEAM, spring, vip, requested_by="U1")
    assert again == enrollment
    (state, run_after), = await world.rows("SELECT state, run_after FROM job WHERE id = :j",
                                           j=job)  # fmt: skip
    assert state == "queued"
    late = (run_after - await queue.database_now(world.db)).total_seconds()
    assert late <= 0, f"due {late:.0f} s from now"
    # a worker whose clock is right runs it now, not once the skew has passed
    assert await _enroll_worker(world.db).run_until_idle() == 1
    assert await world.rows("SELECT status, enrolled FROM enrollment WHERE id = :e",
                            e=enrollment) == [("done", 2)]  # fmt: skip
