"""`/referral import` typed in a conversation the bot can't post in: a direct message between
people or a group DM. Slack names such a conversation "directmessage" or "mpdm-…" in a slash
command's payload; the bot is no member and can't be invited into it."""

from __future__ import annotations

import json

import pytest

from handlers.ids import Action, BlockId, Callback
from tests.handlers.conftest import LEAD, Harness
from tests.handlers.test_home import _submit_home_form

# (channel_id, channel_name) as Slack sends them for each kind of conversation
CONVERSATIONS = [
    pytest.param("D0PEOPLE01", "directmessage", id="dm-between-people"),
    pytest.param("G0GROUPDM1", "mpdm-lead--rep--ops-1", id="group-dm"),
    pytest.param("C0GROUPDM2", "mpdm-lead--rep--ops-2", id="group-dm-newer-id"),
]


@pytest.mark.parametrize(("conversation", "name"), CONVERSATIONS)
async def test_a_lead_leaving_review_it_in_empty_gets_the_review_in_our_dm(
    app: Harness, conversation: str, name: str
) -> None:
    """The review went to the conversation typed in: Slack refused it there, and the note
    beside it said to /invite the bot into a conversation no one can invite it to."""
    reply = await app.requests.slash_command(text="import", user_id=LEAD, channel_id=conversation,
                                             channel_name=name)
    assert reply.status == 200
    await app.slack.wait_for("views.open")
    modal = app.slack.open_views(LEAD)[-1]
    assert modal["callback_id"] == Callback.IMPORT
    assert modal["blocks"][0]["block_id"] == BlockId.REVIEW_CHANNEL  # asked where, first
    reply = await _submit_home_form(app, modal, LEAD, segment="From a DM", channel=None)
    assert reply.status == 200 and not reply.body
    dm = app.slack.dm_channels[LEAD]
    review = app.slack.find_action(Action.APPROVE, dm)
    assert review is not None and "From a DM" in json.dumps(review["blocks"])
    assert app.slack.messages_in(conversation) == []
    assert not any("invite" in m["text"].lower() for m in app.slack.messages_in(dm))
