"""A review sent to the requester's DM (the channel refused it) stays when the line beside it
saying why it's there never reaches Slack: the connection dropped, so slack_sdk raised a
network error (aiohttp's), not the SlackApiError that line's failure was caught as. That
error left publish_review after the review was posted and recorded: the import was
withdrawn, its new segment with it, and the requester told "I couldn't post the review…",
under a review whose Approve still worked on a cancelled import."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from sqlalchemy import text

from handlers.ids import Action
from tests.fakes.slack_api import FakeSlack, find_element
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_import_flow import _count, _form, _open_modal
from tests.handlers.test_refused_reviews import _live_segments
from tests.handlers.test_review_not_recorded import _told_withdrawn

POST = "chat.postMessage"
WHY = "so the review is here"  # in the line beside a review sent by DM (not_posted_there)


async def _refused_then_dm_then_dropped(slack: FakeSlack) -> None:
    """The next chat.postMessage calls, in turn: the channel refuses the review
    (not_in_channel), the DM takes it, and the call after it (the line saying why) gets no
    answer: its connection is dropped, and so is the client's one retry of it. Each call
    waits (held) until the one before it was answered; `POST` must be held before the first
    is made. An outage is checked before a hold, so the DM's call, held, passes it."""
    first = len(slack.calls_to(POST))
    gate = slack.hold(POST)
    await slack.wait_for(POST, first + 1, timeout=5)  # the channel's
    held, gate = gate, slack.hold(POST)
    slack.fail(POST, "not_in_channel")
    held.set()
    await slack.wait_for(POST, first + 2, timeout=5)  # the DM's, held past the outage check
    slack.outage(POST, times=2)  # the why line and its retry (AsyncConnectionErrorRetryHandler)
    slack.unhold(POST)
    gate.set()


async def test_a_review_in_the_dm_stays_when_the_line_saying_why_is_dropped(
    app: Harness, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The form's import into a new segment: its review lands in REP's DM, and the line
    saying why is dropped by the network. The import stays a draft in review with its
    message recorded and its segment kept, nobody is told it failed, the lost line is
    logged with where it was going, and a lead's Approve on the review imports."""
    app.slack.hold(POST)
    turns = asyncio.create_task(_refused_then_dm_then_dropped(app.slack))
    view_id = await _open_modal(app)
    with caplog.at_level(logging.WARNING, logger="handlers.import_modal"):
        await app.requests.view_submission(state_values=_form(email="a@example.com",
                                                              segment="DM"),
                                           view_id=view_id, user_id=REP)  # fmt: skip
        await asyncio.wait_for(turns, 10)
        await app.settle()

    review = app.slack.find_action(Action.APPROVE)
    assert review is not None and review["channel"].startswith("D")  # in REP's DM
    why = [c for c in app.slack.calls_to(POST) if WHY in str(c.args.get("text") or "")]
    assert len(why) == 2  # the line was tried, and its retry, both dropped
    assert not any(WHY in (m.get("text") or "") for m in app.slack.messages_in(review["channel"]))
    assert _told_withdrawn(app, REP) == []
    said = [m.get("text") or "" for m in app.slack.messages_in(review["channel"])]
    assert not any("couldn't post the review" in t for t in said), said
    async with app.db.begin() as conn:
        status, channel, ts = (await conn.execute(text(
            "SELECT status, channel_id, message_ts FROM import_batch"))).one()  # fmt: skip
    assert (status, channel, ts) == ("draft", review["channel"], review["ts"])
    assert await _live_segments(app) == ["All Customers", "DM"]
    logged = [r.getMessage() for r in caplog.records if r.name == "handlers.import_modal"
              and r.levelno >= logging.WARNING and "saying why" in r.getMessage()]  # fmt: skip
    assert logged and all(f"channel={review['channel']}" in m and "team=T0001" in m
                          and "batch=" in m for m in logged), logged  # fmt: skip

    batch = find_element(review["blocks"], Action.APPROVE)
    assert batch is not None
    await app.requests.block_action(Action.APPROVE, batch[1]["value"], user_id=LEAD,
                                    channel_id=review["channel"],
                                    message_ts=review["ts"])  # fmt: skip
    await app.settle()
    shown = json.dumps(app.slack.message(review["channel"], review["ts"])["blocks"])
    assert "This import is imported" in shown
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 1
    assert app.slack.block_errors == []
