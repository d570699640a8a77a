"""*Review import* on an upload offer whose review was posted but never recorded.

A click on an upload's offer posts its review; a review still unposted two minutes
(POSTING_GIVEN_UP) after its click belongs to a process that died posting it, and the next
click posts it. A review that was posted while the database was away looked the same to
that check (no message recorded, the key of its posting two minutes old): the next click
posted a second review of the same import, two live messages with working buttons of which
only one could ever be recorded and redrawn. Now a click knows the review was sent to Slack,
posts nothing, and says where it went and how to record it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.workspaces import ensure_workspace, import_target
from handlers.ids import Action, BlockId
from models import Database
from models.clock import utcnow
from tests.fakes.slack_api import find_element
from tests.fakes.slack_requests import file_shared_event
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.unrecorded import impatient_app, posted_unrecorded

UPLOAD = b"email,first_name\nada@example.com,Ada\nbob@example.org,Bob\nnot-an-email,Dee\n"


def _chosen(segment_id: int) -> dict[str, Any]:
    """The upload offer's state with the VIP segment chosen."""
    return {BlockId.UPLOAD: {Action.UPLOAD_SEGMENT: {
        "type": "external_select", "selected_option": {
            "text": {"type": "plain_text", "text": "VIP"}, "value": str(segment_id)}}}}


async def offered(app: Harness) -> dict[str, Any]:
    """REP's upload shared in C0001, offered for import; the click on the offer with the VIP
    segment chosen."""
    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "VIP", create=True)
    app.slack.add_file("F0002", "upload.csv", UPLOAD, channels=["C0001"])
    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="EvU")
    await app.settle()
    offer = app.slack.find_action(Action.UPLOAD_REVIEW, "C0001")
    assert offer is not None
    return {"message_ts": offer["ts"], "state_values": _chosen(segment.id or 0)}


def _reviews(app: Harness) -> list[dict[str, Any]]:
    """The review messages in the channel and in DMs (those with an Approve button)."""
    return [m for m in app.slack.messages
            if find_element(m.get("blocks") or [], Action.APPROVE)]  # fmt: skip


async def _recorded(app: Harness) -> list[tuple[str, str, str | None, str | None]]:
    async with app.db.begin() as conn:
        rows = (await conn.execute(text(
            "SELECT status, requested_by, channel_id, message_ts FROM import_batch"))).all()
    return [(str(s), str(r), c, t) for s, r, c, t in rows]


async def _two_minutes_on(app: Harness) -> None:
    """Every key of a review being posted stamped three minutes ago: past POSTING_GIVEN_UP."""
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE seen_key SET created_at = :then WHERE key LIKE "
                                "'review-post:%'").bindparams(bindparam(
                                    "then", type_=UTCDateTime())),
                           {"then": utcnow() - timedelta(minutes=3)})  # fmt: skip


async def test_a_click_after_an_unrecorded_review_posts_no_second_one(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with impatient_app(db_env, tmp_path, monkeypatch) as (app, lock):
        click = await offered(app)
        # REP's click posts the review; the database is locked by another client once it is
        # on its way to Slack, so every try to record it gives up
        await posted_unrecorded(app, lock, lambda: app.requests.block_action(
            Action.UPLOAD_REVIEW, "F0002", user_id=REP, **click))  # fmt: skip
        (review,) = _reviews(app)
        assert review["channel"] == "C0001"
        assert await _recorded(app) == [("draft", REP, None, None)]
        said = json.dumps(app.slack.message("C0001", click["message_ts"])["blocks"])
        assert f"<@{REP}> started a review for *VIP*" in said

        # long after, another click on the offer (a client that still shows its button):
        # the review was sent, so nothing is posted again, and the click is told where it is
        await _two_minutes_on(app)
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=LEAD, **click)
        await app.settle()
        assert [m["ts"] for m in _reviews(app)] == [review["ts"]]
        told = app.slack.ephemerals[-1]
        assert told["user"] == LEAD and told["channel"] == "C0001"
        assert (f"This file already has a review, started by <@{REP}>: import #1, posted "
                "here") in told["text"], told["text"]
        assert "first click on one records it" in told["text"]
        assert await _recorded(app) == [("draft", REP, None, None)]  # nothing changed

        # a click on the review records it, as the refusal said; the offer then names it
        batch = find_element(review["blocks"], Action.PREVIEW_ONLY)
        assert batch is not None
        await app.requests.block_action(Action.PREVIEW_ONLY, batch[1]["value"], user_id=REP,
                                        channel_id="C0001", message_ts=review["ts"])  # fmt: skip
        await app.settle()
        assert await _recorded(app) == [("draft", REP, "C0001", review["ts"])]
        skipped = await app.csvs_sent(review["ts"])
        assert len(skipped) == 1 and "not-an-email" in skipped[0].text
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=LEAD, **click)
        await app.settle()
        assert [m["ts"] for m in _reviews(app)] == [review["ts"]]
        assert ("already has a review, started by <@U0001>: import #1 in <#C0001>"
                in app.slack.ephemerals[-1]["text"])  # fmt: skip
        assert app.slack.block_errors == []


async def test_a_click_within_the_time_of_an_unrecorded_review_says_it_is_being_posted(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Within POSTING_GIVEN_UP of the click that posted it, an unrecorded review may still
    be on its way: the next click is told so, as before, and posts nothing; nor does one
    after it, the click before having changed nothing."""
    async with impatient_app(db_env, tmp_path, monkeypatch) as (app, lock):
        click = await offered(app)
        await posted_unrecorded(app, lock, lambda: app.requests.block_action(
            Action.UPLOAD_REVIEW, "F0002", user_id=REP, **click))  # fmt: skip

        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=LEAD, **click)
        await app.settle()
        assert "import #1 (being posted)" in app.slack.ephemerals[-1]["text"]
        await _two_minutes_on(app)
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=LEAD, **click)
        await app.settle()
        assert len(_reviews(app)) == 1
        assert "posted here" in app.slack.ephemerals[-1]["text"]
        assert await _recorded(app) == [("draft", REP, None, None)]
