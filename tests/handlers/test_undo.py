"""*Undo import* over the wire: the button in the thread (or on Home), the modal, the result."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import json
import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.campaigns import service
from bot.campaigns.enroll import run_enrollment
from bot.contact_admin import find_by_email, unsubscribe
from bot.imports.importer import import_files
from bot.imports.job_kinds import UNDO_JOB
from bot.imports.undo import request_undo, undo_now
from bot.jobs.queue import claim, list_jobs
from bot.workspaces import ensure_workspace, find_segment
from handlers.ids import Action, BlockId, Callback
from handlers.messages import esc
from models import CampaignState, Database
from models.clock import utcnow
from tests import shell
from tests.handlers.conftest import LEAD, REP, Harness, running_app
from tests.handlers.test_home import _open_home
from tests.handlers.test_import_flow import _count, _form, _open_modal, _review
from tests.jobs.test_last_attempt_outage import WriteLock
from tests.jobs.test_worker_faults import impatient

SEGMENT = "VIP <!channel>"
SHOWN = "VIP &lt;!channel&gt;"  # as mrkdwn must carry it
CSV = b"email,first_name\nold@example.com,Old\nother@example.com,Other\nnew@example.com,New\n"


async def _cli_import(app: Harness, segment: str, csv: bytes, team: str = "T0001") -> int:
    await ensure_workspace(app.db, team)
    result = await import_files(app.db, team, [("p.csv", io.BytesIO(csv))], segment=segment,
                                create_segment=True)  # fmt: skip
    return result.batch.id or 0


async def _slack_import(app: Harness, *, invite_email: bool = True) -> tuple[dict, int]:
    """old@ in the segment and other@ in Other already, a live campaign on the segment (its
    invite email on or off); then an import from Slack (approved by a lead) adds other@ and
    new@ to it."""
    await _cli_import(app, SEGMENT, b"email\nold@example.com\n")
    await _cli_import(app, "Other", b"email\nother@example.com\n")
    segment = await find_segment(app.db, "T0001", SEGMENT)
    assert segment is not None
    spring = await service.create_campaign(app.db, "T0001", "Spring",
                                           store_url="https://shop.example",
                                           invite_email=invite_email)  # fmt: skip
    await service.set_state(app.db, "T0001", spring.id or 0, CampaignState.LIVE,
                            requested_by=LEAD, queue_job=False)  # fmt: skip
    enrollment = await service.target(app.db, "T0001", spring.id or 0, segment.id or 0,
                                      requested_by=LEAD, queue_job=False)  # fmt: skip
    assert enrollment is not None
    await run_enrollment(app.db, "T0001", enrollment, hold_seconds=0)

    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "vip.csv", CSV)
    form = _form(files=[file], consent=True)
    form[BlockId.SEGMENT] = {Action.SEGMENT: {"type": "external_select", "selected_option": {
        "text": {"type": "plain_text", "text": SEGMENT}, "value": str(segment.id)}}}
    await app.requests.view_submission(state_values=form, view_id=view_id, user_id=REP)
    await app.settle()
    message = await _review(app)
    batch = message["blocks"][-1]["elements"][0]["value"]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    return message, int(batch)


def _thread(app: Harness, message: dict) -> list[dict]:
    return app.slack.messages_in("C0001", message["ts"])


def _with_undo(app: Harness, message: dict) -> list[dict]:
    return [m for m in _thread(app, message) if Action.UNDO in json.dumps(m.get("blocks"))]


async def _click_undo(app: Harness, user: str, **where: Any) -> dict:
    """Click *Undo import* and return the modal it opened (once it is filled in)."""
    before = {v["id"] for v in app.slack.open_views(user)}
    await app.requests.block_action(Action.UNDO, where.pop("value"), user_id=user, **where)
    await app.settle()
    opened = [v for v in app.slack.open_views(user) if v["id"] not in before]
    assert len(opened) == 1 and opened[0]["callback_id"] == Callback.UNDO
    return opened[0]


def _ticked() -> dict:
    option = {"text": {"type": "plain_text", "text": "Also remove"}, "value": "remove_advocates"}
    return {BlockId.UNDO_ADVOCATES: {Action.UNDO_ADVOCATES: {"type": "checkboxes",
                                                             "selected_options": [option]}}}


async def test_undo_from_the_thread_in_two_clicks(app: Harness) -> None:
    message, batch = await _slack_import(app)
    (result,) = _with_undo(app, message)
    assert "Imported into" in result["text"]
    assert await _count(app, "SELECT COUNT(*) FROM invite WHERE state = 'held'") == 2

    refused = await _click_undo(app, REP, value=str(batch), message_ts=result["ts"])
    assert "Only team leads can undo imports" in json.dumps(refused["blocks"])
    assert not refused.get("submit")

    modal = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])
    second = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])  # 2 tabs
    shown = json.dumps(modal["blocks"])
    assert f"Removes the 2 contacts this import added to *{SHOWN}*" in shown
    assert "contacts that were already there stay" in shown
    assert "Deletes the 1 contact it created that is in no other segment" in shown
    assert "(2 now)" in shown and "Also remove the 2 advocates it enrolled" in shown

    reply = await app.requests.view_submission(state_values=_ticked(), view_id=modal["id"],
                                               user_id=LEAD)  # fmt: skip
    assert reply.status == 200 and reply.body["response_action"] == "update"
    assert "Asking for the undo" in json.dumps(reply.body["view"])  # asked after the ack
    await app.requests.view_submission(state_values={}, view_id=second["id"], user_id=LEAD)
    await app.settle()
    # each asks after its ack: either may run first (a loaded machine ran the second's
    # first), the other told in words that the undo is under way
    shown = sorted(json.dumps(app.slack.views[v["id"]]) for v in (modal, second))
    won = [s for s in shown if "Undoing import" in s]
    lost = [s for s in shown
            if f"Import #{batch} is already being undone (asked by <@{LEAD}>" in s]
    assert (len(won), len(lost)) == (1, 1), shown

    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'undo_import'") == 1
    texts = [m["text"] for m in _thread(app, message)]
    done = [t for t in texts if "was undone" in t]
    assert done == [f":leftwards_arrow_with_hook: Import #{batch} was undone by <@{LEAD}>: "
                    f"2 contacts removed from *{SHOWN}*, 1 deleted, 2 invites cancelled, "
                    "2 advocates removed (their referral links no longer work)."]  # fmt: skip
    assert _with_undo(app, message) == []  # the result reply lost its button
    updated = app.slack.message("C0001", result["ts"])
    assert f"Undone by <@{LEAD}>" in json.dumps(updated["blocks"])
    record = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert f"then undone by <@{LEAD}>" in record
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 2  # old@, other@
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 1  # old@'s, from before
    assert await _count(app, "SELECT COUNT(*) FROM invite WHERE state = 'held'") == 0

    again = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])
    assert f"was already undone by <@{LEAD}> on" in json.dumps(again["blocks"])
    assert app.slack.block_errors == []


async def test_from_home_the_result_comes_by_direct_message(app: Harness) -> None:
    batch = await _cli_import(app, "Newsletter", b"email\na@example.com\nb@example.com\n")
    home = await _open_home(app, LEAD)
    modal = await _click_undo(app, LEAD, value=str(batch), view=home)
    assert "Removes the 2 contacts" in json.dumps(modal["blocks"])
    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.settle()
    assert "direct message" in json.dumps(app.slack.views[modal["id"]]["blocks"])
    dm = app.slack.dm_channels[LEAD]
    texts = [m["text"] for m in app.slack.messages_in(dm)]
    assert any(f"Import #{batch} was undone by <@{LEAD}>: 2 contacts removed from *Newsletter*, "
               "2 deleted, 0 invites cancelled." in t for t in texts), texts  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 0
    assert app.slack.ephemerals == []
    assert app.slack.block_errors == []


async def test_old_foreign_and_made_up_imports_are_refused_in_the_modal(app: Harness) -> None:
    ours = await _cli_import(app, "VIP", b"email\na@example.com\n")
    theirs = await _cli_import(app, "VIP", b"email\na@example.com\n", team="T0002")
    modal = await _click_undo(app, LEAD, value=str(theirs), message_ts="1767225700.000100")
    assert f"Import #{theirs} doesn't exist in this workspace" in json.dumps(modal["blocks"])

    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET finished_at = :f WHERE id = :b")
                           .bindparams(bindparam("f", type_=UTCDateTime())),
                           {"f": utcnow() - timedelta(days=8), "b": ours})  # fmt: skip
    modal = await _click_undo(app, LEAD, value=str(ours), message_ts="1767225700.000100")
    assert "Imports can be undone for 7 days; this one finished on" in json.dumps(modal["blocks"])

    # a modal submitted with another workspace's id (forged metadata) changes nothing
    reply = await app.requests.view_submission(Callback.UNDO, {}, user_id=LEAD,
                                               private_metadata=json.dumps({"batch": theirs}))
    assert "doesn't exist in this workspace" in json.dumps(reply.body)
    await app.requests.block_action(Action.UNDO, "<!channel>", user_id=LEAD)
    await app.settle()
    assert "doesn't name an import" in app.slack.ephemerals[-1]["text"]
    assert await _count(app, "SELECT COUNT(*) FROM contact WHERE team_id = 'T0002'") == 1
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'undo_import'") == 0
    assert app.slack.block_errors == []


async def test_a_slack_outage_delays_the_result_but_it_arrives_once(app: Harness) -> None:
    message, batch = await _slack_import(app)
    (result,) = _with_undo(app, message)
    modal = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])
    app.slack.outage("chat.postMessage", times=2, status=503)
    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.settle()
    await app.settle()  # the report job's retry
    done = [m for m in _thread(app, message) if "was undone" in m["text"]]
    assert len(done) == 1 and "2 contacts removed" in done[0]["text"]
    assert "1 deleted, 2 invites cancelled, 1 advocate removed" in done[0]["text"]
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'slack_report' "
                        "AND state = 'done'") >= 1  # fmt: skip


async def test_an_undo_that_stopped_for_good_is_finished_from_slack(app: Harness) -> None:
    """Its job gave up (out of retries, or cancelled): *Undo import* offers to finish it, and
    the job carries on where it stopped; no shell needed."""
    message, batch = await _slack_import(app)
    (result,) = _with_undo(app, message)
    modal = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])
    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.done()  # asked for; its job hasn't run
    async with app.db.begin() as conn:
        await conn.execute(text(
            "UPDATE job SET state = 'failed', attempts = max_attempts, "
            "last_error = 'the database went away <!channel>' WHERE kind = 'undo_import'"))
    refused = await _click_undo(app, REP, value=str(batch), message_ts=result["ts"])
    assert "Only team leads can undo imports" in json.dumps(refused["blocks"])
    again = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])
    other_tab = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])
    shown = json.dumps(again["blocks"])
    assert f"The undo of import #{batch} stopped part way" in shown
    assert "&lt;!channel&gt;" in shown and "<!channel>" not in shown
    for view in (again, other_tab):  # both sent: one finishes it, the other is told
        reply = await app.requests.view_submission(state_values={}, view_id=view["id"],
                                                   user_id=LEAD)  # fmt: skip
        assert reply.body["response_action"] == "update"
    await app.settle()
    assert any(f"Import #{batch} was undone by <@{LEAD}>" in m["text"]
               for m in _thread(app, message))  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'undo_import' "
                             "AND state = 'done'") == 1  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 2  # old@, other@
    told = [json.dumps(app.slack.views[v["id"]]) for v in (again, other_tab)]
    assert sum("Undoing import" in t for t in told) == 1, told
    assert sum("running again already" in t or "was already undone" in t for t in told) == 1
    assert app.slack.block_errors == []


async def test_a_failure_after_the_modal_opened_is_shown_in_it_not_left_counting(
    app: Harness,
) -> None:
    batch = await _cli_import(app, "VIP", b"email\na@example.com\n")
    app.slack.fail("views.update", "internal_error")  # filling "Counting…" fails once
    await app.requests.block_action(Action.UNDO, str(batch), user_id=LEAD,
                                    message_ts="1767225700.000100")  # fmt: skip
    await app.settle()
    (modal,) = app.slack.open_views(LEAD)
    shown = json.dumps(modal["blocks"])
    assert "Counting" not in shown
    assert "Something went wrong on our side" in shown and "reference:" in shown
    assert app.slack.ephemerals == [] and app.slack.block_errors == []


async def test_the_confirmation_counts_the_invites_removing_the_advocates_cancels(
    app: Harness,
) -> None:
    """Spring targets Other too, so other@ stays in its audience: the undo keeps its invite
    and, with *Also remove the advocates*, its advocate too (its link retired while it stayed
    in a targeted segment, it answered 410); the modal counts what the undo then does."""
    message, batch = await _slack_import(app)
    (result,) = _with_undo(app, message)
    spring = await _count(app, "SELECT id FROM campaign WHERE name = 'Spring'")
    other = await find_segment(app.db, "T0001", "Other")
    assert other is not None
    enrollment = await service.target(app.db, "T0001", spring, other.id or 0,
                                      requested_by=LEAD, queue_job=False)  # fmt: skip
    if enrollment is not None:
        await run_enrollment(app.db, "T0001", enrollment, hold_seconds=0)
    modal = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])
    shown = json.dumps(modal["blocks"])
    assert "invites still waiting to be sent to them (1 now)." in shown
    await app.requests.view_submission(state_values=_ticked(), view_id=modal["id"],
                                       user_id=LEAD)  # fmt: skip
    await app.settle()
    (done,) = [m["text"] for m in _thread(app, message) if "was undone" in m["text"]]
    assert "1 deleted, 1 invite cancelled, 1 advocate removed" in done
    assert await _count(app, "SELECT COUNT(*) FROM advocate a JOIN contact c ON c.id = "
                             "a.contact_id WHERE c.email = 'other@example.com'") == 1


def _emailed(app: Harness) -> list[str]:
    """Whom the outbox's invites went to."""
    return sorted(str(email.message_from_bytes(p.read_bytes(), policy=email.policy.default)["To"])
                  for p in app.settings.outbox_dir.glob("*.eml"))  # fmt: skip


@pytest.mark.parametrize("where", ["thread", "list", "shell"])
async def test_email_them_after_an_undo_emails_nobody_the_undo_took_out(
    app: Harness, db_env: dict[str, str], where: str,
) -> None:  # fmt: skip
    """Spring's invite email was off when the import enrolled other@ and new@ ("invite email
    off": unsent, for a lead to send later). The undo took other@ out of VIP (it stays, in
    Other, which Spring doesn't target) but left its invite as it was: the confirmation said
    "(0 now)", and once the invite email was on, *Email them* (the thread's report, the
    campaign list's, `campaign email-unsent`) emailed other@, no longer in the audience. Those
    invites are waiting ones too: the undo cancels them, and they are invited again if the
    campaign reaches the contact again."""
    from tests.handlers.test_targeting import _edit_invite_email, _hold_is_over, _report

    message, batch = await _slack_import(app, invite_email=False)
    assert await _count(app, "SELECT COUNT(*) FROM invite WHERE state = 'not_emailed' "
                             "AND reason = 'invite email off'") == 3  # fmt: skip
    (result,) = _with_undo(app, message)
    modal = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])
    assert "invites still waiting to be sent to them (2 now)." in json.dumps(modal["blocks"])
    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.settle()
    (done,) = [m["text"] for m in _thread(app, message) if "was undone" in m["text"]]
    assert "1 deleted, 2 invites cancelled, 1 advocate removed" in done, done
    assert await _count(app, "SELECT COUNT(*) FROM invite i JOIN contact c ON c.id = "
                             "i.contact_id WHERE c.email = 'other@example.com' AND i.state = "
                             f"'cancelled' AND i.reason = 'import #{batch} was undone'") == 1

    spring = await service.find_campaign(app.db, "T0001", "Spring")
    await _edit_invite_email(app, spring, on=True)
    report = _report(app, message)
    if where == "thread":  # the report offers nothing; a button drawn earlier does nothing
        assert Action.EMAIL_UNSENT not in json.dumps(
            app.slack.message("C0001", report["ts"])["blocks"])
        enrollment = await _count(app, f"SELECT id FROM enrollment WHERE batch_id = {batch}")
        await app.requests.block_action(Action.EMAIL_UNSENT, str(enrollment), user_id=LEAD,
                                        message_ts=report["ts"])  # fmt: skip
    elif where == "list":
        await app.click_in(await app.listing("campaign", LEAD), Action.CAMPAIGN_EMAIL_UNSENT,
                           str(spring.id), LEAD)  # fmt: skip
    else:
        done_there = await asyncio.to_thread(shell.run, db_env, "campaign", "email-unsent",
                                             "Spring")  # fmt: skip
        assert done_there.returncode == 0, done_there.stderr
    await _hold_is_over(app)
    # old@ is still in VIP: the list and the shell send its invite, held back before the import
    assert _emailed(app) == ([] if where == "thread" else ["old@example.com"])

    if where == "thread":  # back in VIP: invited again, as a new advocate would be
        await _cli_import(app, SEGMENT, b"email\nother@example.com\n")
        await app.settle()
        await _hold_is_over(app)
        assert _emailed(app) == ["other@example.com"]
    assert app.slack.block_errors == []


async def test_an_undo_with_its_advocates_counts_the_invites_the_email_being_off_held(
    app: Harness,
) -> None:  # fmt: skip
    """With *Also remove the advocates*, the invites the invite email being off left unsent go
    with their advocates: the confirmation and the result count them as cancelled, as they
    do a held one (they said "0 now" and "0 invites cancelled")."""
    message, batch = await _slack_import(app, invite_email=False)
    (result,) = _with_undo(app, message)
    modal = await _click_undo(app, LEAD, value=str(batch), message_ts=result["ts"])
    assert "invites still waiting to be sent to them (2 now)." in json.dumps(modal["blocks"])
    await app.requests.view_submission(state_values=_ticked(), view_id=modal["id"],
                                       user_id=LEAD)  # fmt: skip
    await app.settle()
    (done,) = [m["text"] for m in _thread(app, message) if "was undone" in m["text"]]
    assert "1 deleted, 2 invites cancelled, 2 advocates removed" in done, done
    assert await _count(app, "SELECT COUNT(*) FROM invite") == 1  # old@'s, from before


async def test_the_confirmation_says_who_stays_because_they_unsubscribed(app: Harness) -> None:
    """ann unsubscribed after the import: the undo keeps her (in no segment) so that her
    unsubscribe stays, and the confirmation says so instead of counting her as deleted."""
    batch = await _cli_import(app, "Wrong", b"email\nann@example.com\nbob@example.com\n")
    await unsubscribe(app.db, "T0001", await find_by_email(app.db, "T0001", "ann@example.com"),
                      LEAD)  # fmt: skip
    home = await _open_home(app, LEAD)
    modal = await _click_undo(app, LEAD, value=str(batch), view=home)
    shown = json.dumps(modal["blocks"])
    assert "Deletes the 1 contact it created that is in no other segment" in shown
    assert ("Keeps the 1 contact it created who unsubscribed or was already sent an invite, in "
            "no segment, so that no later import emails them (again).") in shown  # fmt: skip
    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.settle()
    texts = [m["text"] for m in app.slack.messages_in(app.slack.dm_channels[LEAD])]
    assert any("2 contacts removed from *Wrong*, 1 deleted" in t for t in texts), texts
    assert await _count(app, "SELECT COUNT(*) FROM contact WHERE email = 'ann@example.com' "
                             "AND unsubscribed_at IS NOT NULL") == 1  # fmt: skip
    assert app.slack.block_errors == []


async def test_the_confirmation_says_who_stays_after_who_is_deleted(app: Harness) -> None:
    """A later import listed x, and ann unsubscribed: the line keeping ann came before the
    one deleting the others (put at a fixed place, which the line keeping x had moved), and
    said "were" of one contact."""
    batch = await _cli_import(app, "VIP", b"email\nx@example.com\na@example.com\n"
                                          b"ann@example.com\n")  # fmt: skip
    await _cli_import(app, "VIP", b"email\nx@example.com\n")
    await unsubscribe(app.db, "T0001", await find_by_email(app.db, "T0001", "ann@example.com"),
                      LEAD)  # fmt: skip
    home = await _open_home(app, LEAD)
    modal = await _click_undo(app, LEAD, value=str(batch), view=home)
    lines = modal["blocks"][0]["text"]["text"].split("\n")
    deletes = next(i for i, line in enumerate(lines) if line.startswith("• Deletes the 1 "))
    assert any(line.startswith("• Keeps the 1 contact it added that a later import")
               for line in lines[:deletes]), lines  # fmt: skip
    assert lines[deletes + 1] == (
        "• Keeps the 1 contact it created who unsubscribed or was already sent an invite, in no "
        "segment, so that no later import emails them (again)."), lines  # fmt: skip
    assert app.slack.block_errors == []


async def test_the_result_in_slack_says_who_the_undo_kept_because_they_unsubscribed(
    app: Harness,
) -> None:  # fmt: skip
    """ann unsubscribed: the undo kept her, and the command line and the audit log said so,
    but Slack's result said "2 contacts removed from Wrong, 1 deleted", ann unaccounted for."""
    batch = await _cli_import(app, "Wrong", b"email\nann@example.com\nbob@example.com\n")
    await unsubscribe(app.db, "T0001", await find_by_email(app.db, "T0001", "ann@example.com"),
                      LEAD)  # fmt: skip
    await _undo_from_home(app, batch)
    await app.settle()
    texts = [m["text"] for m in app.slack.messages_in(app.slack.dm_channels[LEAD])]
    assert any("2 contacts removed from *Wrong*, 1 deleted (1 kept: they unsubscribed or were "
               "emailed), 0 invites cancelled." in t for t in texts), texts  # fmt: skip


async def test_the_confirmation_says_whom_the_undo_unsubscribes_again(app: Harness) -> None:
    """ann had said no; an --update-existing import said yes and re-subscribed her. Its
    undo unsubscribes her again, and the confirmation says so."""
    await _cli_import(app, "Old", b"email,subscribed\nann@example.com,no\n")
    result = await import_files(app.db, "T0001", [("p.csv", io.BytesIO(
        b"email,subscribed\nann@example.com,yes\nbob@example.com,yes\n"))], segment="VIP",
        create_segment=True, update_existing=True)  # fmt: skip
    home = await _open_home(app, LEAD)
    modal = await _click_undo(app, LEAD, value=str(result.batch.id), view=home)
    assert ("Unsubscribes again the 1 contact it re-subscribed (they had said no before it; "
            "its file said yes).") in json.dumps(modal["blocks"])
    assert app.slack.block_errors == []


async def test_the_confirmation_and_the_result_say_who_stays_for_a_later_import(
    app: Harness,
) -> None:
    """x came with this import and again with a later one into the same segment: undoing
    this one keeps x there (it is the later import's now), and both messages say so instead
    of counting x as removed and deleted."""
    batch = await _cli_import(app, "VIP", b"email\nx@example.com\na@example.com\n")
    await _cli_import(app, "VIP", b"email\nx@example.com\n")
    home = await _open_home(app, LEAD)
    modal = await _click_undo(app, LEAD, value=str(batch), view=home)
    shown = json.dumps(modal["blocks"])
    assert "Removes the 1 contact this import added to *VIP*" in shown
    assert ("Keeps the 1 contact it added that a later import into *VIP* listed too: they "
            "stay there, as that import's (undoing it takes them out).") in shown
    assert "Deletes the 1 contact it created that is in no other segment" in shown
    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.settle()
    texts = [m["text"] for m in app.slack.messages_in(app.slack.dm_channels[LEAD])]
    assert any("1 contact removed from *VIP* (1 kept: a later import listed them too), "
               "1 deleted, 0 invites cancelled." in t for t in texts), texts  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM contact WHERE email = 'x@example.com'") == 1
    assert app.slack.block_errors == []


async def test_help_and_referral_undo_say_the_undo_window_set(db: Any, tmp_path: Any) -> None:
    """UNDO_WINDOW_DAYS=30: `/referral help` said "within a week" whatever the setting, and
    `/referral undo` (no such subcommand: its answer was never routed) gave the whole help."""
    from tests.handlers.conftest import running_app

    async with running_app(db, tmp_path, undo_window_days=30) as app:

        async def answer(text: str, user: str) -> str:
            body = (await app.requests.slash_command(text=text, user_id=user)).body
            return str(body["text"] if isinstance(body, dict) else body)

        helped = await answer("help", REP)
        assert "within 30 days of it" in helped and "a week" not in helped
        assert await answer("undo 12", LEAD) == (
            "Undo an import with *Undo import* in its thread, or *Undo* on the Home tab, within "
            "30 days of it finishing (team leads).")  # fmt: skip


async def test_an_undo_whose_job_gives_up_says_so_in_the_thread_and_how_to_finish(
    app: Harness,
) -> None:  # fmt: skip
    """Every attempt of the undo's job killed its worker: the import stays half undone, and
    the thread was never told (the modal had promised the result there)."""
    message, batch = await _slack_import(app)
    await request_undo(app.db, "T0001", batch, LEAD, remove_advocates=False, window_days=7)
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == UNDO_JOB)
    for attempt in range(job.max_attempts):  # each worker dies; its lease runs out
        assert await claim(app.db, f"killed-{attempt}", -1, kinds={UNDO_JOB}) is not None
    await app.settle()
    said = [m.get("text", "") for m in _thread(app, message)]
    assert any(f"Undoing import #{batch} into *{esc(SEGMENT)}* stopped part way" in t
               and f"referral-bot undo {batch}" in t for t in said), said  # fmt: skip
    assert app.slack.block_errors == []


async def _undo_with_advocates(app: Harness, batch: str, ts: str) -> None:
    await app.requests.block_action(Action.UNDO, batch, user_id=LEAD, message_ts=ts)
    await app.settle()
    modal = app.slack.open_views(LEAD)[-1]
    box = next(b for b in modal["blocks"] if b.get("type") == "input")
    state = {box["block_id"]: {box["element"]["action_id"]: {
        "type": "checkboxes", "selected_options": box["element"]["options"]}}}  # fmt: skip
    await app.requests.view_submission(state_values=state, view_id=modal["id"], user_id=LEAD)
    await app.settle()


async def test_an_undo_refreshes_the_threads_enrollment_report(app: Harness) -> None:
    """Targeted from the thread (invites held), then undone with its advocates: the report
    still said "2 held until ..." with a Cancel invites button that answered "Too late:
    these invites have already left"."""
    from tests.handlers.test_targeting import _campaign, _imported, _target

    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    await _target(app, message, spring.id or 0)
    report = next(m for m in app.slack.messages_in("C0001", message["ts"])
                  if Action.CANCEL_INVITES in json.dumps(m.get("blocks")))  # fmt: skip
    await _undo_with_advocates(app, "1", message["ts"])
    shown = json.dumps(app.slack.message("C0001", report["ts"])["blocks"])
    assert "held until" not in shown and Action.CANCEL_INVITES not in shown, shown

async def test_undo_redraws_the_report_of_another_threads_enrollment_it_changed(
    app: Harness,
) -> None:
    """A shell import's undo cancelled (or deleted) invites that another thread's enrollment
    had queued: that thread's report still counted them ("3 held until ..."), as only the
    undone import's own thread was redrawn."""
    from tests.handlers.test_targeting import _campaign, _imported, _report_blocks, _target

    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)  # import C into VIP, in a thread
    first = await _cli_import(app, "VIP", b"email\na@example.com\n")
    await _target(app, message, spring.id or 0)  # every VIP member enrolled: 3 held
    await undo_now(app.db, "T0001", first, "cli", remove_advocates=False, window_days=7)
    await app.settle()
    held = await _count(app, "SELECT COUNT(*) FROM invite WHERE state = 'held'")
    assert re.findall(r"(\d+) held until", _report_blocks(app, message)) == [str(held)]



async def test_undo_counts_and_removes_the_advocates_targeting_from_its_thread_made(
    app: Harness,
) -> None:
    """Target a campaign from an import's thread: Home said "2 enrolled as advocates", the
    undo's confirmation "Also remove the 0 advocates it enrolled", and ticked, the undo kept
    both advocates, their links working."""
    from tests.handlers.test_targeting import _campaign, _imported, _target

    spring = await _campaign(app, "Spring", live=True)
    message = await _imported(app)
    await _target(app, message, spring.id or 0)
    await app.requests.block_action(Action.UNDO, "1", user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    shown = json.dumps(app.slack.open_views(LEAD)[-1]["blocks"])
    assert "Also remove the 2 advocates it enrolled" in shown, shown
    await _undo_with_advocates(app, "1", message["ts"])
    assert await _count(app, "SELECT COUNT(*) FROM advocate") == 0


async def test_go_live_and_target_from_its_thread_makes_the_imports_advocates_too(
    app: Harness,
) -> None:
    """A draft campaign taken live from the thread: going live enrolls every target (no
    segment of its own), and its advocates were left without the import."""
    from tests.handlers.test_targeting import _campaign, _imported, _target

    draft = await _campaign(app, "Autumn", live=False)
    message = await _imported(app)
    await _target(app, message, draft.id or 0)
    value = next(e["value"] for b in app.slack.ephemerals[-1]["blocks"]
                 if b["type"] == "actions" for e in b["elements"])  # fmt: skip
    await app.requests.block_action(Action.TARGET_GO_LIVE, value, user_id=LEAD,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM advocate WHERE batch_id = 1") == 2


async def test_with_undo_window_0_the_result_in_the_thread_offers_no_undo(
    db: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    """UNDO_WINDOW_DAYS=0: Approve says the import can't be undone and Home offers no Undo,
    but the thread's result offered *Undo import*, which only ever opened "Imports can't be
    undone here"."""
    from tests.fakes.slack_api import find_element
    from tests.handlers.conftest import running_app
    from tests.handlers.test_targeting import _imported

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with running_app(db, tmp_path, undo_window_days=0) as app:
        message = await _imported(app)
        thread = app.slack.messages_in("C0001", message["ts"])
        results = [m for m in thread if m.get("text", "").startswith(":white_check_mark:")]
        offered = [m for m in thread if find_element(m.get("blocks") or [], Action.UNDO)]

    assert results and offered == [], offered


async def test_jobs_cancel_of_an_undo_tells_its_thread_and_the_audit_log(app: Harness) -> None:
    """`referral-bot jobs cancel` of an undo's job left the import "being undone" with nobody
    told and nothing in the audit log; its thread now offers to finish it."""
    from bot.audit import recent
    from bot.imports.cancel import cancel_job

    message, batch = await _slack_import(app)
    await request_undo(app.db, "T0001", batch, LEAD, remove_advocates=False, window_days=7)
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == UNDO_JOB)

    cancelled = await cancel_job(app.db, "T0001", job.id or 0)
    await app.settle()

    assert cancelled is not None and cancelled.state == "cancelled"
    said = json.dumps(_thread(app, message))
    assert "stopped part way (its job was cancelled: `referral-bot jobs cancel`)" in said, said
    entries = [(e.actor, e.action, e.detail) for e in await recent(app.db, "T0001")]
    assert ("cli", "import.undone", "stopped part way: its job was cancelled") in entries


def _import_row(home: dict, segment: str) -> dict:
    """Home's row of the (only) import into `segment`."""
    (row,) = [b for b in home["blocks"] if b["type"] == "section" and "Requested" in
              b["text"]["text"] and f"*{segment}*" in b["text"]["text"]]  # fmt: skip
    return row


async def _home_without_jobs(app: Harness, user: str) -> dict:
    """Open Home without running the queued jobs (`_open_home` settles: a worker runs them)."""
    from tests.handlers.test_home import _home_opened

    assert (await app.requests.event(_home_opened(user))).status == 200
    await app.done()
    return app.slack.home_views[user]


async def _undo_from_home(app: Harness, batch: int) -> None:
    """A lead asks for the undo of `batch` from Home's *Undo*; its job is queued, not run."""
    home = await _open_home(app, LEAD)
    modal = await _click_undo(app, LEAD, value=str(batch), view=home)
    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.done()


@pytest.mark.parametrize("stop", ["gives up", "jobs cancel"])
async def test_a_stopped_undo_of_a_shell_import_is_finished_from_home(
    app: Harness, stop: str,
) -> None:  # fmt: skip
    """A shell import has no thread: its undo, asked from Home, stopped part way (its job gave
    up, or `jobs cancel`); the DM said to click *Undo import* "on its result", which it has
    none of, and Home showed it "being undone" with no button, for good (its segment can't be
    deleted meanwhile). Home offers *Undo* to leads, which finishes it."""
    from bot.imports.cancel import cancel_job

    batch = await _cli_import(app, "Newsletter", b"email\na@example.com\nb@example.com\n")
    await _undo_from_home(app, batch)
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == UNDO_JOB)
    if stop == "gives up":
        for attempt in range(job.max_attempts):  # each worker dies; its lease runs out
            assert await claim(app.db, f"killed-{attempt}", -1, kinds={UNDO_JOB}) is not None
    else:
        assert (await cancel_job(app.db, "T0001", job.id or 0)) is not None
    await app.settle()
    (said,) = [m["text"] for m in app.slack.messages_in(app.slack.dm_channels[LEAD])
               if "stopped part way" in m["text"]]  # fmt: skip
    assert "Click *Undo* on its row in my Home tab to finish it, or run `referral-bot undo " \
           f"{batch}`" in said, said
    assert "on its result" not in said

    assert "accessory" not in _import_row(await _open_home(app, REP), "Newsletter")  # no lead
    row = _import_row(await _open_home(app, LEAD), "Newsletter")
    assert "being undone" in row["text"]["text"]
    assert "Its undo stopped part way: a team lead finishes it with *Undo*." in row["text"]["text"]
    assert row["accessory"]["action_id"] == Action.UNDO
    modal = await _click_undo(app, LEAD, value=row["accessory"]["value"],
                              view=app.slack.home_views[LEAD])  # fmt: skip
    assert f"The undo of import #{batch} stopped part way" in json.dumps(modal["blocks"])
    assert modal["submit"]["text"] == "Finish the undo"
    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.settle()
    assert any(f"Import #{batch} was undone by <@{LEAD}>" in m["text"]
               for m in app.slack.messages_in(app.slack.dm_channels[LEAD]))  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 0
    row = _import_row(app.slack.home_views[LEAD], "Newsletter")  # republished by the result
    assert "undone by" in row["text"]["text"] and "accessory" not in row
    assert app.slack.block_errors == []


async def test_home_and_the_undo_form_agree_on_a_worker_gone_quiet_under_the_lease_setting(
    app: Harness,
) -> None:  # fmt: skip
    """JOB_LEASE_SECONDS=10 (the harness's): a worker last seen a minute ago is dead to the
    Undo form (3 leases), which says the undo waits for a worker; Home reckoned with the
    default 30 s lease (90 s) and showed "being undone" with no *Undo* to finish it."""
    from bot.jobs.queue import register_worker

    assert app.settings.job_lease_seconds == 10
    batch = await _cli_import(app, "Newsletter", b"email\na@example.com\n")
    await _undo_from_home(app, batch)
    await register_worker(app.db, "worker-1", {UNDO_JOB}, pid=1, host="here")
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE worker_process SET seen_at = :then").bindparams(
            bindparam("then", type_=UTCDateTime())), {"then": utcnow() - timedelta(seconds=60)})
    shown = await _home_says_the_undo_waits(app, batch)
    assert f"The undo of import #{batch} is waiting for a worker" in shown, shown


async def _home_says_the_undo_waits(app: Harness, batch: int) -> str:
    """Home's row of the import says its undo waits for a worker and offers *Undo*: the
    blocks of the form that *Undo* opens."""
    row = _import_row(await _home_without_jobs(app, LEAD), "Newsletter")
    assert "Its undo waits for a worker, and none is running" in row["text"]["text"], row
    assert row["accessory"]["action_id"] == Action.UNDO
    before = {v["id"] for v in app.slack.open_views(LEAD)}
    await app.requests.block_action(Action.UNDO, str(batch), user_id=LEAD,
                                    view=app.slack.home_views[LEAD])  # fmt: skip
    await app.done()
    (modal,) = [v for v in app.slack.open_views(LEAD) if v["id"] not in before]
    assert "submit" not in modal
    return json.dumps(modal["blocks"])


async def test_an_undo_waiting_for_a_worker_that_isnt_there_says_how_to_finish_it(
    app: Harness,
) -> None:  # fmt: skip
    """No worker runs (`serve` with RUN_WORKER=false and none started): the undo asked from
    Home waits, and Home said "being undone" with nothing more. Its *Undo* says how to finish
    it; once a worker is alive, the undo about to run offers nothing."""
    from bot.jobs.queue import register_worker

    batch = await _cli_import(app, "Newsletter", b"email\na@example.com\n")
    await _undo_from_home(app, batch)
    shown = await _home_says_the_undo_waits(app, batch)
    assert f"The undo of import #{batch} is waiting for a worker" in shown, shown
    assert f"`referral-bot undo {batch}`" in shown

    await register_worker(app.db, "worker-1", {UNDO_JOB}, pid=1, host="here")
    row = _import_row(await _home_without_jobs(app, LEAD), "Newsletter")
    assert "being undone" in row["text"]["text"] and "accessory" not in row
    assert "Its undo" not in row["text"]["text"]
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 1  # nothing ran it yet


async def test_a_database_failure_after_the_ack_is_said_in_the_modal(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The submission's ack shows "Asking for the undo…" and the request runs after it. The
    database failing then (another client holding the write lock longer than the app waits)
    left that modal asking for good, the failure going to a direct message: it says it now,
    and the failure is logged with who asked which undo."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    impatient_db = impatient(db_env)  # its statements give up after waiting 100 ms for a lock
    lock = WriteLock(impatient_db)
    try:
        async with running_app(impatient_db, tmp_path) as app:
            batch = await _cli_import(app, "Newsletter", b"email\na@example.com\n")
            modal = await _click_undo(app, LEAD, value=str(batch), message_ts="1767225700.000100")
            assert "Removes the 1 contact" in json.dumps(modal["blocks"])
            await lock.hold()  # the database goes away as the undo is asked for
            with caplog.at_level(logging.INFO):
                reply = await app.requests.view_submission(state_values={}, view_id=modal["id"],
                                                           user_id=LEAD)  # fmt: skip
                assert "Asking for the undo" in json.dumps(reply.body["view"])
                await app.done()
            await lock.release()

            updates = app.slack.calls_to("views.update")
            assert updates and updates[-1].args["view_id"] == modal["id"]
            shown = json.dumps(app.slack.views[modal["id"]]["blocks"])
            assert f"I couldn't ask for the undo of import #{batch}*: to try again" in shown
            assert "Try again" in shown and "Asking for the undo" not in shown
            assert app.slack.dm_channels.get(LEAD) is None  # said in the modal, not by DM
            logged = [r.getMessage() for r in caplog.records if r.name == "handlers.later"]
            assert any(f"user={LEAD}" in m and f"batch={batch}" in m for m in logged), logged
            assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'undo_import'") == 0
            assert await _count(app, "SELECT COUNT(*) FROM contact") == 1
            assert app.slack.block_errors == []
    finally:
        await lock.release()
        await impatient_db.dispose()


async def test_the_undo_of_a_shell_import_with_no_advocates_offers_nothing_it_cant_do(
    app: Harness,
) -> None:  # fmt: skip
    """A shell import that enrolled nobody, undone from Home: the confirmation offered "Also
    remove the 0 advocates it enrolled" and said "The thread of the import says what was taken
    out", of an import with no thread (the result goes to a DM)."""
    batch = await _cli_import(app, "Newsletter", b"email\na@example.com\n")
    home = await _open_home(app, LEAD)
    modal = await _click_undo(app, LEAD, value=str(batch), view=home)
    shown = json.dumps(modal["blocks"])
    assert "Removes the 1 contact this import added" in shown, shown
    assert "advocate" not in shown.casefold(), shown
    assert "thread" not in shown, shown
    assert "direct message" in shown, shown
    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD)
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 0


async def test_a_stopped_undo_whose_channel_refuses_is_told_by_dm(app: Harness) -> None:
    """The import's channel archived (or the bot removed) before its undo stopped part way:
    the result of an undo went to the lead by DM then, but the word that it stopped and how
    to finish it was dropped, and the import stayed "being undone" with nobody told."""
    from bot.imports.cancel import cancel_job

    message, batch = await _slack_import(app)
    await request_undo(app.db, "T0001", batch, LEAD, remove_advocates=False, window_days=7)
    job = next(j for j in await list_jobs(app.db, "T0001") if j.kind == UNDO_JOB)
    app.slack.fail("chat.postMessage", "is_archived")
    assert await cancel_job(app.db, "T0001", job.id or 0) is not None
    await app.settle()

    assert "stopped part way" not in json.dumps(_thread(app, message))
    dms = [m["text"] for m in app.slack.messages if m["channel"].startswith("D")]
    told = [t for t in dms if "stopped part way" in t]
    assert len(told) == 1, dms
    assert "Click *Undo* on its row in my Home tab" in told[0], told[0]  # not "on its result"
    assert "I can't post in the import's channel any more" in told[0], told[0]


async def test_an_undo_refused_after_its_modal_was_closed_is_told_by_dm(app: Harness) -> None:
    """The modal said "Asking for the undo…" and was closed; the undo was then refused (here
    a resume of an undo that isn't stopped): the refusal went to the closed modal, and the
    lead was told nothing."""
    from handlers.messages import metadata

    batch = await _cli_import(app, "Newsletter", b"email\na@example.com\n")
    home = await _open_home(app, LEAD)
    modal = await _click_undo(app, LEAD, value=str(batch), view=home)
    app.slack.fail("views.update", "not_found")  # closed while it asked
    await app.requests.view_submission(state_values={}, view_id=modal["id"], user_id=LEAD,
                                       private_metadata=metadata(batch=batch, resume=1))
    await app.settle()
    dms = [m["text"] for m in app.slack.messages if m["channel"].startswith("D")]
    assert any(f"Import #{batch} has no stopped undo to finish" in t for t in dms), dms


async def test_an_undo_asked_from_home_and_finished_from_the_shell_tells_who_asked(
    app: Harness, db_env: dict[str, str],
) -> None:  # fmt: skip
    """No worker runs: a lead's undo of a shell import, asked from Home, waits; the modal said
    the result comes by direct message, and Home's *Undo* says to finish it with
    `referral-bot undo N`. Finished so, the lead was never told what it took out."""
    batch = await _cli_import(app, "Newsletter", b"email\na@example.com\nb@example.com\n")
    await _undo_from_home(app, batch)  # "The result will be in a direct message"
    done = await asyncio.to_thread(shell.run, db_env, "undo", str(batch), "--team", "T0001")
    assert done.returncode == 0, done.stderr
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 0
    await app.settle()  # a worker that talks to Slack runs whatever report was queued
    dm = app.slack.dm_channels.get(LEAD)
    texts = [m["text"] for m in app.slack.messages_in(dm)] if dm else []
    assert any(f"Import #{batch} was undone by <@{LEAD}>: 2 contacts removed from "
               "*Newsletter*" in t for t in texts), texts  # fmt: skip


async def test_the_confirmation_says_which_campaigns_enroll_them_in_plain_english(
    app: Harness,
) -> None:  # fmt: skip
    """A live campaign excluding the segment: "in a segment it target" (it targets)."""
    await _cli_import(app, "Other", b"email\na@example.com\n")
    batch = await _cli_import(app, "Newsletter", b"email\na@example.com\n")
    other = await find_segment(app.db, "T0001", "Other")
    newsletter = await find_segment(app.db, "T0001", "Newsletter")
    assert other is not None and newsletter is not None
    spring = await service.create_campaign(app.db, "T0001", "Spring",
                                           store_url="https://shop.example")  # fmt: skip
    await service.target(app.db, "T0001", spring.id or 0, other.id or 0, requested_by=LEAD,
                         queue_job=False)  # fmt: skip
    await service.exclude(app.db, "T0001", spring.id or 0, newsletter.id or 0,
                          requested_by=LEAD)  # fmt: skip
    await service.set_state(app.db, "T0001", spring.id or 0, CampaignState.LIVE,
                            requested_by=LEAD, queue_job=False)  # fmt: skip
    modal = await _click_undo(app, LEAD, value=str(batch), view=await _open_home(app, LEAD))
    shown = json.dumps(modal["blocks"])
    assert "*Spring* excludes *Newsletter*" in shown, shown
    assert "in a segment it targets are enrolled" in shown, shown
