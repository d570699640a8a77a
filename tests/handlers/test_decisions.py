"""Reject, cancel, add more, and posting the review where the bot can."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from handlers.ids import Action, BlockId, Callback
from models import Database
from tests.fakes.slack_api import FakeSlack, find_element
from tests.handlers.conftest import LEAD, REP, Harness, running_app
from tests.handlers.test_import_flow import CSV, _form, _open_modal, _review


async def _start(app: Harness, segment: str = "VIP", *,
                 consent: bool = False) -> tuple[dict, str]:  # fmt: skip
    """The review message of q3.csv submitted by REP into `segment`, and its batch id."""
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "q3.csv", CSV)
    await app.requests.view_submission(state_values=_form(files=[file], segment=segment,
                                                          consent=consent),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    message = await _review(app)
    return message, message["blocks"][-1]["elements"][0]["value"]


async def _add_more(app: Harness, message: dict, batch: str, form: dict) -> Any:
    """*Add more* on the review `message`, the form submitted with `form`; Slack's reply."""
    await app.requests.block_action(Action.ADD_MORE, batch, user_id=REP, message_ts=message["ts"])
    await app.settle()
    reply = await app.requests.view_submission(state_values=form, user_id=REP,
                                               view_id=app.slack.open_views(REP)[-1]["id"])
    await app.settle()
    return reply


async def test_only_the_requester_or_a_lead_cancels_and_only_a_lead_rejects(app: Harness) -> None:
    message, batch = await _start(app)
    await app.requests.block_action(Action.WITHDRAW, batch, user_id="U0777",
                                    message_ts=message["ts"])  # fmt: skip
    await app.requests.block_action(Action.REJECT, batch, user_id=REP, message_ts=message["ts"])
    await app.settle()
    notes = {e["user"]: e["text"] for e in app.slack.ephemerals}
    assert "who asked for this import, or a team lead can cancel it" in notes["U0777"]
    assert "Only team leads can reject" in notes[REP]
    assert app.slack.find_action(Action.APPROVE, "C0001") is not None  # still open

    await app.requests.block_action(Action.REJECT, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    record = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert f"rejected by <@{LEAD}>" in record
    assert app.slack.find_action(Action.APPROVE, "C0001") is None
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    assert "already rejected" in app.slack.ephemerals[-1]["text"]


async def test_the_reviews_cancel_confirmed_after_approval_doesnt_stop_the_import(
    app: Harness,
) -> None:
    """The requester confirmed the review's Cancel ("dropped before anything is imported")
    while a lead approved it: the two buttons were one, so the cancel stopped the approved
    import (what it had imported stayed) and the lead was never told. The review's Cancel
    withdraws a review only; the running import's own *Cancel import* still stops it."""
    message, batch = await _start(app)
    withdraw = next(e for b in message["blocks"] if b["type"] == "actions"
                    for e in b["elements"] if e["text"]["text"] == "Cancel")  # fmt: skip
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.later.drain()
    await app.requests.block_action(withdraw["action_id"], batch, user_id=REP,
                                    message_ts=message["ts"])  # fmt: skip
    await app.later.drain()

    assert f"already approved by <@{LEAD}>" in app.slack.ephemerals[-1]["text"]
    async with app.db.begin() as conn:
        status = (await conn.execute(text(f"SELECT status FROM import_batch WHERE id = {batch}"))
                  ).scalar_one()  # fmt: skip
    assert status in ("queued", "importing", "done")
    redrawn = app.slack.message("C0001", message["ts"])
    _, stop = find_element(redrawn["blocks"], Action.CANCEL) or ("", {})
    assert stop["text"]["text"] == "Cancel import"


async def test_every_button_that_ends_a_review_asks_first(app: Harness) -> None:
    """Approve asked; one misclick on Reject or Cancel ended the review for good."""
    message, _ = await _start(app)
    buttons = {e["action_id"]: e for b in message["blocks"] if b["type"] == "actions"
               for e in b["elements"]}  # fmt: skip
    for action in (Action.APPROVE, Action.REJECT, Action.WITHDRAW):
        assert buttons[action].get("confirm", {}).get("confirm", {}).get("text"), action


async def test_approves_confirmation_says_how_long_the_import_can_be_undone(
    db: Database, tmp_path: Path
) -> None:
    """It said "for a few days" whatever UNDO_WINDOW_DAYS, also 0 (no undo at all)."""
    for days, said in ((3, "undo the import from its thread within 3 days"),
                       (0, "It can't be undone (UNDO_WINDOW_DAYS is 0).")):  # fmt: skip
        async with running_app(db, tmp_path, undo_window_days=days) as app:
            message, _ = await _start(app, segment=f"VIP {days}")
            approve = next(e for b in message["blocks"] if b["type"] == "actions"
                           for e in b["elements"] if e["action_id"] == Action.APPROVE)  # fmt: skip
            assert said in approve["confirm"]["text"]["text"]


async def test_add_more_reopens_the_form_for_the_same_import(app: Harness) -> None:
    message, batch = await _start(app)
    await app.requests.block_action(Action.ADD_MORE, batch, user_id=REP, message_ts=message["ts"])
    await app.settle()
    modal = app.slack.open_views(REP)[-1]
    assert modal["callback_id"] == Callback.IMPORT and "Adding to *VIP*" in json.dumps(modal)
    await app.requests.view_submission(state_values=_form(email="late@example.com", first="Late"),
                                       view_id=modal["id"], user_id=REP)  # fmt: skip
    await app.settle()
    rendered = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert "late@example.com" in rendered and "3 to import" in rendered
    assert len([m for m in app.slack.messages if m.get("blocks")
                and m.get("thread_ts") in (None, m["ts"])]) == 1  # same message, updated


async def test_a_customer_added_who_repeats_a_row_gets_the_skipped_rows_csv(
    app: Harness,
) -> None:
    """Typed in the first form, a customer who repeats a file's address got a skipped-rows
    CSV in the thread, as a file does; typed in *Add more*, none: the review said "0 valid ·
    1 duplicates" with nothing saying which row it repeats."""
    message, batch = await _start(app)
    await _add_more(app, message, batch, _form(email="JANE@example.com"))
    rendered = json.dumps(app.slack.message("C0001", message["ts"])["blocks"],
                          ensure_ascii=False)  # fmt: skip
    assert "JANE@example.com" in rendered and "0 valid · 1 duplicate" in rendered
    sent = await app.csvs_sent(message["ts"])
    shared = [u for u in sent if "JANE@example.com" in (u.initial_comment or "")]
    assert len(shared) == 1, [u.initial_comment for u in sent]
    assert "JANE@example.com" in shared[0].text and "q3.csv" not in shared[0].filename


@pytest.mark.parametrize(("refusal", "why", "mend"), [
    ("not_in_channel", "I'm not a member of <#C0001>", "invite me to <#C0001> with /invite"),
    # inviting the bot changes nothing in an archived or admin-only channel: it said to
    ("is_archived", "<#C0001> is archived", "start the import again from another channel"),
    ("restricted_action", "<#C0001> doesn't let apps post",
     "start the import again from another channel"),
])  # fmt: skip
async def test_review_goes_to_a_dm_when_the_channel_refuses(app: Harness, refusal: str, why: str,
                                                           mend: str) -> None:  # fmt: skip
    app.slack.fail("chat.postMessage", refusal)
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(email="a@example.com", segment="DM"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    message = app.slack.find_action(Action.APPROVE)
    assert message is not None and message["channel"].startswith("D")
    said = [m["text"] for m in app.slack.messages_in(message["channel"]) if not m.get("blocks")]
    assert len(said) == 1 and why in said[0]  # told why it's here
    assert mend in said[0], said[0]  # and what to do


async def test_a_review_that_cant_be_posted_anywhere_withdraws_its_import(app: Harness) -> None:
    """Neither the channel nor the DM took it: a draft nobody could approve or cancel (and
    whose segment could never be deleted) is withdrawn, and the person told."""
    app.slack.fail("chat.postMessage", "not_in_channel", times=2)
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(email="a@example.com", segment="Lost"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    assert app.slack.find_action(Action.APPROVE) is None
    async with app.db.begin() as conn:
        status = (await conn.execute(text("SELECT status FROM import_batch"))).scalar_one()
    assert status == "cancelled"
    said = [m["text"] for m in app.slack.messages if not m.get("blocks")]
    assert any("nothing was imported" in t for t in said), said


async def test_only_the_channels_own_refusals_send_the_review_to_the_dm(app: Harness) -> None:
    """Blocks Slack refuses would be refused in the DM too, and "invite me" would be false
    advice: the import is withdrawn and the person told instead."""
    app.slack.fail("chat.postMessage", "invalid_blocks")
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(email="a@example.com", segment="X"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    assert app.slack.find_action(Action.APPROVE) is None
    said = [m["text"] for m in app.slack.messages if not m.get("blocks")]
    assert any("nothing was imported" in t for t in said) and not any("/invite" in t for t in said)


async def test_a_connection_dropped_once_is_retried(app: Harness) -> None:
    app.slack.outage("chat.postMessage", times=1)  # e.g. a stale keep-alive connection
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(email="a@example.com", segment="Y"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    review = app.slack.find_action(Action.APPROVE)
    assert review is not None and review["channel"] == "C0001"


async def test_a_form_slack_gave_too_little_time_says_so(app: Harness) -> None:
    app.slack.trigger_ttl = -1  # every trigger id has expired by the time it is used
    reply = await app.requests.slash_command(text="import", user_id=REP)
    assert reply.status == 200
    await app.settle()
    assert "too little time to open that form" in app.slack.ephemerals[-1]["text"]


async def test_a_result_the_archived_channel_refuses_goes_to_the_requester(app: Harness) -> None:
    message, batch = await _start(app)
    app.slack.fail("chat.update", "is_archived", times=10)  # archived after the approval click
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    dm = app.slack.dm_channels[REP]
    told = [m["text"] for m in app.slack.messages_in(dm)]
    assert len(told) == 1 and "Imported into *VIP*" in told[0] and "telling you here" in told[0]


async def test_an_import_whose_segment_was_deleted_meanwhile_cant_be_approved(
    app: Harness,
) -> None:
    """Deleting refuses segments with imports under way; a draft created in the same moment
    is caught when it is approved."""
    from sqlalchemy import text

    message, batch = await _start(app)
    async with app.db.begin() as conn:  # as a delete racing the draft's creation leaves it
        await conn.execute(text("UPDATE segment SET kind = 'deleted' WHERE name = 'VIP'"))
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    assert "segment of this import was deleted" in app.slack.ephemerals[-1]["text"]
    async with app.db.begin() as conn:
        status = (await conn.execute(text("SELECT status FROM import_batch"))).scalar_one()
    assert status == "draft"


async def test_progress_counts_this_imports_rows_not_other_imports(app: Harness) -> None:
    """Chunks are ranges of staged-row ids, which another import staged meanwhile shares."""
    message, batch = await _start(app, segment="Small")
    view_id = await _open_modal(app)  # someone else's import, staged meanwhile
    big = "email\n" + "".join(f"p{i}@example.com\n" for i in range(300))
    file = app.slack.add_file("F0900", "big.csv", big.encode(), user=LEAD)  # theirs
    await app.requests.view_submission(state_values=_form(files=[file], segment="Big"),
                                       view_id=view_id, user_id=LEAD)  # fmt: skip
    await app.settle()
    await _add_more(app, message, batch, _form(email="late@example.com"))
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    shown = [str(c.args.get("text")) for c in app.slack.calls
             if c.method in ("chat.postMessage", "chat.update")
             and "Importing into *Small*" in str(c.args.get("text"))]  # fmt: skip
    assert len(shown) > 1 and all(" of 3 " in t for t in shown), shown  # 3 contacts to import


async def test_a_redraw_read_before_a_rejection_but_landing_after_it_is_drawn_again(
    app: Harness,
) -> None:  # fmt: skip
    """A file removed: its redraw read the draft, then Slack held its update; a lead rejected
    meanwhile and that redraw landed first. The held one then showed the draft's buttons
    over the rejection for good."""
    import asyncio

    message, batch = await _start(app)
    remove = next(b["accessory"]["value"] for b in message["blocks"]
                  if b.get("accessory", {}).get("action_id") == Action.REMOVE_SOURCE)
    updates = len(app.slack.calls_to("chat.update"))
    gate = app.slack.hold("chat.update")
    await app.requests.block_action(Action.REMOVE_SOURCE, remove, user_id=REP,
                                    message_ts=message["ts"])  # fmt: skip
    for _ in range(200):  # its redraw is at Slack, held, the draft drawn
        if len(app.slack.calls_to("chat.update")) > updates:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the removal never redrew the review message")
    app.slack.unhold("chat.update")  # later updates go through at once
    await app.requests.block_action(Action.REJECT, batch, user_id=LEAD, message_ts=message["ts"])
    for _ in range(200):  # (not settle: it would wait for the held redraw)
        if app.slack.find_action(Action.APPROVE, "C0001") is None:
            break  # the rejection's drawing
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the rejection never redrew the review message")
    gate.set()  # the draft's drawing lands last
    await app.settle()
    assert app.slack.find_action(Action.APPROVE, "C0001") is None
    assert "rejected" in json.dumps(app.slack.message("C0001", message["ts"])["blocks"])


async def test_preview_only_on_a_decided_import_says_how_it_was_decided(app: Harness) -> None:
    """*Preview only* clicked on a review a lead had decided meanwhile counted what approving
    would do again: "2 new contacts …" for a rejected import, "0 would be added, 2 are already
    in it" for an imported one."""
    for decision, told in ((Action.REJECT, "already rejected"),
                           (Action.APPROVE, "already imported")):  # fmt: skip
        message, batch = await _start(app, segment=f"VIP {decision}")
        await app.requests.block_action(decision, batch, user_id=LEAD, message_ts=message["ts"])
        await app.settle()
        await app.requests.block_action(Action.PREVIEW_ONLY, batch, user_id=REP,
                                        message_ts=message["ts"])  # fmt: skip
        await app.settle()
        said = app.slack.ephemerals[-1]["text"]
        assert told in said and "would be added" not in said, said


async def test_the_same_file_added_again_with_add_more(app: Harness) -> None:
    """q3.csv added again with *Add more* was read and counted twice: listed twice, its rows
    twice in the total. A file the import has already is left out, and the form says so."""
    message, batch = await _start(app)  # q3.csv = F0001
    same = app.slack.file_object("F0001")
    reply = await _add_more(app, message, batch, _form(files=[same]))
    after = json.dumps(app.slack.message("C0001", message["ts"])["blocks"], ensure_ascii=False)
    assert after.count("q3.csv") == 1 and "*Total:* 4 rows" in after, after
    assert "q3.csv is already in this import" in json.dumps(reply.body), reply.body


async def test_a_file_already_in_the_import_is_left_out_and_the_new_one_added(
    app: Harness,
) -> None:
    message, batch = await _start(app)
    same = app.slack.file_object("F0001")
    other = app.slack.add_file("F0003", "more.csv", b"email\nnew@example.com\n")
    reply = await _add_more(app, message, batch, _form(files=[same, other]))
    assert not reply.body, reply.body
    after = json.dumps(app.slack.message("C0001", message["ts"])["blocks"], ensure_ascii=False)
    assert after.count("q3.csv") == 1 and "more.csv" in after and "*3 to import*" in after, after


async def test_a_removed_contact_stays_removed_when_more_files_are_added(app: Harness) -> None:
    """Removed in *Review contacts*, an address came back in a file added after: only the
    removed file's rows were removed, and the new file's row of it counted as new."""
    message, batch = await _start(app)
    await app.requests.block_action(Action.REVIEW_CONTACTS, batch, user_id=REP,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    modal = app.slack.open_views(REP)[-1]
    jane = next(b for b in modal["blocks"] if "jane@example.com" in json.dumps(b))
    await app.requests.block_action(Action.REMOVE_CONTACT, jane["accessory"]["value"],
                                    user_id=REP, view=modal)  # fmt: skip
    await app.settle()
    assert "*1 to import*" in json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    other = app.slack.add_file("F0003", "more.csv",
                               b"email\njane@example.com\nnew@example.com\nJane@Example.com\n")
    await _add_more(app, message, batch, _form(files=[other]))
    final = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert "*2 to import*" in final, final
    # typed in by hand, the removed address stays out too
    await _add_more(app, message, batch, _form(email="JANE@example.com"))
    final = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert "*2 to import*" in final, final


async def test_a_refusal_on_the_review_is_said_beside_it_not_in_its_thread(
    app: Harness,
) -> None:
    """Once the review's thread had a reply (here q3.csv's skipped-rows CSV), a click on the
    review itself carries its own ts as `thread_ts`, as Slack's thread parents do: "Only team
    leads can approve…" and "already approved" went into the thread, out of sight of whoever
    clicked in the channel."""
    message, batch = await _start(app)
    review = app.slack.message("C0001", message["ts"])
    assert review.get("thread_ts") == review["ts"] and review.get("reply_count"), review

    await app.requests.block_action(Action.APPROVE, batch, user_id=REP, message_ts=message["ts"])
    await app.later.drain()
    told = app.slack.ephemerals[-1]
    assert "Only team leads" in told["text"] and told["thread_ts"] is None, told

    for _ in range(2):  # the second click is told it's approved already
        await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD,
                                        message_ts=message["ts"])  # fmt: skip
        await app.later.drain()
    told = app.slack.ephemerals[-1]
    assert "already approved" in told["text"] and told["thread_ts"] is None, told


async def _answer_in_turn(slack: FakeSlack, method: str, errors: list[str | None]) -> None:
    """Answer the next calls to `method` in turn: refused with errors[i], or as usual for
    None. Each waits (held) until the one before it was answered; `method` must be held
    (FakeSlack.hold) before the first of them is made."""
    first = len(slack.calls_to(method))
    gate = slack.hold(method)
    for index, error in enumerate(errors):
        await slack.wait_for(method, first + index + 1, timeout=5)
        held, gate = gate, slack.hold(method)  # the next call waits on a gate of its own
        if error:
            slack.fail(method, error)
        held.set()
    slack.unhold(method)
    gate.set()


async def test_a_review_in_the_dm_stays_when_the_line_saying_why_fails(app: Harness) -> None:
    """The channel refused the review, so it went to the requester's DM; Slack then refused
    the line saying why: the import was withdrawn under a review whose buttons still worked
    (Approve said "already cancelled by <@U0001>"), and the requester was told "I couldn't
    post the review…"."""
    app.slack.hold("chat.postMessage")
    turns = asyncio.create_task(_answer_in_turn(
        app.slack, "chat.postMessage", ["not_in_channel", None, "internal_error"]))  # fmt: skip
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(email="a@example.com", segment="DM"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await asyncio.wait_for(turns, 10)
    await app.settle()

    review = app.slack.find_action(Action.APPROVE)
    assert review is not None and review["channel"].startswith("D")
    said = [m["text"] for m in app.slack.messages_in(review["channel"]) if not m.get("blocks")]
    assert not any("couldn't post the review" in t for t in said), said
    async with app.db.begin() as conn:
        status, ts = (await conn.execute(text(
            "SELECT status, message_ts FROM import_batch"))).one()  # fmt: skip
    assert (status, ts) == ("draft", review["ts"])

    await app.requests.block_action(Action.APPROVE, review["blocks"][-1]["elements"][0]["value"],
                                    user_id=LEAD, channel_id=review["channel"],
                                    message_ts=review["ts"])  # fmt: skip
    await app.settle()
    assert "This import is imported" in json.dumps(app.slack.message(review["channel"],
                                                                     review["ts"])["blocks"])


async def test_add_more_submitted_after_approval_keeps_the_form_and_says_why(
    app: Harness,
) -> None:
    """*Add more* was open while a lead approved the import: its form was accepted, then
    refused after it closed, and the file attached in it was lost with it."""
    message, batch = await _start(app)
    await app.requests.block_action(Action.ADD_MORE, batch, user_id=REP, message_ts=message["ts"])
    await app.settle()
    modal = app.slack.open_views(REP)[-1]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.later.drain()

    late = app.slack.add_file("F0009", "late.csv", b"email\nlate@example.com\n")
    reply = await app.requests.view_submission(state_values=_form(files=[late]),
                                               view_id=modal["id"], user_id=REP)  # fmt: skip
    assert reply.body == {"response_action": "errors", "errors": {BlockId.FILES: (
        "Start a new import for this file with /referral import: this one is already approved "
        f"by @{LEAD.lower()} and waiting to run.")}}, reply.body  # fmt: skip
    assert modal["id"] in app.slack.views  # still open, the file still in it


async def test_approving_a_review_changed_since_it_was_drawn_imports_nothing_and_says_so(
    app: Harness,
) -> None:
    """The lead looks at "2 to import" (or has Approve's confirm dialog open) while the
    requester adds a customer with *Add more*. The lead's Approve then imported the new
    contents, a customer they never saw (with a live campaign on the segment, an invite
    email), and nobody said so. It is refused, the review redrawn as it is now; its own
    Approve then imports all three. (The click carries the block id of the buttons as the
    lead's message showed them, as Slack sends it.)"""
    message, batch = await _start(app)
    seen = json.loads(json.dumps(app.slack.message("C0001", message["ts"])))  # as drawn
    assert "2 to import" in json.dumps(seen["blocks"])
    found = find_element(seen["blocks"], Action.APPROVE)
    assert found is not None
    await _add_more(app, message, batch, _form(email="late@example.com", first="Late"))
    await app.requests.block_action(Action.APPROVE, found[1]["value"], user_id=LEAD,
                                    message=seen)  # fmt: skip
    await app.settle()
    said = [e["text"] for e in app.slack.ephemerals if e["user"] == LEAD]
    assert said and said[-1].startswith("This import changed after the message you clicked "
                                        "was drawn"), said  # fmt: skip
    async with app.db.begin() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM contact"))).scalar_one() == 0
        status = (await conn.execute(text("SELECT status FROM import_batch"))).scalar_one()
    assert status == "draft"
    now = app.slack.message("C0001", message["ts"])
    assert "3 to import" in json.dumps(now["blocks"])
    current = find_element(now["blocks"], Action.APPROVE)
    assert current is not None and current[0] != found[0]  # its block names the revision
    await app.requests.block_action(Action.APPROVE, current[1]["value"], user_id=LEAD,
                                    message=now)  # fmt: skip
    await app.settle()
    async with app.db.begin() as conn:
        emails = (await conn.execute(text("SELECT email FROM contact"))).scalars().all()
    assert "late@example.com" in emails and len(emails) == 3, emails
