"""A file shared in Slack whose reading ends in a database outage still ends, in words.

Giving up fails the file's source with why, in the database: failing there too, the job was
recorded failed once the database was back, and the source stayed pending, the review
saying "Reading…" for good (nobody could approve the import, nor remove the file). Read, but
the database gone as the review was being redrawn, the job failed the same way and the
file's skipped rows were never shared in the thread.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from bot.imports.background import slack_file_handler
from bot.imports.batches import create_upload_batch
from bot.imports.job_kinds import SLACK_FILE_JOB
from bot.jobs.worker import DATABASE_DOWN, Handler
from bot.settings import load_settings
from bot.workspaces import create_segment, ensure_workspace
from handlers.slack_files import slack_fetcher
from models import Database
from tests.conftest import BACKEND
from tests.fakes.slack_api import FakeSlack
from tests.imports.outage import (
    CHANNEL,
    ENDS,
    LAST_ATTEMPT_FAILS,
    LEAD,
    TEAM,
    WORKERS_DIED,
    Outage,
    client_of,
    notifier,
    out_of_attempts,
    reviewed,
    run_in_outage,
    run_into_outage_at_redraw,
    skipped_rows_offers,
)
from tests.imports.outage import slack as slack  # the fixture


async def _uploaded(db: Database, slack: FakeSlack, content: bytes) -> tuple[int, str]:
    """A file shared in Slack, its review posted and its reading not run yet: the import's
    id and the review message's ts."""
    await ensure_workspace(db, TEAM)
    slack.add_file("F0001", "people.csv", content, channels=[CHANNEL])
    segment = await create_segment(db, TEAM, "VIP", actor=LEAD)
    batch, _ = await create_upload_batch(db, TEAM, segment.id or 0, LEAD, file_id="F0001",
                                         label="people.csv")  # fmt: skip
    return batch, await reviewed(db, slack, batch)


def _handler(db: Database, slack: FakeSlack, worker_db: Database) -> Handler:
    settings = load_settings(database_url=db.url, slack_bot_token="xoxb-test",
                             slack_api_url=slack.api_url,
                             slack_file_hosts=[slack.files_host])  # fmt: skip
    return slack_file_handler(slack_fetcher(settings, client_of(slack)),
                              notifier=notifier(slack, worker_db))  # fmt: skip


@pytest.mark.parametrize("end", ENDS)
async def test_a_slack_file_given_up_in_an_outage_fails_once_the_database_is_back(
    db: Database, db_env: dict[str, str], slack: FakeSlack, end: str
) -> None:
    batch, review = await _uploaded(db, slack, b"email\na@example.com\n")
    await out_of_attempts(db, SLACK_FILE_JOB, end)
    # giving up reads the source again: the database keeps reads out too, as when it is down
    outage = Outage(db, "import_batch", "import_source", reads=end == WORKERS_DIED)
    await run_in_outage(db_env, outage, SLACK_FILE_JOB, lambda w: _handler(db, slack, w), end)
    async with db.begin() as conn:
        status, error = (await conn.execute(text(
            "SELECT status, error FROM import_source WHERE batch_id = :b"), {"b": batch})).one()
    assert status == "failed", (status, error)
    if end == LAST_ATTEMPT_FAILS:  # in words, not the SQL it failed on
        assert error == f"Could not read the file: {DATABASE_DOWN}"
    else:
        assert error.startswith("Could not read the file: gave up: the worker"), error
    drawn = slack.message(CHANNEL, review)
    assert "Could not read the file" in str(drawn.get("blocks")), drawn


async def test_a_slack_file_read_as_the_database_goes_away_shares_its_skipped_rows_once_back(
    db: Database, db_env: dict[str, str], slack: FakeSlack
) -> None:
    batch, _ = await _uploaded(db, slack, b"email\na@example.com\nnot an address\n")
    await out_of_attempts(db, SLACK_FILE_JOB, LAST_ATTEMPT_FAILS)
    outage = Outage(db, "import_batch", "import_source", "seen_key")
    await run_into_outage_at_redraw(db_env, slack, outage, SLACK_FILE_JOB,
                                    lambda w: _handler(db, slack, w))  # fmt: skip
    async with db.begin() as conn:
        status = (await conn.execute(text("SELECT status FROM import_source WHERE batch_id = :b"),
                                     {"b": batch})).scalar_one()  # fmt: skip
    assert status == "parsed"
    shared = skipped_rows_offers(slack)
    assert shared == [":page_facing_up: 1 rejected row in *people.csv* won't be imported."], shared


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite's readers can't be kept out")
async def test_a_slack_file_whose_last_attempt_starts_in_an_outage_fails_once_it_is_back(
    db: Database, db_env: dict[str, str], slack: FakeSlack
) -> None:
    """The job's first read (its source) comes before any give-up of the handler's: the
    database gone between the worker taking the job and that read, the job failed and the
    review said "Reading…" for good. The worker gives up on it itself now."""
    batch, review = await _uploaded(db, slack, b"email\na@example.com\n")
    await out_of_attempts(db, SLACK_FILE_JOB, LAST_ATTEMPT_FAILS)
    outage = Outage(db, "import_batch", "import_source", reads=True)
    await run_in_outage(db_env, outage, SLACK_FILE_JOB, lambda w: _handler(db, slack, w))
    async with db.begin() as conn:
        status, error = (await conn.execute(text(
            "SELECT status, error FROM import_source WHERE batch_id = :b"), {"b": batch})).one()
    assert (status, error) == ("failed", f"Could not read the file: {DATABASE_DOWN}")
    drawn = slack.message(CHANNEL, review)
    assert "Could not read the file" in str(drawn.get("blocks")), drawn
