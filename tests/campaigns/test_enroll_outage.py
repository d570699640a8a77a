"""An enrollment whose job ends in a database outage still ends, and its report says how.

Giving up fails the enrollment in the database: failing there too, the job was recorded
failed once the database was back, and the enrollment stayed queued, its report in the thread
saying "Enrolling…" for good (nothing runs it again once its job failed).
"""

from __future__ import annotations

import pytest

from bot.campaigns import service
from bot.campaigns.jobs import enroll_handler
from bot.campaigns.service import ENROLL_JOB, Thread
from bot.jobs.worker import DATABASE_DOWN
from bot.settings import load_settings
from tests.campaigns.conftest import TEAM, World, people
from tests.fakes.slack_api import FakeSlack
from tests.imports.outage import (
    CHANNEL,
    ENDS,
    LAST_ATTEMPT_FAILS,
    WORKERS_DIED,
    Outage,
    client_of,
    notifier,
    out_of_attempts,
    run_in_outage,
)
from tests.imports.outage import slack as slack  # the fixture

LEAD = "U1"


async def _targeted(world: World, slack: FakeSlack) -> tuple[int, str]:
    """Spring, live, targeted at VIP (two contacts) from a Slack thread, the enrollment on
    its last attempt not run yet: the enrollment's id and the thread's ts."""
    await world.import_csv("VIP", people("a@example.com,A,", "b@example.com,B,"))
    spring = await world.campaign()
    thread = await client_of(slack).chat_postMessage(channel=CHANNEL, text="The import")
    enrollment = await service.target(world.db, TEAM, spring, await world.segment_id("VIP"),
                                      requested_by=LEAD,
                                      thread=Thread(CHANNEL, str(thread["ts"])))  # fmt: skip
    assert enrollment is not None
    return enrollment, str(thread["ts"])


async def _ended(world: World, enrollment: int) -> tuple[str, str, str]:
    """The enrollment job's state, the enrollment's and its error."""
    (job,) = await world.rows("SELECT state FROM job WHERE kind = :k", k=ENROLL_JOB)
    ((status, error),) = await world.rows("SELECT status, error FROM enrollment WHERE id = :e",
                                          e=enrollment)  # fmt: skip
    return str(job[0]), str(status), str(error or "")


def _reports(slack: FakeSlack, thread: str) -> list[str]:
    return [str(m.get("blocks")) for m in slack.messages_in(CHANNEL, thread)
            if m.get("text", "").startswith("Enrollment in")]  # fmt: skip


@pytest.mark.parametrize("end", ENDS)
async def test_an_enrollment_given_up_in_an_outage_fails_once_the_database_is_back(
    world: World, db_env: dict[str, str], slack: FakeSlack, end: str
) -> None:
    enrollment, thread = await _targeted(world, slack)
    await out_of_attempts(world.db, ENROLL_JOB, end)
    outage = Outage(world.db, "campaign", "enrollment", "seen_key", reads=end == WORKERS_DIED)
    settings = load_settings(database_url=world.db.url)
    await run_in_outage(db_env, outage, ENROLL_JOB,
                        lambda w: enroll_handler(settings, notifier(slack, w, LEAD)), end)
    job, status, error = await _ended(world, enrollment)
    assert (job, status) == ("failed", "failed")
    if end == LAST_ATTEMPT_FAILS:  # in words: a database error's own text is SQL
        assert error == f"Enrolling stopped: {DATABASE_DOWN}"
    else:
        assert error.startswith("Enrolling stopped: gave up: the worker running it stopped")
    assert await world.scalar("SELECT COUNT(*) FROM advocate") == 0
    (report,) = _reports(slack, thread)
    assert ":x: Enrolling contacts from *VIP* in *Spring* failed" in report, report



async def test_an_enrollment_whose_last_worker_died_after_enrolling_reports_its_result(
    world: World, slack: FakeSlack
) -> None:
    """The enrollment's last attempt enrolled everyone (committed), and its worker died
    before it told the thread. The next worker gave up on the job without a word: the
    thread never heard the result."""
    import asyncio

    from bot.campaigns.enroll import run_enrollment
    from bot.jobs.queue import claim
    from tests.imports.outage import run_jobs

    enrollment, thread = await _targeted(world, slack)
    await out_of_attempts(world.db, ENROLL_JOB, LAST_ATTEMPT_FAILS)  # one attempt, its last
    dying = await claim(world.db, "worker-that-dies", 0.2, {ENROLL_JOB})
    assert dying is not None
    await run_enrollment(world.db, TEAM, enrollment, hold_seconds=0, job_id=dying.id)
    await asyncio.sleep(0.3)  # killed before telling the thread: its lease lapses
    settings = load_settings(database_url=world.db.url)
    await run_jobs(world.db, {ENROLL_JOB: enroll_handler(settings,
                                                         notifier(slack, world.db, LEAD))})
    assert await world.scalar("SELECT COUNT(*) FROM advocate") == 2
    reports = _reports(slack, thread)
    assert any(":tada:" in r for r in reports), reports


async def test_an_enrollment_whose_last_worker_died_after_enrolling_ends_done(
    world: World, slack: FakeSlack
) -> None:
    """Its thread told the result, the job given up on was recorded failed ("gave up: the
    worker running it stopped"), and `referral-bot jobs` said the enrollment failed."""
    import asyncio

    from bot.campaigns.enroll import run_enrollment
    from bot.jobs.queue import claim
    from tests.imports.outage import run_jobs

    enrollment, thread = await _targeted(world, slack)
    await out_of_attempts(world.db, ENROLL_JOB, LAST_ATTEMPT_FAILS)  # one attempt, its last
    dying = await claim(world.db, "worker-that-dies", 0.2, {ENROLL_JOB})
    assert dying is not None
    await run_enrollment(world.db, TEAM, enrollment, hold_seconds=0, job_id=dying.id)
    await asyncio.sleep(0.3)  # killed before marking its job done: its lease lapses
    settings = load_settings(database_url=world.db.url)
    await run_jobs(world.db, {ENROLL_JOB: enroll_handler(settings,
                                                         notifier(slack, world.db, LEAD))})
    assert await _ended(world, enrollment) == ("done", "done", "")
    (job,) = await world.rows("SELECT last_error FROM job WHERE kind = :k", k=ENROLL_JOB)
    assert job[0] is None
    (report,) = _reports(slack, thread)
    assert ":tada:" in report and "failed" not in report, report
