"""An import whose job ends in a database outage ends as it would have, once it is back.

7989c97 made the last attempt's failing of the import ride out the outage; giving up on a job
whose every worker died (GivingUp) still failed the import once, and an error meeting it was
only logged: the import said "importing" for good. The reason the thread was given was the
database error's own text: its SQL statement and parameters. And an import done as the
database went away enrolled nobody in the campaigns targeting its segment, for good.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from bot.imports.background import enqueue_file_import, import_handler
from bot.imports.batches import get_batch
from bot.imports.job_kinds import IMPORT_JOB
from bot.jobs import queue
from bot.jobs.worker import DATABASE_DOWN
from bot.notify import Silent
from bot.workspaces import ensure_workspace
from models import Database, Job
from tests.fakes.slack_api import FakeSlack
from tests.imports.outage import (
    ENDS,
    LAST_ATTEMPT_FAILS,
    WORKERS_DIED,
    Outage,
    notifier,
    out_of_attempts,
    reviewed,
    run_in_outage,
    run_into_outage_at_redraw,
    run_jobs,
)
from tests.jobs.test_queue import csv_file
from tests.jobs.test_worker_faults import impatient
from tests.jobs.test_worker_processes import wait_for
from tests.waiting import Retries, until_retried


class Thread(Silent):
    """The import's thread: the results it is told."""

    def __init__(self) -> None:
        self.finished: list[int] = []

    async def import_finished(self, team_id: str, batch_id: int) -> None:
        self.finished.append(batch_id)


async def queued_import(db: Database, tmp_path: Path, **options: int) -> tuple[Job, int]:
    """A CSV of 10 contacts queued for import into a new segment of T1's (`options`: the
    queuing's, as max_attempts), not run yet: the import's job and its batch's id."""
    await ensure_workspace(db, "T1")
    job = await enqueue_file_import(db, "T1", [csv_file(tmp_path, "a.csv", 10)], segment="S",
                                    create_segment=True, **options)  # fmt: skip
    return job, json.loads(job.payload or "{}")["batch_id"]


@pytest.mark.parametrize("end", ENDS)
async def test_an_import_given_up_in_an_outage_fails_in_words_once_the_database_is_back(
    db: Database, db_env: dict[str, str], tmp_path: Path, end: str
) -> None:
    job, batch_id = await queued_import(db, tmp_path)
    await out_of_attempts(db, IMPORT_JOB, end)
    outage = Outage(db, "import_batch", "import_source", reads=end == WORKERS_DIED)
    thread = Thread()
    await run_in_outage(db_env, outage, IMPORT_JOB, lambda _: import_handler(3, thread), end)
    ended = await queue.get_job(db, "T1", job.id or 0)
    assert ended is not None and ended.state == "failed", ended
    batch = await get_batch(db, "T1", batch_id)
    assert batch is not None and batch.status == "failed", batch
    if end == LAST_ATTEMPT_FAILS:
        assert batch.error == (f"{DATABASE_DOWN} The segment 'S', created for this import, was "
                               "removed again."), batch.error  # not the SQL it failed on
    else:
        assert (batch.error or "").startswith("gave up: the worker running it stopped"), batch
    assert thread.finished == [batch_id], "the thread wasn't told the import failed, once"


# The database failing every write to a table the import's end writes (its enrollments),
# until allowed again, with an error of its own being unavailable, as `surely` waits out (a
# trigger's RAISE is a constraint's on SQLite or a plain exception on PostgreSQL: a bug, not
# retried, and so is a table that isn't there). SQLite: each write to the table also writes a
# row into a second file another client holds locked, "database is locked" as a busy database
# says it; PostgreSQL: disk full (53100).
def _refuse(table: str) -> list[str]:
    return ["CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' "
            "USING ERRCODE = 'disk_full'; END $$",
            f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"]  # fmt: skip


class _LockedGate:
    """SQLite: a worker's database whose writes to `table` also write to `gate`, a file of
    its own, which `hold` locks (another client's exclusive transaction) and `allow` lets go:
    meanwhile those writes, and only those, fail as a locked database's do."""

    def __init__(self, db_env: dict[str, str], table: str, gate: Path) -> None:
        with closing(sqlite3.connect(gate)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # its readers (ATTACH) not kept out
            conn.execute("CREATE TABLE IF NOT EXISTS gate_row (n INTEGER)")
        self.database = impatient(db_env)

        def through_the_gate(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"ATTACH DATABASE '{gate}' AS gate")
            cursor.execute(f"CREATE TEMP TRIGGER gate BEFORE INSERT ON main.{table} "
                           "BEGIN INSERT INTO gate_row VALUES (1); END")  # fmt: skip
            cursor.close()

        event.listen(self.database.engine.sync_engine, "connect", through_the_gate)
        self._holder = sqlite3.connect(gate, isolation_level=None, check_same_thread=False)

    def hold(self) -> None:
        self._holder.execute("BEGIN EXCLUSIVE")

    def allow(self) -> None:
        if self._holder.in_transaction:
            self._holder.execute("ROLLBACK")

    async def close(self) -> None:
        self.allow()
        self._holder.close()
        await self.database.dispose()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token="xoxb-test", team_id="T1") as fake:
        yield fake


async def test_an_import_done_as_the_database_goes_away_enrolls_its_contacts_once_it_is_back(
    db: Database, db_env: dict[str, str], tmp_path: Path, slack: FakeSlack
) -> None:
    refused = "enrollment"
    job, batch_id = await queued_import(db, tmp_path, max_attempts=1)
    review = await reviewed(db, slack, batch_id)
    async with db.begin() as conn:  # Spring, live, targets S
        await conn.execute(text(
            "INSERT INTO campaign (team_id, name, name_key, store_url, sender, offer, state, "
            "invite_email, invite_delay_days, created_by, created_at, updated_at) VALUES "
            "('T1', 'Spring', 'spring', 'https://shop.example/', '', '', 'live', :yes, 0, "
            "'U1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"yes": True})  # fmt: skip
        await conn.execute(text(
            "INSERT INTO campaign_segment (campaign_id, segment_id, team_id, role, created_at) "
            "SELECT c.id, b.segment_id, 'T1', 'target', CURRENT_TIMESTAMP FROM campaign c, "
            "import_batch b WHERE b.id = :b"), {"b": batch_id})  # fmt: skip
        if db.dialect == "postgresql":
            for statement in _refuse(refused):
                await conn.execute(text(statement))
    gate = _LockedGate(db_env, refused, tmp_path / "gate.db") if db.is_sqlite else None
    worker_db = gate.database if gate is not None else db
    if gate is not None:
        gate.hold()

    async def back_after_the_import() -> None:
        async def done() -> bool:
            batch = await get_batch(db, "T1", batch_id)
            return batch is not None and batch.status == "done"

        await wait_for(done, 60, "the import to be done")
        await until_retried(retries)  # the enrollment met the refusal, and waits it out
        if gate is not None:
            gate.allow()
            return
        async with db.begin() as conn:
            await conn.execute(text(f"DROP TRIGGER refuse ON {refused}"))

    retries = Retries.watch("enrolling its contacts")
    back = asyncio.create_task(back_after_the_import())
    try:
        await run_jobs(worker_db, {IMPORT_JOB: import_handler(3, notifier(slack, worker_db,
                                                                          "U1"))})  # fmt: skip
    finally:
        await back
        retries.stop()
        if gate is not None:
            await gate.close()
    ended = await queue.get_job(db, "T1", job.id or 0)
    assert ended is not None and ended.state == "done", ended
    async with db.begin() as conn:
        enrolled = (await conn.execute(text("SELECT COUNT(*) FROM enrollment WHERE batch_id = :b"),
                                       {"b": batch_id})).scalar()  # fmt: skip
    assert enrolled == 1, "its contacts were never enrolled in Spring"
    offers = [m for m in slack.messages_in("C0001", review)
              if m["text"].startswith("Next step: target a campaign")]  # fmt: skip
    assert len(offers) == 1, slack.messages_in("C0001", review)


async def test_an_import_done_as_the_database_goes_away_tells_its_thread_once_it_is_back(
    db: Database, db_env: dict[str, str], tmp_path: Path, slack: FakeSlack
) -> None:
    """Its thread's review redrawn, the database went away before the next step was offered:
    the job failed, and the thread never offered to target a campaign."""
    job, batch_id = await queued_import(db, tmp_path, max_attempts=1)
    review = await reviewed(db, slack, batch_id)
    outage = Outage(db, "import_batch", "seen_key")
    # one chunk: no progress reply is updated, the review's redraw is the first update
    await run_into_outage_at_redraw(db_env, slack, outage, IMPORT_JOB,
                                    lambda w: import_handler(100, notifier(slack, w, "U1")))
    ended = await queue.get_job(db, "T1", job.id or 0)
    assert ended is not None and ended.state == "done", ended
    offers = [m for m in slack.messages_in("C0001", review)
              if m["text"].startswith("Next step: target a campaign")]  # fmt: skip
    assert len(offers) == 1, slack.messages_in("C0001", review)
