"""A live campaign's one-day invite delay is said in the singular on the review."""

from __future__ import annotations

import json

from bot.campaigns import service
from bot.workspaces import ensure_workspace, import_target
from handlers.ids import Action, BlockId
from models import CampaignState
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_import_flow import CSV, _form, _open_modal, _review


async def test_a_one_day_invite_delay_is_said_in_the_singular_on_the_review(app: Harness) -> None:
    """The review's line for a live campaign with a one-day invite delay read "*2 will be
    invited* in 1 days"; /referral campaign says "1 day after enrollment"."""
    await ensure_workspace(app.db, "T0001")
    vip = await import_target(app.db, "T0001", "VIP", create=True)
    spring = await service.create_campaign(app.db, "T0001", "Spring",
                                           store_url="https://shop.example", invite_delay_days=1)
    await service.set_state(app.db, "T0001", spring.id or 0, CampaignState.LIVE,
                            requested_by=LEAD)  # fmt: skip
    await service.target(app.db, "T0001", spring.id or 0, vip.id or 0, requested_by=LEAD)
    await app.settle()
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "q3.csv", CSV)
    values = _form(files=[file], consent=True)
    values[BlockId.SEGMENT] = {Action.SEGMENT: {"type": "external_select", "selected_option": {
        "text": {"type": "plain_text", "text": "VIP"}, "value": str(vip.id)}}}
    await app.requests.view_submission(state_values=values, view_id=view_id, user_id=REP)
    await app.settle()
    shown = json.dumps((await _review(app))["blocks"])
    assert "will be invited" in shown, shown
    assert "in 1 days" not in shown, shown
    assert "in 1 day" in shown, shown
