"""An import whose last attempt meets a database outage at its very start still ends failed.

A handler gives up in its own `except`, but the import's first read (its batch) comes before
any: the database gone between the worker taking the job and that read, the job was recorded
failed once the database was back, and nothing failed the import. An import queued from the
shell stayed a draft nobody could review or approve, its segment not deletable. The worker
gives up on it itself now, through the outage.

PostgreSQL only: SQLite's readers can't be kept out (its WAL lets them read through any
writer's lock), so there the first read works and the run meets the outage later, inside
the import's own give-up (tests/imports/test_import_outage.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.imports.background import import_handler
from bot.imports.batches import get_batch
from bot.imports.job_kinds import IMPORT_JOB
from bot.jobs import queue
from bot.jobs.worker import DATABASE_DOWN
from models import Database
from tests.conftest import BACKEND
from tests.imports.outage import LAST_ATTEMPT_FAILS, Outage, out_of_attempts, run_in_outage
from tests.imports.test_import_outage import Thread, queued_import

pytestmark = pytest.mark.skipif(BACKEND != "postgres",
                                reason="SQLite's readers can't be kept out")  # fmt: skip


async def test_an_import_whose_last_attempt_starts_in_an_outage_fails_once_it_is_back(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    job, batch_id = await queued_import(db, tmp_path)
    await out_of_attempts(db, IMPORT_JOB, LAST_ATTEMPT_FAILS)
    # reads kept out too, as when the database is down: the run's first read fails
    outage = Outage(db, "import_batch", "import_source", reads=True)
    thread = Thread()
    await run_in_outage(db_env, outage, IMPORT_JOB, lambda _: import_handler(3, thread))
    ended = await queue.get_job(db, "T1", job.id or 0)
    assert ended is not None and ended.state == "failed", ended
    batch = await get_batch(db, "T1", batch_id)
    assert batch is not None and batch.status == "failed", batch  # not a draft for good
    assert batch.error == (f"{DATABASE_DOWN} The segment 'S', created for this import, was "
                           "removed again."), batch.error
    assert thread.finished == [batch_id], "the thread wasn't told the import failed, once"
