"""Go live from `/referral campaign` says what the invites will come from, as Save does.

A campaign that emails with no sender sends from `invites@` the bot's own domain (PUBLIC_URL's
host), or from an IP address, which no provider delivers. Saving the form warned; Go live, the
click that starts the emails, said only "Spring is live", so a lead who had saved the form
long before (or whose campaign the shell made) started a campaign from the wrong address.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.campaigns.service import create_campaign, target
from bot.workspaces import create_segment, ensure_workspace
from handlers.ids import Action
from models import Database
from tests.fakes.slack_api import find_element
from tests.handlers.conftest import LEAD, Harness, running_app

TEAM = "T0001"
SHOP = "https://shop.example.com"


async def _spring(app: Harness, **fields: Any) -> int:
    """Spring, a draft targeting VIP (empty), made outside Slack: no save warned anyone."""
    await ensure_workspace(app.db, TEAM)
    spring = await create_campaign(app.db, TEAM, "Spring <!here>", store_url=SHOP,
                                   created_by=LEAD, **fields)  # fmt: skip
    vip = await create_segment(app.db, TEAM, "VIP")
    await target(app.db, TEAM, spring.id or 0, vip.id or 0, requested_by=LEAD)
    return spring.id or 0


async def _go_live(app: Harness, campaign_id: int) -> dict[str, Any]:
    """Click Go live on the list; the list that replaces it."""
    answer = (await app.click_in(await app.listing("campaign"), Action.CAMPAIGN_LIVE,
                                 str(campaign_id)))[-1]  # fmt: skip
    assert answer["replace_original"] is True
    assert app.slack.block_errors == []
    return answer


def _note(answer: dict[str, Any]) -> str:
    """The note on top of the list, as the lead sees it (its first block)."""
    return str(answer["blocks"][0]["text"]["text"])


async def test_go_live_without_a_sender_warns_as_the_save_does(app: Harness) -> None:
    spring = await _spring(app)
    live = await _go_live(app, spring)
    note = live["text"]
    assert note.startswith("Spring &lt;!here&gt; is live: enrolling its 1 target segment "
                           "now.\n:warning: Invites of 'Spring &lt;!here&gt;' will come from "
                           "\"shop.example.com\" &lt;invites@bot.example&gt;: no sender is "
                           "set"), note
    assert ("the bot's domain rather than the shop's" in note
            and note.endswith("Set one: fill in *Sender* with *Edit*.")), note  # fmt: skip
    assert _note(live) == note and "<!here>" not in json.dumps(live)
    assert find_element(live["blocks"], Action.CAMPAIGN_PAUSE) is not None

    # the stale button of a campaign live already: it made nothing live, and says no more
    await app.settle()  # the enrollment runs (VIP is empty)
    again = await _go_live(app, spring)
    assert again["text"] == "Spring &lt;!here&gt; is already live.", again["text"]


async def test_go_live_with_a_sender_or_without_the_invite_email_says_nothing_of_it(
    app: Harness,
) -> None:
    shop = await _spring(app, sender="Shop <hello@shop.example>")
    assert (await _go_live(app, shop))["text"] == (
        "Spring &lt;!here&gt; is live: enrolling its 1 target segment now.")
    await ensure_workspace(app.db, TEAM)
    klaviyo = await create_campaign(app.db, TEAM, "Klaviyo", store_url=SHOP, created_by=LEAD,
                                    invite_email=False)  # fmt: skip
    answer = await _go_live(app, klaviyo.id or 0)
    assert ":warning:" not in answer["text"] and answer["text"].startswith("Klaviyo is live.")


async def test_go_live_from_a_bot_reached_by_ip_address_says_mail_wont_be_delivered(
    db: Database, tmp_path: Path
) -> None:
    """PUBLIC_URL an IP address: invites@203.0.113.9 is no mail domain at all."""
    async with running_app(db, tmp_path, public_url="https://203.0.113.9") as app:
        spring = await _spring(app)
        note = (await _go_live(app, spring))["text"]
    assert ("\n:warning: Invites of 'Spring &lt;!here&gt;' will come from \"shop.example.com\" "
            "&lt;invites@203.0.113.9&gt;: no sender is set") in note, note
    assert ("203.0.113.9 is an IP address: mail from it won't be delivered. Set the shop's own "
            "sender: fill in *Sender* with *Edit*.") in note, note
