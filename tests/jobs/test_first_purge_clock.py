"""A workspace's first purge is due an hour on by the database server's clock, as every other
due time (tests/jobs/test_due_clock.py): creating an import queued it due at the creating
process's now plus an hour, so on a host whose clock was three hours behind it was due two
hours before it was queued, and on one three hours ahead, four hours on."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.imports.batches import create_upload_batch
from bot.imports.importer import import_files
from bot.imports.job_kinds import PURGE_JOB
from bot.jobs import queue
from bot.workspaces import create_segment, ensure_workspace
from models import Database
from tests.jobs.clock import POSTGRES_ONLY, TEAM, skew_clock

pytestmark = POSTGRES_ONLY

_HOURS = 3 * 3600


async def _purges_due(db: Database) -> list[datetime]:
    async with db.begin() as conn:
        rows = await conn.execute(
            text("SELECT run_after FROM job WHERE team_id = :t AND kind = :k "
                 "AND state = 'queued'").columns(run_after=UTCDateTime()),
            {"t": TEAM, "k": PURGE_JOB},
        )  # fmt: skip
        return [r[0] for r in rows]


async def _assert_due_in_an_hour(db: Database) -> None:
    due = await _purges_due(db)
    assert len(due) == 1, due
    wait = (due[0] - await queue.database_now(db)).total_seconds()
    assert 3540 < wait <= 3600, f"the first purge is due in {wait:.0f} s, not an hour"


@pytest.mark.parametrize("skew", [_HOURS, -_HOURS])
async def test_an_import_on_a_host_whose_clock_is_off_queues_the_purge_an_hour_on(
    db: Database, monkeypatch: pytest.MonkeyPatch, skew: float
) -> None:
    """`referral-bot import` (and import --background, Review import: one draft for all)."""
    await ensure_workspace(db, TEAM)
    csv = "email\na@example.com\nb@example.com\n"
    with monkeypatch.context() as m:
        skew_clock(m, skew)
        await import_files(db, TEAM, [("people.csv", io.BytesIO(csv.encode()))],
                           segment="VIP", create_segment=True)  # fmt: skip
    await _assert_due_in_an_hour(db)


@pytest.mark.parametrize("skew", [_HOURS, -_HOURS])
async def test_an_upload_on_a_host_whose_clock_is_off_queues_the_purge_an_hour_on(
    db: Database, monkeypatch: pytest.MonkeyPatch, skew: float
) -> None:
    """A file uploaded in Slack (its review's batch is made apart from the others)."""
    await ensure_workspace(db, TEAM)
    segment = await create_segment(db, TEAM, "VIP")
    with monkeypatch.context() as m:
        skew_clock(m, skew)
        await create_upload_batch(db, TEAM, segment.id or 0, "U1", file_id="F1",
                                  label="people.csv")  # fmt: skip
    await _assert_due_in_an_hour(db)
