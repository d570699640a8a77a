"""Workers taken for dead: forgotten by the live ones, and recorded again if alive after all.

A worker not seen for `stale_after` (a long database outage, a stopped VM) is taken for dead:
the next worker's start deletes its row and says what that changes (App Home: invites wait
for a sender). The worker, alive, went on refreshing its row with a plain upsert, which put
it back without telling anyone: Home kept saying nobody could send. Its refresh now finds
the row gone and records it again through the start's own path (`kinds_changed` told).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.jobs import queue
from bot.jobs.worker import JobContext, KindsChanged, Worker, WorkerConfig
from models import Database
from models.clock import utcnow
from tests.conftest import BACKEND
from tests.jobs.test_worker_processes import wait_for

KIND = "noop"
BOUND = 60  # seconds a worker gets to start, be seen or stop: a bound on a wait, never measured


async def _noop(ctx: JobContext) -> None:
    return None


async def listed(db: Database, worker: Worker) -> bool:
    return any(w.owner == worker.owner for w in await queue.live_workers(db, timedelta(hours=1)))


class Told(list[frozenset[str]]):
    """A `kinds_changed` that keeps what it was told."""

    async def __call__(self, conn: AsyncConnection, changed: frozenset[str]) -> None:
        self.append(changed)


@asynccontextmanager
async def running_worker(db: Database, kinds_changed: KindsChanged,
                         lease_seconds: float = 1.5) -> AsyncIterator[Worker]:  # fmt: skip
    """A worker of one kind running, once it is in the worker list, until the block ends (and
    it has stopped). Its row is refreshed every lease_seconds / 3: 0.5 s by default."""
    worker = Worker(db, {KIND: _noop}, WorkerConfig(lease_seconds=lease_seconds,
                                                    poll_seconds=0.05),
                    kinds_changed=kinds_changed)  # fmt: skip
    running = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: listed(db, worker), BOUND, "the worker in the worker list")
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(running, BOUND)


async def test_a_worker_forgotten_as_dead_is_recorded_again_and_says_what_that_changes(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.jobs.worker")
    told = Told()
    async with running_worker(db, told) as worker:
        assert told == [frozenset({KIND})]
        async with db.begin() as conn:  # what another worker's start does to a stale row
            await conn.execute(text("DELETE FROM worker_process"))
        await wait_for(lambda: listed(db, worker), BOUND, "the worker listed again")
        assert told == [frozenset({KIND}), frozenset({KIND})]
    said = [r.getMessage() for r in caplog.records if "was gone" in r.getMessage()]
    assert said == [f"worker {worker.owner}: its row in the worker list was gone (taken for "
                    "dead, unseen too long); recording it again"], said


async def test_a_dead_worker_is_forgotten_by_a_live_one_which_says_what_that_changes(
    db: Database,
) -> None:
    """A sender killed, and no worker starting after it: only a start forgot dead workers'
    rows, so nothing noticed, and App Home never said its invites wait for a sender. A live
    worker now forgets them as it refreshes its own row, and tells what nobody runs now."""
    told = Told()
    async with running_worker(db, told):
        await _dead_sender(db)
        await wait_for(lambda: _gone(db, "gone:1:abc"), BOUND, "the dead worker forgotten")
    # its start (noop new); the dead one's row forgotten (nobody runs "sends" now; noop, the
    # live one runs); its own stop (nobody runs noop)
    assert told == [frozenset({KIND}), frozenset({"sends"}), frozenset({KIND})], told


async def _gone(db: Database, owner: str) -> bool:
    async with db.begin() as conn:
        found = await conn.execute(text("SELECT 1 FROM worker_process WHERE owner = :o"),
                                   {"o": owner})  # fmt: skip
        return found.first() is None


@pytest.mark.skipif(BACKEND != "postgres", reason="the workers' lock is PostgreSQL's")
async def test_a_held_workers_lock_neither_stops_refreshes_nor_is_waited_for(
    db: Database,
) -> None:
    """Forgetting dead workers takes the workers' lock, as starts and stops do. Waited for at
    every refresh, a session holding it (a host cut off mid-start) stopped every worker's
    refresh until all looked dead, and then one forgot its own row. The lock is only tried
    now: the refreshes go on, and the dead row is forgotten once the lock is free."""
    told = Told()
    async with running_worker(db, told) as worker:
        async with db.engine.connect() as other, other.begin():  # another start, cut off
            await other.execute(text("SELECT pg_advisory_xact_lock(hashtextextended("
                                     "'worker_process:' || coalesce(current_schema(), ''), 0))"))
            await _dead_sender(db)
            for _ in range(2):  # one refresh could be under way as the lock was taken
                seen = await _seen_at(db, worker.owner)
                await wait_for(_after(db, worker.owner, seen), BOUND, "a refresh, lock held")
            assert not await _gone(db, "gone:1:abc")  # left to a refresh once the lock is free
        await wait_for(lambda: _gone(db, "gone:1:abc"), BOUND, "the dead worker forgotten")
    assert told == [frozenset({KIND}), frozenset({"sends"}), frozenset({KIND})], told


async def _dead_sender(db: Database) -> None:
    """A worker that ran "sends" and noop, not seen for an hour: killed."""
    await queue.register_worker(db, "gone:1:abc", {"sends", KIND}, pid=1, host="gone")
    async with db.begin() as conn:
        old = utcnow() - timedelta(hours=1)
        await conn.execute(text("UPDATE worker_process SET seen_at = :old WHERE owner = :o")
                           .bindparams(bindparam("old", type_=UTCDateTime())),
                           {"old": old, "o": "gone:1:abc"})  # fmt: skip


async def _seen_at(db: Database, owner: str) -> object:
    async with db.begin() as conn:
        return (await conn.execute(text("SELECT seen_at FROM worker_process WHERE owner = :o"),
                                   {"o": owner})).scalar_one()  # fmt: skip


def _after(db: Database, owner: str, then: object):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return bool(await _seen_at(db, owner) > then)  # type: ignore[operator]

    return check
