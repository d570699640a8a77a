"""A PostgreSQL that can't be reached at all is said in words, not by its error's class.

A hard-down PostgreSQL makes asyncpg raise a bare ConnectionRefusedError, which SQLAlchemy
doesn't wrap: the worker waits it out, but the job's error (`referral-bot jobs`) and what a
thread is told when the job gives up read "ConnectionRefusedError: [Errno 111] Connect call
failed ('127.0.0.1', 5432)". Nothing real is stopped here: the work reads a PostgreSQL URL
whose port nothing listens on (`away`), and the driver's own error comes back.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import aiosmtplib
import pytest
from sqlalchemy import text

from bot.jobs import queue
from bot.jobs.kinds import report_handler
from bot.jobs.worker import GivingUp, JobContext, Worker, WorkerConfig, failure_words
from bot.notify import BATCH_CHANGED, REPORT_JOB, enqueue_report_job_in
from bot.workspaces import ensure_workspace
from models import Database
from tests.fakes.slack_api import FakeSlack
from tests.imports.outage import client_of, slack  # noqa: F401
from tests.shell import run

UNREACHABLE = "the bot's database could not be reached; the worker's log says more."
READS = "reads"


def _closed_port() -> int:
    """A local port nothing listens on (one the system just handed out, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def away() -> AsyncIterator[Database]:
    """A PostgreSQL that can't be reached: nothing listens on its port."""
    database = Database(f"postgresql://postgres@127.0.0.1:{_closed_port()}/test")
    yield database
    await database.dispose()


async def _read(database: Database) -> None:
    async with database.begin() as conn:
        await conn.execute(text("SELECT 1"))


async def _refusal(database: Database) -> BaseException:
    try:
        await _read(database)
    except Exception as exc:
        return exc
    raise AssertionError("the closed port answered")


async def test_the_drivers_refusal_is_said_in_words_and_no_other_servers(
    away: Database,
) -> None:
    refused = await _refusal(away)
    assert isinstance(refused, ConnectionRefusedError)  # unwrapped, as from a down server
    assert failure_words(refused) == UNREACHABLE
    # the same refusal from another server (an SMTP server's, a raw socket's) isn't called
    # the database's
    port = away.engine.url.port
    with pytest.raises(ConnectionRefusedError) as raw:
        await asyncio.open_connection("127.0.0.1", port)
    assert failure_words(raw.value).startswith("ConnectionRefusedError: "), raw.value
    with pytest.raises(aiosmtplib.SMTPConnectError) as smtp:
        await aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5).connect()
    assert isinstance(smtp.value, ConnectionError)
    assert failure_words(smtp.value).startswith("SMTPConnectError: "), smtp.value


async def test_a_job_given_up_on_a_database_out_of_reach_says_so_in_words(
    db: Database, db_env: dict[str, str], away: Database
) -> None:
    """Its thread is told (the give-up's error), `jobs` and `jobs --json` show it."""
    await ensure_workspace(db, "T1")
    last = await queue.enqueue(db, "T1", READS, {"batch_id": 3}, max_attempts=1)
    told: list[str] = []

    async def reads(ctx: JobContext) -> None:
        await _read(away)

    async def give_up(ctx: JobContext, error: str) -> None:
        told.append(error)

    worker = Worker(db, {READS: GivingUp(reads, give_up)}, WorkerConfig(retry_base_seconds=0))
    assert await asyncio.wait_for(worker.run_until_idle(), 30) == 1
    assert told == [UNREACHABLE], told
    failed = await queue.get_job(db, "T1", last.id or 0)
    assert failed is not None and failed.state == "failed"
    assert failed.last_error == UNREACHABLE, failed.last_error

    listed = run(db_env, "jobs")
    assert listed.returncode == 0, listed.stderr
    assert UNREACHABLE in listed.stdout and "ConnectionRefused" not in listed.stdout, listed.stdout
    shown = json.loads(run(db_env, "jobs", "--json").stdout)
    assert [(j["id"], j["state"], j["error"]) for j in shown] == [
        (last.id, "failed", UNREACHABLE)], shown  # fmt: skip


async def test_a_report_whose_database_is_out_of_reach_waits_saying_so(
    db: Database, db_env: dict[str, str], away: Database, slack: FakeSlack  # noqa: F811
) -> None:
    """The real report job, its notifier on a database that can't be reached: the attempt
    fails, is retried later, and `jobs` says why in words meanwhile."""
    from handlers.notify import SlackNotifier

    await ensure_workspace(db, "T1")
    async with db.begin() as conn:
        await enqueue_report_job_in(conn, "T1", BATCH_CHANGED, {"batch_id": 1})
    notifier = SlackNotifier(client_of(slack), away, team_leads=[])
    worker = Worker(db, {REPORT_JOB: report_handler(notifier)},
                    WorkerConfig(retry_base_seconds=60))  # fmt: skip
    assert await asyncio.wait_for(worker.run_until_idle(), 30) == 1
    assert slack.calls == [], "it reached Slack"
    (report,) = await queue.list_jobs(db, "T1")
    assert (report.state, report.last_error) == ("queued", UNREACHABLE), report

    listed = run(db_env, "jobs")
    assert listed.returncode == 0, listed.stderr
    (line,) = [line for line in listed.stdout.splitlines() if REPORT_JOB in line]
    assert UNREACHABLE in line and "ConnectionRefused" not in line, line
