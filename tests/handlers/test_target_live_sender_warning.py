"""*Go live and target* in an import's thread says what the invites will come from, as Go live does.

A campaign that emails with no sender sends from `invites@` the bot's own domain (PUBLIC_URL's
host), or from an IP address, which no provider delivers. Saving the form and Go live in
`/referral campaign` warn the lead; the thread's *Go live and target*, which starts the emails
too, said only "took Spring live", so a lead whose campaign the shell made (or who had saved
its form long before) started it from the wrong address. The click that put it live is told,
privately: the thread's announcement is the channel's.
"""

from __future__ import annotations

import json
from typing import Any

from bot.campaigns import service
from bot.workspaces import ensure_workspace
from handlers.ids import Action
from models import Campaign, CampaignState
from tests.handlers.conftest import LEAD, Harness
from tests.handlers.test_targeting import ADMIN, _imported, _target

TEAM = "T0001"
WARNING = (":warning: Invites of 'Spring &lt;!here&gt;' will come from \"shop.example.com\" "
           "&lt;invites@bot.example&gt;: no sender is set, so the address is made from the "
           "bot's PUBLIC_URL, the bot's domain rather than the shop's: mail from the shop's own "
           "domain is more likely to reach inboxes. Set one: fill in *Sender* with *Edit* in "
           "`/referral campaign`.")  # fmt: skip


async def _draft(app: Harness, **fields: Any) -> Campaign:
    """Spring, a draft made outside Slack (no save warned anyone)."""
    await ensure_workspace(app.db, TEAM)
    return await service.create_campaign(app.db, TEAM, "Spring <!here>",
                                         store_url="https://shop.example.com", created_by=LEAD,
                                         **fields)  # fmt: skip


async def _offered_go_live(app: Harness, campaign: Campaign) -> tuple[dict[str, Any], str]:
    """The thread of an import of two contacts, whose Target on the draft offered *Go live
    and target*: the import's review message and that button's value."""
    message = await _imported(app)
    await _target(app, message, campaign.id or 0)
    offer = app.slack.ephemerals[-1]
    value = next(e["value"] for b in offer["blocks"] if b["type"] == "actions"
                 for e in b["elements"] if e.get("action_id") == Action.TARGET_GO_LIVE)
    return message, str(value)


async def _go_live(app: Harness, message: dict[str, Any], value: str, *,
                   user: str = LEAD) -> None:  # fmt: skip
    await app.requests.block_action(Action.TARGET_GO_LIVE, value, user_id=user,
                                    message_ts=message["ts"])  # fmt: skip
    await app.done()


def _warnings(app: Harness) -> list[dict[str, Any]]:
    return [e for e in app.slack.ephemerals if ":warning: Invites of" in e["text"]]


def _thread(app: Harness, message: dict[str, Any]) -> list[str]:
    return [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]


async def test_go_live_and_target_without_a_sender_warns_the_lead_who_clicked(
    app: Harness,
) -> None:
    spring = await _draft(app)
    message, value = await _offered_go_live(app, spring)
    await _go_live(app, message, value)

    (warned,) = _warnings(app)
    assert warned["text"] == f"You took *Spring &lt;!here&gt;* live.\n{WARNING}", warned["text"]
    assert (warned["user"], warned["thread_ts"]) == (LEAD, message["ts"])
    assert "<!here>" not in json.dumps(app.slack.ephemerals)
    # the channel's announcement is as it was
    (announced,) = [t for t in _thread(app, message) if "took *Spring" in t]
    assert announced == (f"<@{LEAD}> took *Spring &lt;!here&gt;* live and targeted this "
                         "segment: enrolling now."), announced  # fmt: skip
    await app.settle()
    assert (await service.get_campaign(app.db, TEAM, spring.id or 0)).state == "live"

    # a stale button: the campaign is live already, so this click put nothing live
    await _go_live(app, message, value)
    await app.settle()
    assert len(_warnings(app)) == 1, [e["text"] for e in app.slack.ephemerals]


async def test_only_the_click_that_put_it_live_warns(app: Harness) -> None:
    """Another lead put Spring live from `/referral campaign` (where Go live warned them) after
    the thread offered *Go live and target*: that click only targets, and says nothing of it."""
    app.slack.users[ADMIN] = {"is_admin": True}
    spring = await _draft(app)
    message, value = await _offered_go_live(app, spring)
    await service.set_state(app.db, TEAM, spring.id or 0, CampaignState.LIVE,
                            requested_by=ADMIN)  # fmt: skip
    await app.settle()
    await _go_live(app, message, value)
    await app.settle()
    assert _warnings(app) == []
    thread = _thread(app, message)  # it targeted; the other lead took it live
    assert [t for t in thread if "targeted *Spring" in t and "with this segment" in t], thread
    assert not [t for t in thread if "took *Spring" in t], thread


async def test_with_a_sender_or_without_the_invite_email_nothing_is_said_of_it(
    app: Harness,
) -> None:
    shop = await _draft(app, sender="Shop <hello@shop.example>")
    message, value = await _offered_go_live(app, shop)
    await _go_live(app, message, value)
    await app.settle()
    klaviyo = await service.create_campaign(app.db, TEAM, "Klaviyo",
                                            store_url="https://shop.example.com",
                                            created_by=LEAD, invite_email=False)  # fmt: skip
    await _target(app, message, klaviyo.id or 0)
    await _go_live(app, message, f"{klaviyo.id}:{value.partition(':')[2]}")
    await app.settle()
    assert _warnings(app) == []
    thread = _thread(app, message)
    assert [t for t in thread if "took *Spring" in t] and [t for t in thread
                                                           if "took *Klaviyo*" in t]


async def test_a_thread_that_refuses_the_announcement_still_warns(app: Harness) -> None:
    """Slack refused the announcement: the click is told enrolling started, and the warning
    with it (the campaign is live all the same)."""
    spring = await _draft(app)
    message, value = await _offered_go_live(app, spring)
    app.slack.fail("chat.postMessage", "restricted_action")
    await _go_live(app, message, value)
    (warned,) = _warnings(app)
    assert warned["text"].startswith("Enrolling has started, but Slack refused my message in "
                                     "the thread (restricted_action)."), warned["text"]
    assert warned["text"].endswith(f"\n{WARNING}"), warned["text"]
    assert warned["user"] == LEAD


async def test_a_thread_where_slack_refuses_the_warning_sends_it_by_direct_message(
    app: Harness,
) -> None:
    spring = await _draft(app)
    message, value = await _offered_go_live(app, spring)
    app.slack.fail("chat.postEphemeral", "channel_not_found")
    await _go_live(app, message, value)
    assert _warnings(app) == []
    (told,) = [m["text"] for m in app.slack.messages_in(app.slack.dm_channels[LEAD])]
    assert told == f"You took *Spring &lt;!here&gt;* live.\n{WARNING}", told
    assert [t for t in _thread(app, message) if "took *Spring" in t]
