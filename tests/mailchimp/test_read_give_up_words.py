"""An audience's reading whose last attempt meets a read-only database says so, in words.

Its give-up said "the bot's database was unavailable" (PostgreSQL's 25006, an outage) or
"something went wrong on our side" (SQLite's READONLY, none) where every other job says the
database is read-only and what to check (bot.jobs.worker.database_words): the review showed
the audience failed, nobody told where to look.

The condition is real, and the database's own answer: the write that stages the audience's
members (the first the job's run makes once Mailchimp has answered for them) is made on a
connection the database holds read-only, PostgreSQL by `default_transaction_read_only` (as
a database or role set so), SQLite by `PRAGMA query_only` (SQLITE_READONLY, the code a file
the process can't write gives). One connection, once: the give-up's own writes (failing the
source) go through as when the read-only standby was left behind, and the worker, whose
claim and heartbeat write, is untouched meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event

from bot.jobs.worker import (
    DATABASE_READ_ONLY_POSTGRES,
    DATABASE_READ_ONLY_SQLITE,
    GivingUp,
    JobContext,
)
from bot.mailchimp.jobs import MAILCHIMP_JOB
from models import Database
from tests.fakes.mailchimp import FakeMailchimp
from tests.fakes.slack_api import FakeSlack
from tests.imports.outage import CHANNEL, LAST_ATTEMPT_FAILS, out_of_attempts, run_jobs
from tests.imports.outage import slack as slack  # the fixture
from tests.mailchimp.test_mailchimp import mc as mc  # the fixture
from tests.mailchimp.test_read_outage import _handler, _reading, _source

MEMBERS = "/3.0/lists/aud1/members"


class ReadOnlyOnce:
    """The next connection the job's run takes from `database`'s pool once Mailchimp has
    answered for the audience's members is read-only for that checkout; every other is
    writable (each checkout says which, so a pooled connection doesn't stay read-only)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.run: asyncio.Task[Any] | None = None  # the job's run, as it starts
        self.armed = False
        self.refused = 0  # checkouts made read-only
        event.listen(database.engine.sync_engine, "checkout", self._on_checkout)

    def arm(self) -> None:
        """Mailchimp answered: the run's next checkout is its staging write."""
        self.armed = True

    def _on_checkout(self, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        ours = self.armed and self.run is not None and asyncio.current_task() is self.run
        if ours:
            self.armed = False
            self.refused += 1
        if ours or record.info.get("read_only"):
            self._set(dbapi_conn, ours)
            record.info["read_only"] = ours

    def _set(self, dbapi_conn: Any, read_only: bool) -> None:
        if self.database.is_sqlite:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA query_only = {'ON' if read_only else 'OFF'}")
            cursor.close()
            return
        setting = "on" if read_only else "off"
        dbapi_conn.run_async(lambda conn: conn.execute(
            f"SET SESSION default_transaction_read_only = {setting}"))  # fmt: skip


async def test_an_audience_read_on_a_read_only_database_gives_up_saying_so(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp, slack: FakeSlack
) -> None:
    source, review = await _reading(db, mc, slack)
    await out_of_attempts(db, MAILCHIMP_JOB, LAST_ATTEMPT_FAILS)
    worker_db = Database(db_env["DATABASE_URL"], schema=db_env.get("DATABASE_SCHEMA"))
    read_only = ReadOnlyOnce(worker_db)
    mc.after(MEMBERS, read_only.arm)
    handler = _handler(db, mc, slack)(worker_db)
    assert isinstance(handler, GivingUp)

    async def run(ctx: JobContext) -> None:
        read_only.run = asyncio.current_task()
        await handler.run(ctx)

    try:
        await run_jobs(worker_db, {MAILCHIMP_JOB: GivingUp(run, handler.give_up)})
    finally:
        await worker_db.dispose()
    assert read_only.refused == 1, read_only.refused
    words = DATABASE_READ_ONLY_SQLITE if db.is_sqlite else DATABASE_READ_ONLY_POSTGRES
    status, error = await _source(db, source)
    assert (status, error) == ("failed", f"Could not read the audience: {words}"), error
    drawn = str(slack.message(CHANNEL, review).get("blocks"))
    assert "Could not read the audience: the bot's database is read-only" in drawn, drawn
