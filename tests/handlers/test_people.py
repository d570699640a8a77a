"""How the bot names a person and tells a direct message, the same everywhere (handlers.people):
the import form's errors as the Mailchimp start page (tests/handlers/test_mailchimp.py), and
*Review import* on an upload as `/referral import` (tests/handlers/test_import_in_conversations.py).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from bot.workspaces import ensure_workspace, import_target
from handlers.ids import Action, BlockId
from tests.fakes.slack_api import find_element
from tests.fakes.slack_requests import block_actions_payload, file_shared_event
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_decisions import _start
from tests.handlers.test_import_flow import _form

GROUP_DM = ("G0GROUPDM1", "mpdm-lead--rep--ops-1")  # as Slack sends a group DM's channel


async def test_the_form_names_a_person_without_a_display_name_by_their_full_name(
    app: Harness,
) -> None:
    """Display name, else full name, else username (as the start page names them): the lead
    who approved, named in *Add more*'s error on a form open since, has no display name."""
    app.slack.users[LEAD] = {"profile": {"real_name": "Dana Lead", "display_name": ""}}
    message, batch = await _start(app)
    await app.requests.block_action(Action.ADD_MORE, batch, user_id=REP, message_ts=message["ts"])
    await app.settle()
    modal = app.slack.open_views(REP)[-1]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.later.drain()

    late = app.slack.add_file("F0009", "late.csv", b"email\nlate@example.com\n")
    reply = await app.requests.view_submission(state_values=_form(files=[late]),
                                               view_id=modal["id"], user_id=REP)  # fmt: skip
    said = reply.body["errors"][BlockId.FILES]
    assert "already approved by @Dana Lead and waiting to run" in said, said


def _chosen(segment_id: int) -> dict:
    return {BlockId.UPLOAD: {Action.UPLOAD_SEGMENT: {
        "type": "external_select", "selected_option": {
            "text": {"type": "plain_text", "text": "VIP"}, "value": str(segment_id)}}}}  # fmt: skip


async def _review_in_group_dm(app: Harness, user: str, file_id: str, segment_id: int) -> None:
    """`file_id` shared in a group DM the bot is in, offered there, and *Review import*
    clicked by `user` in it (the click's channel named "mpdm-…", as Slack names it)."""
    channel, name = GROUP_DM
    app.slack.add_file(file_id, "upload.csv", b"email\nok@example.com\n", channels=[channel])
    await app.requests.event(file_shared_event(file_id, channel_id=channel),
                             event_id=f"E{file_id}")  # fmt: skip
    await app.settle()
    offer = next(m for m in app.slack.messages_in(channel)
                 if find_element(m.get("blocks") or [], Action.UPLOAD_REVIEW)
                 and file_id in json.dumps(m["blocks"]))  # fmt: skip
    payload = block_actions_payload(
        Action.UPLOAD_REVIEW, file_id, user_id=user, channel_id=channel, channel_name=name,
        message=offer, state_values=_chosen(segment_id),
        response_url=app.slack.new_response_url(channel, offer["ts"], user_id=user))
    assert (await app.requests.send_interactive(payload)).status == 200
    await app.settle()


@pytest.mark.parametrize(("user", "reviewed"), [(REP, False), (LEAD, True)])
async def test_review_import_in_a_group_dm_is_for_leads_as_in_a_dm(
    app: Harness, user: str, reviewed: bool,
) -> None:  # fmt: skip
    """A group DM is a direct message to `/referral import` (it asks a non-lead for a
    channel), but a channel to the upload offer: a rep's *Review import* there posted a
    review no lead sees, which sat in draft. Refused now, as in a DM; a lead's is posted."""
    await ensure_workspace(app.db, "T0001")
    vip = await import_target(app.db, "T0001", "VIP", create=True)
    await _review_in_group_dm(app, user, "F0GDM", vip.id or 0)

    reviews = [m for m in app.slack.messages if find_element(m.get("blocks") or [],
                                                             Action.APPROVE)]  # fmt: skip
    said = [e["text"] for e in app.slack.ephemerals] + [
        r["text"] for url in app.slack.responses for r in app.slack.responses[url]]
    refused = "Only team leads approve imports, and none sees this conversation"
    async with app.db.begin() as conn:
        batches = (await conn.execute(text("SELECT COUNT(*) FROM import_batch"))).scalar_one()
    if reviewed:
        assert [r["channel"] for r in reviews] == [GROUP_DM[0]]
        assert not any(refused in t for t in said), said
        assert batches == 1
    else:
        assert reviews == []
        assert any(refused in t for t in said), said
        assert batches == 0
