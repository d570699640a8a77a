"""A database that refuses writes because it is read-only says so, with what to check.

PostgreSQL answers a write from a standby (a failover under way, DATABASE_URL naming one) or
in a database or role set default_transaction_read_only with SQLSTATE 25006: an outage,
waited out, but its thread, `referral-bot jobs` and /healthz said only "the bot's database
was unavailable". SQLite answers a write to a file or folder the process can't write
(permissions, a read-only mount) with SQLITE_READONLY: no outage, said only "refused a step of
this work". A worker on a database that stays read-only logged "claiming a job failed;
retrying" every 30 s, the why only at the bottom of each traceback.

The condition is real. PostgreSQL: every session of the read-only engine starts with
default_transaction_read_only on, as in a database or role set so (a session setting, so
tests running beside it are untouched). SQLite: the tests run as root, whom file permissions
don't stop, so the file is opened read-only (`?mode=ro`) through the project's own Database;
SQLite then answers SQLITE_READONLY, the code a file without write permission gives a
non-root process (and SQLITE_READONLY_DIRECTORY, same low byte, for a folder).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, make_url, text

from bot.jobs import queue
from bot.jobs.supervisor import WorkerSupervisor
from bot.jobs.worker import (
    DATABASE_READ_ONLY_POSTGRES,
    DATABASE_READ_ONLY_SQLITE,
    READ_ONLY_POSTGRES,
    READ_ONLY_SQLITE,
    GivingUp,
    JobContext,
    Worker,
    WorkerConfig,
    database_outage,
)
from bot.workspaces import ensure_workspace
from models import Database
from tests.shell import run
from tests.test_health import get, health_server

KIND = "x"
TEAM = "T1"
CONFIG = WorkerConfig(lease_seconds=5, poll_seconds=0.05, retry_base_seconds=0,
                      backoff_seconds=0.05, max_backoff_seconds=0.2)  # fmt: skip
# a real write, of a row that is there
WRITE = "UPDATE workspace SET name = name WHERE team_id = :t"


def _read_only_engine(db: Database, db_env: dict[str, str]) -> Database:
    """The test's database, through an engine whose every write is refused as read-only."""
    if db.is_sqlite:
        path = make_url(db.url).database
        return Database(f"sqlite:///file:{path}?mode=ro&uri=true")
    read_only = Database(db_env["DATABASE_URL"], schema=db_env.get("DATABASE_SCHEMA"))

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.run_async(lambda conn: conn.execute(
            "SET SESSION default_transaction_read_only = on"))  # fmt: skip

    event.listen(read_only.engine.sync_engine, "connect", on_connect)
    return read_only


@pytest.fixture
async def read_only(db: Database, db_env: dict[str, str]) -> AsyncIterator[Database]:
    await ensure_workspace(db, TEAM)
    engine = _read_only_engine(db, db_env)
    try:
        yield engine
    finally:
        await engine.dispose()


def _words(db: Database) -> str:
    """What Slack, `referral-bot jobs` and /healthz say of it, by the database's kind."""
    return DATABASE_READ_ONLY_SQLITE if db.is_sqlite else DATABASE_READ_ONLY_POSTGRES


def _logged_words(db: Database) -> str:
    """What the log's first line of a failure says of it."""
    return READ_ONLY_SQLITE if db.is_sqlite else READ_ONLY_POSTGRES


async def _write(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(text(WRITE), {"t": TEAM})


async def _refused(db: Database) -> Exception:
    """The error a write through `db` raises, as a job's step meets it."""
    try:
        await _write(db)
    except Exception as exc:
        return exc
    raise AssertionError("the read-only database took a write")


def _first_lines(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    """The log's first lines (its messages, without their tracebacks) that hold `words`."""
    return [r.getMessage() for r in caplog.records if words in r.getMessage()]


async def test_the_condition_is_the_databases_own_read_only_answer(
    db: Database, read_only: Database
) -> None:
    """SQLite's READONLY (no wait mends a file's permissions: no outage); PostgreSQL's 25006
    (a failover ends: an outage, still waited out)."""
    error = await _refused(read_only)
    driver = error.orig if db.is_sqlite else error.orig.__cause__  # type: ignore[attr-defined]
    if db.is_sqlite:
        assert isinstance(driver, sqlite3.Error), repr(driver)
        assert driver.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY, driver.sqlite_errorname
        assert not database_outage(error)
    else:
        assert getattr(driver, "sqlstate", None) == "25006", repr(driver)
        assert database_outage(error)


async def test_a_step_refused_as_read_only_is_said_so_in_slack_in_jobs_and_in_the_log(
    db: Database, db_env: dict[str, str], read_only: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A job's last attempt whose write is refused: its give-up (what its thread and App Home
    are told) says the database is read-only and what to check, `referral-bot jobs` shows the
    driver's line and the same words, and the log's first line says it too."""
    caplog.set_level(logging.INFO, logger="bot.jobs")
    last = await queue.enqueue(db, TEAM, KIND, {"batch_id": 3}, max_attempts=1)
    told: list[str] = []

    async def writes(ctx: JobContext) -> None:
        await _write(read_only)

    async def give_up(ctx: JobContext, error: str) -> None:
        told.append(error)

    worker = Worker(db, {KIND: GivingUp(writes, give_up)}, CONFIG)
    assert await asyncio.wait_for(worker.run_until_idle(), 30) == 1
    assert told == [_words(db)], told

    shown = json.loads(run(db_env, "jobs", "--json").stdout)
    (job,) = [j for j in shown if j["id"] == last.id]
    driver = "OperationalError: attempt to write a readonly database" if db.is_sqlite else \
        "ReadOnlySQLTransactionError: cannot execute UPDATE in a read-only transaction"
    assert job["state"] == "failed" and job["error"] == f"{driver}: {_words(db)}", job
    listed = run(db_env, "jobs", "--all").stdout
    assert _words(db) in " ".join(listed.split()), listed

    (line,) = _first_lines(caplog, f"failed (attempt 1 of 1): {_logged_words(db)}")
    assert f"job {last.id} ({KIND}, team {TEAM}" in line, line


async def test_a_worker_on_a_database_that_stays_read_only_says_why_in_each_log_line(
    read_only: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Claiming a job writes: every claim fails, and is retried as before (backing off), each
    failure's first line saying the database is read-only, not only "claiming a job
    failed"; so does recording that the worker is alive."""
    caplog.set_level(logging.INFO, logger="bot.jobs")
    claiming = f"claiming a job failed: {_logged_words(read_only)}; retrying in"
    alive = f"recording that it is alive failed: {_logged_words(read_only)}; retrying in"

    async def nothing(ctx: JobContext) -> None:
        raise AssertionError("a job was claimed on a read-only database")

    worker = Worker(read_only, {KIND: nothing}, CONFIG)
    running = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 60  # a bound on the wait, not a measure
    try:
        while len(_first_lines(caplog, claiming)) < 3 or not _first_lines(caplog, alive):
            assert time.monotonic() < deadline, caplog.text[-3000:]
            assert not running.done(), running
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
    retried = [r for r in caplog.records if claiming in r.getMessage()]
    assert all(r.exc_info for r in retried), "the traceback went missing"


class _WritingWorker:
    """A worker whose run ends on a write its database refuses (an in-process worker,
    WORKER_PROCESSES=0, crashing on it)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        await _write(self.db)
        await self.stopping.wait()

    def stop(self) -> None:
        self.stopping.set()


async def test_healthz_says_a_read_only_database_in_words(read_only: Database) -> None:
    supervisor = WorkerSupervisor(_WritingWorker(read_only), backoff_seconds=30,
                                  max_backoff_seconds=60)  # fmt: skip
    async with health_server(supervisor.health) as url:
        supervisor.start()
        deadline = time.monotonic() + 30  # a bound on the wait, not a measure
        while supervisor.state != "restarting":
            assert time.monotonic() < deadline, supervisor.health()
            await asyncio.sleep(0.01)
        status, report = await get(url)
        await supervisor.stop()
    assert status == 200 and report["worker"]["last_error"] == _words(read_only), report
