"""*Review contacts* and *Map columns* on a review message the database never recorded.

A review posted while the database was away is live but unrecorded (its channel and ts
are not on the import): the first click on it records it and redraws what it missed
(handlers/review.py). Approve, Remove, Preview only… did; *Review contacts* and *Map
columns* opened their modal and recorded nothing, so the review kept showing what it showed
when posted ("still being read", a file's columns not found) through every change made
from those modals, and its thread got no skipped-rows CSV. They record it too now."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from handlers.ids import Action, BlockId, Callback
from handlers.mapping_messages import FIELD_BLOCKS
from models import Database
from models.clock import utcnow
from tests.fakes.slack_api import find_element
from tests.fakes.slack_requests import file_shared_event, state_static_select
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_import_flow import CSV, _count, _form, _open_modal, _review
from tests.handlers.unrecorded import impatient_app, posted_unrecorded, recorded

# no column is recognised as the email: the review offers *Map columns* on it
WORK = (b"Full Name,Work Contact,First Name\n"
        b"Ada Lovelace,ada@example.com,Ada\n"
        b"Bob Stone,bob@example.org,Bob\n"
        b"Cy Twombly,cy@example.net,Cy\n"
        b"Dee,not-an-email,Dee\n")  # fmt: skip


def _reviews(app: Harness) -> list[dict[str, Any]]:
    """The review messages in the channel (those with an Approve button)."""
    return [m for m in app.slack.messages_in("C0001")
            if find_element(m.get("blocks") or [], Action.APPROVE)]  # fmt: skip


async def test_review_contacts_on_an_unrecorded_review_records_it(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """*Review contacts* is the first click on a review never recorded: the list opens, the
    import records the message it was clicked on, which is redrawn with the counts of the
    file read meanwhile and gets its skipped-rows CSV in its thread; a contact removed in
    the list then shows on the review as any other change does."""
    async with impatient_app(db_env, tmp_path, monkeypatch) as (app, lock):
        view_id = await _open_modal(app)
        file = app.slack.add_file("F0001", "q3.csv", CSV)

        async def submit() -> None:
            await app.requests.view_submission(state_values=_form(files=[file], segment="Q3"),
                                               view_id=view_id, user_id=REP)  # fmt: skip

        await posted_unrecorded(app, lock, submit)
        review = await _review(app)
        assert "still being read" in json.dumps(review["blocks"])  # as first drawn
        assert await recorded(app) == ("draft", None, None)

        found = find_element(review["blocks"], Action.REVIEW_CONTACTS)
        assert found is not None
        await app.requests.block_action(Action.REVIEW_CONTACTS, found[1]["value"], user_id=REP,
                                        message_ts=review["ts"])  # fmt: skip
        await app.settle()
        modal = app.slack.open_views(REP)[-1]
        assert modal["callback_id"] == Callback.CONTACTS
        listed = json.dumps(modal["blocks"])
        assert "jane@example.com" in listed and "raj@example.org" in listed

        assert await recorded(app) == ("draft", "C0001", review["ts"])
        shown = json.dumps(app.slack.message("C0001", review["ts"])["blocks"])
        assert "2 valid" in shown and "still being read" not in shown, shown
        skipped = await app.csvs_sent(review["ts"])
        assert len(skipped) == 1 and "not-an-email" in skipped[0].text

        # a Remove in the list is a change the review shows, now that it is known
        remove = next(e["value"] for b in modal["blocks"] if b.get("type") == "section"
                      and "raj@example.org" in json.dumps(b)
                      for e in [b.get("accessory") or {}]
                      if e.get("action_id") == Action.REMOVE_CONTACT)  # fmt: skip
        await app.requests.block_action(Action.REMOVE_CONTACT, remove, user_id=REP,
                                        view=modal["id"])  # fmt: skip
        await app.settle()
        shown = json.dumps(app.slack.message("C0001", review["ts"])["blocks"])
        assert "1 valid" in shown, shown
        assert len(_reviews(app)) == 1 and app.slack.block_errors == []


async def test_map_columns_on_an_unrecorded_review_records_it(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """*Map columns* is the first click on a review never recorded (an upload's, posted by a
    click after the one that began it died, the file read in between: the review offers
    *Map columns* as posted). The modal opens and the import records the message; the
    columns chosen, the file is read again and the review shows its new counts. Unrecorded,
    it said "No email column found" for good while the import had three contacts to
    approve."""
    from bot.imports.batches import create_upload_batch
    from bot.workspaces import ensure_workspace, import_target

    async with impatient_app(db_env, tmp_path, monkeypatch) as (app, lock):
        await ensure_workspace(app.db, "T0001")
        segment = await import_target(app.db, "T0001", "VIP", create=True)
        app.slack.add_file("F0002", "work.csv", WORK, channels=["C0001"])
        await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="EvU")
        await app.settle()
        offer = app.slack.find_action(Action.UPLOAD_REVIEW, "C0001")
        assert offer is not None
        # the committed work of a click whose process died before posting the review; the
        # file is read meanwhile, and two minutes on the next click posts its review
        await create_upload_batch(app.db, "T0001", segment.id or 0, REP, file_id="F0002",
                                  label="work.csv")  # fmt: skip
        await app.settle()
        async with app.db.begin() as conn:
            await conn.execute(text("UPDATE seen_key SET created_at = :then WHERE key LIKE "
                                    "'review-post:%'").bindparams(bindparam(
                                        "then", type_=UTCDateTime())),
                               {"then": utcnow() - timedelta(minutes=3)})  # fmt: skip
        chosen = {BlockId.UPLOAD: {Action.UPLOAD_SEGMENT: {
            "type": "external_select", "selected_option": {
                "text": {"type": "plain_text", "text": "VIP"}, "value": str(segment.id)}}}}

        async def click_review_import() -> None:
            await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                            message_ts=offer["ts"],
                                            state_values=chosen)  # fmt: skip

        await posted_unrecorded(app, lock, click_review_import)
        (review,) = _reviews(app)
        assert "No email column found" in json.dumps(review["blocks"])
        assert await recorded(app) == ("draft", None, None)

        found = find_element(review["blocks"], Action.MAP_COLUMNS)
        assert found is not None
        await app.requests.block_action(Action.MAP_COLUMNS, found[1]["value"], user_id=REP,
                                        message_ts=review["ts"])  # fmt: skip
        await app.settle()
        modal = app.slack.open_views(REP)[-1]
        assert modal["callback_id"] == Callback.MAP_COLUMNS, json.dumps(modal["blocks"])
        assert await recorded(app) == ("draft", "C0001", review["ts"])

        state = {FIELD_BLOCKS[f]: {Action.MAP_FIELD: state_static_select(v)} for f, v in
                 {"email": "1", "first_name": "2", "last_name": "none", "locale": "none",
                  "subscribed": "none"}.items()}  # fmt: skip
        reply = await app.requests.view_submission(state_values=state, view_id=modal["id"],
                                                   user_id=REP)  # fmt: skip
        assert reply.body["response_action"] == "update"
        await app.settle()
        shown = json.dumps(app.slack.message("C0001", review["ts"])["blocks"],
                           ensure_ascii=False)  # fmt: skip
        assert "3 valid · 0 duplicates · 1 rejected" in shown, shown
        assert "No email column found" not in shown
        assert len(_reviews(app)) == 1 and app.slack.block_errors == []
        assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 1
        assert [e for e in app.slack.ephemerals if e.get("user") in (REP, LEAD)] == []
        skipped = await app.csvs_sent(review["ts"])
        assert len(skipped) == 1 and "not-an-email" in skipped[0].text
