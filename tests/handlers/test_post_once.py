"""Posts made once, whose worker died between taking their key and the post landing.

A post's key was taken before the post, and let go only if the post raised: a worker killed
in between (SIGKILL, the machine gone) left the key, and its job, run again once its lease
lapsed, found the key and skipped the post for good. The database is left here as such a
worker leaves it (tests/test_once.py kills a real process to see what that is): the key and
its posting key taken when it began posting, and its job still running under it, the lease
lapsed. The post that never landed is deleted from Slack (or counted from there on)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.app import slack_client
from handlers.ids import Action
from models import Database
from models.clock import utcnow
from tests.fakes.slack_requests import file_shared_event
from tests.handlers.conftest import LEAD, Harness, csv_offers, running_app
from tests.handlers.test_decisions import _start
from tests.handlers.test_import_flow import CSV, _count
from tests.handlers.test_targeting import _campaign, _click_target, _imported, _offer
from tests.handlers.test_undo import _click_undo, _slack_import, _thread, _with_undo

TEAM = "T0001"
AT = bindparam("at", type_=UTCDateTime())


def _began_posting(app: Harness) -> datetime:
    """When a worker killed while posting took its keys, as its job runs again: at least two
    thirds of a lease before (the lease is renewed every third of it, and the job is taken
    again once it lapsed)."""
    return utcnow() - timedelta(seconds=app.settings.job_lease_seconds * 2 / 3)


async def _posting(app: Harness, key: str, began: datetime) -> None:
    """`key` and its posting key taken at `began`, as post_once takes them."""
    async with app.db.begin() as conn:
        for seen in (key, f"posting:{key}"):
            await conn.execute(text("DELETE FROM seen_key WHERE team_id = :t AND key = :k"),
                               {"t": TEAM, "k": seen})  # fmt: skip
            await conn.execute(text("INSERT INTO seen_key (team_id, key, created_at) "
                                    "VALUES (:t, :k, :at)").bindparams(AT),
                               {"t": TEAM, "k": seen, "at": began})  # fmt: skip


async def _lease_lapsed(app: Harness, kind: str) -> None:
    """The last job of `kind` still running under a worker that died, its lease lapsed."""
    async with app.db.begin() as conn:
        await conn.execute(text(
            "UPDATE job SET state = 'running', lease_owner = 'killed', finished_at = NULL, "
            "lease_expires_at = :at WHERE id = (SELECT MAX(id) FROM job WHERE kind = :kind)"
        ).bindparams(AT), {"at": utcnow() - timedelta(seconds=1), "kind": kind})  # fmt: skip


async def _died_posting(app: Harness, key: str, kind: str) -> None:
    """The database as a worker killed while posting `key` in a job of `kind` leaves it."""
    await _posting(app, key, _began_posting(app))
    await _lease_lapsed(app, kind)


async def _keys(app: Harness, key: str) -> list[str]:
    """Which of `key` and its posting key the database holds."""
    async with app.db.begin() as conn:
        found = await conn.execute(text("SELECT key FROM seen_key WHERE team_id = :t AND key "
                                        "IN (:k, :p) ORDER BY key"),
                                   {"t": TEAM, "k": key, "p": f"posting:{key}"})  # fmt: skip
        return list(found.scalars())


async def _never_landed(app: Harness, message: dict) -> None:
    await slack_client(app.settings).chat_delete(channel="C0001", ts=message["ts"])


def _offers(app: Harness, review: dict) -> int:
    """*Target a campaign* offers in the import's thread."""
    return sum(Action.TARGET in json.dumps(m.get("blocks"))
               for m in app.slack.messages_in("C0001", review["ts"]))  # fmt: skip


async def _target_offer_lost(app: Harness) -> tuple[dict, str]:
    """A finished import whose worker died posting its *Target a campaign* offer: the review
    message, and the offer's key."""
    review = await _imported(app)
    offer = _offer(app, review)
    batch = next(e["value"] for b in offer["blocks"] if b["type"] == "actions"
                 for e in b["elements"] if e.get("action_id") == Action.TARGET)  # fmt: skip
    await _never_landed(app, offer)
    return review, f"next-step:{batch}"


async def test_a_target_offer_its_worker_died_posting_comes_with_the_jobs_next_run(
    app: Harness,
) -> None:
    review, key = await _target_offer_lost(app)
    await _died_posting(app, key, "import")
    await app.settle()  # the import's job, taken again
    assert _offers(app, review) == 1
    assert await _keys(app, key) == [key]  # posted: its posting key let go

    await _lease_lapsed(app, "import")  # its worker died again, after the offer was made
    await app.settle()
    assert _offers(app, review) == 1
    assert app.slack.block_errors == []


@pytest.fixture
async def slow_retries(db: Database, tmp_path: Path) -> AsyncIterator[Harness]:
    """The app whose failed jobs wait a minute to be tried again (a test makes them due)."""
    async with running_app(db, tmp_path, job_retry_base_seconds=60) as harness:
        yield harness


async def test_a_target_offer_another_worker_is_posting_is_left_to_it_then_made_when_it_died(
    slow_retries: Harness,
) -> None:
    app = slow_retries
    review, key = await _target_offer_lost(app)
    began = utcnow() - timedelta(seconds=1)  # a live worker, posting it now
    await _posting(app, key, began)
    await _lease_lapsed(app, "import")
    await app.settle()
    assert _offers(app, review) == 0  # not taken over from the live one, nor skipped:
    assert await _keys(app, key) == [key, f"posting:{key}"]
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'slack_report' "
                             "AND state = 'queued'") == 1  # fmt: skip

    await _posting(app, key, _began_posting(app))  # that worker died too
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE job SET run_after = :at WHERE state = 'queued'")
                           .bindparams(AT), {"at": utcnow()})  # fmt: skip
    await app.settle()
    assert _offers(app, review) == 1
    assert await _keys(app, key) == [key]


def _shared_csvs(app: Harness, review: dict) -> int:
    return len(csv_offers(app.slack, review["ts"]))


async def test_a_skipped_rows_csv_its_worker_died_sharing_comes_with_the_jobs_next_run(
    app: Harness,
) -> None:
    review, _ = await _start(app)
    before = _shared_csvs(app, review)
    async with app.db.begin() as conn:
        source = (await conn.execute(text("SELECT id FROM import_source"))).scalar_one()
    await _died_posting(app, f"rejects:{source}", "stage_slack_file")  # its CSV never landed
    await app.settle()  # the file's reading job, taken again
    assert _shared_csvs(app, review) == before + 1
    assert "not-an-email" in (await app.csvs_sent(review["ts"]))[-1].text

    await _lease_lapsed(app, "stage_slack_file")
    await app.settle()
    assert _shared_csvs(app, review) == before + 1


async def test_an_undo_result_its_worker_died_posting_comes_with_the_jobs_next_run(
    app: Harness,
) -> None:
    review, batch = await _slack_import(app)
    (result,) = _with_undo(app, review)
    modal = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])
    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.settle()
    (told,) = [m for m in _thread(app, review) if "was undone" in m["text"]]
    await _never_landed(app, told)
    await _died_posting(app, f"undo-result:{batch}", "undo_import")
    await app.settle()  # the undo's job, taken again
    assert [m["text"] for m in _thread(app, review) if "was undone" in m["text"]] == [
        told["text"]]  # fmt: skip

    await _lease_lapsed(app, "undo_import")
    await app.settle()
    assert sum("was undone" in m["text"] for m in _thread(app, review)) == 1


def _upload_offers(app: Harness) -> list[dict]:
    return [m for m in app.slack.messages if "referrals_q3.csv" in m.get("text", "")]


async def test_an_upload_offer_its_worker_died_posting_comes_with_the_jobs_next_run(
    app: Harness,
) -> None:
    app.slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"])
    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="Ev1")
    await app.settle()
    (offer,) = _upload_offers(app)
    await _never_landed(app, offer)
    await _died_posting(app, "offer:F0002", "upload_offer")
    await app.settle()  # the offer's job, taken again by a worker
    assert len(_upload_offers(app)) == 1

    await _lease_lapsed(app, "upload_offer")
    await app.settle()
    assert len(_upload_offers(app)) == 1


async def test_a_targeting_whose_click_died_announcing_it_is_announced_by_the_next_click(
    app: Harness,
) -> None:
    """A click runs in the web process, not as a job: killed as it announced the targeting,
    the next click on it (once the dead one's posting key is stale) announces it, rather
    than say, privately, that it was."""
    spring = await _campaign(app, "Spring", live=True)
    review = await _imported(app)

    async def click() -> None:  # no job runs: the enrollment stays under way
        await _click_target(app, review, spring.id or 0)
        await app.done()

    await click()
    (said,) = [m for m in _thread(app, review) if "targeted *Spring*" in m["text"]]
    await _never_landed(app, said)
    async with app.db.begin() as conn:
        enrollment = (await conn.execute(text("SELECT id FROM enrollment"))).scalar_one()
    await _posting(app, f"announced:{enrollment}", _began_posting(app))
    await click()
    assert sum("targeted *Spring*" in m["text"] for m in _thread(app, review)) == 1
    assert not any("already enrolling" in e["text"] for e in app.slack.ephemerals)
    await click()  # announced: a click now is told so, privately
    assert sum("targeted *Spring*" in m["text"] for m in _thread(app, review)) == 1
    assert "already enrolling" in app.slack.ephemerals[-1]["text"]
    assert await _count(app, "SELECT COUNT(*) FROM enrollment") == 1
