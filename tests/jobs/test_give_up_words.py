"""What a job's give-up (GivingUp) did, in its words, ends the job's error as `referral-bot
jobs` shows it, whichever way the worker gave up on it: every attempt's worker died, or its
last attempt failed before its handler gave up itself.

An import given up so withdrew the segment `import --background --create-segment` made for it
and its own error said so, but the job's error was the worker's alone: `jobs` never said where
the segment had gone (tests/imports/test_given_up_import_segment.py is that import's case).
"""

from __future__ import annotations

from bot.jobs import queue
from bot.jobs.worker import GivingUp, JobContext
from bot.workspaces import ensure_workspace
from models import Database
from tests.jobs.test_give_up import KIND, _run

SAID = "Its segment went with it."


async def _give_up(ctx: JobContext, error: str) -> str:
    return SAID


async def test_a_job_whose_workers_all_died_says_what_giving_up_did(db: Database) -> None:
    await ensure_workspace(db, "T1")
    queued = await queue.enqueue(db, "T1", KIND, {}, max_attempts=1)
    # its one attempt's worker dies: the next worker gives up on it without running it
    assert (await queue.claim(db, "killed", lease_seconds=-1, kinds={KIND})).id == queued.id
    ran: list[int] = []

    async def run(ctx: JobContext) -> None:
        ran.append(1)

    job = await _run(db, GivingUp(run, _give_up))
    assert (job.state, ran) == ("failed", [])
    assert job.last_error == ("gave up: the worker running it stopped during each of its 1 "
                              f"attempts (killed, or out of memory?). {SAID}")  # fmt: skip


async def test_a_last_attempt_failing_before_its_handler_gave_up_says_what_that_did(
    db: Database,
) -> None:
    await ensure_workspace(db, "T1")
    await queue.enqueue(db, "T1", KIND, {}, max_attempts=2)

    async def run(ctx: JobContext) -> None:
        raise RuntimeError("its first read failed")

    job = await _run(db, GivingUp(run, _give_up))
    assert (job.state, job.attempts) == ("failed", 2)
    assert job.last_error == f"RuntimeError: its first read failed. {SAID}"
