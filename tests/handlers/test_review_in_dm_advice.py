"""The line beside a review sent by DM because its channel can never take it."""

from __future__ import annotations

import pytest

from handlers.ids import Action
from tests.handlers.conftest import REP, Harness
from tests.handlers.test_import_flow import _form, _open_modal


@pytest.mark.parametrize("refusal", ["is_archived", "restricted_action"])
async def test_a_channel_that_can_never_take_the_review_is_not_answered_with_invite_me(
    app: Harness, refusal: str,
) -> None:  # fmt: skip
    """/referral import typed in a channel that was archived (or whose posting is restricted
    to admins): the review goes to the requester's DM, beside a line that says "invite me to
    <#C0001> with /invite and start the import from there". Inviting the bot changes
    nothing in an archived (or admin-only) channel: the advice is false, as the review's own
    test for a refusal that isn't the channel's says of "invite me"."""
    app.slack.fail("chat.postMessage", refusal)
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(email="a@example.com", segment="DM"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    message = app.slack.find_action(Action.APPROVE)
    assert message is not None and message["channel"].startswith("D")
    said = [m["text"] for m in app.slack.messages_in(message["channel"]) if not m.get("blocks")]
    assert len(said) == 1, said
    assert "with /invite" not in said[0], said[0]
