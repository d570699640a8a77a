"""Mailchimp let go while a draft holds its audience, then Approve on the review the
lead was looking at."""

from __future__ import annotations

import json

from sqlalchemy import text

from bot.mailchimp import accounts
from handlers.ids import Action
from tests.fakes.slack_api import find_element
from tests.handlers.conftest import LEAD, REP
from tests.handlers.test_import_flow import _form, _review
from tests.handlers.test_mailchimp import (  # noqa: F401 (fixtures)
    TEAM,
    Build,
    _chosen,
    _connect,
    _import_modal,
    build,
    mc,
)


async def test_approve_after_a_disconnect_dropped_an_audience_is_refused_as_changed(
    build: Build,
) -> None:  # fmt: skip
    """The review shows the Customers audience (2) and one typed contact: "*3 to import*".
    Another lead disconnects Mailchimp (Slack or the shell): the audience's members are
    taken out of the draft, but its revision isn't counted up, only a redraw queued for a
    worker. Approve on the message the lead is looking at ("3 to import") then imports 1,
    with no word: README says every change to a draft counts the revision up, and an
    approval of a review that changed since it was drawn imports nothing and says so."""
    async with build() as app:
        await _connect(app)
        modal = await _import_modal(app)
        await app.requests.view_submission(
            state_values=_form(segment="MC", email="zed@example.com") | _chosen("a1b2c3d4e5"),
            view_id=modal["id"], user_id=REP)  # fmt: skip
        await app.settle()
        message = await _review(app)
        assert "*3 to import*" in json.dumps(message["blocks"])
        await accounts.disconnect(app.db, TEAM, user="U0ADMIN")
        approve = find_element(message["blocks"], Action.APPROVE)
        assert approve is not None
        await app.requests.block_action(Action.APPROVE, approve[1]["value"], user_id=LEAD,
                                        message_ts=message["ts"],
                                        block_id=message["blocks"][-1]["block_id"])  # fmt: skip
        await app.done()  # the click's own work (the queued redraw and the import wait)
        async with app.db.begin() as conn:
            status, valid = (await conn.execute(text(
                "SELECT status, valid FROM import_batch"))).one()  # fmt: skip
        told = [e["text"] for e in app.slack.ephemerals if e["user"] == LEAD]
        assert status == "draft", (status, valid, told)
        assert any("changed after the message you clicked" in t for t in told), told
