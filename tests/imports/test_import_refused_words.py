"""An import whose last attempt meets a database error that isn't an outage (a statement the
database refuses: a constraint, a bug) fails with that said in words: the import's error
(Home, its thread) showed the error's own text, its SQL statement and parameters."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from bot.imports.background import import_handler
from bot.imports.batches import get_batch
from bot.imports.job_kinds import IMPORT_JOB
from bot.jobs import queue
from bot.jobs.worker import DATABASE_REFUSED
from models import Database
from tests.imports.outage import run_jobs
from tests.imports.test_import_outage import queued_import


def _refuse_contacts(dialect: str) -> list[str]:
    """Every new contact refused by the database, as a constraint would."""
    if dialect == "sqlite":
        return ["CREATE TRIGGER refuse BEFORE INSERT ON contact "
                "BEGIN SELECT RAISE(ABORT, 'refused by a check'); END"]  # fmt: skip
    return ["CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by a check' USING ERRCODE = 'check_violation'; "
            "END $$",
            "CREATE TRIGGER refuse BEFORE INSERT ON contact "
            "FOR EACH ROW EXECUTE FUNCTION refuse()"]  # fmt: skip


async def test_an_import_refused_by_the_database_fails_in_words(db: Database,
                                                                tmp_path: Path) -> None:
    job, batch_id = await queued_import(db, tmp_path, max_attempts=1)
    async with db.begin() as conn:
        for statement in _refuse_contacts(db.dialect):
            await conn.execute(text(statement))
    await run_jobs(db, {IMPORT_JOB: import_handler(3)})
    ended = await queue.get_job(db, "T1", job.id or 0)
    assert ended is not None and ended.state == "failed", ended
    batch = await get_batch(db, "T1", batch_id)
    assert batch is not None and batch.status == "failed", batch
    assert (batch.error or "").startswith(DATABASE_REFUSED), batch.error
    assert "INSERT" not in (batch.error or "") and "[SQL" not in (batch.error or "")
    assert "[SQL" not in (ended.last_error or ""), ended.last_error
