"""A review refused after its new segment was made takes that segment back: left, it sat empty
in every segment menu, and the same form again was told its name "already exists"."""

from __future__ import annotations

import json

from sqlalchemy import text

from bot.workspaces import ensure_workspace, import_target
from handlers.ids import Action
from tests.fakes.slack_api import find_element
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_cancel_and_outages import _chosen, _offer
from tests.handlers.test_import_flow import _form, _open_modal
from tests.handlers.test_uploads_and_limits import _new_segment


async def _live_segments(app: Harness) -> list[str]:
    """The workspace's segments as its menus and lists show them (deleted ones aren't)."""
    async with app.db.begin() as conn:
        return list((await conn.execute(text(
            "SELECT name FROM segment WHERE team_id = 'T0001' AND kind <> 'deleted' "
            "ORDER BY name"))).scalars())  # fmt: skip


async def _reviewed_upload(app: Harness) -> dict:
    """F0002 shared in C0001, its review posted by REP into VIP; the offer."""
    await ensure_workspace(app.db, "T0001")
    vip = await import_target(app.db, "T0001", "VIP", create=True)
    app.slack.add_file("F0002", "upload.csv", b"email\nok@example.com\n", channels=["C0001"])
    offer = await _offer(app)
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                    message_ts=offer["ts"], state_values=_chosen(vip.id or 0))
    await app.settle()
    assert app.slack.find_action(Action.APPROVE, "C0001") is not None
    return offer


async def test_review_import_refused_takes_back_the_new_segment_it_made(app: Harness) -> None:
    """*Review import* with "New segment “Q3”" on a file another click's review has: refused,
    and Q3, made for it, stayed behind empty."""
    offer = await _reviewed_upload(app)
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=LEAD,
                                    message_ts=offer["ts"], state_values=_new_segment("Q3"))
    await app.settle()
    assert "already has a review" in app.slack.ephemerals[-1]["text"]
    assert await _live_segments(app) == ["All Customers", "VIP"]


async def test_review_import_refused_keeps_a_new_segment_it_didnt_make(app: Harness) -> None:
    """The segment named new was made meanwhile (by another click, which may be using it):
    the refused click leaves it."""
    offer = await _reviewed_upload(app)
    await import_target(app.db, "T0001", "Q3", create=True)
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=LEAD,
                                    message_ts=offer["ts"], state_values=_new_segment("Q3"))
    await app.settle()
    assert "already has a review" in app.slack.ephemerals[-1]["text"]
    assert await _live_segments(app) == ["All Customers", "Q3", "VIP"]


async def test_a_form_whose_review_couldnt_be_posted_takes_back_its_new_segment(
    app: Harness,
) -> None:  # fmt: skip
    """Neither the channel nor the DM took the review: the import was withdrawn and the
    person asked to start again, but its new segment stayed, and the same form again was
    told "Lost already exists: choose it above"."""
    app.slack.fail("chat.postMessage", "not_in_channel", times=2)
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(email="a@example.com", segment="Lost"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    said = [m["text"] for m in app.slack.messages if not m.get("blocks")]
    assert any("nothing was imported" in t for t in said), said
    assert await _live_segments(app) == ["All Customers"]

    view_id = await _open_modal(app)  # started again, as asked
    reply = await app.requests.view_submission(
        state_values=_form(email="a@example.com", segment="Lost"), view_id=view_id, user_id=REP)
    assert reply.status == 200 and not reply.body, reply.body  # no "already exists"
    await app.settle()
    review = app.slack.find_action(Action.APPROVE, "C0001")
    assert review is not None and "Lost" in json.dumps(review["blocks"])
    assert find_element(review["blocks"], Action.APPROVE) is not None
    assert await _live_segments(app) == ["All Customers", "Lost"]
