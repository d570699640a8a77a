"""From an import's thread to invites: Target a campaign, the hold window, Cancel invites."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.sql.sqltypes import UTCDateTime

import handlers.campaigns as campaign_handlers
from bot.campaigns import service
from bot.imports.cancel import cancel_job
from bot.jobs.queue import claim, list_jobs
from bot.workspaces import ensure_workspace, find_segment
from handlers.ids import Action, BlockId
from models import Campaign, CampaignState, Database, Enrollment, Job
from models.clock import utcnow
from tests.conftest import BACKEND
from tests.email.smtp_server import Server, password_checker, smtp_server
from tests.fakes.slack_requests import state_static_select
from tests.handlers.conftest import LEAD, REP, Harness, running_app
from tests.handlers.test_campaigns import _form as campaign_form
from tests.handlers.test_decisions import _start
from tests.handlers.test_import_flow import _count
from tests.waiting import backend_pid

ADMIN = "U0ADMIN"  # a second lead: an admin of this workspace


async def _campaign(app: Harness, name: str, *, live: bool) -> Campaign:
    await ensure_workspace(app.db, "T0001")
    campaign = await service.create_campaign(app.db, "T0001", name,
                                             store_url="https://shop.example")  # fmt: skip
    if live:
        await service.set_state(app.db, "T0001", campaign.id or 0, CampaignState.LIVE,
                                requested_by=LEAD)  # fmt: skip
    return campaign


async def _imported(app: Harness) -> dict:
    """The review message of an approved and finished import of two contacts into VIP."""
    message, batch = await _start(app)
    assert await _count(app, "SELECT COUNT(*) FROM workspace") == 1
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    return message


async def _targeted(app: Harness) -> tuple[Campaign, dict]:
    """A live campaign, Spring, targeted from the thread of an approved import of two
    contacts: the campaign and the import's review message."""
    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    await _target(app, message, spring.id or 0)
    return spring, message


def _offer(app: Harness, message: dict) -> dict:
    thread = app.slack.messages_in("C0001", message["ts"])
    offer = next((m for m in thread if Action.TARGET in json.dumps(m.get("blocks"))), None)
    assert offer is not None, [m.get("text") for m in thread]
    return offer


async def _click_target(app: Harness, message: dict, campaign_id: int, user: str = LEAD,
                        times: int = 1) -> str:  # fmt: skip
    """Click *Target* in the thread's offer (`times` in a row, no job run between); the
    import's id the button carries."""
    offer = _offer(app, message)
    batch = next(e["value"] for b in offer["blocks"] if b["type"] == "actions"
                 for e in b["elements"] if e.get("action_id") == Action.TARGET)  # fmt: skip
    chosen = {BlockId.TARGET: {Action.TARGET_CHOICE: state_static_select(str(campaign_id))}}
    for _ in range(times):
        await app.requests.block_action(Action.TARGET, batch, user_id=user,
                                        message_ts=offer["ts"], state_values=chosen)  # fmt: skip
    return str(batch)


async def _target(app: Harness, message: dict, campaign_id: int, user: str = LEAD) -> None:
    await _click_target(app, message, campaign_id, user)
    await app.settle()


def _report(app: Harness, message: dict) -> dict:
    thread = app.slack.messages_in("C0001", message["ts"])
    report = next((m for m in thread if "new advocate" in json.dumps(m.get("blocks"))), None)
    assert report is not None, [m.get("text") for m in thread]
    return report


def _cancel_value(report: dict) -> str:
    """The value of the report's *Cancel invites* button: its enrollment."""
    return next(e["value"] for b in report["blocks"] if b["type"] == "actions"
                for e in b["elements"] if e["action_id"] == Action.CANCEL_INVITES)  # fmt: skip


def _report_blocks(app: Harness, message: dict) -> str:
    """The thread's enrollment report as it stands (redrawn in place), its blocks as JSON."""
    return json.dumps(_report(app, message)["blocks"])


async def _hold_is_over(app: Harness) -> None:
    now = bindparam("now", type_=UTCDateTime())
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE invite SET send_after = :now").bindparams(now),
                           {"now": utcnow()})  # fmt: skip
        await conn.execute(text("UPDATE job SET run_after = :now WHERE state = 'queued' "
                                "AND kind = 'send_invites'").bindparams(now), {"now": utcnow()})
    await app.settle()


async def test_target_a_live_campaign_from_the_thread_and_invites_go_out(app: Harness) -> None:
    spring = await _campaign(app, "Spring <!here>", live=True)
    message = await _imported(app)
    assert "Spring &lt;!here&gt; (live)" not in json.dumps(_offer(app, message))  # plain_text
    await _target(app, message, spring.id or 0, user=REP)
    assert "Only team leads can target campaigns" in app.slack.ephemerals[-1]["text"]
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 0

    await _target(app, message, spring.id or 0)
    report = _report(app, message)
    rendered = json.dumps(report["blocks"])
    assert "*2* new advocates" in rendered and "Spring &lt;!here&gt;" in rendered
    assert "2 held until" in rendered and Action.CANCEL_INVITES in rendered
    assert list((app.settings.outbox_dir).glob("*.eml")) == []  # nothing before the hold ends

    await _hold_is_over(app)
    assert len(list(app.settings.outbox_dir.glob("*.eml"))) == 2
    rendered = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
    assert "2 invites sent" in rendered and Action.CANCEL_INVITES not in rendered
    await _target(app, message, spring.id or 0)  # a second click: nobody enrolled twice
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 2
    assert len(list(app.settings.outbox_dir.glob("*.eml"))) == 2
    assert app.slack.block_errors == []


async def test_turning_the_invite_email_off_in_slack_updates_the_threads_report(
    app: Harness,
) -> None:
    """The report went on saying "2 held until ..." with its Cancel invites button after a
    lead turned the campaign's invite email off (for Klaviyo): nothing was held any more."""
    spring, message = await _targeted(app)
    report = _report(app, message)
    assert Action.CANCEL_INVITES in json.dumps(report["blocks"])
    await _edit_invite_email(app, spring, on=False)
    rendered = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
    assert Action.CANCEL_INVITES not in rendered and "held until" not in rendered
    assert "invite email off" in rendered
    assert app.slack.block_errors == []


async def _edit_invite_email(app: Harness, campaign: Campaign, *, on: bool,
                             name: str = "Spring") -> None:  # fmt: skip
    listing = await app.listing("campaign", LEAD)
    await app.click_in(listing, Action.CAMPAIGN_EDIT, str(campaign.id), LEAD)
    modal = app.slack.open_views(LEAD)[-1]
    await app.requests.view_submission(state_values=campaign_form(name=name, invite=on),
                                       view_id=modal["id"], user_id=LEAD)  # fmt: skip
    await app.settle()


async def test_a_renamed_campaigns_waiting_report_shows_its_new_name(app: Harness) -> None:
    spring, message = await _targeted(app)
    await _edit_invite_email(app, spring, on=True, name="Spring <!channel>")
    rendered = _report_blocks(app, message)
    assert "new advocates in *Spring &lt;!channel&gt;*" in rendered, rendered
    assert "2 held until" in rendered


async def test_invites_the_email_being_off_stopped_can_be_sent_once_it_is_on_again(
    app: Harness,
) -> None:
    """Turned off and on again (by mistake, or a Klaviyo flow given up), the invite email
    left the advocates it had stopped "enrolled without an email" for good: the report said
    so and offered nothing. Turning it on still emails nobody by itself (Klaviyo may have
    invited them); the report offers leads *Email them*, which sends each one invite."""
    spring, message = await _targeted(app)
    await _edit_invite_email(app, spring, on=False)
    report = _report(app, message)
    assert Action.EMAIL_UNSENT not in json.dumps(report["blocks"])  # off: nothing to offer
    await _edit_invite_email(app, spring, on=True)
    await _hold_is_over(app)
    assert list(app.settings.outbox_dir.glob("*.eml")) == []  # on again: nobody emailed yet
    rendered = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
    assert "2 enrolled without an email: invite email off" in rendered, rendered
    assert Action.EMAIL_UNSENT in rendered, rendered
    report = app.slack.message("C0001", report["ts"])

    await app.requests.block_action(Action.EMAIL_UNSENT, _button(report, Action.EMAIL_UNSENT),
                                    user_id=REP, message_ts=report["ts"])  # fmt: skip
    await app.settle()
    assert "Only team leads" in app.slack.ephemerals[-1]["text"]
    assert list(app.settings.outbox_dir.glob("*.eml")) == []
    for _ in range(2):  # a double click
        await app.requests.block_action(
            Action.EMAIL_UNSENT, _button(report, Action.EMAIL_UNSENT), user_id=LEAD,
            message_ts=report["ts"])  # fmt: skip
    await app.settle()
    assert len(list(app.settings.outbox_dir.glob("*.eml"))) == 2
    assert app.slack.ephemerals[-1]["text"] == (
        "Nobody is left to email: their invites are already on their way.")
    rendered = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
    assert "2 invites sent" in rendered and "without an email" not in rendered, rendered
    assert Action.EMAIL_UNSENT not in rendered
    assert app.slack.block_errors == []


async def test_email_them_on_a_paused_campaign_says_the_invites_wait_for_go_live(
    app: Harness,
) -> None:
    """The thread's *Email them* on a paused campaign queues the invites, which its sender
    sends once it is live again: the thread said "<@lead> is sending 2 invites", and none
    went."""
    spring, message = await _targeted(app)
    await _edit_invite_email(app, spring, on=False)
    await _edit_invite_email(app, spring, on=True)
    await _hold_is_over(app)
    await service.change_state(app.db, "T0001", spring.id or 0, CampaignState.PAUSED,
                               requested_by=LEAD)  # fmt: skip
    report = _report(app, message)

    await app.requests.block_action(Action.EMAIL_UNSENT, _button(report, Action.EMAIL_UNSENT),
                                    user_id=LEAD, message_ts=report["ts"])  # fmt: skip
    await _hold_is_over(app)

    assert list(app.settings.outbox_dir.glob("*.eml")) == []
    said = app.slack.messages_in("C0001", message["ts"])[-1]["text"]
    assert said == (f"<@{LEAD}> chose to send 2 invites the invite email being off had held "
                    "back. They are queued: they go once the campaign is live again (*Go live* "
                    "in `/referral campaign`)."), said
    await service.change_state(app.db, "T0001", spring.id or 0, CampaignState.LIVE,
                               requested_by=LEAD)  # fmt: skip
    await _hold_is_over(app)
    assert len(list(app.settings.outbox_dir.glob("*.eml"))) == 2
    assert app.slack.block_errors == []


async def test_email_them_when_the_campaign_had_emailed_them_all_before_says_so(
    app: Harness,
) -> None:
    """Every invite the invite email being off held back was to an address the campaign had
    emailed before (a contact deleted, then imported again while it was off): *Email them*
    rightly emailed nobody, but told the lead "their invites are already on their way" and
    left the report saying "enrolled without an email" with its button, which said the same
    at every click. The report is drawn again, and the thread says what happened."""
    spring, message = await _targeted(app)
    await _edit_invite_email(app, spring, on=False)
    await _edit_invite_email(app, spring, on=True)
    await _hold_is_over(app)
    async with app.db.begin() as conn:  # the campaign emailed both addresses before
        await conn.execute(text(
            "INSERT INTO invited_address (team_id, campaign_id, email_key, invited_at) "
            "SELECT team_id, :c, email_key, created_at FROM contact"), {"c": spring.id})
    report = _report(app, message)

    await app.requests.block_action(Action.EMAIL_UNSENT, _button(report, Action.EMAIL_UNSENT),
                                    user_id=LEAD, message_ts=report["ts"])  # fmt: skip
    await app.settle()

    assert list(app.settings.outbox_dir.glob("*.eml")) == []
    assert not [e for e in app.slack.ephemerals if "on their way" in e["text"]]
    said = app.slack.messages_in("C0001", message["ts"])[-1]["text"]
    assert said == (f"<@{LEAD}> chose to email the advocates the invite email being off had "
                    "held back: nobody was emailed, as the campaign had emailed all 2 of those "
                    "addresses before."), said
    rendered = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
    assert "2 enrolled without an email: invited before" in rendered, rendered
    assert "invite email off" not in rendered and Action.EMAIL_UNSENT not in rendered


async def test_email_them_after_the_invite_email_went_off_again_sends_nothing(
    app: Harness,
) -> None:
    """Turned off again from the shell, the report drops its button; a click on the button
    of the report as it was drawn while the invite email was on emails nobody and says why."""
    spring, message = await _targeted(app)
    await _edit_invite_email(app, spring, on=False)
    await _edit_invite_email(app, spring, on=True)
    report = _report(app, message)
    value = _button(report, Action.EMAIL_UNSENT)
    await service.update_campaign(app.db, "T0001", spring.id or 0, invite_email=False)
    await app.settle()  # as from the shell (`campaign edit`): the report is redrawn all the same
    assert Action.EMAIL_UNSENT not in json.dumps(app.slack.message("C0001", report["ts"]))
    await app.requests.block_action(Action.EMAIL_UNSENT, value, user_id=LEAD,
                                    message_ts=report["ts"])  # fmt: skip
    await _hold_is_over(app)
    assert list(app.settings.outbox_dir.glob("*.eml")) == []
    assert "invite email is off" in app.slack.ephemerals[-1]["text"]


async def test_pausing_and_going_live_again_update_the_threads_report(app: Harness) -> None:
    """Pause in `/referral campaign` left the import thread's report saying "2 held until ..."
    with nothing about the pause, while the send job sent nothing; going live again must
    take the pause back."""
    spring, message = await _targeted(app)  # 2 invites held, Cancel invites
    report = _report(app, message)
    assert "paused" not in json.dumps(report["blocks"])
    listing = await app.listing("campaign", LEAD)
    await app.click_in(listing, Action.CAMPAIGN_PAUSE, str(spring.id), LEAD)
    await app.settle()
    rendered = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
    assert "The campaign is paused: unsent invites wait until it is live." in rendered, rendered

    listing = await app.listing("campaign", LEAD)
    await app.click_in(listing, Action.CAMPAIGN_LIVE, str(spring.id), LEAD)
    await app.settle()
    rendered = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
    assert "paused" not in rendered and "2 held until" in rendered, rendered
    assert app.slack.block_errors == []


async def test_cancel_invites_during_the_hold_keeps_the_advocates(app: Harness) -> None:
    _spring, message = await _targeted(app)
    report = _report(app, message)
    enrollment = _cancel_value(report)
    await app.requests.block_action(Action.CANCEL_INVITES, enrollment, user_id=LEAD,
                                    message_ts=report["ts"])  # fmt: skip
    await app.settle()
    await _hold_is_over(app)
    assert list(app.settings.outbox_dir.glob("*.eml")) == []
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 2
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert any("cancelled 2 invites" in t for t in thread)
    rendered = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
    assert "2 cancelled" in rendered and Action.CANCEL_INVITES not in rendered
    await app.requests.block_action(Action.CANCEL_INVITES, enrollment, user_id=LEAD,
                                    message_ts=report["ts"])  # fmt: skip
    await app.settle()
    assert app.slack.ephemerals[-1]["text"] == "These invites were cancelled already."
    # who kept people from being emailed is in the audit log (it wrote nothing), once
    from bot.audit import recent
    from handlers.audit_messages import entry_line

    cancels = [entry_line(e, {}) for e in await recent(app.db, "T0001")
               if e.action == "campaign.invites_cancelled"]  # fmt: skip
    assert len(cancels) == 1 and "cancelled invites of the campaign Spring" in cancels[0], (
        cancels)
    assert "2 invites" in cancels[0], cancels


async def test_cancel_invites_after_the_invite_email_went_off_says_so(app: Harness) -> None:
    """Another lead turned the campaign's invite email off (Klaviyo sends them), which keeps
    the held invites from being sent; *Cancel invites* then said "Too late: these invites
    have already left", and none had."""
    spring, message = await _targeted(app)
    report = _report(app, message)
    enrollment = _cancel_value(report)
    await service.update_campaign(app.db, "T0001", spring.id or 0, invite_email=False,
                                  actor="U0ADMIN")  # fmt: skip
    said = await _cancel_invites(app, report, enrollment)
    assert said.startswith("Nothing to cancel: the campaign's invite email was turned off"), said
    await _hold_is_over(app)
    assert await _count(app, "SELECT COUNT(*) FROM invite WHERE state = 'sent'") == 0


async def test_cancel_invites_after_everyone_unsubscribed_says_none_will_be_sent(
    app: Harness,
) -> None:  # fmt: skip
    """Both held invites' contacts unsubscribed during the hold (their invites will never be
    sent: not emailed, "unsubscribed"); *Cancel invites* on the report drawn before said
    "Too late: these invites have already left", and none had."""
    from bot.campaigns.consent import unsubscribe

    _spring, message = await _targeted(app)
    report = _report(app, message)
    enrollment = _cancel_value(report)
    async with app.db.begin() as conn:
        contacts = (await conn.execute(text("SELECT id, email_key FROM contact"))).all()
    for contact_id, key in contacts:
        assert await unsubscribe(app.db, "T0001", contact_id, key) is not None
    said = await _cancel_invites(app, report, enrollment)
    assert said.startswith("Nothing to cancel: none of these invites will be sent"), said
    await _hold_is_over(app)
    assert await _count(app, "SELECT COUNT(*) FROM invite WHERE state = 'sent'") == 0


async def _cancel_invites(app: Harness, report: dict[str, Any], enrollment: str) -> str:
    """A lead clicks *Cancel invites* (`enrollment`: its value, as `report` was first drawn)
    on the report: what they are told privately ("": nothing, the thread says what was
    cancelled)."""
    told = len(app.slack.ephemerals)
    await app.requests.block_action(Action.CANCEL_INVITES, enrollment, user_id=LEAD,
                                    message_ts=report["ts"])  # fmt: skip
    await app.settle()
    return str(app.slack.ephemerals[-1]["text"]) if len(app.slack.ephemerals) > told else ""


async def _one_unsubscribed(app: Harness) -> None:
    from bot.campaigns.consent import unsubscribe

    async with app.db.begin() as conn:
        contact_id, key = (await conn.execute(
            text("SELECT id, email_key FROM contact ORDER BY id LIMIT 1"))).one()
    assert await unsubscribe(app.db, "T0001", contact_id, key) is not None


async def test_a_second_cancel_after_one_person_unsubscribed_says_cancelled_already(
    app: Harness,
) -> None:  # fmt: skip
    """One of the two held invites' people unsubscribed during the hold, then a lead
    cancelled the other. A second click (another lead's, or the report's old button) was
    told "none of these invites will be sent": they were cancelled already."""
    _spring, message = await _targeted(app)
    report = _report(app, message)
    enrollment = _cancel_value(report)
    await _one_unsubscribed(app)
    for _ in range(2):
        said = await _cancel_invites(app, report, enrollment)
    assert await _count(app, "SELECT COUNT(*) FROM invite WHERE state = 'cancelled'") == 1
    assert said == "These invites were cancelled already."


async def test_cancel_after_the_invite_email_went_off_says_so_when_one_person_unsubscribed(
    app: Harness,
) -> None:  # fmt: skip
    """One held invite's person unsubscribed, then the invite email went off (the other
    invite waits for *Email them*): *Cancel invites* said "none of these invites will be
    sent", though the other goes once a lead turns the email on and presses *Email them*."""
    spring, message = await _targeted(app)
    report = _report(app, message)
    enrollment = _cancel_value(report)
    await _one_unsubscribed(app)
    await service.update_campaign(app.db, "T0001", spring.id or 0, invite_email=False,
                                  actor="U0ADMIN")  # fmt: skip
    said = await _cancel_invites(app, report, enrollment)
    assert said.startswith("Nothing to cancel: the campaign's invite email was turned off"), said


async def test_targeting_from_the_thread_asks_whether_they_agreed(app: Harness) -> None:
    """The import's form asks for consent only when a live campaign targets the segment
    then: Target a campaign (and Go live and target) afterwards emailed them unasked."""
    draft = await _campaign(app, "Autumn", live=False)
    message = await _imported(app)
    target = next(e for b in _offer(app, message)["blocks"] if b["type"] == "actions"
                  for e in b["elements"] if e["action_id"] == Action.TARGET)  # fmt: skip
    assert "agreed to hear from us" in target["confirm"]["text"]["text"]
    # who gets no invite for want of consent, by both of the invites' reasons
    assert ("get one (not those who aren't subscribed or who unsubscribed)"
            in target["confirm"]["text"]["text"])  # fmt: skip
    await _target(app, message, draft.id or 0)
    go_live = next(e for b in app.slack.ephemerals[-1]["blocks"] if b["type"] == "actions"
                   for e in b["elements"])  # fmt: skip
    assert "agreed to hear from us" in go_live["confirm"]["text"]["text"]


async def test_a_draft_campaign_asks_to_go_live_first(app: Harness) -> None:
    draft = await _campaign(app, "Autumn", live=False)
    message = await _imported(app)
    await _target(app, message, draft.id or 0)
    question = app.slack.ephemerals[-1]
    assert "is a draft campaign" in question["text"]
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 0
    value = next(e["value"] for b in question["blocks"] if b["type"] == "actions"
                 for e in b["elements"])  # fmt: skip
    await app.requests.block_action(Action.TARGET_GO_LIVE, value, user_id=LEAD,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 2
    assert (await service.get_campaign(app.db, "T0001", draft.id or 0)).state == "live"
    _report(app, message)


async def test_a_double_click_on_target_or_go_live_enrolls_and_reports_once(
    app: Harness,
) -> None:
    spring = await _campaign(app, "Spring", live=True)
    autumn = await _campaign(app, "Autumn", live=False)
    message = await _imported(app)
    # no job runs between the clicks: both find the enrollment unfinished
    batch = await _click_target(app, message, spring.id or 0, times=2)
    await app.done()
    for _ in range(2):
        await app.requests.block_action(Action.TARGET_GO_LIVE, f"{autumn.id}:{batch}",
                                        user_id=LEAD, message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM enrollment") == 2  # one per campaign
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert sum("targeted *Spring*" in t for t in thread) == 1
    assert sum("took *Autumn* live" in t for t in thread) == 1
    assert sum("new advocate" in json.dumps(m.get("blocks")) for m in
               app.slack.messages_in("C0001", message["ts"])) == 2  # fmt: skip
    told = [e["text"] for e in app.slack.ephemerals]
    assert sum("already enrolling this segment" in t for t in told) == 2
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 4


async def test_targeting_a_campaign_that_excludes_the_segment_says_it_is_a_target_instead(
    app: Harness,
) -> None:
    """A campaign gives a segment one role: *Target a campaign* (and *Go live and target*) on
    one that excluded the import's segment switched it to a target and enrolled its contacts,
    the thread saying only "targeted *Spring* with this segment", though a lead had left them
    out on purpose. The announcement says it was excluded and is a target now."""
    spring = await _campaign(app, "Spring <b>", live=True)
    autumn = await _campaign(app, "Autumn", live=False)
    message = await _imported(app)
    vip = await find_segment(app.db, "T0001", "VIP")
    assert vip is not None
    for campaign in (spring, autumn):
        await service.exclude(app.db, "T0001", campaign.id or 0, vip.id or 0)

    batch = await _click_target(app, message, spring.id or 0)
    await app.settle()
    await app.requests.block_action(Action.TARGET_GO_LIVE, f"{autumn.id}:{batch}", user_id=LEAD,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()

    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    (targeted,) = [t for t in thread if "targeted *Spring &lt;b&gt;*" in t]
    assert ("This segment was excluded from *Spring &lt;b&gt;*: it is a target now instead, "
            "and its contacts are enrolled.") in targeted, targeted  # fmt: skip
    (went_live,) = [t for t in thread if "took *Autumn* live" in t]
    assert "This segment was excluded from *Autumn*: it is a target now instead" in went_live
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 4
    await _target(app, message, spring.id or 0)  # targeted already: nothing more to say
    assert not any("was excluded" in e["text"] for e in app.slack.ephemerals)


async def _excluding(app: Harness, *, live: bool) -> tuple[Campaign, dict, int]:
    """Spring, excluding VIP, and the thread of an import of two contacts into VIP: the
    campaign, the import's review message and VIP's id."""
    spring = await _campaign(app, "Spring", live=live)
    message = await _imported(app)
    vip = await find_segment(app.db, "T0001", "VIP")
    assert vip is not None
    await service.exclude(app.db, "T0001", spring.id or 0, vip.id or 0)
    return spring, message, vip.id or 0


EXCLUDED_NOW_TARGET = "This segment was excluded from *Spring*: it is a target now instead"


def _announcements(app: Harness, message: dict) -> list[str]:
    return [m["text"] for m in app.slack.messages_in("C0001", message["ts"])
            if "targeted *Spring*" in m["text"] or "took *Spring* live" in m["text"]]


async def test_the_announcement_another_click_posts_still_says_the_segment_was_excluded(
    app: Harness,
) -> None:
    """The first click's targeting switched VIP from excluded to targeted, and only that
    click knew: Slack refused its announcement, the next click (the enrollment still
    waiting) announced it, and the thread never heard VIP had been left out on purpose. The
    announcement carries the warning whichever click posts it."""
    spring, message, _ = await _excluding(app, live=True)
    app.slack.fail("chat.postMessage", "restricted_action")
    await _click_target(app, message, spring.id or 0)
    await app.done()  # no job runs: the enrollment waits
    assert "Enrolling has started" in app.slack.ephemerals[-1]["text"]

    await _click_target(app, message, spring.id or 0)
    await app.settle()

    (announced,) = _announcements(app, message)
    assert EXCLUDED_NOW_TARGET in announced, announced
    assert await _count(app, "SELECT COUNT(*) FROM enrollment") == 1
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 2


async def test_excluded_and_targeted_again_while_its_enrollment_waits_says_so_in_the_thread(
    app: Harness,
) -> None:
    """Target, then (the enrollment not run yet: a busy worker) `campaign exclude` from the
    shell, then Target again: the second click switched VIP back to a target and enrolled it
    with the waiting enrollment, whose announcement was made before, so the click was only
    told "already enrolling" and nobody heard VIP had been excluded."""
    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    await _click_target(app, message, spring.id or 0)
    await app.done()  # announced; its enrollment waits for a worker
    vip = await find_segment(app.db, "T0001", "VIP")
    assert vip is not None
    await service.exclude(app.db, "T0001", spring.id or 0, vip.id or 0)

    await _click_target(app, message, spring.id or 0)
    await app.settle()

    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert sum(EXCLUDED_NOW_TARGET in t for t in thread) == 1, thread
    assert await _count(app, "SELECT COUNT(*) FROM enrollment") == 1
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 2
    await _click_target(app, message, spring.id or 0)  # targeted already: nothing more to say
    await app.settle()
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert sum("was excluded" in t for t in thread) == 1, thread


async def _behind(db: Database, holder: int, count: int) -> None:
    """Wait until `count` backends wait for the lock `holder` holds, directly or queued
    behind another waiter (PostgreSQL)."""
    query = text("""
        WITH RECURSIVE behind(pid) AS (
            SELECT pid FROM pg_stat_activity WHERE :h = ANY(pg_blocking_pids(pid))
            UNION
            SELECT a.pid FROM pg_stat_activity a JOIN behind b
              ON b.pid = ANY(pg_blocking_pids(a.pid))
        ) SELECT COUNT(*) FROM behind""")
    for _ in range(1000):
        async with db.begin() as conn:
            if (await conn.execute(query, {"h": holder})).scalar_one() >= count:
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} never waited behind the campaign's row")


async def _take_row(conn: AsyncConnection, campaign: Campaign) -> int:
    """The campaign's row taken in a transaction of `conn` (as a pause or a targeting takes
    it), left open: what the code under test then waits for. Its backend's pid."""
    await conn.begin()
    await conn.execute(text("UPDATE campaign SET updated_at = updated_at WHERE id = :c"),
                       {"c": campaign.id})  # fmt: skip
    return await backend_pid(conn)


@contextlib.asynccontextmanager
async def _campaign_row_held(app: Harness, campaign: Campaign) -> AsyncIterator[int]:
    """_take_row in a connection of the test's own, let go on leaving; yields its pid."""
    async with app.db.engine.connect() as blocker:
        yield await _take_row(blocker, campaign)
        await blocker.rollback()


@pytest.mark.skipif(BACKEND != "postgres", reason="needs two writers at once: row locks")
async def test_a_campaign_paused_while_a_click_targets_it_still_says_the_segment_was_excluded(
    app: Harness,
) -> None:
    """Target found Spring live, and a lead's pause got to its row first: the targeting
    switched VIP from excluded to a target of the paused campaign, and the click was only
    told the campaign isn't live."""
    spring, message, vip = await _excluding(app, live=True)
    async with _campaign_row_held(app, spring) as holder:
        pausing = asyncio.create_task(service.pause(app.db, "T0001", spring.id or 0,
                                                    requested_by=ADMIN))  # another lead
        await _behind(app.db, holder, 1)
        await _click_target(app, message, spring.id or 0)  # reads Spring live, then waits
        await _behind(app.db, holder, 2)
    assert await pausing == CampaignState.LIVE
    await app.settle()

    (told,) = [e["text"] for e in app.slack.ephemerals if e["user"] == LEAD]
    assert "Nobody was enrolled" in told and EXCLUDED_NOW_TARGET in told, told
    assert "paused" in told, told
    assert _announcements(app, message) == []
    async with app.db.begin() as conn:
        roles = (await conn.execute(text("SELECT role FROM campaign_segment WHERE segment_id = "
                                         ":s"), {"s": vip})).scalars().all()  # fmt: skip
    assert roles == ["target"]
    assert await _count(app, "SELECT COUNT(*) FROM enrollment") == 0


@pytest.mark.skipif(BACKEND != "postgres", reason="needs two writers at once: row locks")
async def test_two_clicks_targeting_an_excluded_segment_announce_it_once_with_the_warning(
    app: Harness,
) -> None:
    """*Go live and target* (offered while Spring was paused, live again since) and another
    lead's *Target* on the same thread at once: Go live's targeting switched VIP from excluded
    to a target, the other click's announcement was posted first and said nothing of it, and
    the warning went with Go live's, which was not posted. What Go live writes to the campaign
    after its targeting waits here (the old one went live in a second transaction; a slow
    process would be as late) so that the other click posts first."""
    app.slack.users[ADMIN] = {"is_admin": True}
    spring, message, _ = await _excluding(app, live=True)
    await service.pause(app.db, "T0001", spring.id or 0, requested_by=LEAD)
    await _click_target(app, message, spring.id or 0)
    await app.done()
    offer = app.slack.ephemerals[-1]
    go_live = next(e["value"] for b in offer["blocks"] if b["type"] == "actions"
                   for e in b["elements"] if e.get("action_id") == Action.TARGET_GO_LIVE)
    await service.set_state(app.db, "T0001", spring.id or 0, CampaignState.LIVE,
                            requested_by=ADMIN)  # from /referral campaign meanwhile

    async with app.db.engine.connect() as blocker, app.db.engine.connect() as third:
        holder = await _take_row(blocker, spring)
        await app.requests.block_action(Action.TARGET_GO_LIVE, go_live, user_id=LEAD,
                                        message_ts=message["ts"])  # fmt: skip
        await _behind(app.db, holder, 1)
        await _click_target(app, message, spring.id or 0, user=ADMIN)
        await _behind(app.db, holder, 2)
        # a lock on the whole table, queued behind both targetings (which hold their table
        # locks while they wait for the row): a write of the table asked for after it (the
        # old Go live's second transaction, going live) waits for it, while both targetings
        # go on and the other click posts
        await third.begin()
        queued = asyncio.create_task(third.execute(text("LOCK TABLE campaign IN EXCLUSIVE "
                                                        "MODE")))  # fmt: skip
        await _behind(app.db, holder, 3)
        await blocker.rollback()
        await queued
        for _ in range(1000):  # an announcement is posted meanwhile
            if _announcements(app, message):
                break
            await asyncio.sleep(0.01)
        await third.rollback()
    await app.settle()

    (announced,) = _announcements(app, message)
    assert EXCLUDED_NOW_TARGET in announced, announced
    told = [e["text"] for e in app.slack.ephemerals if e["user"] in (LEAD, ADMIN)]
    assert sum("already enrolling this segment" in t for t in told) == 1, told
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 2


async def test_a_thread_that_refuses_the_announcement_is_told_enrolling_started(
    app: Harness,
) -> None:
    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    app.slack.fail("chat.postMessage", "restricted_action")
    await _target(app, message, spring.id or 0)
    assert "Enrolling has started" in app.slack.ephemerals[-1]["text"]
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 2


async def test_a_later_import_into_a_targeted_segment_reports_its_enrollment(
    app: Harness,
) -> None:
    spring = await _campaign(app, "Spring", live=True)
    first = await _imported(app)
    await _target(app, first, spring.id or 0)
    from bot.workspaces import find_segment
    from tests.handlers.test_import_flow import _form, _open_modal, _review

    view_id = await _open_modal(app)
    segment = await find_segment(app.db, "T0001", "VIP")
    form = _form(email="late@example.com", consent=True)
    form[BlockId.SEGMENT][Action.SEGMENT]["selected_option"] = {
        "text": {"type": "plain_text", "text": "VIP"}, "value": str(segment.id)}  # type: ignore[union-attr]
    await app.requests.view_submission(state_values=form, view_id=view_id, user_id=REP)
    await app.settle()
    second = await _review(app)
    batch = second["blocks"][-1]["elements"][2]["value"]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=second["ts"])
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 3
    rendered = json.dumps(_report(app, second)["blocks"])
    assert "*1* new advocate in" in rendered


async def test_the_review_says_whom_a_live_campaign_will_invite(app: Harness) -> None:
    spring = await _campaign(app, "Spring", live=True)
    klaviyo = await _campaign(app, "Klaviyo flow", live=True)
    await service.update_campaign(app.db, "T0001", klaviyo.id or 0, invite_email=False)
    first = await _imported(app)  # jane and raj, into VIP
    for campaign in (spring, klaviyo):
        await _target(app, first, campaign.id or 0)
    from bot.workspaces import find_segment
    from tests.handlers.test_import_flow import _form, _open_modal, _review

    view_id = await _open_modal(app)
    segment = await find_segment(app.db, "T0001", "VIP")
    csv = (b"email,first_name,accepts_marketing\njane@example.com,Jane,yes\n"
           b"new@example.com,New,yes\nquiet@example.com,Quiet,no\n")  # fmt: skip
    file = app.slack.add_file("F0002", "more.csv", csv)
    form = _form(files=[file], consent=True)
    form[BlockId.SEGMENT][Action.SEGMENT]["selected_option"] = {
        "text": {"type": "plain_text", "text": "VIP"}, "value": str(segment.id)}  # type: ignore[union-attr]
    await app.requests.view_submission(state_values=form, view_id=view_id, user_id=REP)
    await app.settle()
    rendered = json.dumps((await _review(app))["blocks"], ensure_ascii=False)
    # quiet@ never subscribed: "not subscribed", as its invite will record it
    assert ("*Spring* (live) targets this segment: *1 will be invited* · 1 enrolled without "
            "email (not subscribed) · 1 already advocates") in rendered
    # consent first there too, as the invites record it: the invite email being on again
    # (*Email them*) emails one, not two
    assert ("*Klaviyo flow* (live) targets this segment: *0 will be invited* · 1 enrolled "
            "without email (invite email off) · 1 enrolled without email (not subscribed) · "
            "1 already advocates") in rendered


async def test_another_workspaces_campaign_is_refused_in_words(app: Harness) -> None:
    await _campaign(app, "Ours", live=True)
    message = await _imported(app)
    await ensure_workspace(app.db, "T0002")
    theirs = await service.create_campaign(app.db, "T0002", "Theirs <!channel>",
                                           store_url="https://shop.example")  # fmt: skip
    await _target(app, message, theirs.id or 0)
    note = app.slack.ephemerals[-1]["text"]
    assert note == "That campaign doesn't exist in this workspace."
    assert await _count(app, "SELECT COUNT(*) FROM campaign_segment") == 0


async def test_an_enrollment_that_kills_every_worker_says_so_and_can_be_targeted_again(
    app: Harness,
) -> None:
    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    await _click_target(app, message, spring.id or 0)
    await app.later.drain()
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == "enroll")
    for attempt in range(job.max_attempts):  # each worker dies enrolling; its lease runs out
        assert await claim(app.db, f"killed-{attempt}", 1, kinds={"enroll"}) is not None
        await _lease_runs_out(app)
    await app.settle()
    thread = [json.dumps(m.get("blocks")) for m in app.slack.messages_in("C0001", message["ts"])]
    assert any("from *VIP* in *Spring* failed after 0 new advocates" in t
               and "Target the campaign again" in t for t in thread), thread  # fmt: skip
    await _target(app, message, spring.id or 0)  # not "already enrolling": a new enrollment
    thread = [json.dumps(m.get("blocks")) for m in app.slack.messages_in("C0001", message["ts"])]
    assert any("*2* new advocates in *Spring*" in t for t in thread), thread
    assert app.slack.block_errors == []


@contextlib.asynccontextmanager
async def _refused_login(db: Database, tmp_path: Path
                         ) -> AsyncIterator[tuple[Harness, Server, list[str]]]:  # fmt: skip
    """The app, and a mail server that refuses its login until `password[0]` is set to the
    one the bot sends ("wrong"): the mail settings put right."""
    password = ["right"]  # what the server accepts; the bot logs in with "wrong"

    def check(*args: Any) -> Any:
        return password_checker("u", password[0])(*args)

    options = {"auth_require_tls": False, "authenticator": check}
    async with smtp_server(**options) as server, running_app(
        db, tmp_path, smtp_url=f"smtp://u:wrong@127.0.0.1:{server.port}?starttls=off"
    ) as app:
        yield app, server, password


async def test_a_mail_server_refusing_the_login_stops_sending_says_why_and_retry_sends_once(
    db: Database, tmp_path: Path,
) -> None:  # fmt: skip
    async with _refused_login(db, tmp_path) as (app, server, password):
        spring = await _campaign(app, "Spring", live=True)
        message = await _imported(app)
        await _target(app, message, spring.id or 0)
        await _hold_is_over(app)
        sends = [j for j in await list_jobs(app.db, "T0001") if j.kind == "send_invites"]
        assert [(j.state, j.attempts) for j in sends] == [("failed", 5)]  # not a job per run
        assert server.connections == 5
        report = _report(app, message)
        rendered = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
        assert "0 invites sent \\u00b7 2 not sent yet" in rendered, rendered
        assert (f"Sending stopped: smtp://u@127.0.0.1:{server.port} refused the login: 535"
                in rendered and "wrong" not in rendered), rendered  # fmt: skip
        await app.requests.block_action(Action.RETRY_SENDING, _button(report, Action.RETRY_SENDING),
                                        user_id=REP, message_ts=report["ts"])  # fmt: skip
        await app.settle()
        assert "Only team leads can retry sending" in app.slack.ephemerals[-1]["text"]
        assert server.connections == 5

        password[0] = "wrong"  # the mail settings are put right
        for _ in range(2):  # a double click
            await app.requests.block_action(
                Action.RETRY_SENDING, _button(report, Action.RETRY_SENDING), user_id=LEAD,
                message_ts=report["ts"])  # fmt: skip
        await app.settle()
        assert sorted(m.rcpt_tos[0] for m in server.handler.messages) == [
            "jane@example.com", "raj@example.org"]  # fmt: skip
        assert app.slack.ephemerals[-1]["text"] == "Sending has already been restarted."
        rendered = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
        assert "2 invites sent" in rendered and "Sending stopped" not in rendered
        assert Action.RETRY_SENDING not in rendered
        assert app.slack.block_errors == []


async def test_a_send_job_that_kills_every_worker_stops_sending_and_says_so(app: Harness) -> None:
    _spring, message = await _targeted(app)
    job = await _send_job_due(app)
    for attempt in range(job.max_attempts):  # each worker dies sending; its lease runs out
        assert await claim(app.db, f"killed-{attempt}", 1, kinds={"send_invites"}) is not None
        await _lease_runs_out(app)
    await _hold_is_over(app)
    rendered = _report_blocks(app, message)
    assert "Sending stopped: gave up: the worker running it stopped" in rendered, rendered
    assert Action.RETRY_SENDING in rendered
    # the mail server was never reached: not "Fix the bot's mail settings"
    assert "mail settings" not in rendered and "the workers' log" in rendered, rendered
    assert list(app.settings.outbox_dir.glob("*.eml")) == []


async def test_invites_that_waited_out_a_pause_go_when_the_campaign_is_live_again(
    app: Harness,
) -> None:  # fmt: skip
    spring, _message = await _targeted(app)
    await service.set_state(app.db, "T0001", spring.id or 0, CampaignState.PAUSED,
                            requested_by=LEAD)  # fmt: skip
    await _hold_is_over(app)  # its send job runs while paused: nothing is sent
    assert list(app.settings.outbox_dir.glob("*.eml")) == []
    await service.set_state(app.db, "T0001", spring.id or 0, CampaignState.LIVE,
                            requested_by=LEAD)  # fmt: skip
    await app.settle()
    assert len(list(app.settings.outbox_dir.glob("*.eml"))) == 2


async def test_a_send_run_killed_handing_over_on_its_last_attempt_leaves_it_uncertain(
    app: Harness,
) -> None:  # fmt: skip
    _spring, message = await _targeted(app)
    job = await _send_job_due(app)
    for attempt in range(job.max_attempts):  # each worker dies; the last one mid-handover
        assert await claim(app.db, f"killed-{attempt}", 1, kinds={"send_invites"}) is not None
        await _lease_runs_out(app)
    async with app.db.begin() as conn:  # what the last run wrote: one sent, one being sent
        rows = await conn.execute(text("SELECT id FROM invite ORDER BY id"))
        first, second = [r[0] for r in rows]
        await conn.execute(text("UPDATE invite SET state = 'sent', attempts = 1 WHERE id = :i"),
                           {"i": first})  # fmt: skip
        await conn.execute(text("UPDATE invite SET state = 'sending', attempts = 1, "
                                "sender_job = :j WHERE id = :i"), {"i": second, "j": job.id})
    await app.settle()
    rendered = _report_blocks(app, message)
    assert "1 invite sent \\u00b7 1 may not have arrived" in rendered, rendered
    assert Action.RESEND_UNCERTAIN in rendered


async def _targeted_with_a_delay(app: Harness) -> tuple[Campaign, dict]:
    """Autumn, live with a 3-day invite delay, targeted from an import's thread."""
    await ensure_workspace(app.db, "T0001")
    autumn = await service.create_campaign(app.db, "T0001", "Autumn", invite_delay_days=3,
                                           store_url="https://shop.example")  # fmt: skip
    await service.set_state(app.db, "T0001", autumn.id or 0, CampaignState.LIVE,
                            requested_by=LEAD)  # fmt: skip
    message = await _imported(app)
    await _target(app, message, autumn.id or 0)
    return autumn, message


async def test_with_an_invite_delay_the_report_says_when_the_invites_really_go(
    app: Harness,
) -> None:  # fmt: skip
    _, message = await _targeted_with_a_delay(app)
    rendered = json.dumps(_report(app, message)["blocks"])
    async with app.db.begin() as conn:
        due = (await conn.execute(text("SELECT MIN(send_after) AS due FROM invite")
                                  .columns(due=UTCDateTime()))).scalar_one()  # fmt: skip
    assert due > utcnow() + timedelta(days=2)
    assert f"2 held until <!date^{int(due.timestamp())}^" in rendered, rendered


async def _send_job_due(app: Harness) -> Job:
    """The enrollment's send job, due now (the hold is over), not run."""
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == "send_invites")
    now = bindparam("now", type_=UTCDateTime())
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE job SET run_after = :now WHERE id = :j").bindparams(now),
                           {"now": utcnow(), "j": job.id})  # fmt: skip
        await conn.execute(text("UPDATE invite SET send_after = :now").bindparams(now),
                           {"now": utcnow()})  # fmt: skip
    return job


def _button(message: dict, action: str) -> str:
    return next(e["value"] for b in message["blocks"] if b["type"] == "actions"
                for e in b["elements"] if e["action_id"] == action)  # fmt: skip


async def _lease_runs_out(app: Harness) -> None:
    now = bindparam("now", type_=UTCDateTime())
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE job SET lease_expires_at = :now WHERE state = 'running'")
                           .bindparams(now), {"now": utcnow() - timedelta(seconds=1)})


async def test_a_cancelled_send_job_stops_sending_and_offers_retry(app: Harness) -> None:
    _, message = await _targeted(app)
    job = await _send_job_due(app)
    await cancel_job(app.db, "T0001", job.id or 0)
    await app.settle()
    report = _report(app, message)
    rendered = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
    assert "Sending stopped: its send job was cancelled." in rendered, rendered
    assert list(app.settings.outbox_dir.glob("*.eml")) == []
    await app.requests.block_action(Action.RETRY_SENDING, _button(report, Action.RETRY_SENDING),
                                    user_id=LEAD, message_ts=report["ts"])  # fmt: skip
    await app.settle()
    assert len(list(app.settings.outbox_dir.glob("*.eml"))) == 2


async def _live_from_the_list(app: Harness) -> Campaign:
    """Spring, targeting VIP's two contacts, put live with *Go live* in `/referral campaign`
    (an enrollment without a thread), its hold over: sent to whatever server `app` has."""
    await _imported(app)  # two contacts in VIP
    spring = await _campaign(app, "Spring", live=False)
    vip = await find_segment(app.db, "T0001", "VIP")
    assert vip is not None
    await service.target(app.db, "T0001", spring.id or 0, vip.id or 0, requested_by=LEAD)
    listing = await app.listing("campaign")
    await app.click_in(listing, Action.CAMPAIGN_LIVE, str(spring.id))
    await app.settle()
    await _hold_is_over(app)
    return spring


async def test_a_campaign_gone_live_from_the_list_shows_stopped_sending_there_with_retry(
    db: Database, tmp_path: Path,
) -> None:  # fmt: skip
    """Go live from `/referral campaign` starts an enrollment without a thread, so no report
    would ever say its sending stopped: the campaign list says so and offers Retry sending."""
    async with _refused_login(db, tmp_path) as (app, server, password):
        spring = await _live_from_the_list(app)
        sends = [j for j in await list_jobs(app.db, "T0001") if j.kind == "send_invites"]
        assert [(j.state, j.attempts) for j in sends] == [("failed", 5)]
        listing = await app.listing("campaign")
        shown = json.dumps(listing["blocks"])
        assert "Sending stopped" in shown and "refused the login: 535" in shown, shown
        assert "wrong" not in shown
        password[0] = "wrong"  # the mail settings are put right
        answers = await app.click_in(listing, Action.CAMPAIGN_RETRY_SENDING, str(spring.id))
        await app.settle()
        assert "Sending the invites of Spring again." in json.dumps(answers[-1]["blocks"])
        assert sorted(m.rcpt_tos[0] for m in server.handler.messages) == [
            "jane@example.com", "raj@example.org"]  # fmt: skip
        again = await app.click_in(listing, Action.CAMPAIGN_RETRY_SENDING, str(spring.id))
        assert "was already restarted" in json.dumps(again[-1]["blocks"])
        assert "Sending stopped" not in json.dumps((await app.listing("campaign"))["blocks"])
        assert app.slack.block_errors == []


async def test_retry_sending_on_a_paused_campaign_says_its_invites_wait_for_go_live(
    db: Database, tmp_path: Path,
) -> None:  # fmt: skip
    """The campaign list's *Retry sending* of a paused campaign: its sender sends only a live
    campaign's invites, so they wait for *Go live*; it said "Sending the invites of Spring
    again." and none went."""
    async with _refused_login(db, tmp_path) as (app, server, password):
        spring = await _live_from_the_list(app)
        assert "Sending stopped" in json.dumps((await app.listing("campaign"))["blocks"])
        await service.change_state(app.db, "T0001", spring.id or 0, CampaignState.PAUSED,
                                   requested_by=LEAD)  # fmt: skip
        password[0] = "wrong"  # the mail settings are put right
        listing = await app.listing("campaign")
        answers = await app.click_in(listing, Action.CAMPAIGN_RETRY_SENDING, str(spring.id))
        await _hold_is_over(app)
        shown = json.dumps(answers[-1]["blocks"])
        assert ("The invites of Spring are queued: they go once Spring is live again "
                "(*Go live*).") in shown, shown
        assert server.handler.messages == []
        await service.change_state(app.db, "T0001", spring.id or 0, CampaignState.LIVE,
                                   requested_by=LEAD)  # fmt: skip
        await _hold_is_over(app)
        assert len(server.handler.messages) == 2
        assert app.slack.block_errors == []


async def test_retry_sending_as_another_lead_pauses_says_the_invites_wait_for_go_live(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The same, paused by another lead between the click's look at the campaign and the
    retry: the note was worded from that look, "Sending the invites of Spring again."."""
    async with _refused_login(db, tmp_path) as (app, server, password):
        spring = await _live_from_the_list(app)
        password[0] = "wrong"
        listing = await app.listing("campaign")
        real = campaign_handlers.retry_campaign_sending

        async def paused_first(*args: Any) -> Any:
            await service.change_state(app.db, "T0001", spring.id or 0, CampaignState.PAUSED,
                                       requested_by="U0ADMIN")  # fmt: skip
            return await real(*args)

        monkeypatch.setattr(campaign_handlers, "retry_campaign_sending", paused_first)
        answers = await app.click_in(listing, Action.CAMPAIGN_RETRY_SENDING, str(spring.id))
        await _hold_is_over(app)
        shown = json.dumps(answers[-1]["blocks"])
        assert ("The invites of Spring are queued: they go once Spring is live again "
                "(*Go live*).") in shown, shown
        assert server.handler.messages == []


async def test_the_campaign_list_offers_email_them_for_enrollments_without_a_thread(
    app: Harness,
) -> None:
    """Go live from `/referral campaign` enrolls without a thread, so no report offers
    *Email them*: the campaign list says how many the invite email being off left unsent
    and offers it, to team leads, once the invite email is on again."""
    await _imported(app)  # two contacts in VIP
    spring = await _campaign(app, "Spring", live=False)
    vip = await find_segment(app.db, "T0001", "VIP")
    assert vip is not None
    await service.target(app.db, "T0001", spring.id or 0, vip.id or 0, requested_by=LEAD)
    await service.update_campaign(app.db, "T0001", spring.id or 0, invite_email=False)
    listing = await app.listing("campaign", LEAD)
    await app.click_in(listing, Action.CAMPAIGN_LIVE, str(spring.id), LEAD)
    await app.settle()
    listing = await app.listing("campaign", LEAD)
    assert Action.CAMPAIGN_EMAIL_UNSENT not in json.dumps(listing["blocks"])  # off: nothing
    await _edit_invite_email(app, spring, on=True)
    await _hold_is_over(app)
    assert list(app.settings.outbox_dir.glob("*.eml")) == []
    listing = await app.listing("campaign", REP)
    shown = json.dumps(listing["blocks"])
    assert "2 advocates got no invite while the invite email was off" in shown, shown
    answers = await app.click_in(listing, Action.CAMPAIGN_EMAIL_UNSENT, str(spring.id), REP)
    assert "Only team leads" in json.dumps(answers[-1]), answers[-1]
    answers = await app.click_in(listing, Action.CAMPAIGN_EMAIL_UNSENT, str(spring.id), LEAD)
    await _hold_is_over(app)
    assert "Sending 2 invites of Spring" in json.dumps(answers[-1]["blocks"]), answers[-1]
    assert len(list(app.settings.outbox_dir.glob("*.eml"))) == 2
    again = await app.click_in(listing, Action.CAMPAIGN_EMAIL_UNSENT, str(spring.id), LEAD)
    assert "No invite of Spring is left unsent" in json.dumps(again[-1]["blocks"])
    shown = json.dumps((await app.listing("campaign", LEAD))["blocks"])
    assert "got no invite" not in shown and Action.CAMPAIGN_EMAIL_UNSENT not in shown
    assert app.slack.block_errors == []
    assert await _audited(app, "campaign.emailed_unsent") == [
        (LEAD, "emailed the advocates of the campaign Spring that the invite email being off "
               "left without an invite (2 invites)")]  # fmt: skip


async def test_the_campaign_list_offers_resend_uncertain_for_enrollments_without_a_thread(
    app: Harness,
) -> None:
    """Go live from `/referral campaign` enrolls without a thread, so no report offered
    *Resend uncertain*: an invite the mail server took and then didn't answer for stayed
    uncertain for good, and the list said only how many were sent. It now says how many
    failed and may not have arrived, and offers the resend to team leads."""
    await _imported(app)  # two contacts in VIP
    spring = await _campaign(app, "Spring", live=False)
    vip = await find_segment(app.db, "T0001", "VIP")
    assert vip is not None
    await service.target(app.db, "T0001", spring.id or 0, vip.id or 0, requested_by=LEAD)
    await app.click_in(await app.listing("campaign", LEAD), Action.CAMPAIGN_LIVE,
                       str(spring.id), LEAD)  # fmt: skip
    await _hold_is_over(app)
    outbox = app.settings.outbox_dir
    assert len(list(outbox.glob("*.eml"))) == 2
    async with app.db.begin() as conn:  # the run's server lost both replies
        _first, second = [r[0] for r in await conn.execute(text("SELECT id FROM invite "
                                                                "ORDER BY id"))]  # fmt: skip
        await conn.execute(text("UPDATE invite SET state = 'uncertain'"))
    shown = json.dumps((await app.listing("campaign", REP))["blocks"])
    assert "2 invites may not have arrived (no answer came once they went to the mail " in shown
    async with app.db.begin() as conn:  # ... or rather refused the second one
        await conn.execute(text("UPDATE invite SET state = 'failed', reason = '550 no such "
                                "user' WHERE id = :i"), {"i": second})  # fmt: skip
    for eml in outbox.glob("*.eml"):
        eml.unlink()
    listing = await app.listing("campaign", REP)
    shown = json.dumps(listing["blocks"])
    assert "0 invites sent \\u00b7 1 failed \\u00b7" in shown, shown
    assert "1 invite may not have arrived" in shown, shown
    answers = await app.click_in(listing, Action.CAMPAIGN_RESEND_UNCERTAIN, str(spring.id), REP)
    assert "Only team leads" in json.dumps(answers[-1]), answers[-1]
    answers = await app.click_in(listing, Action.CAMPAIGN_RESEND_UNCERTAIN, str(spring.id),
                                 LEAD)  # fmt: skip
    await app.settle()
    assert "Sending 1 invite of Spring again: a worker sends it." in json.dumps(
        answers[-1]["blocks"]), answers[-1]  # fmt: skip
    assert len(list(outbox.glob("*.eml"))) == 1
    again = await app.click_in(listing, Action.CAMPAIGN_RESEND_UNCERTAIN, str(spring.id), LEAD)
    assert "No invite of Spring is left to resend." in json.dumps(again[-1]["blocks"])
    shown = json.dumps((await app.listing("campaign", LEAD))["blocks"])
    assert "may not have arrived" not in shown and Action.CAMPAIGN_RESEND_UNCERTAIN not in shown
    assert "1 invite sent \\u00b7 1 failed" in shown, shown
    assert app.slack.block_errors == []
    # who chose to email people again (some may get theirs twice) is in the audit log
    assert await _audited(app, "campaign.resent") == [
        (LEAD, "resent the invites of the campaign Spring that may not have arrived "
               "(1 invite)")]  # fmt: skip


async def _audited(app: Harness, action: str) -> list[tuple[str, str]]:
    from bot.audit import recent, sentence

    return [(e.actor, sentence(e)) for e in await recent(app.db, "T0001") if e.action == action]


async def test_a_campaign_created_after_the_import_can_be_targeted_from_its_thread(
    app: Harness,
) -> None:  # fmt: skip
    """The next step is offered once, when the import finishes; the menu asks for the
    campaigns when opened, so the first campaign, created after, is there to choose."""
    message = await _imported(app)
    offer = _offer(app, message)
    assert "There is no campaign yet" in json.dumps(offer["blocks"])
    spring = await _campaign(app, "Spring", live=True)
    await _campaign(app, "Autumn", live=False)
    menu = await app.requests.block_suggestion(Action.TARGET_CHOICE, "", block_id=BlockId.TARGET)
    assert [o["text"]["text"] for o in menu.body["options"]] == ["Autumn (draft)",
                                                                 "Spring (live)"]  # fmt: skip
    typed = await app.requests.block_suggestion(Action.TARGET_CHOICE, "spr",
                                                block_id=BlockId.TARGET)  # fmt: skip
    assert [o["value"] for o in typed.body["options"]] == [str(spring.id)]
    app.slack.users["U0EXT"] = {"team_id": "T0EXT"}  # of an organisation C0001 is shared with
    theirs = await app.requests.block_suggestion(Action.TARGET_CHOICE, "", user_id="U0EXT",
                                                 block_id=BlockId.TARGET)  # fmt: skip
    assert theirs.body["options"] == []
    await _target(app, message, spring.id or 0)
    thread = [json.dumps(m.get("blocks")) for m in app.slack.messages_in("C0001", message["ts"])]
    assert any("*2* new advocates in *Spring*" in t for t in thread), thread
    assert app.slack.block_errors == []


def test_a_long_draft_campaigns_option_still_says_it_is_a_draft() -> None:
    """The target menu cut "name (draft)" at 75 characters: a 70-character draft read
    "… Europe 2026 (draf", and a longer one lost its marker, picked for a live one."""
    from handlers.enrollment_messages import campaign_options

    name = "Spring referral programme for our most loyal customers in Europe 2026 and on"
    draft = Campaign(id=3, team_id="T0001", name=name, name_key=name.casefold(), state="draft",
                     store_url="https://shop.example")  # fmt: skip

    (option,) = campaign_options([draft])

    shown = option.to_dict()["text"]["text"]
    assert shown.endswith("… (draft)") and len(shown) <= 75, shown


async def test_a_refusal_of_a_click_in_the_imports_thread_is_said_in_that_thread(
    app: Harness,
) -> None:
    """Refusals of the thread's buttons (Target, Cancel invites, Retry sending...) went to
    the channel, out of sight of someone reading the thread."""
    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    before = len(app.slack.ephemerals)

    await _click_target(app, message, spring.id or 0, user=REP)  # not a team lead
    await app.settle()

    told = app.slack.ephemerals[before:]
    assert [e["text"][:40] for e in told] == ["Only team leads can target campaigns. As"]
    assert told[0]["thread_ts"] == message["ts"], told[0]


async def test_after_an_undo_with_its_advocates_the_report_says_how_many_remain(
    app: Harness,
) -> None:
    """The thread's report kept saying "*2* new advocates" after an undo had removed both
    (the number recorded when the enrollment finished); the advocates are counted now."""
    from bot.imports.undo import request_undo
    from tests.handlers.test_import_flow import _count

    _spring, message = await _targeted(app)
    assert "*2* new advocates" in json.dumps(_report(app, message)["blocks"])
    batch = await _count(app, "SELECT MAX(id) FROM import_batch")

    await request_undo(app.db, "T0001", batch, LEAD, remove_advocates=True, window_days=7)
    await app.settle()

    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 0
    report = _report_blocks(app, message)
    assert "2 of them removed since (an import undone with its advocates" in report, report
    assert "0 remain" in report


async def test_target_from_a_thread_while_a_go_live_enrollment_waits_reports_in_the_thread(
    app: Harness,
) -> None:
    """Go live from /referral campaign (no thread) queued an enrollment of every target; a
    lead then clicked Target in an import's thread before a worker ran it, was told its
    report would follow in the thread, and the thread never heard another word: the click
    was handed the threadless enrollment. The thread's own enrollment reports there now."""
    message = await _imported(app)  # jane and raj into VIP
    spring = await _campaign(app, "Spring", live=False)
    vip = await find_segment(app.db, "T0001", "VIP")
    assert vip is not None
    await service.target(app.db, "T0001", spring.id or 0, vip.id or 0, requested_by=LEAD)
    await service.set_state(app.db, "T0001", spring.id or 0, CampaignState.LIVE,
                            requested_by=LEAD)  # as /referral campaign's Go live: no thread

    await _click_target(app, message, spring.id or 0)
    await app.settle()

    thread = json.dumps(app.slack.messages_in("C0001", message["ts"]))
    assert "targeted *Spring*" in thread
    assert "new advocates in *Spring*" in thread, thread
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 2
    assert await _count(app, "SELECT COUNT(*) FROM enrollment WHERE thread_ts IS NOT NULL") == 1


async def test_editing_the_delay_doesnt_restart_sending_someone_stopped(app: Harness) -> None:
    """`jobs cancel` of a send job stopped an enrollment's sending ("Retry sending sends
    them"); a lead then changing the campaign's invite delay sent them all the same."""
    from tests.handlers.test_campaigns import _click as click_in_list
    from tests.handlers.test_campaigns import _list as campaign_list

    autumn, message = await _targeted_with_a_delay(app)
    send = next(j for j in await list_jobs(app.db, "T0001") if j.kind == "send_invites")
    await cancel_job(app.db, "T0001", send.id or 0)
    await app.settle()
    report = _report(app, message)

    listing = await campaign_list(app)
    await click_in_list(app, Action.CAMPAIGN_EDIT, str(autumn.id), listing)
    modal = app.slack.open_views(LEAD)[-1]
    await app.requests.view_submission(
        state_values=campaign_form(name="Autumn", delay="0", store_url="https://shop.example"),
        view_id=modal["id"], user_id=LEAD)  # fmt: skip
    await app.settle()
    await _hold_is_over(app)

    assert list(app.settings.outbox_dir.glob("*.eml")) == []
    rendered = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
    assert "Sending stopped: its send job was cancelled." in rendered, rendered


async def test_target_a_campaign_on_an_undone_import_says_it_was_undone(app: Harness) -> None:
    """*Target a campaign* left in the thread of an import undone since: the refusal said
    only a finished import's contacts can be targeted, of an import that had finished."""
    from bot.imports.undo import request_undo

    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    batch = int(str(await _count(app, "SELECT MAX(id) FROM import_batch")))
    await request_undo(app.db, "T0001", batch, LEAD, remove_advocates=True, window_days=7)
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM import_batch WHERE status = 'undone'") == 1
    await _click_target(app, message, spring.id or 0)
    await app.settle()
    said = app.slack.ephemerals[-1]["text"]
    assert "this import is imported (approved by <@U0002>), then undone by <@U0002>." in said
    assert await _count(app, "SELECT COUNT(*) FROM enrollment") == 0


async def test_delayed_invites_keep_cancel_invites_while_they_are_held(app: Harness) -> None:
    """A campaign's invite delay holds invites for days, but the report offered *Cancel
    invites* only during the hold window: redrawn after it, it said "2 held until" three days
    on with no button, while a button still on screen cancelled them."""
    from bot.campaigns.invites import cancel_held
    from bot.notify import enqueue_enrollment_report_in

    _, message = await _targeted_with_a_delay(app)
    assert Action.CANCEL_INVITES in _report_blocks(app, message)
    now = bindparam("now", type_=UTCDateTime())
    async with app.db.begin() as conn:  # the hold window is over; the delay isn't
        await conn.execute(text("UPDATE enrollment SET hold_until = :now").bindparams(now),
                           {"now": utcnow() - timedelta(seconds=1)})  # fmt: skip
        enrollment = (await conn.execute(text("SELECT id FROM enrollment"))).scalar_one()
        await enqueue_enrollment_report_in(conn, "T0001", enrollment)
    await app.settle()
    rendered = _report_blocks(app, message)
    assert "2 held until" in rendered and Action.CANCEL_INVITES in rendered, rendered
    assert (await cancel_held(app.db, "T0001", enrollment, LEAD)).cancelled == 2


async def test_the_campaign_list_offers_retry_sending_only_with_invites_left_to_send(
    app: Harness,
) -> None:  # fmt: skip
    """Sending stopped (its send job cancelled), then the invite email turned off: the report
    dropped *Retry sending*, but the campaign list kept "Sending stopped" and its button,
    which sent nothing."""
    spring, message = await _targeted(app)
    job = await _send_job_due(app)
    await cancel_job(app.db, "T0001", job.id or 0)
    await app.settle()
    assert "Sending stopped" in json.dumps((await app.listing("campaign"))["blocks"])
    await _edit_invite_email(app, spring, on=False)
    assert Action.RETRY_SENDING not in _report_blocks(app, message)
    listing = json.dumps((await app.listing("campaign"))["blocks"])
    assert "Sending stopped" not in listing and Action.CAMPAIGN_RETRY_SENDING not in listing


def test_an_enrollment_report_of_one_is_said_in_the_singular() -> None:
    """":tada: *1* new advocates … (1 already were …)", and a failed enrollment "failed after
    1 new advocates: unknown error Target…" (no full stop before "Target")."""
    from bot.campaigns.reports import EnrollmentSummary
    from handlers.enrollment_messages import enrollment_report

    def rendered(status: str) -> str:
        enrollment = Enrollment(id=1, team_id="T0001", campaign_id=1, status=status, enrolled=1,
                                already_advocates=1, excluded=0, channel_id="C1",
                                thread_ts="1.1")  # fmt: skip
        campaign = Campaign(id=1, team_id="T0001", name="Spring", name_key="spring",
                            store_url="https://shop.example", state="live")  # fmt: skip
        summary = EnrollmentSummary(enrollment, campaign, "VIP", {"sent": 1}, advocates=1)
        return json.dumps([b.to_dict() for b in enrollment_report(summary)[1]])

    assert ":tada: *1* new advocate in *Spring* from *VIP* (1 already was, 0 excluded)." in (
        rendered("done"))  # fmt: skip
    assert "failed after 1 new advocate: unknown error. Target the campaign again" in (
        rendered("failed"))  # fmt: skip


@pytest.mark.parametrize("put_live_by", [ADMIN, LEAD], ids=["another lead", "the same lead"])
async def test_go_live_and_target_on_a_campaign_put_live_meanwhile_says_who_took_it_live(
    app: Harness, put_live_by: str,
) -> None:
    """A draft's *Go live and target* question stays on screen while the campaign is put
    live from /referral campaign. Put live by another lead, the click only targeted the
    segment, but the thread told the channel this lead took it live. Put live by the same
    lead (a double click's other click, whichever announcement is posted), it did: the
    click that found it live said only "targeted" (CI saw it, the clicks' order changing)."""
    autumn = await _campaign(app, "Autumn", live=False)
    message = await _imported(app)
    await _target(app, message, autumn.id or 0)  # a draft: asks to go live first
    question = app.slack.ephemerals[-1]
    value = next(e["value"] for b in question["blocks"] if b["type"] == "actions"
                 for e in b["elements"])  # fmt: skip
    await service.set_state(app.db, "T0001", autumn.id or 0, CampaignState.LIVE,
                            requested_by=put_live_by)  # Go live in /referral campaign
    await app.settle()
    await app.requests.block_action(Action.TARGET_GO_LIVE, value, user_id=LEAD,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    took = f"<@{LEAD}> took *Autumn* live and targeted this segment: enrolling now."
    targeted = f"<@{LEAD}> targeted *Autumn* with this segment: enrolling its contacts now."
    said = took if put_live_by == LEAD else targeted
    assert said in thread, thread
    assert (took if said == targeted else targeted) not in thread, thread


async def test_an_imports_new_contacts_are_enrolled_by_all_customers_after_its_segment_goes(
    app: Harness,
) -> None:
    """Spring targets All Customers. An import adds two new contacts (to VIP, and so to All
    Customers); before a worker runs the import's enrollment, a lead deletes VIP ("they stay
    in All Customers"). The enrollment looked only at VIP's memberships of the import: the
    two stayed in All Customers, which Spring targets, without a link, for good."""
    from bot.segments import delete_segment

    spring = await _campaign(app, "Spring", live=True)
    everyone = await find_segment(app.db, "T0001", "All Customers")
    assert everyone is not None
    await service.target(app.db, "T0001", spring.id or 0, everyone.id or 0, requested_by=LEAD)
    await app.settle()
    enroll = app.worker.handlers.pop("enroll")  # no worker has taken enrollments yet
    message, batch = await _start(app, consent=True)
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 2
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'enroll' "
                             "AND state = 'queued'") == 1
    vip = await find_segment(app.db, "T0001", "VIP")
    assert vip is not None
    await delete_segment(app.db, "T0001", vip.id or 0, actor=LEAD)

    app.worker.handlers["enroll"] = enroll  # a worker takes it now
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 2  # in All Customers


async def test_with_no_hold_window_delayed_invites_are_held_and_said_when_they_go(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """INVITE_HOLD_SECONDS=0 and a 3-day invite delay: the invites wait three days, but the
    thread's report said "2 queued" (as if going now), with no *Cancel invites*."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with running_app(db, tmp_path, invite_hold_seconds=0) as app:
        _, message = await _targeted_with_a_delay(app)
        report = _report(app, message)
        rendered = json.dumps(report["blocks"])
        assert "2 queued" not in rendered, rendered
        assert "2 held until <!date^" in rendered and Action.CANCEL_INVITES in rendered, rendered
        await app.requests.block_action(Action.CANCEL_INVITES,
                                        _button(report, Action.CANCEL_INVITES), user_id=LEAD,
                                        message_ts=report["ts"])  # fmt: skip
        await app.settle()
        assert await _count(app, "SELECT COUNT(*) FROM invite WHERE state = 'cancelled'") == 2


async def test_a_thread_told_nobody_was_enrolled_hears_when_going_live_enrolls_them(
    app: Harness,
) -> None:
    """Target a campaign, then a pause before a worker ran the enrollment: the thread's
    report says nobody was enrolled and to go live. Going live (from /referral campaign)
    then enrolled and emailed the segment, with no hold, but the thread kept saying nobody
    was enrolled. Going live runs the thread's enrollment again: its report says who was
    enrolled, with the hold's *Cancel invites*."""
    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    await _click_target(app, message, spring.id or 0)
    await app.done()  # targeted and announced; the enrollment's job not run yet
    await service.pause(app.db, "T0001", spring.id or 0, requested_by=ADMIN)
    await app.settle()
    thread = json.dumps([m.get("blocks") for m in app.slack.messages_in("C0001", message["ts"])])
    assert "nobody was enrolled" in thread, thread

    await service.set_state(app.db, "T0001", spring.id or 0, CampaignState.LIVE,
                            requested_by=ADMIN)  # Go live in /referral campaign
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 2  # enrolled once each
    rendered = _report_blocks(app, message)
    assert "*2* new advocates in *Spring*" in rendered, rendered
    assert "nobody was enrolled" not in rendered and Action.CANCEL_INVITES in rendered, rendered
    assert list(app.settings.outbox_dir.glob("*.eml")) == []  # held, as a Target's are
    # going live's own enrollment waits for the thread's: with two workers, taking the
    # campaign's row first, it enrolled the thread's contacts without the hold
    async with app.db.begin() as conn:
        jobs = (await conn.execute(text(
            "SELECT payload, run_after FROM job WHERE kind = 'enroll' ORDER BY id"))).all()
    thread_run, everyone_run = jobs[-2][1], jobs[-1][1]
    assert json.loads(jobs[-1][0])["enrollment_id"] != json.loads(jobs[-2][0])["enrollment_id"]
    waited = (datetime.fromisoformat(str(everyone_run))
              - datetime.fromisoformat(str(thread_run))).total_seconds()  # fmt: skip
    assert waited >= 1, jobs


async def test_a_shell_going_live_runs_the_threads_resumed_enrollment_first(
    app: Harness, db_env: dict[str, str],
) -> None:
    """`referral-bot campaign live Spring` runs going live's enrollment in the shell, at
    once: the thread's enrollment it resumed ran after, on a worker, and its report said
    "*0* new advocates (2 already were)", the invites gone without the hold."""
    from tests.shell import run

    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    await _click_target(app, message, spring.id or 0)
    await app.done()
    await service.pause(app.db, "T0001", spring.id or 0, requested_by=ADMIN)
    await app.settle()
    done = await asyncio.to_thread(run, db_env, "campaign", "live", "Spring", "--yes",
                                   "--team", "T0001")  # fmt: skip
    assert done.returncode == 0, done.stderr
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 2
    rendered = _report_blocks(app, message)
    assert "*2* new advocates in *Spring*" in rendered, rendered
    assert Action.CANCEL_INVITES in rendered, rendered
