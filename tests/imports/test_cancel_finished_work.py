"""`jobs cancel` of a job whose work (an enrollment, an undo) finished before it could be
stopped: the job is left to end as done, nothing is recorded as stopped, and the caller can
tell it apart from a cancel (bot.imports.cancel.try_cancel_job)."""

from __future__ import annotations

import asyncio
import io
import random

import pytest
from sqlalchemy import text

from bot.campaigns import service
from bot.campaigns.service import ENROLL_JOB
from bot.imports.cancel import cancel_job
from bot.imports.importer import import_files
from bot.imports.job_kinds import UNDO_JOB
from bot.imports.undo import request_undo, run_undo
from bot.jobs.queue import claim
from bot.jobs.worker import Worker, WorkerConfig
from bot.settings import load_settings
from bot.workspaces import ensure_workspace
from models import Database
from tests.campaigns.conftest import TEAM, World, people
from tests.conftest import BACKEND
from tests.waiting import backend_pid, until_waiting_or_done

LEAD = "U0002"
needs_row_locks = pytest.mark.skipif(BACKEND != "postgres",
                                     reason="needs two writers at once: row locks")  # fmt: skip


async def _world(db: Database) -> World:
    await ensure_workspace(db, TEAM)
    return World(db)


async def _enrollment_with_its_job(world: World, of_an_import: bool) -> tuple[int, int]:
    """Spring, live, and an enrollment of VIP's two contacts with its queued job: an import's
    (as an import into a segment Spring targets ends) or a targeting's. (enrollment, job)"""
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    spring = await world.campaign()
    vip = await world.segment_id("VIP")
    if of_an_import:
        async with world.db.begin() as conn:
            await conn.execute(text("INSERT INTO campaign_segment (campaign_id, segment_id, "
                                    "team_id, role, created_at) VALUES (:c, :s, :t, 'target', "
                                    "CURRENT_TIMESTAMP)"), {"c": spring, "s": vip, "t": TEAM})
        batch = int(str(await world.scalar("SELECT MAX(id) FROM import_batch")))
        async with world.db.begin() as conn:
            (enrollment,) = await service.enroll_after_import_in(conn, TEAM, batch, vip, None,
                                                                 "U1")  # fmt: skip
    else:
        found = await service.target(world.db, TEAM, spring, vip, requested_by="U1")
        assert found is not None
        enrollment = found
    job = int(str(await world.scalar("SELECT id FROM job WHERE kind = :k", k=ENROLL_JOB)))
    return enrollment, job


async def _import_with_its_undo(db: Database) -> int:
    """An import of two contacts into VIP whose undo a lead asked for (its job queued)."""
    await ensure_workspace(db, TEAM)
    csv = "email\na@example.com\nb@example.com\n"
    result = await import_files(db, TEAM, [("people.csv", io.BytesIO(csv.encode()))],
                                segment="VIP", create_segment=True)  # fmt: skip
    batch = result.batch.id or 0
    await request_undo(db, TEAM, batch, LEAD, remove_advocates=False, window_days=7)
    return batch


def _undo_worker(db: Database) -> Worker:
    from bot.jobs.kinds import handlers

    kinds = handlers(load_settings(database_url=db.url))  # a worker without Slack
    return Worker(db, {UNDO_JOB: kinds[UNDO_JOB]}, WorkerConfig())


def _enroll_worker(db: Database) -> Worker:
    from bot.campaigns.jobs import enroll_handler
    from bot.notify import Silent
    from bot.settings import Settings

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return Worker(db, {ENROLL_JOB: enroll_handler(settings, Silent())}, WorkerConfig())


async def _undo_ends(world: World) -> list[str]:
    """How the audit log says the undo ended: "done: …", "stopped part way: …"."""
    return [str(r[0]).partition(":")[0] for r in await world.rows(
        "SELECT detail FROM audit_entry WHERE action = 'import.undone' ORDER BY id")
        if not str(r[0]).startswith("started")]  # fmt: skip


# ---- its runner died after the work committed, before it recorded the end ------------------


@pytest.mark.parametrize("of_an_import", [True, False], ids=["an import's", "a targeting's"])
async def test_cancelling_the_job_of_an_enrollment_that_finished_cancels_nothing(
    db: Database, of_an_import: bool,
) -> None:  # fmt: skip
    """The enrollment is done (its advocates made, its invites queued, its send job queued),
    its job still running (its worker killed before it recorded the end): `jobs cancel` said
    "cancelled", and the invites were emailed all the same. The job is left to end as done
    (a worker that takes it over finds the enrollment done), and the caller is told its work
    finished first."""
    from bot.campaigns.enroll import run_enrollment

    world = await _world(db)
    enrollment, job = await _enrollment_with_its_job(world, of_an_import)
    assert await claim(db, "killed", 30.0, {ENROLL_JOB}) is not None
    await run_enrollment(db, TEAM, enrollment, hold_seconds=0, job_id=job)

    after = await cancel_job(db, TEAM, job)

    assert after is not None and after.state == "running"
    assert await world.rows("SELECT status FROM enrollment WHERE id = :e",
                            e=enrollment) == [("done",)]  # fmt: skip
    from bot.imports.cancel import try_cancel_job  # here: what came before it failed before

    told = await try_cancel_job(db, TEAM, job)  # `jobs cancel` again, as the CLI asks it
    assert told is not None and told.finished_first and told.job.state == "running"
    assert await world.scalar("SELECT COUNT(*) FROM job WHERE kind = 'slack_report'") == 0


async def test_cancelling_the_job_of_an_undo_that_finished_records_no_stop(
    db: Database,
) -> None:
    """The undo is done, its job still running (its runner killed before it recorded the
    end): `jobs cancel` said "cancelled", the audit log said "stopped part way: its job was
    cancelled" after "done: …", and the thread was told the undo stopped part way, offering
    to finish it. The job is left to end as done, and the caller is told its work finished
    first."""
    batch = await _import_with_its_undo(db)
    world = World(db)
    job = await claim(db, "killed", 30.0, {UNDO_JOB})
    assert job is not None and job.id is not None
    await run_undo(db, TEAM, batch, job=(job.id, "killed"))

    after = await cancel_job(db, TEAM, job.id)

    assert after is not None and after.state == "running"
    assert await world.scalar("SELECT status FROM import_batch WHERE id = :b", b=batch) == "undone"
    assert await _undo_ends(world) == ["done"]
    from bot.imports.cancel import try_cancel_job  # here: what came before it failed before

    told = await try_cancel_job(db, TEAM, job.id)
    assert told is not None and told.finished_first and told.job.state == "running"
    assert await world.scalar("SELECT COUNT(*) FROM job WHERE kind = 'slack_report' AND "
                              "payload LIKE '%undo_stopped%'") == 0  # fmt: skip


async def test_cancelling_a_job_whose_work_is_under_way_says_it_was_cancelled(
    db: Database,
) -> None:
    """The usual case is unchanged: work not finished is stopped, and not said to have
    finished first."""
    from bot.imports.cancel import try_cancel_job

    world = await _world(db)
    _, job = await _enrollment_with_its_job(world, of_an_import=False)
    told = await try_cancel_job(db, TEAM, job)
    assert told is not None and told.job.state == "cancelled" and not told.finished_first
    assert await try_cancel_job(db, TEAM, 999_999) is None


# ---- a cancel that races the run's commit --------------------------------------------------


@needs_row_locks
@pytest.mark.parametrize("of_an_import", [True, False], ids=["an import's", "a targeting's"])
async def test_jobs_cancel_racing_an_enrollments_commit_waits_for_it_and_cancels_nothing(
    db: Database, of_an_import: bool,
) -> None:  # fmt: skip
    """`jobs cancel` while the enrollment's run is writing its advocates: the cancel read
    (or, for a targeting's, didn't look at) the enrollment before the run committed, and said
    "cancelled" of a job whose enrollment was done, its invites queued and their send job
    queued (they were emailed). It now takes the enrollment's row first, so it waits for the
    run, sees it done, and leaves the job to end as done."""
    world = await _world(db)
    enrollment, job = await _enrollment_with_its_job(world, of_an_import)
    async with db.engine.connect() as blocker:
        await blocker.begin()  # holds back the run's advocates, its rows taken by then
        await blocker.execute(text("LOCK TABLE advocate IN SHARE MODE"))
        run = asyncio.create_task(_enroll_worker(db).run_until_idle())
        running = await until_waiting_or_done(db, await backend_pid(blocker), run)
        assert running is not None
        cancel = asyncio.create_task(cancel_job(db, TEAM, job))  # `referral-bot jobs cancel`
        assert await until_waiting_or_done(db, running, cancel)  # queued behind the run
        await blocker.rollback()
        after = await cancel
        await run
    # not cancelled: its worker ends it, done (before the cancel read it back, or after)
    assert after is not None and after.state in ("running", "done"), after
    assert await world.rows("SELECT status FROM enrollment WHERE id = :e",
                            e=enrollment) == [("done",)]  # fmt: skip
    assert await world.scalar("SELECT state FROM job WHERE id = :j", j=job) == "done"
    assert await world.scalar("SELECT COUNT(*) FROM advocate") == 2
    assert await world.scalar("SELECT COUNT(*) FROM job WHERE kind = 'send_invites'") == 1


@needs_row_locks
async def test_jobs_cancel_racing_an_undos_last_commit_waits_for_it_and_records_no_stop(
    db: Database,
) -> None:
    """`jobs cancel` while the undo's run commits its end: the cancel read the batch
    "undoing" before that commit, then cancelled the job; the batch ended undone with the
    audit log saying both "done: …" and "stopped part way: its job was cancelled", and the
    thread told it stopped. It now takes the job's row first (the order the run takes it
    in: the batch's first would deadlock with a run between the two), so it waits for the
    run, sees the batch undone, and leaves the job to end as done."""
    batch = await _import_with_its_undo(db)
    world = World(db)
    job = int(str(await world.scalar("SELECT id FROM job WHERE kind = :k", k=UNDO_JOB)))
    key = random.randrange(1, 2**62)  # advisory locks are the server's: one of this test's own
    async with db.begin() as conn:  # the run's last transaction stops at its end, rows taken
        await conn.execute(text(
            "CREATE FUNCTION pause_undo() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_advisory_xact_lock({key}); RETURN NULL; END $$"))
        await conn.execute(text(
            "CREATE TRIGGER pause_undo AFTER UPDATE ON import_batch FOR EACH ROW "
            "WHEN (NEW.status = 'undone' AND OLD.status = 'undoing') "
            "EXECUTE FUNCTION pause_undo()"))  # fmt: skip
    try:
        async with db.engine.connect() as blocker:
            await blocker.begin()
            await blocker.execute(text(f"SELECT pg_advisory_xact_lock({key})"))
            run = asyncio.create_task(_undo_worker(db).run_until_idle())
            running = await until_waiting_or_done(db, await backend_pid(blocker), run)
            assert running is not None
            cancel = asyncio.create_task(cancel_job(db, TEAM, job))
            assert await until_waiting_or_done(db, running, cancel)  # queued behind the run
            await blocker.rollback()
            after = await cancel
            await run
    finally:
        async with db.begin() as conn:
            await conn.execute(text("DROP TRIGGER pause_undo ON import_batch"))
            await conn.execute(text("DROP FUNCTION pause_undo()"))
    # not cancelled: its worker ends it, done (before the cancel read it back, or after)
    assert after is not None and after.state in ("running", "done"), after
    assert await world.scalar("SELECT status FROM import_batch WHERE id = :b", b=batch) == "undone"
    assert await world.scalar("SELECT state FROM job WHERE id = :j", j=job) == "done"
    assert await _undo_ends(world) == ["done"]
    assert await world.scalar("SELECT COUNT(*) FROM job WHERE kind = 'slack_report' AND "
                              "payload LIKE '%undo_stopped%'") == 0  # fmt: skip


async def test_the_shell_says_a_job_whose_work_finished_first_was_not_cancelled(
    db: Database, db_env: dict[str, str]
) -> None:
    """`jobs cancel` of it printed "Job N is running: only a queued or running job can be
    cancelled.", which contradicts itself."""
    from tests.shell import run

    batch = await _import_with_its_undo(db)
    job = await claim(db, "killed", 30.0, {UNDO_JOB})
    assert job is not None and job.id is not None
    await run_undo(db, TEAM, batch, job=(job.id, "killed"))

    told = await asyncio.to_thread(run, db_env, "jobs", "cancel", str(job.id), "--team", TEAM)

    assert told.returncode == 1, told.stderr
    assert told.stderr == (f"referral-bot: Job {job.id} was not cancelled: its work finished "
                           "before it could be stopped, and the job ends as done.\n")
