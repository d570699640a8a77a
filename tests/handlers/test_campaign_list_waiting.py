"""`/referral campaign` says when a live campaign's due invites wait for a worker that can send.

A worker without SMTP_URL and PUBLIC_URL (or OUTBOX_DIR), or without SECRET_KEY, leaves send
jobs queued for one that has them (bot.campaigns.jobs.send_handlers); the shell's `campaign
list` says so (invites.waiting_for_a_sender). Slack's list showed the campaign live, its
invites unsent, and not why: a merchant whose bot ran `serve --no-worker`, or a worker without
SMTP_URL, waited for invites nothing would ever send. It says so now, under the campaign, with
whom to ask (nothing in Slack starts a worker), within Slack's 50 blocks a message.
"""

from __future__ import annotations

import io
import json
from typing import Any

from bot.campaigns import service
from bot.campaigns.enroll import SEND_JOB, run_enrollment
from bot.imports.importer import import_files
from bot.jobs import queue
from bot.workspaces import ensure_workspace, find_segment
from handlers.campaign_messages import MAX_CAMPAIGNS_SHOWN
from handlers.ids import Action
from models import CampaignState
from tests.fakes.slack_api import MESSAGE_BLOCK_LIMIT, find_element
from tests.handlers.conftest import LEAD, Harness

TEAM = "T0001"
SHOP = "https://shop.example.com"
WAITING = (":warning: 2 invites are due, but no running worker can send them. Ask whoever runs "
           "the bot to start one with `SMTP_URL` and `PUBLIC_URL` set (or `OUTBOX_DIR`, to "
           "write invites as .eml files), and `SECRET_KEY`.")  # fmt: skip


async def _live_with_due_invites(app: Harness, *names: str) -> list[int]:
    """Live campaigns targeting VIP (two contacts), enrolled: each with two invites due, their
    send job queued. No job runs (the harness's worker isn't one that registers as running)."""
    await ensure_workspace(app.db, TEAM)
    await import_files(app.db, TEAM, [("people.csv", io.BytesIO(
        b"email,first_name\na@example.com,A\nb@example.com,B\n"))], segment="VIP",
        create_segment=True)  # fmt: skip
    vip = await find_segment(app.db, TEAM, "VIP")
    assert vip is not None
    ids = []
    for name in names:
        campaign = await service.create_campaign(app.db, TEAM, name, store_url=SHOP,
                                                 sender="Shop <hello@shop.example>")  # fmt: skip
        ids.append(campaign.id or 0)
        await service.set_state(app.db, TEAM, ids[-1], CampaignState.LIVE, requested_by=LEAD,
                                queue_job=False)  # fmt: skip
        enrollment = await service.target(app.db, TEAM, ids[-1], vip.id or 0,
                                          requested_by=LEAD, queue_job=False)  # fmt: skip
        assert enrollment is not None
        await run_enrollment(app.db, TEAM, enrollment, hold_seconds=0)
    return ids


def _text_of(listing: dict[str, Any], campaign_id: int) -> str:
    """The campaign's section in the list: the block before its buttons."""
    blocks = listing["blocks"]
    for i, block in enumerate(blocks):
        if find_element([block], Action.CAMPAIGN_EDIT) is not None and any(
                e.get("value") == str(campaign_id) for e in block["elements"]):  # fmt: skip
            return str(blocks[i - 1]["text"]["text"])
    raise AssertionError(f"campaign {campaign_id} not listed")


async def test_due_invites_no_running_worker_can_send_are_said_under_their_campaign(
    app: Harness,
) -> None:
    (spring,) = await _live_with_due_invites(app, "Spring")
    await queue.register_worker(app.db, "host:1:w", {"enroll", "import"}, pid=1,
                                host="host")  # a worker without SMTP_URL: no send jobs
    listing = await app.listing("campaign")
    assert _text_of(listing, spring).endswith(f"Invite email: on, at once\n{WAITING}"), (
        _text_of(listing, spring))
    assert app.slack.block_errors == []

    # Go live of another campaign: the list it answers with says it too
    autumn = await service.create_campaign(app.db, TEAM, "Autumn", store_url=SHOP,
                                           sender="Shop <hello@shop.example>")  # fmt: skip
    listing = await app.listing("campaign")
    live = (await app.click_in(listing, Action.CAMPAIGN_LIVE, str(autumn.id)))[-1]
    assert live["text"].startswith("Autumn is live."), live["text"]
    assert _text_of(live, spring).endswith(f"\n{WAITING}")
    assert ":warning: 2 invites are due" not in _text_of(live, autumn.id or 0)

    # a worker that can send runs: they don't wait for one
    await queue.register_worker(app.db, "host:2:w", {"enroll", SEND_JOB}, pid=2, host="host")
    listing = await app.listing("campaign")
    assert _text_of(listing, spring).endswith("Invite email: on, at once"), (
        _text_of(listing, spring))
    assert "no running worker" not in json.dumps(listing)


async def test_a_page_of_campaigns_all_waiting_stays_within_slacks_block_limit(
    app: Harness,
) -> None:
    """The line is in each campaign's section, not a block of its own: twenty campaigns and
    their buttons are 40 of a message's 50 blocks, and twenty more would be over."""
    ids = await _live_with_due_invites(app, *(f"C{i:02}" for i in range(MAX_CAMPAIGNS_SHOWN + 1)))
    listing = await app.listing("campaign")
    assert app.slack.block_errors == []
    assert len(listing["blocks"]) <= MESSAGE_BLOCK_LIMIT
    assert all(_text_of(listing, c).endswith(f"\n{WAITING}") for c in ids[:MAX_CAMPAIGNS_SHOWN])
    more = find_element(listing["blocks"], Action.CAMPAIGN_MORE)
    assert more is not None
    last = (await app.click_in(listing, Action.CAMPAIGN_MORE, more[1]["value"]))[-1]
    assert app.slack.block_errors == []
    assert _text_of(last, ids[-1]).endswith(f"\n{WAITING}")
