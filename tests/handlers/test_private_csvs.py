"""CSVs holding customers' details (an import's skipped rows, a campaign's undelivered
invites) were uploaded into the thread, where everyone in the channel could download them:
a guest of the workspace, or a member of another organisation in a shared channel. The
thread now offers them, and *Send me the CSV* brings one to the direct messages of a member
who clicks; anyone else is told why not and gets no file."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.imports.importer import import_files
from bot.imports.retention import purge_staged
from bot.jobs.queue import claim
from bot.workspaces import ensure_workspace
from handlers.ids import Action
from handlers.private_csv_messages import OLD_BUTTON
from models.clock import utcnow
from tests.fakes.slack_api import find_element
from tests.handlers.conftest import LEAD, REP, Harness, csv_offers
from tests.handlers.test_contact_search import GUESTS, OTHER_ORG, OUTSIDER
from tests.handlers.test_import_flow import _count, _import_files, _review
from tests.handlers.test_targeting import _audited, _lease_runs_out, _send_job_due, _targeted
from tests.waiting import until

SHOP = b"email,first_name\nok@example.com,Ok\nnot-an-email,Bad\nOK@example.com,Again\n"
REFUSED = "Only members of this workspace can see customers' details."


async def _shop_review(app: Harness) -> dict[str, Any]:
    """A rep imports shop.csv (one row to import, one rejected, one duplicate): its review."""
    await _import_files(app, ("F0001", "shop.csv", SHOP))
    return await _review(app)


def _value(offer: dict[str, Any], action: str = Action.SEND_SKIPPED_ROWS) -> str:
    found = find_element(offer["blocks"], action)
    assert found is not None
    return str(found[1]["value"])


async def _click(app: Harness, review: dict[str, Any], value: str, user: str,
                 action: str = Action.SEND_SKIPPED_ROWS) -> list[str]:  # fmt: skip
    """`user` clicks *Send me the CSV* (with `value`) under the thread's first offer: what
    the click was told where they clicked."""
    (offer, *_) = csv_offers(app.slack, review["ts"], action)
    url = app.slack.new_response_url("C0001", offer["ts"], user_id=user)
    await app.requests.block_action(action, value, user_id=user, message_ts=offer["ts"],
                                    response_url=url)  # fmt: skip
    await app.done()
    return [r["text"] for r in app.slack.responses[url]]


async def test_skipped_rows_are_offered_in_the_thread_and_sent_by_dm_to_a_member(
    app: Harness,
) -> None:
    review = await _shop_review(app)
    assert app.slack.uploads == []  # no file in the channel
    (offer,) = csv_offers(app.slack, review["ts"])
    assert offer["text"] == (":page_facing_up: 1 rejected row and 1 duplicate row in "
                             "*shop.csv* won't be imported.")  # fmt: skip
    assert "direct messages" in json.dumps(offer["blocks"])

    (sent,) = await app.csvs_sent(review["ts"], user=REP)  # a member, not a lead
    assert sent.filename == "shop-skipped-rows.csv"
    assert sent.title == "shop.csv: rows that won't be imported, and why"
    assert sent.initial_comment == ("1 rejected row and 1 duplicate row in *shop.csv* won't be "
                                    "imported; this CSV says why.")  # fmt: skip
    rows = list(csv.reader(io.StringIO((sent.content or b"").decode("utf-8-sig"))))
    assert [row[2] for row in rows[1:]] == ["not-an-email", "OK@example.com"], rows
    told = [r["text"] for url in app.slack.responses for r in app.slack.responses[url]]
    assert told == [":inbox_tray: The CSV of *shop.csv*'s skipped rows is in your direct "
                    "messages with me, as a CSV file."]  # fmt: skip
    assert app.slack.block_errors == []
    # who has a copy: by count, never an address (a typed customer's labels its source)
    assert await _audited(app, "import.skipped_rows_sent") == [
        (REP, "took the CSV of the skipped rows of import #1 (2 rows)")]


@pytest.mark.parametrize(("user", "profile"), [
    (OUTSIDER, {"team_id": OTHER_ORG}),
    *(("U0GUEST", guest.values[0]) for guest in GUESTS),
])  # fmt: skip
async def test_a_guest_or_another_organisations_member_gets_no_csv(
    app: Harness, user: str, profile: dict[str, Any],
) -> None:  # fmt: skip
    review = await _shop_review(app)
    app.slack.users[user] = dict(profile)
    told = await _click(app, review, _value(csv_offers(app.slack, review["ts"])[0]), user)
    assert told == [REFUSED]
    assert app.slack.uploads == []
    assert user not in app.slack.dm_channels
    assert await _audited(app, "import.skipped_rows_sent") == []


@pytest.mark.parametrize("value", ["", "x", "1", "1:", ":1", "1:999", "999:1", "1:²",
                                   "99999999999:1"])  # fmt: skip
async def test_an_old_or_forged_button_is_told_so(app: Harness, value: str) -> None:
    review = await _shop_review(app)
    assert await _click(app, review, value, REP) == [OLD_BUTTON]
    assert app.slack.uploads == []


async def test_another_workspaces_import_is_not_sent(app: Harness) -> None:
    """A forged value naming another workspace's import and file (their ids are guessable)."""
    review = await _shop_review(app)
    await ensure_workspace(app.db, "T0002")
    theirs = io.BytesIO(b"email\nt@example.com\nnot-an-email\n")
    await import_files(app.db, "T0002", [("theirs.csv", theirs)], segment="Theirs",
                       create_segment=True)  # fmt: skip
    async with app.db.begin() as conn:
        batch, source = (await conn.execute(text(
            "SELECT batch_id, id FROM import_source WHERE team_id = 'T0002'"))).one()  # fmt: skip
    assert await _click(app, review, f"{batch}:{source}", REP) == [OLD_BUTTON]
    assert app.slack.uploads == []


async def test_a_file_taken_out_of_the_import_says_so(app: Harness) -> None:
    review = await _shop_review(app)
    value = _value(csv_offers(app.slack, review["ts"])[0])
    remove = next(b["accessory"]["value"] for b in review["blocks"]
                  if b.get("accessory", {}).get("action_id") == Action.REMOVE_SOURCE)  # fmt: skip
    await app.requests.block_action(Action.REMOVE_SOURCE, remove, user_id=REP,
                                    message_ts=review["ts"])  # fmt: skip
    await app.settle()
    assert await _click(app, review, value, REP) == [
        "*shop.csv* was taken out of this import: none of its rows will be imported."]
    assert app.slack.uploads == []


async def test_a_file_unreadable_when_read_again_says_why(app: Harness) -> None:
    review = await _shop_review(app)
    value = _value(csv_offers(app.slack, review["ts"])[0])
    async with app.db.begin() as conn:  # what a reading that failed leaves
        await conn.execute(text("UPDATE import_source SET status = 'failed', "
                                "error = 'The file <was> deleted from Slack.'"))  # fmt: skip
    assert await _click(app, review, value, REP) == [
        "*shop.csv* couldn't be read this time, so none of its rows will be imported: The "
        "file &lt;was&gt; deleted from Slack."]  # fmt: skip
    assert app.slack.uploads == []


async def test_rows_deleted_after_the_import_ended_are_said_to_be_gone(app: Harness) -> None:
    review = await _shop_review(app)
    value = _value(csv_offers(app.slack, review["ts"])[0])
    await app.requests.block_action(Action.APPROVE, review["blocks"][-1]["elements"][0]["value"],
                                    user_id=LEAD, message_ts=review["ts"])  # fmt: skip
    await app.settle()
    assert len(await app.csvs_sent(review["ts"])) == 1  # kept a while after the import
    at = bindparam("at", type_=UTCDateTime())
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET finished_at = :at").bindparams(at),
                           {"at": utcnow() - timedelta(days=31)})  # fmt: skip
    assert await purge_staged(app.db, "T0001", app.settings.staged_retention_days) == 3
    assert await _click(app, review, value, REP) == [
        "The skipped rows of *shop.csv* are no longer kept: an import's rows are deleted "
        "30 days after it ends."]  # fmt: skip
    assert len(app.slack.uploads) == 1  # the one sent before


async def test_a_second_click_while_the_first_csv_uploads_is_told_it_is_on_its_way(
    app: Harness,
) -> None:
    review = await _shop_review(app)
    (offer,) = csv_offers(app.slack, review["ts"])
    gate = app.slack.hold("files.completeUploadExternal")
    first = app.slack.new_response_url("C0001", offer["ts"], user_id=REP)
    await app.requests.block_action(Action.SEND_SKIPPED_ROWS, _value(offer), user_id=REP,
                                    message_ts=offer["ts"], response_url=first)  # fmt: skip
    await until(lambda: bool(app.slack.calls_to("files.completeUploadExternal")), 30,
                "the first click's upload")  # fmt: skip
    second = app.slack.new_response_url("C0001", offer["ts"], user_id=REP)
    await app.requests.block_action(Action.SEND_SKIPPED_ROWS, _value(offer), user_id=REP,
                                    message_ts=offer["ts"], response_url=second)  # fmt: skip
    await until(lambda: bool(app.slack.responses[second]), 30, "the second click's answer")
    assert [r["text"] for r in app.slack.responses[second]] == [
        ":hourglass_flowing_sand: The CSV of *shop.csv*'s skipped rows is already on its way to "
        "your direct messages with me."]  # fmt: skip
    gate.set()
    await app.done()
    assert [u.completed for u in app.slack.uploads] == [True]
    assert "is in your direct messages" in app.slack.responses[first][-1]["text"]
    assert len(await app.csvs_sent(review["ts"], user=REP)) == 1  # let go once sent


async def _an_invite_in_doubt(app: Harness) -> dict[str, Any]:
    """Spring targeted from an import's thread; its send run killed while handing over on
    its last attempt, so one invite may not have arrived: the import's review message."""
    _spring, message = await _targeted(app)
    job = await _send_job_due(app)
    for attempt in range(job.max_attempts):
        assert await claim(app.db, f"killed-{attempt}", 1, kinds={"send_invites"}) is not None
        await _lease_runs_out(app)
    async with app.db.begin() as conn:
        first, second = [r[0] for r in await conn.execute(text("SELECT id FROM invite "
                                                               "ORDER BY id"))]  # fmt: skip
        await conn.execute(text("UPDATE invite SET state = 'sent', attempts = 1 WHERE id = :i"),
                           {"i": first})  # fmt: skip
        await conn.execute(text("UPDATE invite SET state = 'sending', attempts = 1, "
                                "sender_job = :j WHERE id = :i"), {"i": second, "j": job.id})
    await app.settle()
    return message


async def test_undelivered_invites_are_offered_and_sent_by_dm_to_a_member(app: Harness) -> None:
    message = await _an_invite_in_doubt(app)
    (offer,) = csv_offers(app.slack, message["ts"], Action.SEND_UNDELIVERED)
    assert offer["text"] == ":warning: 1 invite of *Spring* failed or may not have arrived."
    assert app.slack.uploads == []

    app.slack.users["U0GUEST"] = {"is_restricted": True}
    assert await _click(app, message, _value(offer, Action.SEND_UNDELIVERED), "U0GUEST",
                        Action.SEND_UNDELIVERED) == [REFUSED]  # fmt: skip
    assert app.slack.uploads == []

    (sent,) = await app.csvs_sent(message["ts"], Action.SEND_UNDELIVERED, user=REP)
    assert sent.filename == "Spring-invites-not-delivered.csv"
    assert sent.initial_comment == ("1 invite of *Spring* failed or may not have arrived; this "
                                    "CSV says why.")  # fmt: skip
    rows = list(csv.reader(io.StringIO(sent.text)))
    assert rows[0] == ["email", "what happened"] and len(rows) == 2
    assert rows[1][1].startswith("uncertain: "), rows
    assert await _audited(app, "campaign.undelivered_sent") == [
        (REP, "took the CSV of the campaign Spring's invites that failed or may not have "
              "arrived (1 invite)")]  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM invite WHERE state = 'uncertain'") == 1


@pytest.mark.parametrize("value", ["", "x", "999999", "99999999999"])
async def test_an_old_or_forged_undelivered_button_is_told_so(app: Harness, value: str) -> None:
    message = await _an_invite_in_doubt(app)
    assert await _click(app, message, value, REP, Action.SEND_UNDELIVERED) == [OLD_BUTTON]
    assert app.slack.uploads == []
