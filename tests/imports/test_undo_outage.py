"""An undo whose job ends for good in a database outage still says so in its thread.

The undo itself stays half done by design (*Undo import* again, or `referral-bot undo N`,
finishes it), so only the report of its stop is at stake: telling the thread needs the
database (a worker with Slack posts once, keyed in the database; one without queues a report
job), failed too, and the worker recorded the job failed once the database was back. Nothing
told the import's thread, nor republished Home, that the undo had stopped and how to finish
it: the thread went on saying nothing of it.
"""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import text

from bot.imports.importer import import_files
from bot.imports.job_kinds import UNDO_JOB
from bot.imports.undo import request_undo, undo_handler
from bot.workspaces import ensure_workspace
from models import Database
from tests.fakes.slack_api import FakeSlack
from tests.imports.outage import (
    CHANNEL,
    ENDS,
    LAST_ATTEMPT_FAILS,
    LEAD,
    TEAM,
    WORKERS_DIED,
    Outage,
    notifier,
    out_of_attempts,
    reviewed,
    run_in_outage,
    run_into_outage_at_redraw,
)
from tests.imports.outage import slack as slack  # the fixture


async def _being_undone(db: Database, slack: FakeSlack) -> tuple[int, str]:
    """An import reviewed in Slack (its review message the thread), its undo asked by a lead
    and not run yet: the batch's id and the thread's ts."""
    await ensure_workspace(db, TEAM)
    csv = "email,first_name\na@example.com,A\nb@example.com,B\n"
    result = await import_files(db, TEAM, [("people.csv", io.BytesIO(csv.encode()))],
                                segment="VIP", create_segment=True)  # fmt: skip
    batch = result.batch.id or 0
    thread = await reviewed(db, slack, batch)
    await request_undo(db, TEAM, batch, LEAD, remove_advocates=False, window_days=7)
    return batch, thread


async def _ended(db: Database, batch: int) -> tuple[str, str]:
    """The undo job's state and the import's."""
    async with db.begin() as conn:
        job = (await conn.execute(text("SELECT state FROM job WHERE kind = :k"),
                                  {"k": UNDO_JOB})).scalar_one()  # fmt: skip
        status = (await conn.execute(text("SELECT status FROM import_batch WHERE id = :b"),
                                     {"b": batch})).scalar_one()  # fmt: skip
    return str(job), str(status)


@pytest.mark.parametrize("end", ENDS)
async def test_an_undo_stopped_in_an_outage_says_so_in_its_thread_once_the_database_is_back(
    db: Database, db_env: dict[str, str], slack: FakeSlack, end: str
) -> None:
    batch, thread = await _being_undone(db, slack)
    await out_of_attempts(db, UNDO_JOB, end)
    outage = Outage(db, "import_batch", "seen_key", reads=end == WORKERS_DIED)
    await run_in_outage(db_env, outage, UNDO_JOB,
                        lambda w: undo_handler(10, notifier(slack, w)), end)  # fmt: skip
    assert await _ended(db, batch) == ("failed", "undoing")  # stopped: finishing it is asked
    said = [m["text"] for m in slack.messages_in(CHANNEL, thread)]
    assert sum(f"Undoing import #{batch} into *VIP* stopped part way" in t
               for t in said) == 1, said  # fmt: skip


async def test_an_undo_stopped_in_an_outage_by_a_worker_without_slack_leaves_its_report(
    db: Database, db_env: dict[str, str], slack: FakeSlack
) -> None:
    batch, _ = await _being_undone(db, slack)
    await out_of_attempts(db, UNDO_JOB, LAST_ATTEMPT_FAILS)
    outage = Outage(db, "import_batch")
    await run_in_outage(db_env, outage, UNDO_JOB, lambda _: undo_handler(10))
    assert await _ended(db, batch) == ("failed", "undoing")
    async with db.begin() as conn:  # a worker with Slack makes it
        reports = (await conn.execute(text("SELECT payload FROM job WHERE kind = "
                                           "'slack_report'"))).scalars().all()  # fmt: skip
    assert [json.loads(r) for r in reports] == [{"event": "undo_stopped",
                                                 "ids": {"batch_id": batch}}]


async def test_an_undo_done_as_the_database_goes_away_says_so_once_it_is_back(
    db: Database, db_env: dict[str, str], slack: FakeSlack
) -> None:
    """The undo's last attempt did it all, and the database went away as its thread was
    being told: the job failed, and the thread never said the import was undone."""
    batch, thread = await _being_undone(db, slack)
    await out_of_attempts(db, UNDO_JOB, LAST_ATTEMPT_FAILS)
    outage = Outage(db, "import_batch", "seen_key")
    await run_into_outage_at_redraw(db_env, slack, outage, UNDO_JOB,
                                    lambda w: undo_handler(10, notifier(slack, w)))  # fmt: skip
    assert await _ended(db, batch) == ("done", "undone")
    said = [m["text"] for m in slack.messages_in(CHANNEL, thread)]
    assert sum(f"Import #{batch} was undone" in t for t in said) == 1, said


async def test_an_undo_whose_last_worker_died_after_finishing_it_says_it_was_undone(
    db: Database, slack: FakeSlack
) -> None:
    """The undo's last attempt did it all (the import is undone), and its worker died before
    it told the thread. The next worker gives up on the job, as on any whose every attempt's
    worker died: it told the thread the undo had stopped, which the notifier drops of an
    undone import, so the thread never heard it was undone."""
    import asyncio

    from bot.imports.undo import run_undo
    from bot.jobs.queue import claim
    from tests.imports.outage import run_jobs

    batch, thread = await _being_undone(db, slack)
    await out_of_attempts(db, UNDO_JOB, LAST_ATTEMPT_FAILS)  # one attempt, its last
    dying = await claim(db, "worker-that-dies", 0.2, {UNDO_JOB})
    assert dying is not None
    await run_undo(db, TEAM, batch, chunk_size=10, job=(dying.id, "worker-that-dies"))
    await asyncio.sleep(0.3)  # killed before telling the thread: its lease lapses
    await run_jobs(db, {UNDO_JOB: undo_handler(10, notifier(slack, db))})
    assert (await _ended(db, batch))[1] == "undone"
    said = [m["text"] for m in slack.messages_in(CHANNEL, thread)]
    assert sum(f"Import #{batch} was undone" in t for t in said) == 1, said
