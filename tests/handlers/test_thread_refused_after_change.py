"""A lead's change from an import's thread is made, then Slack fails the line saying so."""

from __future__ import annotations

import pytest

from handlers.ids import Action
from tests.handlers.conftest import LEAD, Harness
from tests.handlers.test_import_flow import _count
from tests.handlers.test_targeting import _campaign, _click_target, _imported, _report, _targeted


def _told(app: Harness) -> list[str]:
    told = [e["text"] for e in app.slack.ephemerals if e["user"] == LEAD]
    return told + [m["text"] for m in app.slack.messages if m["channel"].startswith("D")]


@pytest.mark.parametrize("failure", ["not_in_channel", "503"])
async def test_cancel_invites_made_is_not_said_to_maybe_have_failed(
    app: Harness, failure: str,
) -> None:  # fmt: skip
    """*Cancel invites* cancels the held invites, then chat.postMessage in the thread fails
    (the bot removed from the channel, or Slack answering 503). The lead is told "Something
    went wrong on our side, so this may not have gone through. Try again", and trying again
    says "Too late: these invites have already left (or were cancelled)": whether customers
    are being emailed is left unknown, though nothing will be sent."""
    _spring, message = await _targeted(app)
    report = _report(app, message)
    enrollment = next(e["value"] for b in report["blocks"] if b["type"] == "actions"
                      for e in b["elements"] if e["action_id"] == Action.CANCEL_INVITES)
    if failure == "503":
        app.slack.outage("chat.postMessage", status=503)
    else:
        app.slack.fail("chat.postMessage", failure)
    await app.requests.block_action(Action.CANCEL_INVITES, enrollment, user_id=LEAD,
                                    message_ts=report["ts"])  # fmt: skip
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM invite WHERE state = 'cancelled'") == 2
    told = _told(app)
    assert told, "the lead was told nothing"
    assert not any("may not have gone through" in t for t in told), told


async def test_target_a_campaign_made_is_not_said_to_maybe_have_failed(app: Harness) -> None:
    """*Target a campaign* enrolls the segment (2 advocates, their invites held), then the
    announcement in the thread meets a dropped connection (twice: slack_sdk retries once).
    A refusal by Slack is told "Enrolling has started, but Slack refused my message in the
    thread"; this is told "Something went wrong … may not have gone through. Try again"."""
    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    app.slack.outage("chat.postMessage", times=2)
    await _click_target(app, message, spring.id or 0)
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 2
    told = _told(app)
    assert told, "the lead was told nothing"
    assert not any("may not have gone through" in t for t in told), told
