"""An outage is told by what the database or its driver says of the error, not by its class.

Every SQLite OperationalError and every SQLAlchemy OperationalError or InterfaceError counted
as the database being unavailable: SQLite raises "no such column", "no such table", a syntax
error, "too many SQL variables" and "attempt to write a readonly database" as OperationalError,
and asyncpg its client-side "the number of query arguments cannot exceed 32767" as an
InterfaceError. A give-up step (`surely`) meeting one was retried every 30 s for as long as
the worker ran (the heartbeat renewing its lease), its job never ending, and recording a
job's outcome (Worker._record) the same; the thread was told "the bot's database was
unavailable" of a bug. The errors here are real ones, from real statements on the test's
database (SQLite or PostgreSQL), and the faults are real too (a lock held by another client,
a file full, a connection ended by the server).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, make_url, text

from bot.jobs import queue
from bot.jobs.worker import (
    DATABASE_DOWN,
    DATABASE_FULL,
    DATABASE_READ_ONLY_SQLITE,
    DATABASE_REFUSED,
    GivingUp,
    JobContext,
    Worker,
    WorkerConfig,
    database_outage,
    failure_words,
    surely,
)
from bot.workspaces import ensure_workspace
from models import Database, Job
from tests.conftest import BACKEND, POSTGRES_URL
from tests.jobs.test_worker_faults import JobTableLock, impatient, logged, state_of

KIND = "x"
MANY = 40_000  # parameters: past asyncpg's 32,767 (SQLite's is 250,000 where it's built so)
# An outage's retries wait 0.05 s doubling to 0.2 s: retried for ever, a run never ends.
CONFIG = WorkerConfig(lease_seconds=5, poll_seconds=0.05, retry_base_seconds=0,
                      backoff_seconds=0.05, max_backoff_seconds=0.2)  # fmt: skip
postgres_only = pytest.mark.skipif(BACKEND != "postgres", reason="asyncpg's own errors")


def _many() -> tuple[str, dict[str, Any]]:
    """A statement with MANY parameters, which asyncpg can't send."""
    names = [f"p{n}" for n in range(MANY)]
    return ("SELECT 1 WHERE 1 IN (" + ", ".join(f":{name}" for name in names) + ")",
            {name: n for n, name in enumerate(names)})  # fmt: skip


# Statements that fail the same way each time they are run: a bug of ours, not an outage
TOO_MANY = "more parameters than asyncpg sends"
BUGS: dict[str, tuple[str, dict[str, Any]]] = {
    "a column that isn't there": ("SELECT nope FROM job", {}),
    "a table that isn't there": ("SELECT 1 FROM nowhere", {}),
    "a syntax error": ("SELEC 1", {}),
    TOO_MANY: _many(),
}
EACH_BUG = [pytest.param(bug, marks=postgres_only) if bug == TOO_MANY else bug
            for bug in sorted(BUGS)]  # fmt: skip


async def _error(db: Database, sql: str, params: dict[str, Any] | None = None) -> Exception:
    """The error running `sql` on `db` raises, as a job's step would meet it."""
    try:
        async with db.begin() as conn:
            await conn.execute(text(sql), params or {})
    except Exception as exc:
        return exc
    raise AssertionError(f"{sql[:60]} ran")


@pytest.fixture
async def team(db: Database) -> AsyncIterator[str]:
    await ensure_workspace(db, "T1")
    yield "T1"


@pytest.mark.parametrize("bug", EACH_BUG)
async def test_an_error_no_wait_mends_is_no_outage(db: Database, bug: str) -> None:
    error = await _error(db, *BUGS[bug])
    assert not database_outage(error), repr(error)
    assert failure_words(error) == DATABASE_REFUSED, failure_words(error)


async def test_a_read_only_sqlite_file_is_no_outage(db: Database, tmp_path: Path) -> None:
    """SQLite: "attempt to write a readonly database" (the file's permissions: no wait mends
    them). PostgreSQL's read-only transaction is a standby's answer, a failover's: an outage
    (tests/jobs/test_failover_states.py)."""
    if not db.is_sqlite:
        pytest.skip("PostgreSQL's read-only transaction is a failover's outage")
    path = make_url(db.url).database
    readonly = Database(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        error = await _error(readonly, "DELETE FROM job")
    finally:
        await readonly.dispose()
    assert "readonly database" in str(error), error
    assert not database_outage(error), repr(error)
    assert failure_words(error) == DATABASE_READ_ONLY_SQLITE, failure_words(error)


async def test_a_lock_held_by_another_client_is_an_outage(
    db: Database, db_env: dict[str, str]
) -> None:
    """SQLite: "database is locked" (SQLITE_BUSY); PostgreSQL: lock_timeout (55P03)."""
    lock = JobTableLock(db)
    await lock.hold()
    worker_db = impatient(db_env)
    try:
        error = await _error(worker_db, "UPDATE job SET attempts = attempts + 1")
    finally:
        await lock.release()
        await worker_db.dispose()
    assert database_outage(error), repr(error)
    assert failure_words(error) == DATABASE_DOWN, failure_words(error)


async def test_a_full_database_is_an_outage_said_so(db: Database, team: str) -> None:
    """SQLite: SQLITE_FULL, the file kept at the pages it has (max_page_count); PostgreSQL:
    disk_full (53100), as the server raises it when it can't extend a file."""
    if db.is_sqlite:
        full = Database(db.url)

        def at_its_size(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA max_page_count = 1")  # never below the pages it has
            cursor.close()

        event.listen(full.engine.sync_engine, "connect", at_its_size)
        try:
            error = await _error(full, "INSERT INTO seen_key (team_id, key, created_at) "
                                       "VALUES ('T1', :k, CURRENT_TIMESTAMP)",
                                 {"k": "k" * 200_000})  # fmt: skip
        finally:
            await full.dispose()
        assert "database or disk is full" in str(error), error
    else:
        error = await _error(db, "DO $$ BEGIN RAISE EXCEPTION 'could not extend file: No space "
                                 "left on device' USING ERRCODE = 'disk_full'; END $$")
    assert database_outage(error), repr(error)
    assert failure_words(error) == DATABASE_FULL, failure_words(error)


async def test_a_database_out_of_reach_is_an_outage(db: Database, tmp_path: Path) -> None:
    """SQLite: its file can't be opened (SQLITE_CANTOPEN); PostgreSQL: the server ended the
    connection (SQLAlchemy finds it lost)."""
    if db.is_sqlite:
        gone = Database(f"sqlite:///{tmp_path / 'unmounted' / 'bot.db'}")
        try:
            error = await _error(gone, "SELECT 1")
        finally:
            await gone.dispose()
    else:
        try:
            async with db.engine.connect() as conn:
                pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
                async with db.engine.connect() as other:
                    await other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            error = exc
        else:
            raise AssertionError("the ended connection answered")
    assert database_outage(error), repr(error)
    assert failure_words(error) == DATABASE_DOWN, failure_words(error)


@postgres_only
async def test_asyncpg_says_which_of_its_interface_errors_is_a_lost_connection() -> None:
    """A connection that is closed is one; one connection used by two tasks at once is a
    bug of ours, as is the parameters' limit (above)."""
    url = make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(
        hide_password=False)  # fmt: skip
    conn = await asyncpg.connect(url)
    try:
        both = await asyncio.gather(conn.fetch("SELECT pg_sleep(0.3)"), conn.fetch("SELECT 1"),
                                    return_exceptions=True)  # fmt: skip
    finally:
        await conn.close()
    (busy,) = [e for e in both if isinstance(e, Exception)]
    assert isinstance(busy, asyncpg.InterfaceError), busy
    assert "another operation is in progress" in str(busy), busy
    assert not database_outage(busy)
    with pytest.raises(asyncpg.InterfaceError) as closed:
        await conn.fetch("SELECT 1")
    assert database_outage(closed.value), closed.value


def _ctx(db: Database, job: Job) -> JobContext:
    return JobContext(db, job, "o", {}, asyncio.Event())


@pytest.mark.parametrize("bug", EACH_BUG)
async def test_surely_gives_up_at_once_on_an_error_no_wait_mends(
    db: Database, team: str, bug: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.jobs")
    job = await queue.enqueue(db, team, KIND, {"batch_id": 7})
    tries: list[int] = []

    async def step() -> None:
        tries.append(1)
        async with db.begin() as conn:
            sql, params = BUGS[bug]
            await conn.execute(text(sql), params)

    with pytest.raises(Exception) as raised:  # whatever the driver raises
        # waited out, it was tried again 0.5, 1.5, 3.5, 7.5 and 15.5 s later, and still going
        await asyncio.wait_for(surely(_ctx(db, job), "failing its work", step), 20)
    assert not isinstance(raised.value, TimeoutError), "retried as an outage"
    assert len(tries) == 1
    assert logged(caplog, "failing its work failed, and waiting can't mend it", job)


async def test_a_job_whose_give_up_meets_a_bug_ends_failed_not_retried_for_ever(
    db: Database, team: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Its last attempt fails, and giving up on it (the worker's, GivingUp) runs a statement
    the database or driver refuses (SQLite: a column that isn't there; PostgreSQL: more
    parameters than asyncpg sends): logged, and the job fails, at once. Waited out as an
    outage, the run never ended (0.5 s doubling to 30 s, for as long as the
    worker ran)."""
    caplog.set_level(logging.INFO, logger="bot.jobs")
    queued = await queue.enqueue(db, team, KIND, {"batch_id": 7}, max_attempts=1)
    tries: list[int] = []

    async def run(ctx: JobContext) -> None:
        raise RuntimeError("its work failed")

    sql, params = BUGS["a column that isn't there" if db.is_sqlite else TOO_MANY]

    async def give_up(ctx: JobContext, error: str) -> None:
        tries.append(1)
        async with ctx.db.begin() as conn:
            await conn.execute(text(sql), params)

    worker = Worker(db, {KIND: GivingUp(run, give_up)}, CONFIG)
    assert await asyncio.wait_for(worker.run_until_idle(), 30) == 1
    assert await state_of(db, queued) == "failed"
    assert tries == [1]
    assert logged(caplog, "giving up on it failed, and waiting can't mend it", queued)


def _missing_table_trigger(db: Database) -> list[str]:
    """A trigger reading a table that isn't there when a job is marked ended (its
    `finished_at` set; SQLite reads the table as any UPDATE setting it is prepared): the
    worker's marking it done fails each time, its claims and heartbeats go through."""
    if db.is_sqlite:
        return ["CREATE TRIGGER read_nowhere BEFORE UPDATE OF finished_at ON job "
                "BEGIN SELECT 1 FROM nowhere; END"]  # fmt: skip
    return [
        "CREATE FUNCTION read_nowhere() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM 1 FROM nowhere; RETURN NEW; END $$",
        "CREATE TRIGGER read_nowhere BEFORE UPDATE OF finished_at ON job FOR EACH ROW "
        "EXECUTE FUNCTION read_nowhere()",
    ]


async def test_recording_an_outcome_that_meets_a_missing_table_is_left_to_the_lease(
    db: Database, team: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite's "no such table" is an OperationalError: taken for an outage, marking the job
    done was retried for as long as the worker ran, the job `running` under its renewed
    lease. It is logged and left to its lease (tests/jobs/test_record_errors)."""
    job = await queue.enqueue(db, team, KIND, {"batch_id": 7})
    async with db.begin() as conn:
        for statement in _missing_table_trigger(db):
            await conn.execute(text(statement))

    async def work(ctx: JobContext) -> None:
        pass

    worker = Worker(db, {KIND: work}, CONFIG)
    with caplog.at_level(logging.INFO, logger="bot.jobs.worker"):
        assert await asyncio.wait_for(worker.run_until_idle(), 20) == 1
    assert await state_of(db, job) == "running"  # left to its lease
    assert logged(caplog, "marking it done failed, and retrying can't help", job)
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert retries == [], retries
