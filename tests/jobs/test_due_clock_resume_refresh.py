"""Due times by the database server's clock (as tests/jobs/test_due_clock.py) for the jobs
stamped outside bot.jobs.queue: an undo resumed (*Finish the undo*, `undo N`) and the shell's
Home refresh, queued on a host whose clock is off."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import text

from bot.home_refresh import HOME_REFRESH_JOB, REFRESH_DELAY, queue_home_refresh
from bot.imports.importer import import_files
from bot.imports.job_kinds import UNDO_JOB
from bot.imports.undo import request_undo, resume_undo
from bot.jobs import queue
from bot.workspaces import ensure_workspace
from models import Database, HomeViewer
from tests.jobs.clock import POSTGRES_ONLY, TEAM, skew_clock

pytestmark = POSTGRES_ONLY


async def test_an_undo_resumed_on_a_host_whose_clock_is_ahead_runs_at_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its job was queued due at the resuming process's now: resumed on a host 90 s ahead,
    no worker took it for a minute and a half."""
    await ensure_workspace(db, TEAM)
    csv = "email\na@example.com\nb@example.com\n"
    result = await import_files(db, TEAM, [("people.csv", io.BytesIO(csv.encode()))],
                                segment="VIP", create_segment=True)  # fmt: skip
    batch = result.batch.id or 0
    await request_undo(db, TEAM, batch, "U1", remove_advocates=False, window_days=7)
    async with db.begin() as conn:  # its job stopped for good part way: the undo stalled
        await conn.execute(text("UPDATE job SET state = 'failed' WHERE kind = :k"),
                           {"k": UNDO_JOB})  # fmt: skip
    with monkeypatch.context() as m:
        skew_clock(m, 90)
        await resume_undo(db, TEAM, batch, "U1")
    taken = await queue.claim(db, "host-right", lease_seconds=30)
    assert taken is not None and taken.kind == UNDO_JOB, "the resumed undo isn't due"


@pytest.mark.parametrize("skew", [90, -90])
async def test_a_home_refresh_queued_on_a_host_whose_clock_is_off_waits_its_delay(
    db: Database, monkeypatch: pytest.MonkeyPatch, skew: float
) -> None:
    """Its due time was the queuing process's now plus REFRESH_DELAY: queued on a host 90 s
    behind it was due at once, each command of a script publishing Home again, and on one
    90 s ahead Home wasn't refreshed for a minute and a half."""
    await ensure_workspace(db, TEAM)
    async with db.session() as session:
        session.add(HomeViewer(team_id=TEAM, user_id="U1"))
        await session.commit()
    with monkeypatch.context() as m:
        skew_clock(m, skew)
        job_id = await queue_home_refresh(db, TEAM)
    job = await queue.get_job(db, TEAM, job_id or 0)
    assert job is not None and job.kind == HOME_REFRESH_JOB
    wait = (job.run_after - await queue.database_now(db)).total_seconds()
    assert 0 < wait <= REFRESH_DELAY.total_seconds(), wait
