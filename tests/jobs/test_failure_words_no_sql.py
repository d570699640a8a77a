"""A database error that isn't an outage is said without its SQL and parameters.

What a job's work fails with for good went to its thread or report as "{class}: {message}",
and SQLAlchemy's message of a database error is the statement and its parameters ("Enrolling
stopped: IntegrityError: (sqlite3.IntegrityError) ... [SQL: INSERT INTO invite ...]
[parameters: (...)]"): ids, email addresses, in Slack. Slack is told in words now, the job's
error (`referral-bot jobs`) gives the driver's class and the first line of its message, and
the worker's log keeps it all. The errors are real: a unique key a statement with an address
meets, and a trigger refusing the invites an enrollment writes.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from sqlalchemy import text

from bot.campaigns import service
from bot.campaigns.jobs import enroll_handler
from bot.campaigns.service import ENROLL_JOB, Thread
from bot.jobs import queue
from bot.jobs.worker import (
    DATABASE_REFUSED,
    GivingUp,
    JobContext,
    Worker,
    WorkerConfig,
    failure_words,
)
from bot.settings import load_settings
from bot.workspaces import ensure_workspace
from models import Database
from tests.campaigns.conftest import TEAM, World, people
from tests.campaigns.conftest import world as world  # the fixture
from tests.fakes.slack_api import FakeSlack
from tests.imports.outage import CHANNEL, client_of, notifier
from tests.imports.outage import slack as slack  # the fixture
from tests.shell import run

ADDRESS = "ada@example.com"
KIND = "x"
LEAD = "U1"
CONFIG = WorkerConfig(lease_seconds=5, poll_seconds=0.05, retry_base_seconds=0)
# what a job's error may not hold: SQLAlchemy's statement and parameters, their values
NOT_SHOWN = ("[SQL:", "[parameters:", "INSERT INTO", ADDRESS)


async def _pledge(db: Database) -> None:
    """A table of unique addresses, ADDRESS in it."""
    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE pledge (email VARCHAR(200) PRIMARY KEY)"))
        await conn.execute(text("INSERT INTO pledge (email) VALUES (:e)"), {"e": ADDRESS})


async def _pledge_again(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO pledge (email) VALUES (:e)"), {"e": ADDRESS})


def _first_line_of_the_drivers(error: str) -> None:
    """The driver's class and its message's first line, nothing of the statement."""
    assert error.startswith(("IntegrityError: ", "UniqueViolationError: ",
                             "CheckViolationError: ")), error  # fmt: skip
    assert "\n" not in error and not any(part in error for part in NOT_SHOWN), error


async def test_a_refused_statement_is_said_without_its_sql_or_parameters(
    db: Database, db_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Its give-up is told in words; `jobs` shows the driver's first line; the log has the
    statement."""
    caplog.set_level(logging.INFO, logger="bot.jobs")
    await _pledge(db)
    with pytest.raises(Exception) as refused:  # whatever the driver raises
        await _pledge_again(db)
    assert ADDRESS in str(refused.value) and "[SQL:" in str(refused.value)  # as it says itself
    assert failure_words(refused.value) == DATABASE_REFUSED, failure_words(refused.value)

    await ensure_workspace(db, "T1")
    last = await queue.enqueue(db, "T1", KIND, {"batch_id": 3}, max_attempts=1)
    told: list[str] = []

    async def pledges(ctx: JobContext) -> None:
        await _pledge_again(ctx.db)

    async def give_up(ctx: JobContext, error: str) -> None:
        told.append(error)

    worker = Worker(db, {KIND: GivingUp(pledges, give_up)}, CONFIG)
    assert await asyncio.wait_for(worker.run_until_idle(), 30) == 1
    assert told == [DATABASE_REFUSED], told
    failed = await queue.get_job(db, "T1", last.id or 0)
    assert failed is not None and failed.state == "failed", failed
    _first_line_of_the_drivers(failed.last_error or "")
    assert ADDRESS in caplog.text and "[SQL:" in caplog.text, "the log lost what it was"

    shown = json.loads(run(db_env, "jobs", "--json").stdout)
    (job,) = [j for j in shown if j["id"] == last.id]
    _first_line_of_the_drivers(job["error"])


def _refuse_invites(db: Database) -> list[str]:
    """A trigger refusing every invite written, as a constraint would."""
    if db.is_sqlite:
        return ["CREATE TRIGGER refuse_invite BEFORE INSERT ON invite "
                "BEGIN SELECT RAISE(ABORT, 'invites refused'); END"]  # fmt: skip
    return [
        "CREATE FUNCTION refuse_invite() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'invites refused' USING ERRCODE = 'check_violation'; END $$",
        "CREATE TRIGGER refuse_invite BEFORE INSERT ON invite FOR EACH ROW "
        "EXECUTE FUNCTION refuse_invite()",
    ]


async def test_an_enrollment_a_constraint_stops_says_so_in_slack_without_sql(
    world: World, db_env: dict[str, str], slack: FakeSlack
) -> None:
    """The real enroll job, on its last attempt: its report in the thread and the
    enrollment's error say the database refused a step, not the INSERT and its values."""
    await world.import_csv("VIP", people(f"{ADDRESS},Ada,", "b@example.com,B,"))
    spring = await world.campaign()
    thread = await client_of(slack).chat_postMessage(channel=CHANNEL, text="The import")
    enrollment = await service.target(world.db, TEAM, spring, await world.segment_id("VIP"),
                                      requested_by=LEAD,
                                      thread=Thread(CHANNEL, str(thread["ts"])))  # fmt: skip
    assert enrollment is not None
    async with world.db.begin() as conn:
        await conn.execute(text("UPDATE job SET max_attempts = 1 WHERE kind = :k"),
                           {"k": ENROLL_JOB})  # fmt: skip
        for statement in _refuse_invites(world.db):
            await conn.execute(text(statement))
    settings = load_settings(database_url=world.db.url)
    worker = Worker(world.db, {ENROLL_JOB: enroll_handler(settings, notifier(slack, world.db,
                                                                             LEAD))}, CONFIG)
    await asyncio.wait_for(worker.run_until_idle(), 60)

    ((status, error),) = await world.rows("SELECT status, error FROM enrollment WHERE id = :e",
                                          e=enrollment)  # fmt: skip
    assert (status, error) == ("failed", f"Enrolling stopped: {DATABASE_REFUSED}"), error
    reports = [str(m.get("blocks")) for m in slack.messages_in(CHANNEL, str(thread["ts"]))
               if m.get("text", "").startswith("Enrollment in")]  # fmt: skip
    (report,) = reports
    assert DATABASE_REFUSED in report, report
    assert not any(part in report for part in NOT_SHOWN), report
    ((job_error,),) = await world.rows("SELECT last_error FROM job WHERE kind = :k",
                                       k=ENROLL_JOB)  # fmt: skip
    _first_line_of_the_drivers(str(job_error))
    assert "invites refused" in str(job_error), job_error
