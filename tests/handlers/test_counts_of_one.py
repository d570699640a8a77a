"""A count of one is said in the singular wherever people read it: Home's lists, the audit
log and its entries, the delete confirmation and Review contacts said "1 more segments",
"1 entries", "1 contacts taken out", "its 1 contact stay" and "1 contact(s)" (this last in
tests/handlers/test_uploads_and_limits.py); an import's thread "0 rejected and 1 duplicate
rows" and "(0 of 1 rows)", its review "1 more live campaign(s) target"."""

from __future__ import annotations

import json

from bot.audit import recent
from bot.campaigns.preview import CampaignPreview
from bot.campaigns.service import create_campaign, target
from bot.workspaces import create_segment, ensure_workspace, find_segment
from handlers.home_messages import MAX_SEGMENTS_EVER
from handlers.ids import Action, Callback
from handlers.messages import preview_lines
from handlers.segment_messages import MAX_CAMPAIGNS_NAMED
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_home import _open_home, _seed
from tests.handlers.test_import_flow import _form, _open_modal, _review
from tests.handlers.test_segments import _button, _import

TEAM = "T0001"


async def test_home_says_one_more_segment_campaign_and_import(app: Harness) -> None:
    # All Customers and 25 segments: one past what Home ever lists; one campaign and one
    # import past the first page
    await _seed(app, segments=MAX_SEGMENTS_EVER, campaigns=11, imports=11)
    view = await _open_home(app, REP)
    shown = json.dumps(view["blocks"], ensure_ascii=False)
    assert "Show more (1 more import)" in shown, shown
    assert "…and 1 more campaign: `/referral campaign` lists them all." in shown, shown
    assert "1 more imports" not in shown and "1 more campaigns" not in shown
    for _ in range(2):  # up to the most segments Home lists: the rest is said, not offered
        button = next(e for b in view["blocks"] if b["type"] == "actions"
                      for e in b["elements"] if e["action_id"] == Action.HOME_MORE_SEGMENTS)
        await app.requests.block_action(button["action_id"], button["value"], user_id=REP)
        await app.settle()
        view = app.slack.home_views[REP]
    shown = json.dumps(view["blocks"], ensure_ascii=False)
    assert "…and 1 more segment: `/referral segments` lists them all." in shown, shown
    assert "1 more segments" not in shown


async def test_home_offers_one_more_segment(app: Harness) -> None:
    await _seed(app, segments=10, campaigns=0, imports=0)  # and All Customers: 11
    shown = json.dumps((await _open_home(app, REP))["blocks"], ensure_ascii=False)
    assert "Show more (1 more segment)" in shown, shown


async def test_the_audit_log_and_a_deleted_segments_entry_count_one(app: Harness) -> None:
    await ensure_workspace(app.db, TEAM)
    await create_segment(app.db, TEAM, "Solo", actor=LEAD)
    answer = await app.listing("audit")
    assert answer["text"] == "Audit log: 1 entry", answer["text"]

    await _import(app, "Solo", "email\nana@example.com\n")
    listing = await app.listing("segments")
    delete = _button(listing, Action.SEGMENT_DELETE, "Solo")
    await app.click_in(listing, Action.SEGMENT_DELETE, delete["value"])
    deleted = [e.detail for e in await recent(app.db, TEAM) if e.action == "segment.deleted"]
    assert deleted == ["1 contact taken out; it stays in All Customers"], deleted
    assert "1 contact taken out" in json.dumps((await app.listing("audit"))["blocks"])


async def test_the_delete_confirmation_names_one_more_campaign(app: Harness) -> None:
    vip = await _import(app, "VIP", "email\nana@example.com\n")
    for i in range(MAX_CAMPAIGNS_NAMED + 1):
        campaign = await create_campaign(app.db, TEAM, f"Spring {i:02d}", created_by=LEAD,
                                         store_url="https://shop.example")  # fmt: skip
        await target(app.db, TEAM, campaign.id or 0, vip, requested_by=LEAD)
    listing = await app.listing("segments")
    delete = _button(listing, Action.SEGMENT_DELETE, "VIP")
    await app.click_in(listing, Action.SEGMENT_DELETE, delete["value"])
    modal = app.slack.open_views(LEAD)[-1]
    assert modal["callback_id"] == Callback.SEGMENT_DELETE
    said = json.dumps(modal["blocks"], ensure_ascii=False)
    assert "• …and 1 more campaign." in said, said
    assert "Its 1 contact stays in All Customers" in said, said
    assert await find_segment(app.db, TEAM, "VIP") is not None  # nothing deleted yet


async def test_an_imports_thread_says_one_duplicate_row_and_one_row_to_import(
    app: Harness,
) -> None:
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "q.csv", b"email\nana@example.com\nANA@example.com\n")
    await app.requests.view_submission(state_values=_form(files=[file], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    review = await _review(app)
    (shared,) = await app.csvs_sent(review["ts"])
    assert shared.initial_comment == ("1 duplicate row in *q.csv* won't be imported; this CSV "
                                      "says why."), shared.initial_comment  # fmt: skip

    batch = review["blocks"][-1]["elements"][0]["value"]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=review["ts"])
    await app.later.drain()  # the import itself not run yet: its progress is what shows
    thread = [m["text"] for m in app.slack.messages_in("C0001", review["ts"])]
    assert any(t.endswith("Importing into *VIP*: 0% (0 of 1 row)") for t in thread), thread


def test_a_review_counts_one_more_live_campaign_in_the_singular() -> None:
    previews = [CampaignPreview(f"Campaign number {i} of the spring referral programme", 2, 0,
                                {}, 0, 0) for i in range(3)]  # fmt: skip
    line = preview_lines(previews[:1])
    # room for two lines and one character short of the third (its line break)
    said = preview_lines(previews, room=3 * (len(line) + 1) - 1)
    assert said.endswith("\n…and 1 more live campaign targets this segment and will email "
                         "them too."), said  # fmt: skip
