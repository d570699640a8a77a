"""Home says when a live campaign's due invites wait for a worker that can send them.

A worker without SMTP_URL and PUBLIC_URL (or OUTBOX_DIR), or without SECRET_KEY, leaves send
jobs queued for one that has them; `/referral campaign` and the shell's `campaign list` say
so under the campaign (invites.waiting_for_a_sender). Home showed the same campaign live with
its invites unsent, and not why. It says it now, in the campaign's own section (no block of
its own: Home stays within Slack's 100 blocks), to whoever opens Home, lead or not.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bot.campaigns import service
from bot.campaigns.enroll import SEND_JOB
from bot.jobs import queue
from handlers.home_messages import MAX_CAMPAIGNS_SHOWN
from models import CampaignState
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_campaign_list_waiting import (
    SHOP,
    TEAM,
    WAITING,
    _live_with_due_invites,  # nothing runs their jobs: Home is opened without `settle`
)

HOME_BLOCK_LIMIT = 100


async def _open_home(app: Harness, user: str = LEAD) -> dict[str, Any]:
    """Open the Home tab (app_home_opened over HTTP); the view Slack was given."""
    app.slack.home_views.pop(user, None)  # not the one published before
    reply = await app.requests.event({"type": "app_home_opened", "user": user,
                                      "channel": "D0HOME", "tab": "home",
                                      "event_ts": f"{time.time():.6f}"})  # fmt: skip
    assert reply.status == 200
    await app.done()  # the listener's publish, and no job run
    assert app.slack.block_errors == []
    view: dict[str, Any] = app.slack.home_views[user]
    assert len(view["blocks"]) <= HOME_BLOCK_LIMIT
    return view


def _campaign_text(view: dict[str, Any], name: str) -> str:
    """The campaign's section on Home."""
    for block in view["blocks"]:
        text = str((block.get("text") or {}).get("text", ""))
        if block["type"] == "section" and text.startswith(f"*{name}* · "):
            return text
    raise AssertionError(f"{name} not on Home: {json.dumps(view['blocks'])}")


async def test_home_says_under_a_campaign_that_its_due_invites_wait_for_a_worker(
    app: Harness,
) -> None:
    spring, _ = await _live_with_due_invites(app, "Spring", "Summer")
    autumn = await service.create_campaign(app.db, TEAM, "Autumn", store_url=SHOP)  # a draft
    await queue.register_worker(app.db, "host:1:w", {"enroll", "import"}, pid=1,
                                host="host")  # a worker without SMTP_URL: no send jobs
    for user in (LEAD, REP):
        view = await _open_home(app, user)
        for name in ("Spring", "Summer"):
            assert _campaign_text(view, name).endswith(
                f"Targets: VIP · 2 advocates · 0 invites sent\n{WAITING}"), (
                _campaign_text(view, name))  # fmt: skip
        assert "\n" not in _campaign_text(view, autumn.name).split("Targets: ")[1]

    # paused: its invites wait for the campaign, not for a worker
    await service.set_state(app.db, TEAM, spring, CampaignState.PAUSED, requested_by=LEAD)
    view = await _open_home(app)
    assert _campaign_text(view, "Spring").endswith("0 invites sent"), view
    assert _campaign_text(view, "Summer").endswith(f"\n{WAITING}")

    # a worker that can send runs: they don't wait for one
    await queue.register_worker(app.db, "host:2:w", {"enroll", SEND_JOB}, pid=2, host="host")
    view = await _open_home(app)
    assert _campaign_text(view, "Summer").endswith("0 invites sent")
    assert "no running worker" not in json.dumps(view["blocks"])


async def test_home_with_every_campaign_waiting_stays_within_its_block_limit(
    app: Harness,
) -> None:
    """The line is in each campaign's section: Home has as many blocks as without it."""
    names = [f"C{i:02}" for i in range(MAX_CAMPAIGNS_SHOWN + 1)]
    await _live_with_due_invites(app, *names)
    waiting = await _open_home(app)
    assert all(_campaign_text(waiting, name).endswith(f"\n{WAITING}")
               for name in names[:MAX_CAMPAIGNS_SHOWN])  # fmt: skip
    assert "and 1 more campaign: `/referral campaign` lists them all." in json.dumps(
        waiting["blocks"])  # fmt: skip
    await queue.register_worker(app.db, "host:2:w", {"enroll", SEND_JOB}, pid=2, host="host")
    sending = await _open_home(app)
    assert "no running worker" not in json.dumps(sending["blocks"])
    assert [b["type"] for b in sending["blocks"]] == [b["type"] for b in waiting["blocks"]]
