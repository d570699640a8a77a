"""PostgreSQL errors of a failover and of a rolling release are outages, waited out.

A write answered by a standby (25006: the old primary demoted, or an address still naming
it) and a cached statement plan invalidated by another process's migration (asyncpg's
InvalidCachedStatementError, once per pooled connection) were taken for bugs: a give-up step
(`surely`) was dropped at once, leaving the work "importing" for good, and its thread told
"the bot's database refused a step of this work"."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from bot.jobs.worker import (
    DATABASE_DOWN,
    DATABASE_READ_ONLY_POSTGRES,
    JobContext,
    _passes,
    database_words,
    surely,
)
from models import Database, Job
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's own errors")


async def _read_only_error(db: Database) -> Exception:
    """What a write to a standby answers: SQLSTATE 25006, read_only_sql_transaction."""
    try:
        async with db.begin() as conn:
            await conn.execute(text("SET LOCAL transaction_read_only = on"))
            await conn.execute(text("INSERT INTO workspace (team_id, name, created_at) "
                                    "VALUES ('T9', 'x', CURRENT_TIMESTAMP)"))  # fmt: skip
    except Exception as exc:
        return exc
    raise AssertionError("a read-only transaction wrote")


async def _stale_plan_error(db: Database) -> Exception:
    """What a pooled connection answers once after another process changed a table it reads
    with a cached statement (a new release's migration): 0A000; the next try works."""
    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE plan_cached (x int)"))
    async with db.begin() as conn:
        await conn.execute(text("SELECT * FROM plan_cached"))
    async with db.engine.connect() as other:  # the other process: its own connection
        raw = (await other.get_raw_connection()).driver_connection
        await raw.execute("ALTER TABLE plan_cached ADD COLUMN y int")
    try:
        async with db.begin() as conn:
            await conn.execute(text("SELECT * FROM plan_cached"))
    except Exception as exc:
        async with db.begin() as conn:  # the very next try works
            await conn.execute(text("SELECT * FROM plan_cached"))
        return exc
    raise AssertionError("the stale plan ran")


@pytest.mark.parametrize(("make", "words"), [(_read_only_error, DATABASE_READ_ONLY_POSTGRES),
                                             (_stale_plan_error, DATABASE_DOWN)])
async def test_a_failover_or_a_migration_elsewhere_is_an_outage(db: Database, make, words: str  # type: ignore[no-untyped-def]
                                                                ) -> None:  # fmt: skip
    exc = await make(db)
    assert _passes(exc), f"taken for a bug: {type(exc).__name__} {str(exc)[:120]}"
    assert database_words(exc) == words


async def test_a_give_up_step_waits_out_a_failover(db: Database) -> None:
    exc = await _read_only_error(db)
    calls = 0

    async def step() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise exc
        return "taken"

    job = Job(id=1, team_id="T1", kind="import", payload="{}", attempts=5, max_attempts=5)
    ctx = JobContext(db, job, "owner", {}, asyncio.Event())
    assert await asyncio.wait_for(surely(ctx, "failing the import", step), 30) == "taken"
    assert calls == 2
