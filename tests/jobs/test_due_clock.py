"""Due times by the database server's clock: a host whose clock is off runs nothing early or
late by its skew (jobs' run_after, an upload review's posting key)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from bot.imports.batches import create_upload_batch, review_post_key
from bot.jobs import queue
from bot.once import forget, hold
from bot.workspaces import create_segment, ensure_workspace
from handlers.uploads import POSTING_GIVEN_UP
from models import Database
from tests.jobs.clock import POSTGRES_ONLY, TEAM, skew_clock

pytestmark = POSTGRES_ONLY


async def test_a_host_whose_clock_is_ahead_claims_no_job_before_it_is_due(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim compared run_after with the claiming worker's own clock: on a host 90 s ahead
    a job due in a minute (a send job for invites held that long) ran at once."""
    await ensure_workspace(db, TEAM)
    due = await queue.database_now(db) + timedelta(seconds=60)
    async with db.begin() as conn:
        await queue.enqueue_in(conn, TEAM, "x", {}, run_after=due)
    with monkeypatch.context() as m:
        skew_clock(m, 90)
        assert await queue.claim(db, "host-ahead", lease_seconds=30) is None
    async with db.begin() as conn:  # a minute on
        await conn.execute(text("UPDATE job SET run_after = run_after - INTERVAL '60 seconds'"))
    with monkeypatch.context() as m:
        skew_clock(m, 90)
        assert await queue.claim(db, "host-ahead", lease_seconds=30) is not None


async def test_a_job_queued_or_handed_back_on_a_host_whose_clock_is_ahead_runs_at_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job queued to run now was stamped with the queuing process's clock: queued on a
    host 90 s ahead, every other worker left it waiting a minute and a half; so did a job
    that host's worker handed back as it stopped."""
    await ensure_workspace(db, TEAM)
    with monkeypatch.context() as m:
        skew_clock(m, 90)
        job = await queue.enqueue(db, TEAM, "x", {}, dedupe_key="approve:1")
    taken = await queue.claim(db, "host-right", lease_seconds=30)
    assert taken is not None and taken.id == job.id
    assert await queue.release(db, taken, "host-right")
    with monkeypatch.context() as m:
        skew_clock(m, 90)
        again = await queue.claim(db, "host-ahead", lease_seconds=30)
        assert again is not None
        assert await queue.release(db, again, "host-ahead")  # that host's worker stops
    taken = await queue.claim(db, "host-right", lease_seconds=30)
    assert taken is not None and taken.id == job.id


async def test_a_retry_stamped_on_a_host_whose_clock_is_behind_waits_its_backoff(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed job's retry was due at its worker's now plus the backoff: failed on a host
    90 s behind, a retry meant to wait a minute was due half a minute before it failed."""
    await ensure_workspace(db, TEAM)
    await queue.enqueue(db, TEAM, "x", {})
    job = await queue.claim(db, "host-behind", lease_seconds=30)
    assert job is not None
    with monkeypatch.context() as m:
        skew_clock(m, -90)
        assert await queue.fail(db, job, "host-behind", "boom", retry_base=60)
    assert await queue.claim(db, "host-right", lease_seconds=30) is None
    retried = await queue.get_job(db, TEAM, job.id or 0)
    assert retried is not None and retried.state == "queued"
    wait = (retried.run_after - await queue.database_now(db)).total_seconds()
    assert 50 < wait <= 60


async def test_an_upload_review_a_host_whose_clock_is_behind_is_posting_is_not_posted_again(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review import took the key of posting the review with its own clock: a click on a host
    3 minutes behind stamped it 3 minutes old, and a second click (another person, another
    host) a moment later took it as a dead poster's (older than POSTING_GIVEN_UP) and posted
    a second review. Nor after a failed post, when the next click takes it again."""
    await ensure_workspace(db, TEAM)
    segment = await create_segment(db, TEAM, "VIP")
    for attempt in ("first click", "after a failed post"):
        with monkeypatch.context() as m:
            skew_clock(m, -180)
            batch, posting_here = await create_upload_batch(
                db, TEAM, segment.id or 0, "U1", file_id="F1", label="people.csv")
        assert posting_here, attempt
        key = review_post_key(batch)
        assert await hold(db, TEAM, key, stale_after=POSTING_GIVEN_UP) is False, attempt
        await forget(db, TEAM, key)  # its post failed: the next click posts it
