"""A worker whose start or stop can't tell what it changes is recorded all the same.

A worker's start and clean stop tell `kinds_changed` (the app's: App Home's refresh where
invites wait for a sender) in the transaction that records them. Sharing it whole, a failure
of that step (a bug, a statement timed out) rolled the record back: the worker ran jobs while
`referral-bot jobs` said they waited for one, retrying for ever as "recording that it is
alive failed"; and a stopping worker's row stayed until it went stale. The step runs in a
savepoint now: its failure is logged, with the worker and the kinds, and only it is undone.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.jobs import queue
from bot.workspaces import ensure_workspace
from models import Database
from tests.jobs.test_worker_forgotten import KIND, listed, running_worker


async def _failing(conn: AsyncConnection, changed: frozenset[str]) -> None:
    """A `kinds_changed` that writes, then fails: what it wrote must not stay either."""
    await queue.enqueue_in(conn, "T0001", KIND, {}, dedupe_key="written-by-the-hook")
    raise RuntimeError("the hook's own failure")


async def test_a_failing_kinds_changed_neither_keeps_a_worker_unlisted_nor_listed(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="bot.jobs.worker")
    await ensure_workspace(db, "T0001")  # so that the hook's write is one that could stay
    async with running_worker(db, _failing, lease_seconds=30.0) as worker:
        pass  # it got into the worker list, the hook failing: running_worker waits for that
    assert not await listed(db, worker)  # its clean stop removed it, the hook failing again
    assert await queue.find_by_key(db, "T0001", "written-by-the-hook") is None
    said = [r.getMessage() for r in caplog.records if "telling what that changes" in r.getMessage()]
    assert [line.split(" (")[0] for line in said] == [
        f"worker {worker.owner} started", f"worker {worker.owner} stopped"], said
    assert all(f"who can run {KIND} changed" in line for line in said), said
