"""*Finish the undo* says a database error that stopped the undo in words.

An undo whose job stopped for good opens *Finish the undo*, which says why it stopped: its
job's last error, which for a database error is what `referral-bot jobs` shows, the driver's
class and the first line of its message ("InterfaceError: cannot perform operation:
connection is closed", asyncpg's DataError quoting a parameter's value: an email address).
Slack says it in words, as the import's thread does (bot.jobs.worker.database_words), and
`referral-bot jobs` still shows the error itself."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import text

from bot.imports.job_kinds import UNDO_JOB
from bot.imports.undo import undo_handler
from bot.jobs.worker import DATABASE_DOWN, DATABASE_REFUSED
from handlers.messages import esc
from tests import shell
from tests.handlers.conftest import LEAD, Harness
from tests.handlers.test_home import _open_home
from tests.handlers.test_undo import _cli_import, _click_undo, _import_row, _undo_from_home
from tests.imports.outage import LAST_ATTEMPT_FAILS, Outage, out_of_attempts, run_in_outage


async def _stopped_undo(app: Harness) -> int:
    """A shell import whose undo a lead asked for from Home; its job not run yet."""
    batch = await _cli_import(app, "Newsletter", b"email\na@example.com\nb@example.com\n")
    await _undo_from_home(app, batch)
    return batch


async def _finish_the_undo(app: Harness) -> dict[str, Any]:
    """*Undo* on Home's row of the import: the *Finish the undo* modal."""
    row = _import_row(await _open_home(app, LEAD), "Newsletter")
    modal = await _click_undo(app, LEAD, value=row["accessory"]["value"],
                              view=app.slack.home_views[LEAD])  # fmt: skip
    assert modal["submit"]["text"] == "Finish the undo"
    return modal


def _bracketed(words: str) -> str:
    """`words` as the modal brackets them: without their full stop."""
    return words.removesuffix(".")


async def _last_error(app: Harness) -> str:
    async with app.db.begin() as conn:
        return str((await conn.execute(text(
            "SELECT last_error FROM job WHERE kind = :k"), {"k": UNDO_JOB})).scalar_one())


async def test_an_undo_stopped_by_a_database_outage_says_so_in_words(
    app: Harness, db_env: dict[str, str],
) -> None:
    batch = await _stopped_undo(app)
    # its last attempt meets the database locked by another client, which gives up waiting
    await out_of_attempts(app.db, UNDO_JOB, LAST_ATTEMPT_FAILS)
    await run_in_outage(db_env, Outage(app.db, "import_batch", "seen_key"), UNDO_JOB,
                        lambda _: undo_handler(10))  # fmt: skip
    recorded = await _last_error(app)
    assert recorded.split(": ")[0] in ("OperationalError", "LockNotAvailableError"), recorded

    shown = json.dumps((await _finish_the_undo(app))["blocks"])
    assert (f"The undo of import #{batch} stopped part way* ({esc(_bracketed(DATABASE_DOWN))})"
            in shown), shown
    assert recorded.split(": ")[0] not in shown
    # `referral-bot jobs` still shows the error itself
    jobs = await asyncio.to_thread(shell.run, db_env, "jobs", "--all")
    assert recorded.split(": ")[0] in jobs.stdout, jobs.stdout


async def _failed_with(app: Harness, error: str) -> None:
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE job SET state = 'failed', attempts = max_attempts, "
                                "last_error = :e WHERE kind = :k"), {"e": error, "k": UNDO_JOB})


# errors as the undo's job records them (bot.jobs.worker._job_error), by the database's kind
_RECORDED = {
    "postgres": [
        ("InterfaceError: cannot perform operation: connection is closed", DATABASE_DOWN),
        ("DataError: invalid input for query argument $1: 'ada@example.com' (expected int, "
         "got str)", DATABASE_REFUSED),
        ("TimeoutError: QueuePool limit of size 5 overflow 10 reached, connection timed out, "
         "timeout 30.00 (Background on this error at: https://sqlalche.me/e/20/3o7r)",
         DATABASE_DOWN),
    ],
    "sqlite": [
        ("OperationalError: database is locked", DATABASE_DOWN),
        ("IntegrityError: UNIQUE constraint failed: contact.team_id, contact.email",
         DATABASE_REFUSED),
        ("TimeoutError: QueuePool limit of size 5 overflow 10 reached, connection timed out, "
         "timeout 30.00 (Background on this error at: https://sqlalche.me/e/20/3o7r)",
         DATABASE_DOWN),
    ],
}


@pytest.mark.parametrize("which", range(3))
async def test_a_recorded_database_error_is_said_in_words(
    app: Harness, db_env: dict[str, str], which: int,
) -> None:
    error, words = _RECORDED["sqlite" if app.db.is_sqlite else "postgres"][which]
    batch = await _stopped_undo(app)
    await _failed_with(app, error)
    shown = json.dumps((await _finish_the_undo(app))["blocks"])
    said = f"The undo of import #{batch} stopped part way* ({esc(_bracketed(words))})"
    assert said in shown, shown
    assert error.split(": ")[0] not in shown and "example.com" not in shown
    jobs = await asyncio.to_thread(shell.run, db_env, "jobs", "--all")
    assert error.split(": ")[0] in jobs.stdout, jobs.stdout


@pytest.mark.parametrize("error", [
    "RuntimeError: the segment's row was gone",  # not the database's: as recorded
    "TimeoutError: ",  # asyncio's, not SQLAlchemy's pool
])
async def test_another_error_is_said_as_recorded(app: Harness, error: str) -> None:
    batch = await _stopped_undo(app)
    await _failed_with(app, error)
    shown = json.dumps((await _finish_the_undo(app))["blocks"])
    assert f"The undo of import #{batch} stopped part way* ({esc(error)})" in shown, shown


async def test_a_cancelled_undo_says_it_was_cancelled_not_an_earlier_attempts_error(
    app: Harness, db_env: dict[str, str],
) -> None:
    """An attempt failed (the database locked: the job was queued again, its error kept), then
    someone cancelled the job: the modal said the database had stopped the undo."""
    batch = await _stopped_undo(app)
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE job SET attempts = 1, last_error = :e WHERE kind = :k"),
                           {"e": "OperationalError: database is locked", "k": UNDO_JOB})
        job_id = (await conn.execute(text("SELECT id FROM job WHERE kind = :k"),
                                     {"k": UNDO_JOB})).scalar_one()  # fmt: skip
    cancelled = await asyncio.to_thread(shell.run, db_env, "jobs", "cancel", str(job_id))
    assert cancelled.returncode == 0, cancelled.stderr
    shown = json.dumps((await _finish_the_undo(app))["blocks"])
    assert f"The undo of import #{batch} stopped part way* (its job was cancelled)" in shown, shown
    assert esc(_bracketed(DATABASE_DOWN)) not in shown
