"""A review posted while the database can't record it: the import stays in review, and what
Slack shows and what the database holds agree.

The review message is recorded (its channel and ts) right after it is posted. That write
failing withdrew the import under a review whose buttons were live: the person saw a review
of an import that was cancelled. Now the write is tried again, and a review it could never
record is recorded by the first click on it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from handlers import import_modal
from handlers.ids import Action
from models import Database
from tests.fakes.slack_api import find_element
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_import_flow import CSV, _count, _form, _open_modal, _review
from tests.handlers.unrecorded import impatient_app, recorded
from tests.jobs.test_last_attempt_outage import WriteLock

WITHDRAWN = ("couldn't post the review", "may not have gone through", "Nothing was changed")


async def _posted_while_locked(app: Harness, lock: WriteLock) -> None:
    """REP submits the import form (q3.csv into a new segment); the database is locked by
    another client once the review is on its way to Slack, so it is posted but its record
    waits for the lock, and gives up."""
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "q3.csv", CSV)
    gate = app.slack.hold("chat.postMessage")
    await app.requests.view_submission(state_values=_form(files=[file], segment="Q3"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.slack.wait_for("chat.postMessage", timeout=10)
    await lock.hold()
    app.slack.unhold("chat.postMessage")
    gate.set()


async def _until_logged(caplog: pytest.LogCaptureFixture, logger: str, level: int,
                        timeout: float = 10.0) -> None:  # fmt: skip
    """Wait until `logger` logged a record at `level` or above (or `timeout` passed)."""
    deadline = time.monotonic() + timeout
    while not any(r.name == logger and r.levelno >= level for r in caplog.records):
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.01)


def _told_withdrawn(app: Harness, user: str) -> list[str]:
    """What `user` was told by DM or ephemeral note that says the import didn't happen."""
    dm = app.slack.dm_channels.get(user)
    said = [m.get("text") or "" for m in app.slack.messages_in(dm)] if dm else []
    said += [e.get("text") or "" for e in app.slack.ephemerals if e.get("user") == user]
    return [t for t in said if any(words in t for words in WITHDRAWN)]


async def _approved_on(app: Harness, review: dict) -> str:
    """A lead approves on the review message; the message as it then shows."""
    batch = find_element(review["blocks"], Action.APPROVE)
    assert batch is not None
    await app.requests.block_action(Action.APPROVE, batch[1]["value"], user_id=LEAD,
                                    channel_id="C0001", message_ts=review["ts"])  # fmt: skip
    await app.settle()
    return json.dumps(app.slack.message("C0001", review["ts"])["blocks"])


async def test_a_review_whose_record_fails_once_is_recorded_and_stays_in_review(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The record of the review just posted fails once (the database locked by another
    client): it is tried again, so the import stays in review with its message recorded,
    the message is redrawn when the file is read, and Approve on it imports."""
    async with impatient_app(db_env, tmp_path, monkeypatch, quick_record=False) as (app, lock):
        with caplog.at_level(logging.WARNING, logger="handlers.import_modal"):
            await _posted_while_locked(app, lock)
            await _until_logged(caplog, "handlers.import_modal", logging.WARNING)
            await lock.release()  # the database is back after the first try failed
            await app.settle()

        review = await _review(app)
        assert review["channel"] == "C0001"
        assert await recorded(app) == ("draft", "C0001", review["ts"])
        shown = json.dumps(review["blocks"])
        assert "2 valid" in shown and "still being read" not in shown  # redrawn once read
        skipped = await app.csvs_sent(review["ts"])
        assert len(skipped) == 1 and "not-an-email" in skipped[0].text
        assert _told_withdrawn(app, REP) == []

        assert "This import is imported" in await _approved_on(app, review)
        assert await _count(app, "SELECT COUNT(*) FROM contact") == 2
        assert app.slack.block_errors == []


async def test_a_review_never_recorded_is_recorded_by_the_first_click_on_it(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database stays locked through every try to record the review just posted: the
    import still stays in review (its buttons work), and the first click on the review
    records where it is, redraws what it missed meanwhile (the file was read) and shares
    the skipped rows in its thread; a lead then approves on it as on any review."""
    # quick tries (raising=False: the test still runs, and fails, on code without them)
    monkeypatch.setattr(import_modal, "RECORD_PAUSES", (0.05, 0.05), raising=False)
    async with impatient_app(db_env, tmp_path, monkeypatch, quick_record=False) as (app, lock):
        await _posted_while_locked(app, lock)
        await app.done()  # every try to record it failed
        await lock.release()
        await app.settle()  # the file is read, with no review message known to redraw

        review = await _review(app)
        assert "still being read" in json.dumps(review["blocks"])  # as first drawn
        assert await recorded(app) == ("draft", None, None)  # in review, as Slack shows
        assert _told_withdrawn(app, REP) == []

        batch = find_element(review["blocks"], Action.PREVIEW_ONLY)
        assert batch is not None
        await app.requests.block_action(Action.PREVIEW_ONLY, batch[1]["value"], user_id=REP,
                                        channel_id="C0001", message_ts=review["ts"])  # fmt: skip
        await app.settle()
        assert await recorded(app) == ("draft", "C0001", review["ts"])
        shown = json.dumps(app.slack.message("C0001", review["ts"])["blocks"])
        assert "2 valid" in shown and "still being read" not in shown
        assert "Preview of importing into Q3" in app.slack.ephemerals[-1]["text"]
        skipped = await app.csvs_sent(review["ts"])
        assert len(skipped) == 1 and "not-an-email" in skipped[0].text

        assert "This import is imported" in await _approved_on(app, review)
        assert await _count(app, "SELECT COUNT(*) FROM contact") == 2
        assert _told_withdrawn(app, REP) == [] and app.slack.block_errors == []
