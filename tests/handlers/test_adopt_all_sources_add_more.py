"""*All sources* and *Add more* on a review message the database never recorded.

A review posted while the database was away is live but unrecorded: the first click on any
of its buttons records it and redraws what it missed (handlers/review.py
on_review_message; see test_adopt_from_other_buttons.py). *All sources* opened its list and
recorded nothing, so the review never changed again, whatever was removed from that list.
*Add more* recorded the message before opening the import form, whose trigger id lives 3 s:
on SQLite that write waits for an import holding the write lock, and the form never opened
(expired_trigger_id). It records once the form is open now."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, event, text
from sqlmodel.sql.sqltypes import UTCDateTime

from handlers import import_modal
from handlers.ids import Action, BlockId, Callback
from models import Database
from models.clock import utcnow
from tests.fakes.slack_api import find_element
from tests.fakes.slack_requests import file_shared_event
from tests.handlers.conftest import REP, Harness, running_app
from tests.handlers.test_adopt_from_other_buttons import _reviews
from tests.handlers.test_all_sources import _buttons, _value
from tests.handlers.test_import_flow import CSV, _count, _form, _open_modal, _review
from tests.handlers.unrecorded import impatient_app, posted_unrecorded, recorded, without_proxies
from tests.imports.exports import zip_bytes
from tests.jobs.test_last_attempt_outage import WriteLock


async def test_all_sources_on_an_unrecorded_review_records_it(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An upload's review of a ZIP of 35 CSVs, posted unrecorded after the ZIP was read (by a
    click after the one that began it died): it shows 30 sources and *All sources* for the
    rest. *All sources* is its first click: the list opens, the import records the message,
    and a source removed from the list shows on the review, as any change does."""
    from bot.imports.batches import create_upload_batch
    from bot.workspaces import ensure_workspace, import_target

    entries = {f"e{i:02}.csv": f"email\np{i}@example.com\n".encode() for i in range(1, 36)}
    async with impatient_app(db_env, tmp_path, monkeypatch) as (app, lock):
        await ensure_workspace(app.db, "T0001")
        segment = await import_target(app.db, "T0001", "Zip", create=True)
        app.slack.add_file("F0003", "export.zip", zip_bytes(entries), filetype="zip",
                           mimetype="application/zip", channels=["C0001"])  # fmt: skip
        await app.requests.event(file_shared_event("F0003", channel_id="C0001"), event_id="EvZ")
        await app.settle()
        offer = app.slack.find_action(Action.UPLOAD_REVIEW, "C0001")
        assert offer is not None
        # the committed work of a click whose process died before posting the review; the
        # ZIP is read meanwhile, and two minutes on the next click posts its review
        await create_upload_batch(app.db, "T0001", segment.id or 0, REP, file_id="F0003",
                                  label="export.zip")  # fmt: skip
        await app.settle()
        async with app.db.begin() as conn:
            await conn.execute(text("UPDATE seen_key SET created_at = :then WHERE key LIKE "
                                    "'review-post:%'").bindparams(bindparam(
                                        "then", type_=UTCDateTime())),
                               {"then": utcnow() - timedelta(minutes=3)})  # fmt: skip
        chosen = {BlockId.UPLOAD: {Action.UPLOAD_SEGMENT: {
            "type": "external_select", "selected_option": {
                "text": {"type": "plain_text", "text": "Zip"}, "value": str(segment.id)}}}}

        async def click_review_import() -> None:
            await app.requests.block_action(Action.UPLOAD_REVIEW, "F0003", user_id=REP,
                                            message_ts=offer["ts"],
                                            state_values=chosen)  # fmt: skip

        await posted_unrecorded(app, lock, click_review_import)
        (review,) = _reviews(app)
        shown = json.dumps(review["blocks"], ensure_ascii=False)
        assert "…and 5 more sources (counted in the total)" in shown, shown
        assert await recorded(app) == ("draft", None, None)

        found = find_element(review["blocks"], Action.SOURCES_OPEN)
        assert found is not None
        await app.requests.block_action(Action.SOURCES_OPEN, found[1]["value"], user_id=REP,
                                        message_ts=review["ts"])  # fmt: skip
        await app.settle()
        modal = app.slack.open_views(REP)[-1]
        assert modal["callback_id"] == Callback.SOURCES
        assert "sources 31–35 of 35" in json.dumps(modal["blocks"], ensure_ascii=False)
        assert await recorded(app) == ("draft", "C0001", review["ts"])

        # a Remove in the list is a change the review shows, now that it is known
        await app.requests.block_action(
            Action.SOURCES_REMOVE,
            _value(_buttons(modal["blocks"], Action.SOURCES_REMOVE), "e35.csv"),
            user_id=REP, view=modal)  # fmt: skip
        await app.settle()
        shown = json.dumps(app.slack.message("C0001", review["ts"])["blocks"],
                           ensure_ascii=False)  # fmt: skip
        assert "…and 4 more sources" in shown, shown
        assert "*Total:* 34 rows · *34 to import*" in shown, shown
        assert len(_reviews(app)) == 1 and app.slack.block_errors == []
        assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 1


Switchable = tuple[Harness, WriteLock, dict[str, bool]]


@asynccontextmanager
async def _app_patient_later(
    db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Switchable]:
    """The app on a database whose statements give up after 100 ms waiting for a lock while
    `impatient["on"]` (a review posted then is never recorded), and wait for it as the
    bot's do (SQLite's 30 s busy timeout, PostgreSQL's none) once it is set False; and
    another client that can hold the lock writes need."""
    without_proxies(monkeypatch)
    monkeypatch.setattr(import_modal, "RECORD_PAUSES", (0.05, 0.05))
    database = Database(db_env["DATABASE_URL"], schema=db_env.get("DATABASE_SCHEMA"))
    impatient = {"on": True}

    def on_checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if database.is_sqlite:
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout={100 if impatient['on'] else 30000}")
            cursor.close()
        else:
            wait = "100ms" if impatient["on"] else "0"
            dbapi_conn.run_async(lambda conn: conn.execute(f"SET lock_timeout = '{wait}'"))

    event.listen(database.engine.sync_engine, "checkout", on_checkout)
    lock = WriteLock(database)
    try:
        async with running_app(database, tmp_path) as app:
            yield app, lock, impatient
    finally:
        await lock.release()
        await database.dispose()


async def test_add_more_opens_the_form_before_recording_an_unrecorded_review(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """*Add more* is the first click on a review never recorded, while another client holds
    the write lock (an import's chunk on SQLite): the import form opens within its trigger
    id's 3 s all the same, and the review is recorded, and brought up to date, once the
    lock is let go. It recorded first: the form waited for the lock, and never opened."""
    async with _app_patient_later(db_env, tmp_path, monkeypatch) as (app, lock, impatient):
        view_id = await _open_modal(app)
        file = app.slack.add_file("F0001", "q3.csv", CSV)

        async def submit() -> None:
            await app.requests.view_submission(state_values=_form(files=[file], segment="Q3"),
                                               view_id=view_id, user_id=REP)  # fmt: skip

        await posted_unrecorded(app, lock, submit)
        review = await _review(app)
        assert "still being read" in json.dumps(review["blocks"])  # as first drawn
        assert await recorded(app) == ("draft", None, None)

        impatient["on"] = False  # the click's record waits for the lock, as the bot's do
        found = find_element(review["blocks"], Action.ADD_MORE)
        assert found is not None
        opened = len(app.slack.calls_to("views.open"))
        await lock.hold()
        try:
            await app.requests.block_action(Action.ADD_MORE, found[1]["value"], user_id=REP,
                                            message_ts=review["ts"])  # fmt: skip
            try:
                await app.slack.wait_for("views.open", count=opened + 1, timeout=2.5)
            except TimeoutError:
                pytest.fail("Add more's form didn't open within the trigger id's 3 s while "
                            "the write lock was held")  # fmt: skip
            await asyncio.sleep(0.3)  # the form is filled in; the record waits for the lock
            form = app.slack.open_views(REP)[-1]  # opened: not an expired trigger id
            assert form["callback_id"] == Callback.IMPORT and form["id"] != view_id
            assert await recorded(app) == ("draft", None, None)  # reads go on meanwhile
        finally:
            await lock.release()
        await app.settle()

        assert await recorded(app) == ("draft", "C0001", review["ts"])
        shown = json.dumps(app.slack.message("C0001", review["ts"])["blocks"])
        assert "2 valid" in shown and "still being read" not in shown, shown
        skipped = await app.csvs_sent(review["ts"])
        assert len(skipped) == 1 and "not-an-email" in skipped[0].text
        assert len(_reviews(app)) == 1 and app.slack.block_errors == []
