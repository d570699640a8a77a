"""An audience's reading that ends in a database outage still ends, and the review says so.

Giving up fails the source with why, in the database: failing there too, the job was recorded
failed once the database was back, and the source stayed pending, the review saying
"Reading…" for good and its import never approvable. Read, but the database gone as the
review was being redrawn, the job failed the same way and the audience's skipped rows were
never shared in the thread.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

from bot.imports.batches import create_batch
from bot.jobs.worker import DATABASE_DOWN, Handler
from bot.mailchimp import accounts, api
from bot.mailchimp.jobs import MAILCHIMP_JOB, mailchimp_handler, queue_audiences
from bot.workspaces import create_segment
from models import Database
from tests.conftest import BACKEND
from tests.fakes.mailchimp import FakeMailchimp
from tests.fakes.slack_api import FakeSlack
from tests.imports.outage import (
    CHANNEL,
    ENDS,
    LAST_ATTEMPT_FAILS,
    WORKERS_DIED,
    Outage,
    notifier,
    out_of_attempts,
    reviewed,
    run_in_outage,
    run_into_outage_at_redraw,
    skipped_rows_offers,
)
from tests.imports.outage import slack as slack  # the fixture
from tests.mailchimp.test_mailchimp import KEY, SECRET, TEAM, _settings
from tests.mailchimp.test_mailchimp import mc as mc  # the fixture

LEAD = "U1"


async def _reading(db: Database, mc: FakeMailchimp, slack: FakeSlack) -> tuple[int, str]:
    """An import reviewed in Slack reading the Regulars audience, on its job's last attempt:
    the source's id and the review message's ts."""
    settings = _settings(db, mc)
    await accounts.connect_api_key(db, TEAM, KEY, user=LEAD, secret_key=SECRET,
                                   api_url=settings.mailchimp_api_url)  # fmt: skip
    segment = await create_segment(db, TEAM, "From MC", actor=LEAD)
    batch = await create_batch(db, TEAM, segment.id or 0, LEAD)
    review = await reviewed(db, slack, batch.id or 0)
    (source,) = await queue_audiences(db, TEAM, batch.id or 0,
                                      [api.Audience("aud1", "Regulars", 4)])  # fmt: skip
    return source, review


def _handler(db: Database, mc: FakeMailchimp, slack: FakeSlack) -> Callable[[Database], Handler]:
    """The audience's reading, on a worker's own engine: what _reading set up reads it."""
    return lambda worker_db: mailchimp_handler(_settings(db, mc),
                                               notifier(slack, worker_db, LEAD))  # fmt: skip


async def _source(db: Database, source: int) -> tuple[str, str]:
    async with db.begin() as conn:
        status, error = (await conn.execute(text(
            "SELECT status, error FROM import_source WHERE id = :s"), {"s": source})).one()
    return str(status), str(error or "")


@pytest.mark.parametrize("end", ENDS)
async def test_an_audience_given_up_in_an_outage_fails_once_the_database_is_back(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp, slack: FakeSlack, end: str
) -> None:
    source, review = await _reading(db, mc, slack)
    await out_of_attempts(db, MAILCHIMP_JOB, end)
    # giving up reads the source again: the database keeps reads out too, as when it is down
    outage = Outage(db, "import_batch", "import_source", reads=end == WORKERS_DIED)
    await run_in_outage(db_env, outage, MAILCHIMP_JOB, _handler(db, mc, slack), end)
    status, error = await _source(db, source)
    assert status == "failed", (status, error)
    if end == LAST_ATTEMPT_FAILS:  # in words: not "something went wrong on our side"
        assert error == f"Could not read the audience: {DATABASE_DOWN}"
    else:
        assert error.startswith("Could not read the audience: gave up: the worker"), error
    drawn = slack.message(CHANNEL, review)
    assert "Could not read the audience" in str(drawn.get("blocks")), drawn


async def test_an_audience_read_as_the_database_goes_away_shares_its_skipped_rows_once_back(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp, slack: FakeSlack
) -> None:
    source, _ = await _reading(db, mc, slack)
    await out_of_attempts(db, MAILCHIMP_JOB, LAST_ATTEMPT_FAILS)
    outage = Outage(db, "import_batch", "import_source", "seen_key")
    await run_into_outage_at_redraw(db_env, slack, outage, MAILCHIMP_JOB, _handler(db, mc, slack))
    assert (await _source(db, source))[0] == "parsed"
    shared = skipped_rows_offers(slack)  # the unsubscribed and the cleaned
    assert len(shared) == 1 and "in *Regulars*" in shared[0], shared


async def test_a_key_revoked_and_met_in_an_outage_fails_the_audience_saying_reconnect(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp, slack: FakeSlack
) -> None:
    """Mailchimp refuses the key, and noting that for App Home fails with the database: the
    source stayed pending, "Reading…" for good, and Home never said to reconnect."""
    source, _ = await _reading(db, mc, slack)
    await out_of_attempts(db, MAILCHIMP_JOB, LAST_ATTEMPT_FAILS)
    mc.revoke(KEY)
    outage = Outage(db, "import_batch", "import_source", "mailchimp_account")
    await run_in_outage(db_env, outage, MAILCHIMP_JOB, _handler(db, mc, slack))
    status, error = await _source(db, source)
    assert status == "failed" and "reconnect Mailchimp" in error, (status, error)
    async with db.begin() as conn:
        refused = (await conn.execute(text("SELECT refused_at FROM mailchimp_account"))).scalar()
    assert refused is not None, "App Home doesn't say the key was refused"


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite's readers can't be kept out")
async def test_an_audience_whose_last_attempt_starts_in_an_outage_fails_once_it_is_back(
    db: Database, db_env: dict[str, str], mc: FakeMailchimp, slack: FakeSlack
) -> None:
    """The job's first read (its source) comes before any give-up of the handler's: the
    database gone between the worker taking the job and that read, the job failed and the
    source said "Reading…" for good. The worker gives up on it itself now."""
    source, review = await _reading(db, mc, slack)
    await out_of_attempts(db, MAILCHIMP_JOB, LAST_ATTEMPT_FAILS)
    outage = Outage(db, "import_batch", "import_source", reads=True)
    await run_in_outage(db_env, outage, MAILCHIMP_JOB, _handler(db, mc, slack))
    assert await _source(db, source) == ("failed",
                                         f"Could not read the audience: {DATABASE_DOWN}")
    drawn = slack.message(CHANNEL, review)
    assert "Could not read the audience" in str(drawn.get("blocks")), drawn
