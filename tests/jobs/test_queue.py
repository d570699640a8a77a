"""The job queue in one process: dedupe, leases, retries, cancellation."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.imports.background import (
    NOTHING_VALID,
    enqueue_file_import,
    import_handler,
)
from bot.imports.batches import get_batch
from bot.imports.job_kinds import IMPORT_JOB
from bot.jobs import queue
from bot.jobs.worker import JobContext, Worker, WorkerConfig
from bot.segments import delete_segment
from bot.workspaces import WorkspaceError, ensure_workspace, find_segment, segment_sizes
from models import Database, Job, JobState
from models.clock import utcnow
from tests.conftest import BACKEND

FAST = WorkerConfig(lease_seconds=5, poll_seconds=0.05, retry_base_seconds=0)


def worker(db: Database) -> Worker:
    return Worker(db, {IMPORT_JOB: import_handler(3)}, FAST)


def csv_file(tmp_path: Path, name: str, rows: int) -> Path:
    path = tmp_path / name
    path.write_text("email,first_name\n" + "".join(f"u{i}@example.com,U{i}\n" for i in range(rows)))
    return path


async def test_double_enqueue_with_a_key_is_one_job(db: Database) -> None:
    await ensure_workspace(db, "T1")
    first = await queue.enqueue(db, "T1", "x", {"a": 1}, dedupe_key="approve:7")
    second = await queue.enqueue(db, "T1", "x", {"a": 2}, dedupe_key="approve:7")
    assert first.id == second.id
    assert [j.id for j in await queue.list_jobs(db, "T1")] == [first.id]


async def test_background_import_runs_in_chunks_and_reports_progress(
    db: Database, tmp_path: Path
) -> None:
    await ensure_workspace(db, "T1")
    job = await enqueue_file_import(
        db, "T1", [csv_file(tmp_path, "a.csv", 10)], segment="S", create_segment=True
    )
    assert job.state == JobState.QUEUED
    await worker(db).run_until_idle()
    done = await queue.get_job(db, "T1", job.id)
    assert done is not None
    assert (done.state, done.attempts, done.progress_done, done.progress_total) == (
        "done",
        1,
        10,
        10,
    )
    assert {s.name: n for s, n in await segment_sizes(db, "T1")}["S"] == 10


async def test_a_job_that_always_fails_ends_failed_with_its_error(
    db: Database, tmp_path: Path
) -> None:
    await ensure_workspace(db, "T1")
    path = csv_file(tmp_path, "gone.csv", 3)
    job = await enqueue_file_import(db, "T1", [path], segment="S", create_segment=True,
                                    max_attempts=3)  # fmt: skip
    path.unlink()  # the file vanishes before a worker gets to it
    await worker(db).run_until_idle()
    failed = await queue.get_job(db, "T1", job.id)
    assert failed is not None
    assert (failed.state, failed.attempts) == ("failed", 3)
    assert failed.last_error == ("gone.csv: no such file (moved or deleted since the import was "
                                 "queued?). The segment 'S', created for this import, was "
                                 "removed again.")  # fmt: skip


async def _batch_and_segment_deletion(db: Database, job: Job) -> tuple[str, str]:
    """The queued import's batch status, and what deleting its segment says ("withdrawn":
    the segment `--create-segment` made for it went with the failed import)."""
    batch = await get_batch(db, "T1", json.loads(job.payload or "{}")["batch_id"])
    segment = await find_segment(db, "T1", "S")
    assert batch is not None
    if segment is None:
        return batch.status, "withdrawn"
    try:
        await delete_segment(db, "T1", segment.id or 0)
    except WorkspaceError as exc:
        return batch.status, str(exc)
    return batch.status, "deleted"


async def test_a_background_import_whose_file_vanished_fails_its_import_too(
    db: Database, tmp_path: Path
) -> None:
    """Out of attempts before its approval, the import isn't left a draft nobody can review
    (whose segment then couldn't be deleted)."""
    await ensure_workspace(db, "T1")
    path = csv_file(tmp_path, "gone.csv", 3)
    job = await enqueue_file_import(db, "T1", [path], segment="S", create_segment=True,
                                    max_attempts=2)  # fmt: skip
    path.unlink()
    await worker(db).run_until_idle()
    assert await _batch_and_segment_deletion(db, job) == ("failed", "withdrawn")


async def test_a_background_import_with_nothing_valid_fails_at_once_and_says_why(
    db: Database, tmp_path: Path
) -> None:
    await ensure_workspace(db, "T1")
    path = tmp_path / "bad.csv"
    path.write_text("email,first_name\nnot-an-email,A\n")
    job = await enqueue_file_import(db, "T1", [path], segment="S", create_segment=True,
                                    max_attempts=3)  # fmt: skip
    await worker(db).run_until_idle()
    failed = await queue.get_job(db, "T1", job.id or 0)
    assert failed is not None and (failed.state, failed.attempts) == ("failed", 1)
    withdrawn = f"{NOTHING_VALID} The segment 'S', created for this import, was removed again."
    assert failed.last_error == withdrawn
    batch = await get_batch(db, "T1", json.loads(job.payload)["batch_id"])
    assert batch is not None and batch.error == withdrawn
    assert await _batch_and_segment_deletion(db, job) == ("failed", "withdrawn")


async def test_a_background_import_given_up_while_reading_fails_its_import_too(
    db: Database, tmp_path: Path
) -> None:
    await ensure_workspace(db, "T1")
    job = await enqueue_file_import(db, "T1", [csv_file(tmp_path, "a.csv", 3)], segment="S",
                                    create_segment=True, max_attempts=2)  # fmt: skip
    for attempt in range(2):  # each worker dies reading the file: its lease runs out
        assert await queue.claim(db, f"killed-{attempt}", lease_seconds=-1) is not None
    await worker(db).run_until_idle()
    assert await _batch_and_segment_deletion(db, job) == ("failed", "withdrawn")


async def test_retries_wait_with_backoff(db: Database, tmp_path: Path) -> None:
    await ensure_workspace(db, "T1")
    path = csv_file(tmp_path, "gone.csv", 3)
    job = await enqueue_file_import(db, "T1", [path], segment="S", create_segment=True)
    path.unlink()
    slow = Worker(db, {IMPORT_JOB: import_handler(3)},
                  WorkerConfig(lease_seconds=5, retry_base_seconds=60))  # fmt: skip
    await slow.run_until_idle()
    waiting = await queue.get_job(db, "T1", job.id)
    assert waiting is not None and waiting.state == "queued" and waiting.attempts == 1
    assert waiting.run_after > utcnow() + timedelta(seconds=50)


async def test_a_job_allowed_many_attempts_waits_at_most_an_hour_instead_of_wedging_the_worker(
    db: Database,
) -> None:
    """JOB_MAX_ATTEMPTS=60 (keep trying for days, at most an hour apart): the 45th failure's
    wait was computed before it was capped, overflowed, and the worker retried recording that
    failure for ever while the job stayed `running`."""
    await ensure_workspace(db, "T1")
    job = await queue.enqueue(db, "T1", "flaky", {}, max_attempts=60)
    async with db.begin() as conn:  # 44 failed attempts so far, each retried
        await conn.execute(text("UPDATE job SET attempts = 44 WHERE id = :j"), {"j": job.id})

    async def flaky(ctx: JobContext) -> None:
        raise ConnectionError("Mailchimp is down")

    patient = Worker(db, {"flaky": flaky}, WorkerConfig(lease_seconds=5, retry_base_seconds=5))
    try:
        await asyncio.wait_for(patient.run_until_idle(), 10)
    except TimeoutError:
        pytest.fail("the worker is still trying to record the failure after 10 s")
    after = await queue.get_job(db, "T1", job.id or 0)
    assert after is not None and (after.state, after.attempts) == ("queued", 45)
    assert after.run_after <= utcnow() + queue.MAX_BACKOFF
    assert after.run_after > utcnow() + queue.MAX_BACKOFF - timedelta(minutes=1)


async def test_an_expired_lease_lets_another_worker_take_the_job(db: Database) -> None:
    await ensure_workspace(db, "T1")
    job = await queue.enqueue(db, "T1", "x", {})
    first = await queue.claim(db, "dead-worker", lease_seconds=5)
    assert first is not None and first.id == job.id
    assert await queue.claim(db, "other", lease_seconds=5) is None  # leased: not claimable
    assert await queue.heartbeat(db, first, "dead-worker", lease_seconds=-1)  # lease lapses
    again = await queue.claim(db, "other", lease_seconds=5)
    assert again is not None and again.id == job.id and again.attempts == 2
    assert not await queue.finish(db, first, "dead-worker")  # the old owner can't finish it
    assert await queue.finish(db, again, "other")


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite's processes share one host's clock")
async def test_a_host_whose_clock_runs_ahead_takes_no_job_another_runs(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases were stamped and compared by each process's own clock: a second host 45 s ahead
    saw a 30 s lease, renewed a moment ago, as lapsed, took the job and ran it a second time.
    They are the database server's now."""
    await ensure_workspace(db, "T1")
    job = await queue.enqueue(db, "T1", "x", {}, dedupe_key="import:1")
    mine = await queue.claim(db, "host-a", lease_seconds=30)
    assert mine is not None and mine.id == job.id
    assert await queue.heartbeat(db, mine, "host-a", lease_seconds=30)  # alive and renewing
    monkeypatch.setattr(queue, "utcnow", lambda: utcnow() + timedelta(seconds=45))  # host b
    assert await queue.claim(db, "host-b", lease_seconds=30) is None
    assert await queue.claim_by_key(db, "T1", "import:1", "shell-b", lease_seconds=30) is None
    assert await queue.heartbeat(db, mine, "host-a", lease_seconds=-1)  # then host a died
    taken = await queue.claim(db, "host-b", lease_seconds=30)
    assert taken is not None and taken.id == job.id and taken.attempts == 2


async def test_cancelled_job_never_runs(db: Database, tmp_path: Path) -> None:
    await ensure_workspace(db, "T1")
    job = await enqueue_file_import(
        db, "T1", [csv_file(tmp_path, "a.csv", 5)], segment="S", create_segment=True
    )
    cancelled = await queue.cancel(db, "T1", job.id)
    assert cancelled is not None and cancelled.state == "cancelled"
    assert await queue.cancel(db, "T2", job.id) is None  # another workspace can't see it
    await worker(db).run_until_idle()
    assert {s.name: n for s, n in await segment_sizes(db, "T1")}["S"] == 0


async def test_a_kind_this_worker_cannot_run_waits_untouched(db: Database) -> None:
    await ensure_workspace(db, "T1")
    job = await queue.enqueue(db, "T1", "teleport", {})
    await worker(db).run_until_idle()
    waiting = await queue.get_job(db, "T1", job.id)
    assert waiting is not None
    assert (waiting.state, waiting.attempts, waiting.last_error) == ("queued", 0, None)

    async def teleport(ctx: JobContext) -> None:
        pass

    able = Worker(db, {"teleport": teleport}, FAST)
    await able.run_until_idle()  # a worker that has the handler takes it
    done = await queue.get_job(db, "T1", job.id)
    assert done is not None and (done.state, done.attempts) == ("done", 1)


async def test_claim_takes_only_the_kinds_asked_for(db: Database) -> None:
    await ensure_workspace(db, "T1")
    slack = await queue.enqueue(db, "T1", "stage_slack_file", {"source_id": 1})
    other = await queue.enqueue(db, "T1", "import", {"batch_id": 1})
    assert await queue.claim(db, "w", 5, kinds=set()) is None
    claimed = await queue.claim(db, "w", 5, kinds={"import", "purge"})
    assert claimed is not None and (claimed.id, claimed.kind, claimed.state) == (
        other.id, "import", "running"
    )  # fmt: skip
    assert claimed.lease_owner == "w" and claimed.lease_expires_at is not None
    assert await queue.claim(db, "w", 5, kinds={"import"}) is None
    anything = await queue.claim(db, "w", 5)  # no kinds: any job
    assert anything is not None and anything.id == slack.id


async def test_a_bad_file_is_refused_before_anything_is_queued(
    db: Database, tmp_path: Path
) -> None:
    from bot.imports.importer import ImportFailed

    await ensure_workspace(db, "T1")
    bad = tmp_path / "names.csv"
    bad.write_text("name,phone\nJane,555\n")
    with pytest.raises(ImportFailed, match=r"names\.csv: No email column"):
        await enqueue_file_import(db, "T1", [bad], segment="S", create_segment=True)
    assert await queue.list_jobs(db, "T1") == []
    assert [s.name for s, _ in await segment_sizes(db, "T1")] == ["All Customers"]


async def test_a_job_whose_worker_died_in_every_attempt_fails_instead_of_running_again(
    db: Database,
) -> None:
    await ensure_workspace(db, "T1")
    ran: list[int] = []

    async def handler(ctx: JobContext) -> None:
        ran.append(ctx.job.attempts)

    job = await queue.enqueue(db, "T1", "x", {}, max_attempts=2)
    for attempt in range(2):  # two workers take it and die: their leases run out
        assert await queue.claim(db, f"killed-{attempt}", lease_seconds=-1) is not None
    await Worker(db, {"x": handler}, FAST).run_until_idle()
    failed = await queue.get_job(db, "T1", job.id or 0)
    assert failed is not None and ran == []
    assert (failed.state, failed.attempts) == ("failed", 3)
    assert "stopped during each of its 2 attempts" in (failed.last_error or "")
    assert await Worker(db, {"x": handler}, FAST).run_until_idle() == 0  # never taken again


# Jobs that redo work from the data as it is when they run (Slack reports, Home refreshes):
# enqueue_pending_in joins the one still queued; one made once it started queues the next.


async def _pending(db: Database, key: str = "report:x:batch_id=1") -> int:
    async with db.begin() as conn:
        return await queue.enqueue_pending_in(conn, "T1", "report", {"n": 1}, dedupe_key=key)


async def _states(db: Database) -> list[tuple[int, str]]:
    return sorted((j.id or 0, j.state) for j in await queue.list_jobs(db, "T1"))


async def test_a_run_handed_back_while_a_newer_copy_waits_is_done_not_queued_twice(
    db: Database,
) -> None:
    """The worker stops (shutdown) during a run whose newer copy was queued meanwhile: handed
    back, the run waited beside that copy and both ran. The copy does its work."""
    await ensure_workspace(db, "T1")
    first = await _pending(db)
    running = await queue.claim(db, "w1", lease_seconds=30)
    assert running is not None and running.id == first
    newer = await _pending(db)
    assert newer != first and await _pending(db) == newer
    assert await queue.release(db, running, "w1")
    assert await _states(db) == [(first, "done"), (newer, "queued")]
    done = await queue.get_job(db, "T1", first)
    assert done is not None and f"superseded by job {newer}" in (done.last_error or "")


async def test_a_failed_run_whose_newer_copy_gave_up_is_retried_and_joined_again(
    db: Database,
) -> None:
    """The newer copy failed for good before the older run failed: the older one is retried,
    and a later report joins it instead of queuing a copy beside it."""
    await ensure_workspace(db, "T1")
    first = await _pending(db)
    older = await queue.claim(db, "w1", lease_seconds=30)
    newer = await _pending(db)
    copy = await queue.claim(db, "w2", lease_seconds=30)
    assert older is not None and copy is not None and copy.id == newer
    assert await queue.fail(db, copy, "w2", "refused", retry_base=0, permanent=True)
    assert await queue.fail(db, older, "w1", "Slack is down", retry_base=0)
    assert await _states(db) == [(first, "queued"), (newer, "failed")]
    assert await _pending(db) == first


async def test_a_report_joins_no_job_a_worker_is_claiming(db: Database) -> None:
    """PostgreSQL: a worker's claim of the waiting job, not committed yet, while a report is
    queued. The report read the job as queued, joined it once the claim committed, and was
    lost: the run had started without it. It waits for the claim and queues its own."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite runs one writer at a time: these can't interleave there")
    from tests.waiting import backend_pid, until_waiting_or_done

    await ensure_workspace(db, "T1")
    first = await _pending(db)
    worker_conn = await db.engine.connect()
    claiming = await worker_conn.begin()
    await worker_conn.execute(text(  # the claim's UPDATE, as a worker runs it
        "UPDATE job SET state = 'running', lease_owner = 'w1', attempts = attempts + 1, "
        "lease_expires_at = statement_timestamp() + interval '30 seconds' WHERE id = :j"
    ), {"j": first})  # fmt: skip
    report = asyncio.create_task(_pending(db))
    try:
        assert await until_waiting_or_done(db, await backend_pid(worker_conn), report)
    finally:
        await claiming.commit()
        await worker_conn.close()
    joined = await report
    assert joined != first
    assert await _states(db) == [(first, "running"), (joined, "queued")]


def test_a_slack_report_keeps_trying_through_an_hour_and_a_half_of_outage() -> None:
    """Reports (an import's result, its progress reply, the next step's offer) are promised
    to survive about an hour and a half of Slack outage (README, JOB_MAX_ATTEMPTS); their 10
    attempts at the default 5 s doubling retry gave up after 43 minutes."""
    from bot.notify import REPORT_ATTEMPTS
    from bot.settings import Settings

    base = Settings.model_fields["job_retry_base_seconds"].default
    waited = sum((queue.retry_delay(base, attempt) for attempt in range(1, REPORT_ATTEMPTS)),
                 timedelta())  # fmt: skip
    assert timedelta(minutes=80) <= waited <= timedelta(hours=2), waited
