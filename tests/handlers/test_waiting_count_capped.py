"""The line of due invites waiting for a sender counts them up to 1,000: past that it says
"more than 1,000", on Home, in Slack's campaign list and in `campaign list`.

Home counts them on each publish while no running worker can send (invites.
waiting_for_a_sender): with a million due invites, every publish joined each of them to its
campaign and enrollment. The count stops at 1,001 in all now, and how many of those first
found were whose says nothing of the rest, so past it no campaign is given a number:
`--json` gives each campaign found 1001, "more than 1,000".
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from bot.campaigns import service
from bot.campaigns.enroll import run_enrollment
from bot.campaigns.jobs import SEND_NEEDS
from bot.imports.importer import import_files
from bot.jobs import queue
from bot.workspaces import ensure_workspace, find_segment
from models import CampaignState
from tests.handlers.conftest import LEAD, Harness
from tests.handlers.test_campaign_list_waiting import SHOP, TEAM, _text_of
from tests.handlers.test_home_waiting_invites import _campaign_text, _open_home
from tests.shell import run

# invites.WAITING_COUNTED, and what `--json` gives past it (invites.WAITING_MORE)
WAITING_COUNTED, WAITING_MORE = 1_000, 1_001
_ASK = (" Ask whoever runs the bot to start one with `SMTP_URL` and `PUBLIC_URL` set (or "
        "`OUTBOX_DIR`, to write invites as .eml files), and `SECRET_KEY`.")  # fmt: skip
MORE = (f":warning: More than {WAITING_COUNTED:,} invites of live campaigns are due, some of "
        f"them this one's, but no running worker can send them.{_ASK}")  # fmt: skip
MORE_IN_THE_SHELL = (f"  more than {WAITING_COUNTED:,} invites of live campaigns are due, some "
                     f"of them this one's, but no running worker can send them: {SEND_NEEDS} "
                     "(`referral-bot jobs` shows the send jobs waiting)")  # fmt: skip


async def _live_on(app: Harness, name: str, segment: str, contacts: int, first: int = 0) -> int:
    """Campaign `name`, live, targeting `segment` (imported: `contacts` addresses from
    number `first` on), enrolled: one invite due per contact, its send job queued."""
    csv = "email\n" + "".join(f"p{i}@example.com\n" for i in range(first, first + contacts))
    await import_files(app.db, TEAM, [("people.csv", io.BytesIO(csv.encode()))],
                       segment=segment, create_segment=True)  # fmt: skip
    found = await find_segment(app.db, TEAM, segment)
    assert found is not None
    campaign = await service.create_campaign(app.db, TEAM, name, store_url=SHOP,
                                             sender="Shop <hello@shop.example>")  # fmt: skip
    cid = campaign.id or 0
    await service.set_state(app.db, TEAM, cid, CampaignState.LIVE, requested_by=LEAD,
                            queue_job=False)  # fmt: skip
    enrollment = await service.target(app.db, TEAM, cid, found.id or 0, requested_by=LEAD,
                                      queue_job=False)  # fmt: skip
    assert enrollment is not None
    await run_enrollment(app.db, TEAM, enrollment, hold_seconds=0)
    return cid


async def _listed_in_the_shell(db_env: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    """`campaign list`'s text, and its --json rows."""
    text = await asyncio.to_thread(run, db_env, "campaign", "list", "--team", TEAM)
    rows = await asyncio.to_thread(run, db_env, "campaign", "list", "--json", "--team", TEAM)
    assert text.returncode == 0 and rows.returncode == 0, (text.stderr, rows.stderr)
    return text.stdout, json.loads(rows.stdout)


async def test_more_than_a_thousand_due_invites_are_said_more_than_1000(
    app: Harness, db_env: dict[str, str]
) -> None:
    await ensure_workspace(app.db, TEAM)
    spring = await _live_on(app, "Spring", "VIP", WAITING_COUNTED)
    await queue.register_worker(app.db, "host:1:w", {"enroll", "import"}, pid=1,
                                host="host")  # a worker without SMTP_URL: no send jobs
    # a thousand are counted, each of them
    exact = f":warning: {WAITING_COUNTED:,} invites are due, but no running worker can send them."
    assert _campaign_text(await _open_home(app), "Spring").endswith(f"\n{exact}{_ASK}")
    text, rows = await _listed_in_the_shell(db_env)
    assert f"  {WAITING_COUNTED:,} invites are due, but no running" in text, text
    assert [r["invites_waiting_for_worker"] for r in rows] == [WAITING_COUNTED]

    # one more, another campaign's: the count stops past 1,000, and says so under each
    autumn = await _live_on(app, "Autumn", "One", 1, first=WAITING_COUNTED)
    view = await _open_home(app)
    for name in ("Spring", "Autumn"):
        assert _campaign_text(view, name).endswith(f"\n{MORE}"), _campaign_text(view, name)
    listing = await app.listing("campaign")
    assert app.slack.block_errors == []
    for campaign in (spring, autumn):
        assert _text_of(listing, campaign).endswith(f"\n{MORE}"), _text_of(listing, campaign)
    text, rows = await _listed_in_the_shell(db_env)
    assert text.count(MORE_IN_THE_SHELL + "\n") == 2, text
    assert [r["invites_waiting_for_worker"] for r in rows] == [WAITING_MORE, WAITING_MORE]

    # a worker that can send runs: nothing is said, whatever the count
    await queue.register_worker(app.db, "host:2:w", {"enroll", "send_invites"}, pid=2,
                                host="host")  # fmt: skip
    assert "no running worker" not in json.dumps((await _open_home(app))["blocks"])
