"""Waiting on what a test means, not for a time.

For tests that make a PostgreSQL race happen: hold a lock in one connection, start the
code under test, and wait until it is blocked by that connection (or finished without
ever waiting, which is what the code before a fix did). For tests of a database outage: end
it once the worker met it (`watching_retries`, `until_retried`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction

from models import Database


async def backend_pid(conn: AsyncConnection) -> int:
    return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def waiting_on(db: Database, pid: int) -> int | None:
    """A backend waiting for a lock `pid` holds (a fresh transaction each time:
    pg_stat_activity is read once per transaction)."""
    async with db.begin() as conn:
        return (await conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid)) LIMIT 1"
        ), {"pid": pid})).scalar()  # fmt: skip


async def until_waiting_or_done(db: Database, pid: int, task: asyncio.Task[Any]) -> int | None:
    """The backend that waits for `pid`, or None once `task` finished without waiting.

    Bounded by a minute, not by 1,000 looks (10 s and up): a shell started as a subprocess
    on a loaded machine (CI's two busy cores) takes seconds just to reach its statement."""
    deadline = time.monotonic() + 60
    while not task.done():
        if (waiting := await waiting_on(db, pid)) is not None:
            return waiting
        if time.monotonic() > deadline:
            raise AssertionError("it neither finished nor waited for the other transaction")
        await asyncio.sleep(0.01)
    return None


@dataclass
class PausedDeletion:
    """`delete_segment` under way, its UPDATE done, paused at the campaign links."""

    task: asyncio.Task[Any]
    pid: int  # its backend: what the code under test may wait for
    _holder: AsyncConnection
    _transaction: AsyncTransaction

    async def let_go(self) -> Any:
        """Release the pause; the deletion's result."""
        await self._transaction.commit()
        await self._holder.close()
        return await self.task


async def pause_segment_deletion(db: Database, team_id: str, segment_id: int,
                                 **kwargs: Any) -> PausedDeletion:  # fmt: skip
    """Start the real `delete_segment` and hold it, mid-transaction, by a lock on the table it
    reaches after marking the segment deleted (PostgreSQL)."""
    from bot.segments import delete_segment

    holder = await db.engine.connect()
    transaction = await holder.begin()
    await holder.execute(text("LOCK TABLE campaign_segment IN SHARE MODE"))
    task = asyncio.create_task(delete_segment(db, team_id, segment_id, **kwargs))
    pid = await until_waiting_or_done(db, await backend_pid(holder), task)
    assert pid is not None, "the deletion never reached the campaign links"
    return PausedDeletion(task, pid, holder, transaction)


async def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Return once `check()` is true; AssertionError after `seconds` (a hang guard: wait on
    what a test means, never for a time a loaded machine may need more of)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Retries(logging.Handler):
    """The worker's log of a job's step failing and being retried ("job 7 (...): marking it
    done failed ...; retrying in 0.5 s", a give-up step's through `surely` too): how a test
    knows the worker met a database outage and waits it out, so the outage can end then,
    not after a fixed time (which a loaded machine could spend before the job even got to
    its first write, the job then never meeting it). `steps`: only those steps' retries
    (lease renewals go on whatever the job does: they count only when asked for)."""

    def __init__(self, *steps: str) -> None:
        super().__init__(logging.DEBUG)
        self.steps = steps
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not (message.startswith("job ") and "; retrying in" in message):
            return
        if self.steps:
            self.count += any(f": {step} failed" in message for step in self.steps)
        elif "renewing its lease failed" not in message:
            self.count += 1


    @classmethod
    def watch(cls, *steps: str) -> Retries:
        """Counting from now on, until `stop()`."""
        retries = cls(*steps)
        logging.getLogger("bot.jobs.worker").addHandler(retries)
        return retries

    def stop(self) -> None:
        logging.getLogger("bot.jobs.worker").removeHandler(self)


@contextmanager
def watching_retries(*steps: str) -> Iterator[Retries]:
    """Count the worker's retries (see Retries) while within it."""
    retries = Retries.watch(*steps)
    try:
        yield retries
    finally:
        retries.stop()


async def until_retried(retries: Retries, seconds: float = 60.0) -> None:
    """Once the worker has retried a step since `retries` began counting: it met the outage.
    After `seconds` (a hang guard) it returns all the same: what the test asserts of the
    work's end then says what went wrong, and a test's outage must end for it to end."""
    with contextlib.suppress(AssertionError):
        await until(lambda: retries.count > 0, seconds, "the worker to retry a step")
