"""Consent in the import form and on the review message; *Preview only* writes nothing."""

from __future__ import annotations

import json

from bot.audit import recent
from bot.workspaces import find_segment
from handlers.ids import Action, BlockId
from tests.fakes.slack_requests import file_shared_event
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_import_flow import _count, _form, _open_modal, _review
from tests.handlers.test_targeting import _campaign, _imported, _target


def _choose(form: dict, segment_id: int) -> dict:
    form[BlockId.SEGMENT][Action.SEGMENT]["selected_option"] = {
        "text": {"type": "plain_text", "text": "VIP"}, "value": str(segment_id)}  # fmt: skip
    return form


def _button(message: dict, action: str) -> dict | None:
    return next((e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
                 if e.get("action_id") == action), None)  # fmt: skip


async def _vip_targeted_by_live_campaign(app: Harness, *, invites: bool = True) -> int:
    from bot.campaigns import service

    spring = await _campaign(app, "Spring <!channel>", live=True)
    if not invites:
        await service.update_campaign(app.db, "T0001", spring.id or 0, invite_email=False)
    await _target(app, await _imported(app), spring.id or 0)
    segment = await find_segment(app.db, "T0001", "VIP")
    assert segment is not None and segment.id is not None
    return segment.id


async def test_consent_is_required_when_a_live_campaign_sends_invites(app: Harness) -> None:
    segment_id = await _vip_targeted_by_live_campaign(app)
    view_id = await _open_modal(app)
    form = _choose(_form(email="new@example.com"), segment_id)
    reply = await app.requests.view_submission(state_values=form, view_id=view_id, user_id=REP)
    assert reply.body["response_action"] == "errors"
    assert "agreed to hear from us" in reply.body["errors"][BlockId.CONSENT]
    batches = await _count(app, "SELECT COUNT(*) FROM import_batch")

    form = _choose(_form(email="new@example.com", consent=True), segment_id)
    await app.requests.view_submission(state_values=form, view_id=view_id, user_id=REP)
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == batches + 1
    message = await _review(app)
    rendered = json.dumps(message["blocks"])
    assert f"<@{REP}> confirmed these people agreed to hear from us" in rendered
    assert _button(message, Action.CONFIRM_CONSENT) is None
    entries = await recent(app.db, "T0001")
    consent = [e for e in entries if e.action == "import.consent"]
    assert consent and consent[0].actor == REP
    assert app.slack.block_errors == []


async def test_consent_isnt_asked_when_the_invite_email_is_off(app: Harness) -> None:
    segment_id = await _vip_targeted_by_live_campaign(app, invites=False)
    view_id = await _open_modal(app)
    form = _choose(_form(email="new@example.com"), segment_id)
    await app.requests.view_submission(state_values=form, view_id=view_id, user_id=REP)
    await app.settle()
    message = await _review(app)
    assert _button(message, Action.CONFIRM_CONSENT) is None
    assert "Consent not confirmed" not in json.dumps(message["blocks"])


async def test_an_upload_without_consent_cant_be_approved_until_confirmed(app: Harness) -> None:
    """A file offered from a channel has no form: the review message asks instead."""
    segment_id = await _vip_targeted_by_live_campaign(app)
    app.slack.add_file("F0007", "late.csv", b"email\nlate@example.com\n", channels=["C0001"])
    await app.requests.event(file_shared_event("F0007", channel_id="C0001"), event_id="Ev7")
    await app.settle()
    offer = next(m for m in app.slack.messages if "late.csv" in m.get("text", ""))
    chosen = {BlockId.UPLOAD: {Action.UPLOAD_SEGMENT: {
        "type": "external_select", "selected_option": {
            "text": {"type": "plain_text", "text": "VIP"}, "value": str(segment_id)}}}}  # fmt: skip
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0007", user_id=REP,
                                    message_ts=offer["ts"], state_values=chosen)  # fmt: skip
    await app.settle()
    message = await _review(app)
    assert "Consent not confirmed" in json.dumps(message["blocks"])
    value = _button(message, Action.APPROVE)["value"]  # type: ignore[index]
    await app.requests.block_action(Action.APPROVE, value, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    refusal = app.slack.ephemerals[-1]["text"]
    assert "must first confirm they agreed" in refusal and "<!channel>" not in refusal
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 2

    button = _button(message, Action.CONFIRM_CONSENT)
    assert button is not None and "confirm" in button
    await app.requests.block_action(Action.CONFIRM_CONSENT, value, user_id=REP,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert "confirmed these people agreed" in json.dumps(
        app.slack.message("C0001", message["ts"])["blocks"])
    await app.requests.block_action(Action.APPROVE, value, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 3


async def test_preview_only_reports_every_count_and_writes_nothing(app: Harness) -> None:
    segment_id = await _vip_targeted_by_live_campaign(app)
    view_id = await _open_modal(app)
    csv = (b"email,first_name\njane@example.com,Jane\nnew@example.com,New\n"
           b"new@example.com,Again\nnot-an-email,X\n")  # fmt: skip
    file = app.slack.add_file("F0009", "more.csv", csv)
    form = _choose(_form(files=[file], consent=True), segment_id)
    await app.requests.view_submission(state_values=form, view_id=view_id, user_id=REP)
    await app.settle()
    message = await _review(app)
    before = {table: await _count(app, f"SELECT COUNT(*) FROM {table}")
              for table in ("contact", "segment_member", "advocate", "invite")}  # fmt: skip
    button = _button(message, Action.PREVIEW_ONLY)
    assert button is not None
    await app.requests.block_action(Action.PREVIEW_ONLY, button["value"], user_id=REP,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    preview = app.slack.ephemerals[-1]
    assert preview["user"] == REP
    text = preview["text"]
    assert "nothing was written" in text
    assert "4 rows: *2 valid*, 1 duplicate, 1 rejected" in text
    assert "1 new contact, 1 already known" in text
    assert "1 would be added to the segment, 1 is already in it" in text
    assert "Spring &lt;!channel&gt;" in text and "will be invited" in text
    after = {table: await _count(app, f"SELECT COUNT(*) FROM {table}") for table in before}
    assert after == before


async def test_a_campaign_targeting_all_customers_asks_consent_and_is_previewed(
        app: Harness) -> None:  # fmt: skip
    """Every contact an import adds is in All Customers too, and a live campaign targeting it
    emails them right after the import: the form asks for consent (into a new segment too)
    and the review says whom it will invite, as for a campaign targeting the import's segment.
    Before, neither did: the lead approved without a word, and the contacts were emailed."""
    from bot.campaigns import service

    await _imported(app)  # VIP: two contacts
    everyone = await _campaign(app, "Everyone", live=True)
    all_customers = await find_segment(app.db, "T0001", "All Customers")
    vip = await find_segment(app.db, "T0001", "VIP")
    assert all_customers is not None and vip is not None and vip.id is not None
    await service.target(app.db, "T0001", everyone.id or 0, all_customers.id or 0,
                         requested_by=LEAD)  # fmt: skip
    await app.settle()
    for form in (_choose(_form(email="new@example.com"), vip.id),
                 _form(email="new@example.com", segment="Newcomers")):  # fmt: skip
        view_id = await _open_modal(app)
        reply = await app.requests.view_submission(state_values=form, view_id=view_id,
                                                   user_id=REP)  # fmt: skip
        assert reply.body["response_action"] == "errors"
        assert "Everyone will email these people" in reply.body["errors"][BlockId.CONSENT]

    view_id = await _open_modal(app)
    form = _choose(_form(email="new@example.com", consent=True), vip.id)
    await app.requests.view_submission(state_values=form, view_id=view_id, user_id=REP)
    await app.settle()
    rendered = json.dumps((await _review(app))["blocks"])
    assert "Everyone" in rendered and "*1 will be invited*" in rendered


async def _live_for_everyone(app: Harness, names: list[str]) -> None:
    from bot.campaigns import service
    from bot.workspaces import ensure_workspace, segment_sizes
    from models import SegmentKind

    await ensure_workspace(app.db, "T0001")
    everyone = next(s for s, _ in await segment_sizes(app.db, "T0001")
                    if s.kind == SegmentKind.ALL)  # fmt: skip
    for name in names:
        campaign = await _campaign(app, name, live=True)
        await service.target(app.db, "T0001", campaign.id or 0, everyone.id or 0,
                             requested_by=LEAD)  # fmt: skip
    await app.settle()


async def _reviewed(app: Harness) -> str:
    from tests.handlers.test_decisions import _start

    message, _ = await _start(app, consent=True)
    return json.dumps(message["blocks"], ensure_ascii=False)


async def test_the_review_names_every_live_campaign_that_will_email_the_import(
    app: Harness,
) -> None:
    """The review showed the first five live campaigns only: a sixth emailed everyone once
    approved with nothing in the review saying it would."""
    await _live_for_everyone(app, ["Autumn", "Birthday", "Christmas", "Diwali", "Easter",
                                   "Friends & family"])  # fmt: skip

    review = await _reviewed(app)

    assert "Friends &amp; family" in review and "more live campaign" not in review


async def test_live_campaigns_past_what_the_review_has_room_for_are_counted(
    app: Harness,
) -> None:
    names = [f"Campaign number {i:02d} of the spring referral programme" for i in range(40)]
    await _live_for_everyone(app, names)

    review = await _reviewed(app)

    shown = sum(name in review for name in names)
    more = int(review.split("…and ")[1].split(" more live campaign")[0])
    assert 5 < shown < 40 and shown + more == 40, (shown, more)


def test_preview_only_names_every_live_campaign_or_counts_the_rest() -> None:
    from bot.campaigns.preview import CampaignPreview
    from bot.imports.batches import Totals
    from bot.imports.dry_run import DryRun
    from handlers.messages import dry_run_text

    def preview(count: int) -> DryRun:
        campaigns = [CampaignPreview(f"Campaign number {i:02d} of the spring programme", 2, 0,
                                     {}, 0, 0) for i in range(count)]  # fmt: skip
        return DryRun(Totals(3, 2, 1, 0), 2, 0, 2, 0, pending_sources=1, campaigns=campaigns)

    six = dry_run_text(preview(6), "VIP")
    forty = dry_run_text(preview(40), "VIP")

    assert "number 05" in six and "more live campaign" not in six
    shown = forty.count("• :mailbox_with_mail:")
    assert f"…and {40 - shown} more live campaigns target" in forty and 5 < shown < 40
    assert forty.endswith("1 file still being read is not counted yet.") and len(forty) <= 3000


async def test_an_open_review_is_drawn_again_when_a_campaign_goes_live_or_pauses(
    app: Harness,
) -> None:  # fmt: skip
    """A review was drawn once, with the live campaigns of that moment: a campaign targeting
    its segment that went live left it with no *Confirm consent* button while Approve asked
    for one (the lead couldn't approve), and a pause left "2 will be invited" on it."""
    from bot.campaigns import service
    from tests.fakes.slack_api import find_element
    from tests.handlers.test_decisions import _start

    message, batch = await _start(app)  # a review into VIP, no campaign yet
    assert find_element(message["blocks"], Action.CONFIRM_CONSENT) is None
    vip = await find_segment(app.db, "T0001", "VIP")
    spring = await service.create_campaign(app.db, "T0001", "Spring",
                                           store_url="https://shop.example")  # fmt: skip
    await service.target(app.db, "T0001", spring.id or 0, vip.id or 0, requested_by=LEAD)
    await app.click_in(await app.listing("campaign"), Action.CAMPAIGN_LIVE, str(spring.id))
    await app.settle()
    now = app.slack.message("C0001", message["ts"])
    assert find_element(now["blocks"], Action.CONFIRM_CONSENT) is not None
    await app.requests.block_action(Action.CONFIRM_CONSENT, batch, user_id=LEAD,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert "will be invited" in json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    await app.click_in(await app.listing("campaign"), Action.CAMPAIGN_PAUSE, str(spring.id))
    await app.settle()
    after = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert "will be invited" not in after, after


async def test_an_open_review_is_drawn_again_when_a_live_campaign_stops_its_invites(
    app: Harness,
) -> None:  # fmt: skip
    """Edit turning a live campaign's invite email off left "1 will be invited" on a review
    waiting for a lead."""
    from bot.campaigns import service
    from tests.handlers.test_campaigns import _form as campaign_form

    segment_id = await _vip_targeted_by_live_campaign(app)
    view_id = await _open_modal(app)
    await app.requests.view_submission(
        state_values=_choose(_form(email="new@example.com", consent=True), segment_id),
        view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    message = await _review(app)
    assert "will be invited*" in json.dumps(message["blocks"])
    spring = (await service.list_campaigns(app.db, "T0001"))[0].campaign
    await app.click_in(await app.listing("campaign"), Action.CAMPAIGN_EDIT, str(spring.id))
    modal = app.slack.open_views(LEAD)[-1]
    await app.requests.view_submission(state_values=campaign_form(name=spring.name, invite=False),
                                       view_id=modal["id"], user_id=LEAD)  # fmt: skip
    await app.settle()
    assert not (await service.get_campaign(app.db, "T0001", spring.id or 0)).invite_email
    now = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert "*0 will be invited* \\u00b7 1 enrolled without email (invite email off)" in now, now
