"""A job whose work is complete when a worker gives up on it ends done, not failed.

Its worker killed right after the work committed (an import applied, its thread being told),
or its last attempt's result never recorded, the job stayed `running` until its lease
lapsed; out of attempts, the next worker gave up on it (GivingUp) and marked it failed, "gave
up: the worker running it stopped during each of its 1 attempts", and `referral-bot jobs`
said the import failed that had imported every contact. Real `referral-bot worker`
processes, killed as tests/jobs/test_worker_processes kills them.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.campaigns.jobs import enrollment_done
from bot.imports.background import (
    enqueue_file_import,
    import_applied,
    import_handler,
    slack_file_read,
)
from bot.imports.job_kinds import IMPORT_JOB
from bot.imports.undo import undo_done
from bot.jobs import queue
from bot.jobs.worker import JobContext, Worker, WorkerConfig
from bot.mailchimp.jobs import audience_read
from bot.workspaces import ensure_workspace
from models import Database, Job
from tests import shell
from tests.fakes.slack_api import FakeSlack
from tests.imports.outage import CHANNEL, notifier, reviewed, slack  # noqa: F401
from tests.jobs.test_queue import csv_file
from tests.jobs.test_worker_processes import env_for, scalar, start_worker, wait_for

TEAM = "local"  # the command line's workspace: `referral-bot jobs` lists its jobs


async def _job(db: Database, job_id: int) -> Job:
    found = await queue.get_job(db, TEAM, job_id)
    assert found is not None
    return found


async def _kill_once_told(db: Database, env: dict[str, str], fake: FakeSlack,
                          batch_id: int) -> None:  # fmt: skip
    """A worker applies the import and is killed as it tells the thread (Slack holding its
    first chat.update, the review's redraw): the apply committed, the job not marked done."""
    gate = fake.hold("chat.update")
    worker = start_worker(env)
    try:
        await fake.wait_for("chat.update", timeout=120)

        async def applied() -> bool:
            return await scalar(db, f"SELECT COUNT(*) FROM import_batch WHERE id = {batch_id} "
                                    "AND status = 'done'") == 1  # fmt: skip

        await wait_for(applied, 30, "the import to be applied")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        worker.kill()
        fake.unhold("chat.update")
        gate.set()


async def test_an_import_applied_by_a_killed_last_attempt_ends_done_and_says_so_once(
    db: Database, db_env: dict[str, str], tmp_path: Path, slack: FakeSlack  # noqa: F811
) -> None:
    await ensure_workspace(db, TEAM)
    job = await enqueue_file_import(db, TEAM, [csv_file(tmp_path, "a.csv", 10)], segment="S",
                                    create_segment=True, max_attempts=1)  # fmt: skip
    batch_id = json.loads(job.payload or "{}")["batch_id"]
    review = await reviewed(db, slack, batch_id)
    env = env_for(db_env, SLACK_BOT_TOKEN="xoxb-test", SLACK_API_URL=slack.api_url)
    await _kill_once_told(db, env, slack, batch_id)
    killed = await _job(db, job.id or 0)
    assert (killed.state, killed.attempts, killed.max_attempts) == ("running", 1, 1)

    second = start_worker(env)
    try:

        async def ended() -> bool:
            return (await _job(db, job.id or 0)).state != "running"

        await wait_for(ended, 120, "the next worker to end the job")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    done = await _job(db, job.id or 0)
    assert (done.state, done.last_error) == ("done", None), done
    listed = shell.run(env, "jobs")
    assert listed.returncode == 0, listed.stderr
    (line,) = [row for row in listed.stdout.splitlines() if row.split()[:2] == [str(job.id),
                                                                                "import"]]
    assert line.split()[2] == "done" and "gave up" not in line, listed.stdout
    async with db.begin() as conn:
        status = (await conn.execute(text("SELECT status FROM import_batch WHERE id = :b"),
                                     {"b": batch_id})).scalar()  # fmt: skip
    assert status == "done"
    assert await scalar(db, "SELECT COUNT(*) FROM segment_member") == 10
    # the thread: one result, the import's, and one next step; nothing says it failed
    replies = slack.messages_in(CHANNEL, review)
    assert not any("fail" in m["text"].lower() for m in replies), replies
    offers = [m for m in replies if m["text"].startswith("Next step: target a campaign")]
    assert len(offers) == 1, replies
    results = [m for m in replies if m not in offers]
    assert len(results) == 1 and "10" in results[0]["text"], replies


_REFUSE_DONE = {
    "sqlite": ["CREATE TRIGGER refuse_done BEFORE UPDATE OF state ON job "
               "WHEN NEW.state = 'done' BEGIN SELECT RAISE(ABORT, 'refused'); END"],
    "postgresql": ["CREATE FUNCTION refuse_done() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; "
                   "END $$",
                   "CREATE TRIGGER refuse_done BEFORE UPDATE ON job FOR EACH ROW "
                   "WHEN (NEW.state = 'done') EXECUTE FUNCTION refuse_done()"],
}  # fmt: skip
_ALLOW_DONE = {"sqlite": ["DROP TRIGGER refuse_done"],
               "postgresql": ["DROP TRIGGER refuse_done ON job", "DROP FUNCTION refuse_done"]}


async def _execute(db: Database, statements: list[str]) -> None:
    async with db.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


async def test_an_import_whose_last_attempt_could_not_be_marked_done_ends_done_once_taken(
    db: Database, tmp_path: Path, slack: FakeSlack  # noqa: F811
) -> None:
    """The last attempt imported everything, but recording its job done failed (refused by
    the database: a bug, not waited out); its lease lapsed and the next worker gave up on
    it, failed."""
    await ensure_workspace(db, TEAM)
    job = await enqueue_file_import(db, TEAM, [csv_file(tmp_path, "a.csv", 10)], segment="S",
                                    create_segment=True, max_attempts=1)  # fmt: skip
    batch_id = json.loads(job.payload or "{}")["batch_id"]
    review = await reviewed(db, slack, batch_id)
    handlers = {IMPORT_JOB: import_handler(100, notifier(slack, db, "U1"))}
    # a lease of 3 s: with 1 s, a loaded machine's first worker outlived the lease it left
    # the job to and took it again itself ("failed", 2 attempts)
    config = WorkerConfig(lease_seconds=3, poll_seconds=0.05, retry_base_seconds=0)
    await _execute(db, _REFUSE_DONE[db.dialect])
    try:
        await asyncio.wait_for(Worker(db, handlers, config).run_until_idle(), 60)
    finally:
        await _execute(db, _ALLOW_DONE[db.dialect])
    left = await _job(db, job.id or 0)
    assert (left.state, left.attempts) == ("running", 1)
    await asyncio.sleep(3.2)  # its lease lapses
    await asyncio.wait_for(Worker(db, handlers, config).run_until_idle(), 60)
    done = await _job(db, job.id or 0)
    assert (done.state, done.attempts, done.last_error) == ("done", 2, None), done
    replies = slack.messages_in(CHANNEL, review)
    assert not any("fail" in m["text"].lower() for m in replies), replies
    offers = [m for m in replies if m["text"].startswith("Next step: target a campaign")]
    assert len(offers) == 1 and len(replies) == 2, replies


@pytest.mark.parametrize(("done_when", "payload", "complete"), [
    (import_applied, {"batch_id": 99}, False),
    (undo_done, {"batch_id": 99}, False),
    (enrollment_done, {"enrollment_id": 99}, False),
    (audience_read, {"source_id": 99}, True),  # its source gone: nothing left to read
    (slack_file_read, {"source_id": 99}, True),
    (slack_file_read, {"source_id": 99, "again": True}, True),
])  # fmt: skip
async def test_each_kind_tells_its_work_complete_in_sql_both_databases_run(
    db: Database, done_when: Callable[[JobContext], queue.Done], payload: dict[str, object],
    complete: bool,
) -> None:
    await ensure_workspace(db, TEAM)
    job = await queue.enqueue(db, TEAM, "x", payload)
    ctx = JobContext(db, job, "owner", payload, asyncio.Event())
    assert await queue.work_complete(db, job, done_when(ctx)) is complete


async def test_an_import_and_its_files_read_are_told_complete_once_they_are(
    db: Database, tmp_path: Path
) -> None:
    await ensure_workspace(db, TEAM)
    job = await enqueue_file_import(db, TEAM, [csv_file(tmp_path, "a.csv", 3)], segment="S",
                                    create_segment=True)  # fmt: skip
    payload = json.loads(job.payload or "{}")
    async with db.begin() as conn:
        source = (await conn.execute(text("SELECT id FROM import_source WHERE batch_id = :b"),
                                     {"b": payload["batch_id"]})).scalar_one()  # fmt: skip
    ctx = JobContext(db, job, "owner", {**payload, "source_id": source}, asyncio.Event())
    kinds = (import_applied, slack_file_read, audience_read)

    async def complete() -> list[bool]:
        return [await queue.work_complete(db, job, kind(ctx)) for kind in kinds]

    assert await complete() == [False, False, False]  # its file not read yet, nothing applied
    await asyncio.wait_for(Worker(db, {IMPORT_JOB: import_handler(100)},
                                  WorkerConfig()).run_until_idle(), 60)  # fmt: skip
    assert await complete() == [True, True, True]


@pytest.mark.parametrize("failed", [True, False], ids=["failed", "done"])
async def test_an_import_that_failed_and_was_undone_since_is_not_ended_done(
    db: Database, tmp_path: Path, failed: bool
) -> None:
    """An import's last attempt failed part way (its batch `failed`, what it had applied
    kept, the thread told so), and its worker died before the job was recorded failed; the
    lead undid what it had applied. Out of attempts, the next worker gave up on it and ended
    it "done" (its batch `undone` counted as its work complete), though the import failed:
    `referral-bot jobs` said done of it. It fails, as any import that failed; one that was
    done before it was undone still ends done."""
    from bot.imports.undo import undo_now
    from models.clock import utcnow

    await ensure_workspace(db, TEAM)
    job = await enqueue_file_import(db, TEAM, [csv_file(tmp_path, "a.csv", 10)], segment="S",
                                    create_segment=True, max_attempts=1)  # fmt: skip
    batch_id = json.loads(job.payload or "{}")["batch_id"]
    handlers = {IMPORT_JOB: import_handler(100)}
    config = WorkerConfig(lease_seconds=3, poll_seconds=0.05, retry_base_seconds=0)
    await asyncio.wait_for(Worker(db, handlers, config).run_until_idle(), 60)
    # as its last attempt left it: the apply stopped part way and failed the import (what it
    # had applied stays), then its worker died before recording the job failed
    async with db.begin() as conn:
        if failed:
            await conn.execute(text("UPDATE import_batch SET status = 'failed', error = "
                                    "'Importing stopped: the database went away.' "
                                    "WHERE id = :b"), {"b": batch_id})  # fmt: skip
        await conn.execute(text("UPDATE job SET state = 'running', finished_at = NULL, "
                                "lease_owner = 'dead', lease_expires_at = :past WHERE id = :j"),
                           {"j": job.id, "past": utcnow()})  # fmt: skip
    undone = await undo_now(db, TEAM, batch_id, "cli", remove_advocates=False, window_days=30)
    assert undone.status == "undone"
    await asyncio.sleep(0.1)
    await asyncio.wait_for(Worker(db, handlers, config).run_until_idle(), 60)
    ended = await _job(db, job.id or 0)
    assert ended.state == ("failed" if failed else "done"), ended
