"""For tests that make a PostgreSQL race happen: hold a lock in one connection, start the
code under test, and wait until it is blocked by that connection (or finished without
ever waiting, which is what the code before a fix did)."""

from __future__ import annotations

import asyncio
import time
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
