"""A job the command line runs itself (bot.jobs.here): interrupted, it goes back to the workers."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.jobs import queue
from bot.jobs.here import running_here, shell_owner
from bot.workspaces import ensure_workspace
from models import Database
from tests.conftest import BACKEND

# Long enough to be interrupted in the middle on either database (a minute or so to run out:
# an interrupted statement went on to its end before the job could be handed back).
_LONG_INSERT = text(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30000000) "
    "INSERT INTO interrupted (i) SELECT i FROM n RETURNING i"
)


async def test_a_job_interrupted_in_the_middle_of_a_statement_is_handed_back_at_once(
    db: Database,
) -> None:
    """Ctrl-C in the middle of an apply chunk's statement left SQLite's write lock held by
    the interrupted statement (kept alive by the exception being handled): handing the job
    back waited the 30 s busy timeout out and failed, the job left running under a lease
    nobody renewed. The shell's Ctrl-C test saw it in about one run in twenty."""
    await ensure_workspace(db, "T1")
    owner = shell_owner()
    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE interrupted (i INTEGER NOT NULL)"))
        job_id = await queue.enqueue_running_in(conn, "T1", "import", {"batch_id": 1},
                                                dedupe_key="import:1", owner=owner,
                                                lease_seconds=600)  # fmt: skip
    statement_returned = False
    starting = asyncio.Event()

    async def run() -> None:
        nonlocal statement_returned
        async with running_here(db, "T1", job_id, owner, 600), db.begin() as conn:
            # a write first, as a chunk's claim: SQLite's driver begins the transaction there
            await conn.execute(text("INSERT INTO interrupted (i) VALUES (0)"))
            starting.set()
            await conn.execute(_LONG_INSERT)
            statement_returned = True

    running = asyncio.create_task(run())
    # the job taken and its long statement on its way however slow the machine (a fixed
    # pause alone could end before the job was taken, and nothing was handed back); then a
    # moment for the statement to be under way
    await asyncio.wait_for(starting.wait(), 60)
    await asyncio.sleep(0.3)
    started = time.monotonic()
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(running, 20)
    assert not statement_returned, "the statement ended before the interruption: make it longer"
    assert time.monotonic() - started < 10
    job = await queue.get_job(db, "T1", job_id)
    assert job is not None
    assert (job.state, job.attempts, job.lease_owner) == ("queued", 0, None)
    async with db.begin() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM interrupted"))).scalar_one() == 0


@pytest.mark.skipif(BACKEND != "sqlite", reason="aiosqlite's connection")
async def test_a_lost_sqlite_connection_is_still_told_as_a_database_error(db: Database) -> None:
    """Stopping an invalidated connection's statement read aiosqlite's connection through a
    property that raises once it is gone, so a disconnect (which is invalidated too) came
    out as a bare ValueError from that listener: no longer a database error to whatever
    tells outages from bugs (job retries, the reports' outage checks)."""
    async with db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
        await (await conn.get_raw_connection()).driver_connection.close()
        with pytest.raises(DBAPIError):
            await conn.execute(text("SELECT 1"))


async def _undo_run_by_the_shell(db: Database) -> tuple[str, int]:
    """The undo of import #7, queued running under a shell's lease: its owner and job id."""
    return await _run_by_the_shell(db, "undo_import", "undo:7", 7, 600)


async def _run_by_the_shell(db: Database, kind: str, key: str, batch_id: int,
                            lease_seconds: float) -> tuple[str, int]:  # fmt: skip
    """A job queued running under a shell's lease: its owner and job id."""
    await ensure_workspace(db, "T1")
    owner = shell_owner()
    async with db.begin() as conn:
        job_id = await queue.enqueue_running_in(conn, "T1", kind, {"batch_id": batch_id},
                                                dedupe_key=key, owner=owner,
                                                lease_seconds=lease_seconds)  # fmt: skip
    return owner, job_id


async def test_a_job_handed_back_is_told_in_a_users_words(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shell printed the log's `job 44 (undo_import, team T1, {"batch_id": 7}) stopped
    part way: …`: the job's kind, workspace and payload, where a person wants what stopped
    and what to do."""
    owner, job_id = await _undo_run_by_the_shell(db)

    running_it = asyncio.Event()

    async def run() -> None:
        async with running_here(db, "T1", job_id, owner, 600):
            running_it.set()
            await asyncio.sleep(60)

    running = asyncio.create_task(run())
    # interrupted once it runs, however slow the machine: a 0.2 s pause could end while
    # running_here still read the job, and nothing was handed back or said
    await asyncio.wait_for(running_it.wait(), 60)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(running, 20)
    assert capsys.readouterr().err == (
        "The undo of import #7 stopped part way: the next worker to run finishes it "
        "(`referral-bot worker`, or `referral-bot serve`'s), or `referral-bot jobs cancel "
        f"{job_id}` stops it where it is.\n")  # fmt: skip


@pytest.mark.skipif(BACKEND != "postgres", reason="a read held up by a table lock")
async def test_a_job_interrupted_while_it_is_first_read_is_handed_back(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C while running_here read the job (before its hand-back was armed) left it
    running under the shell's lease until that lapsed, and nothing was said."""
    from tests.waiting import backend_pid, until_waiting_or_done

    owner, job_id = await _undo_run_by_the_shell(db)

    async def run() -> None:
        async with running_here(db, "T1", job_id, owner, 600):
            await asyncio.sleep(60)

    async with db.engine.connect() as holder:
        await holder.begin()
        await holder.execute(text("LOCK TABLE job IN ACCESS EXCLUSIVE MODE"))
        running = asyncio.create_task(run())
        assert await until_waiting_or_done(db, await backend_pid(holder), running) is not None
        running.cancel()  # the read waits for the lock
        await asyncio.sleep(0)
        await holder.rollback()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(running, 20)
    job = await queue.get_job(db, "T1", job_id)
    assert job is not None and (job.state, job.lease_owner) == ("queued", None)
    assert "The undo of import #7 stopped part way" in capsys.readouterr().err


async def test_ctrl_c_while_a_held_up_heartbeat_stops_is_not_swallowed(db: Database) -> None:
    """The block is done and its heartbeat, in the middle of renewing the lease, waits for
    another connection's lock (SQLite: another process writing; up to the 30 s busy
    timeout). Ctrl-C while the heartbeat was being stopped was taken for the heartbeat's own
    cancellation and swallowed: the shell's import reported success and exited 0 (or hung at
    exit, the heartbeat's connection cut off mid-close). It now ends the run, the job handed
    back as for any Ctrl-C. (On PostgreSQL a held-up heartbeat ends as soon as it is
    cancelled, asyncpg cancelling its query, so there this shows the hand back only.)"""
    owner, job_id = await _run_by_the_shell(db, "import", "import:1", 1, 0.3)
    done = asyncio.Event()

    async def run() -> str:
        async with running_here(db, "T1", job_id, owner, 0.3):
            await done.wait()
        return "finished"

    async with db.engine.connect() as holder:  # another writer, holding the job's row
        if db.is_sqlite:
            await holder.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await holder.execute(text("SELECT id FROM job WHERE id = :id FOR UPDATE"),
                                 {"id": job_id})  # fmt: skip
        running = asyncio.create_task(run())
        await asyncio.sleep(0.5)  # a renewal (every 0.1 s) is under way, held up
        done.set()  # the block ends: the heartbeat is stopped, and waited for
        await asyncio.sleep(0.3)
        assert not running.done()
        running.cancel()  # Ctrl-C (asyncio.Runner cancels the main task)
        await asyncio.sleep(0.3)
        await holder.rollback()  # the other writer lets go
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 30)
    job = await queue.get_job(db, "T1", job_id)
    assert job is not None
    assert (job.state, job.lease_owner) == ("queued", None)  # handed back
