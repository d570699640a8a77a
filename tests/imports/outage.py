"""A database outage over a whole run of a job, for what a job that gives up leaves behind.

The fault is real, as in tests/jobs/test_worker_faults: another client holds the write lock of
the tables the job writes (SQLite: the whole file) while the worker's own engine gives up
waiting for a lock after 100 ms; the lock goes once the worker met it (it logged a step's
retry: see tests/waiting.Retries), as a database comes back. It went after a fixed 1.5 s,
which a loaded machine (CI's two busy cores) could spend before the job's first write: the
job then never met the outage, and the test failed for nothing it checks. Reads
still work meanwhile (SQLite's WAL, PostgreSQL's EXCLUSIVE mode), so the job gets as far as
its first write and gives up there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text

from bot.jobs.worker import GivingUp, Handler, JobContext, Worker, WorkerConfig
from handlers.ids import Action
from handlers.notify import SlackNotifier
from models import Database
from tests.fakes.slack_api import FakeSlack, find_element
from tests.jobs.test_worker_faults import JobTableLock, impatient
from tests.waiting import Retries, until_retried

TEAM = "T0001"
LEAD = "U0002"
CHANNEL = "C0001"
# how a job ends for good: its last attempt fails, or every attempt's worker died (killed, out
# of memory) and the next one gives up on it without running it (GivingUp)
LAST_ATTEMPT_FAILS = "its last attempt fails"
WORKERS_DIED = "every attempt's worker died"
ENDS = (LAST_ATTEMPT_FAILS, WORKERS_DIED)


class Outage(JobTableLock):
    """The database unavailable for writes to `tables` (PostgreSQL; SQLite: to everything)
    from `begin()` until the worker has retried a step in it; `reads`: for reads of them too
    (PostgreSQL only: SQLite's readers can't be kept out), as when the database is down, not
    only busy."""

    def __init__(self, db: Database, *tables: str, reads: bool = False) -> None:
        super().__init__(db)
        self.tables = ("job", *tables)
        self.mode = "ACCESS EXCLUSIVE" if reads else "EXCLUSIVE"
        self.begun = False
        self.ending: list[asyncio.Task[None]] = []

    async def hold(self) -> None:
        if self.db.is_sqlite:
            await super().hold()
            return
        self.conn = await self.db.engine.connect()
        await self.conn.execute(text(f"LOCK TABLE {', '.join(self.tables)} IN {self.mode} MODE"))

    async def begin(self) -> None:
        """The outage starts now, once; it ends by itself."""
        if self.begun:
            return
        self.begun = True
        await self.hold()
        self.ending.append(asyncio.create_task(self._end_later(Retries.watch())))

    async def _end_later(self, retries: Retries) -> None:
        """Once the worker met the outage: a step of its job failed in it and is retried."""
        try:
            await until_retried(retries)
            await self.release()
        finally:
            retries.stop()

    def during(self, handler: Handler, end: str = LAST_ATTEMPT_FAILS) -> Handler:
        """`handler` meeting the outage from the moment its job's run starts (after the
        worker took the job): the run itself, or its giving up on a job whose workers died."""
        assert isinstance(handler, GivingUp)

        async def run(ctx: JobContext) -> None:
            await self.begin()
            await handler.run(ctx)

        async def give_up(ctx: JobContext, error: str) -> None:
            await self.begin()
            await handler.give_up(ctx, error)

        if end == LAST_ATTEMPT_FAILS:
            return GivingUp(run, handler.give_up)
        return GivingUp(handler.run, give_up)


async def out_of_attempts(db: Database, kind: str, end: str) -> None:
    """The jobs of `kind` are on their last attempt; `WORKERS_DIED`: every attempt was made,
    each one's worker dying in it (its lease lapsed), so the next taker gives up on it."""
    async with db.begin() as conn:
        await conn.execute(text(
            "UPDATE job SET max_attempts = 1, attempts = :made WHERE kind = :k"),
            {"k": kind, "made": 1 if end == WORKERS_DIED else 0})  # fmt: skip


@asynccontextmanager
async def worker_db(db_env: dict[str, str], outage: Outage) -> AsyncIterator[Database]:
    """The worker's own engine (impatient for locks), disposed of with the outage ended."""
    database = impatient(db_env)
    try:
        yield database
    finally:
        await outage.release()
        for task in outage.ending:
            task.cancel()
        await database.dispose()


async def run_jobs(database: Database, handlers: dict[str, Handler]) -> int:
    """A worker on `database` runs every job due, within a minute; how many ran."""
    worker = Worker(database, handlers, WorkerConfig(lease_seconds=5, poll_seconds=0.05,
                                                     retry_base_seconds=0))  # fmt: skip
    return await asyncio.wait_for(worker.run_until_idle(), 60)


async def when_slack_is_called(slack: FakeSlack, method: str, outage: Outage) -> None:
    """The outage begins as the bot's next call of `method` reaches Slack (a report under
    way, its work done), which answers once it has."""
    gate = slack.hold(method)
    try:
        await slack.wait_for(method, count=len(slack.calls_to(method)) + 1, timeout=60)
        await outage.begin()
    finally:
        slack.unhold(method)
        gate.set()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """Slack for TEAM (a test module uses it by importing it: `# noqa: F401`)."""
    async with FakeSlack(bot_token="xoxb-test", team_id=TEAM) as fake:
        yield fake


def client_of(slack: FakeSlack) -> AsyncWebClient:
    """A Slack client of `slack`'s, as the bot's own."""
    return AsyncWebClient(token="xoxb-test", base_url=slack.api_url)


def skipped_rows_offers(slack: FakeSlack) -> list[str]:
    """What each offer of a skipped-rows CSV posted says (its button sends the CSV by DM)."""
    return [m["text"] for m in slack.messages
            if find_element(m.get("blocks") or [], Action.SEND_SKIPPED_ROWS)]  # fmt: skip


def notifier(slack: FakeSlack, database: Database, lead: str = LEAD) -> SlackNotifier:
    """What tells a job's thread in `slack`, its keys kept in `database` (a worker's own)."""
    return SlackNotifier(client_of(slack), database, team_leads=[lead])


async def reviewed(db: Database, slack: FakeSlack, batch: int) -> str:
    """The import `batch` reviewed in CHANNEL, as its review was posted there: the review
    message's ts, which is the import's thread."""
    review = await client_of(slack).chat_postMessage(channel=CHANNEL, text="The review")
    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET channel_id = :c, message_ts = :ts "
                                "WHERE id = :b"), {"c": CHANNEL, "ts": review["ts"], "b": batch})
    return str(review["ts"])


async def run_in_outage(
    db_env: dict[str, str], outage: Outage, kind: str,
    handler_on: Callable[[Database], Handler], end: str = LAST_ATTEMPT_FAILS,
) -> None:
    """A worker on its own engine runs the jobs of `kind` (their handler made for that
    engine by `handler_on`), meeting the outage as each run starts (see Outage.during)."""
    async with worker_db(db_env, outage) as database:
        await run_jobs(database, {kind: outage.during(handler_on(database), end)})


async def run_into_outage_at_redraw(
    db_env: dict[str, str], slack: FakeSlack, outage: Outage, kind: str,
    handler_on: Callable[[Database], Handler],
) -> None:
    """A worker on its own engine runs the jobs of `kind`, the outage beginning as the bot
    next calls chat.update (a review's redraw, a thread's report: the job's work done)."""
    async with worker_db(db_env, outage) as database:
        redrawing = asyncio.create_task(when_slack_is_called(slack, "chat.update", outage))
        await run_jobs(database, {kind: handler_on(database)})
        await redrawing
