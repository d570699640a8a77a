"""A live worker whose row another worker's start forgot is recorded again as a start is.

A worker not seen for `stale_after` (a long database outage, a stopped VM) is taken for dead:
the next worker's start deletes its row and says what that changes (App Home: invites wait
for a sender). The worker, alive, went on refreshing its row with a plain upsert, which put
it back without telling anyone: Home kept saying nobody could send. Its refresh now finds
the row gone and records it again through the start's own path (`kinds_changed` told).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.jobs import queue
from bot.jobs.worker import JobContext, Worker, WorkerConfig
from models import Database
from tests.jobs.test_worker_processes import wait_for

KIND = "noop"
BOUND = 60  # seconds a worker gets to start, be seen or stop: a bound on a wait, never measured


async def _noop(ctx: JobContext) -> None:
    return None


async def _listed(db: Database, worker: Worker) -> bool:
    return any(w.owner == worker.owner for w in await queue.live_workers(db, timedelta(hours=1)))


async def test_a_worker_forgotten_as_dead_is_recorded_again_and_says_what_that_changes(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.jobs.worker")
    told: list[frozenset[str]] = []

    async def kinds_changed(conn: AsyncConnection, changed: frozenset[str]) -> None:
        told.append(changed)

    # a 1.5 s lease: its row is refreshed every 0.5 s
    worker = Worker(db, {KIND: _noop}, WorkerConfig(lease_seconds=1.5, poll_seconds=0.05),
                    kinds_changed=kinds_changed)  # fmt: skip
    running = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: _listed(db, worker), BOUND, "the worker in the worker list")
        assert told == [frozenset({KIND})]
        async with db.begin() as conn:  # what another worker's start does to a stale row
            await conn.execute(text("DELETE FROM worker_process"))
        await wait_for(lambda: _listed(db, worker), BOUND, "the worker listed again")
        assert told == [frozenset({KIND}), frozenset({KIND})]
    finally:
        worker.stop()
        await asyncio.wait_for(running, BOUND)
    said = [r.getMessage() for r in caplog.records if "was gone" in r.getMessage()]
    assert said == [f"worker {worker.owner}: its row in the worker list was gone (taken for "
                    "dead, unseen too long); recording it again"], said
