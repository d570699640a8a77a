"""CSV uploads to a channel, external files, segment suggestions and Block Kit limits."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from sqlalchemy import text

from bot.app import build_worker, slack_client
from bot.imports.batches import stage_contact
from bot.imports.importer import import_files
from bot.imports.review import load
from bot.workspaces import ensure_workspace, find_segment, import_target
from handlers.ids import Action, BlockId
from handlers.messages import NEW_SEGMENT_VALUE
from handlers.notify import SlackNotifier
from models import Database
from tests.conftest import BACKEND
from tests.fakes.slack_api import FakeExternalHost
from tests.fakes.slack_requests import file_shared_event, message_file_share_event
from tests.handlers.conftest import LEAD, REP, Harness, running_app
from tests.handlers.test_import_flow import CSV, _contacts_modal, _form, _open_modal, _review


async def _contacts(app: Harness) -> int:
    async with app.db.begin() as conn:
        return int((await conn.execute(text("SELECT COUNT(*) FROM contact"))).scalar_one())


async def test_an_uploaded_csv_is_offered_once_and_imported(app: Harness) -> None:
    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "VIP", create=True)
    file = app.slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"])
    shared = file_shared_event("F0002", channel_id="C0001")
    assert (await app.requests.event(shared, event_id="Ev1")).status == 200
    assert (await app.requests.event(shared, event_id="Ev1", retry_num=1)).status == 200
    message = message_file_share_event([file], channel="C0001")
    assert (await app.requests.event(message, event_id="Ev2")).status == 200
    await app.settle()
    offers = [m for m in app.slack.messages if "referrals_q3.csv" in m.get("text", "")]
    assert len(offers) == 1 and offers[0].get("thread_ts")

    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                    message_ts=offers[0]["ts"])  # fmt: skip
    await app.settle()
    assert "Choose a segment first" in app.slack.ephemerals[-1]["text"]

    chosen = {BlockId.UPLOAD: {Action.UPLOAD_SEGMENT: {
        "type": "external_select", "selected_option": {
            "text": {"type": "plain_text", "text": "VIP"}, "value": str(segment.id)}}}}  # fmt: skip
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                    message_ts=offers[0]["ts"], state_values=chosen)  # fmt: skip
    await app.settle()
    review = await _review(app)
    assert "2 valid" in json.dumps(review["blocks"])
    batch = review["blocks"][-1]["elements"][2]["value"]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=review["ts"])
    await app.settle()
    assert await _contacts(app) == 2


async def test_an_upload_into_a_workspace_without_segments_creates_one(app: Harness) -> None:
    """The offer's menu listed existing segments only: in a new workspace it was empty, and
    Review import answered "Choose a segment first" with nothing to choose."""
    app.slack.add_file("F0002", "customers.csv", CSV, channels=["C0001"])
    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="Ev1")
    await app.settle()
    offer = next(m for m in app.slack.messages if "customers.csv" in m.get("text", ""))
    reply = await app.requests.block_suggestion(Action.UPLOAD_SEGMENT, "Spring <!here>",
                                                block_id=BlockId.UPLOAD, user_id=REP)
    (option,) = reply.body["options"]
    assert option["text"]["text"] == "New segment “Spring <!here>”"
    chosen = {BlockId.UPLOAD: {Action.UPLOAD_SEGMENT: {
        "type": "external_select", "selected_option": option}}}  # fmt: skip
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                    message_ts=offer["ts"], state_values=chosen)  # fmt: skip
    await app.settle()
    review = await _review(app)
    assert "Contact import #1 into Spring &lt;!here&gt;" in review["text"]
    again = await app.requests.block_suggestion(Action.UPLOAD_SEGMENT, "spring <!here>",
                                                block_id=BlockId.UPLOAD, user_id=REP)
    assert [o["text"]["text"] for o in again.body["options"]] == ["Spring <!here> (0)"]
    # All Customers in another case: no "New segment" that Review import would then refuse
    built_in = await app.requests.block_suggestion(Action.UPLOAD_SEGMENT, "all customers",
                                                   block_id=BlockId.UPLOAD, user_id=REP)
    assert built_in.body["options"] == [], built_in.body


async def test_a_csv_shared_as_a_thread_reply_is_offered_in_that_thread(app: Harness) -> None:
    """A share inside a thread has its own ts and the thread's thread_ts (files.info): the
    offer goes to the thread (its parent's ts), not under the reply, which Slack says not to
    use as a thread_ts."""
    await ensure_workspace(app.db, "T0001")
    parent = app.slack._store_message("C0001", "Here is this quarter's list", None, None)
    app.slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"],
                       replies_to={"C0001": parent["ts"]})  # fmt: skip
    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="Ev1")
    await app.settle()
    offers = [m for m in app.slack.messages_in("C0001", thread_ts=parent["ts"])
              if "referrals_q3.csv" in m.get("text", "")]  # fmt: skip
    assert len(offers) == 1


def _offers(app: Harness, name: str) -> list[dict[str, Any]]:
    return [m for m in app.slack.messages if name in m.get("text", "")]


@pytest.mark.parametrize("failure", ["503", "fatal_error"])
async def test_an_offer_slack_fails_once_is_tried_again_and_made_once(app: Harness,
                                                                      failure: str) -> None:
    """The event is answered 200 before the offer is made, so Slack never sends it again: the
    offer was dropped "for Slack's retry", which never came, and nobody heard of the upload."""
    app.slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"])
    shared = file_shared_event("F0002", channel_id="C0001")
    if failure == "503":
        app.slack.outage("chat.postMessage", status=503)  # one 503 from Slack
    else:
        app.slack.fail("chat.postMessage", "fatal_error")  # one refusal Slack calls passing
    assert (await app.requests.event(shared, event_id="Ev1")).status == 200
    await app.settle()
    assert len(_offers(app, "referrals_q3.csv")) == 1
    await app.requests.event(shared, event_id="Ev1", retry_num=1)  # a retry Slack did send
    await app.settle()
    assert len(_offers(app, "referrals_q3.csv")) == 1


async def test_an_offer_is_tried_as_a_job_and_a_refusal_only_once(app: Harness) -> None:
    app.slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"])
    app.slack.add_file("F0003", "referrals_q4.csv", CSV, channels=["C0002"])
    app.slack.outage("files.info", times=100, status=503)  # Slack down for longer
    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="Ev1")
    await app.settle()
    tries = app.settings.job_max_attempts
    assert len(app.slack.calls_to("files.info")) == tries and not _offers(app, "referrals_q3.csv")
    app.slack.outage("files.info", times=0)
    app.slack.fail("chat.postMessage", "not_in_channel")  # that is for good: not tried again
    await app.requests.event(file_shared_event("F0003", channel_id="C0002"), event_id="Ev2")
    await app.settle()
    assert len(app.slack.calls_to("chat.postMessage")) == 1


async def test_an_offer_is_made_at_once_while_the_workers_are_busy(app: Harness) -> None:
    """Queued as a job for the workers, an offer waited for whatever they were running (a
    big import: minutes). The web process runs the job itself right after the answer."""
    app.slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"])
    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="Ev1")
    await app.done()  # no worker runs
    assert len(_offers(app, "referrals_q3.csv")) == 1
    async with app.db.begin() as conn:
        states = (await conn.execute(text("SELECT state FROM job WHERE kind = 'upload_offer'"))
                  ).scalars().all()  # fmt: skip
    assert states == ["done"]


async def test_an_offer_slack_could_not_take_is_made_by_a_worker_started_later(
    app: Harness,
) -> None:  # fmt: skip
    """The offer was tried again in the web process's memory, three times within 30 s: an
    outage longer than that, or a restart meanwhile, lost it for good, since Slack never
    sends the event again. It is a job now, which a worker started later still runs."""
    app.slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"])
    app.slack.outage("files.info", times=100, status=503)
    assert (await app.requests.event(file_shared_event("F0002", channel_id="C0001"),
                                     event_id="Ev1")).status == 200  # fmt: skip
    await app.done()  # all the web process does with it
    app.slack.outage("files.info", times=0)  # Slack is back; another process's worker runs
    async with ClientSession() as session:
        worker = build_worker(app.settings, slack_client(app.settings, session), app.db)
        await worker.run_until_idle()
        await worker.run_until_idle()  # nothing left to do: offered once
    assert len(_offers(app, "referrals_q3.csv")) == 1


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite's triggers fail only as constraints")
async def test_an_offer_the_database_failed_is_tried_again(app: Harness) -> None:
    """The database failing as the offer was made (PostgreSQL restarting) failed its job for
    good, as if Slack had refused it: the offer was lost, as before it was a job at all."""
    app.slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"])
    async with app.db.begin() as conn:
        await conn.execute(text("CREATE FUNCTION refuse_seen() RETURNS trigger LANGUAGE plpgsql "
                                "AS $$ BEGIN RAISE EXCEPTION 'could not write'; END $$"))
        await conn.execute(text("CREATE TRIGGER refuse_seen BEFORE INSERT ON seen_key "
                                "FOR EACH ROW EXECUTE FUNCTION refuse_seen()"))  # fmt: skip
    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="Ev1")
    await app.done()  # the web process's try fails
    assert not _offers(app, "referrals_q3.csv")
    async with app.db.begin() as conn:
        await conn.execute(text("DROP TRIGGER refuse_seen ON seen_key"))
    await app.settle()  # the workers' try
    assert len(_offers(app, "referrals_q3.csv")) == 1


async def test_a_file_deleted_before_the_offer_is_no_error(
    app: Harness, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Deleted right after the upload, the file's files.info answers file_not_found: that was
    logged as an ERROR with a traceback ("listener failed ( ref=…)"), nothing to act on."""
    with caplog.at_level(logging.INFO):
        await app.requests.event(file_shared_event("F0GONE", channel_id="C0001"), event_id="Ev1")
        await app.settle()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("file gone before the offer" in r.getMessage() and "F0GONE" in r.getMessage()
               for r in caplog.records)  # fmt: skip


async def test_a_failed_offer_is_logged_with_its_team_channel_and_file(
    app: Harness, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The log said "listener failed ( ref=…)": no workspace, channel or file to look for."""
    app.slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"])
    app.slack.fail("chat.postMessage", "not_in_channel")
    with caplog.at_level(logging.INFO):
        await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="Ev1")
        await app.settle()
    (failure,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "team=T0001" in failure and "channel=C0001" in failure and "file=F0002" in failure


def _new_segment(name: str) -> dict[str, Any]:
    return {BlockId.UPLOAD: {Action.UPLOAD_SEGMENT: {"type": "external_select",
            "selected_option": {"text": {"type": "plain_text", "text": f"New segment {name}"},
                                "value": NEW_SEGMENT_VALUE + name}}}}  # fmt: skip


@pytest.mark.parametrize("kind", ["too big", "external"])
async def test_a_file_the_import_would_refuse_is_not_offered_but_explained(
    app: Harness, kind: str,
) -> None:  # fmt: skip
    """A 50 MB file (MAX_UPLOAD_MB is 10) or one stored outside Slack was offered; Review import
    then made a segment and a review that could never be imported."""
    if kind == "too big":
        app.slack.add_file("F0BIG", "all <!here>.csv", CSV, channels=["C0001"])
        app.slack.files["F0BIG"]["size"] = 50_000_000
        reason = "all &lt;!here&gt;.csv is 50.0 MB; the limit is 10 MB."
    else:
        app.slack.add_file("F0BIG", "all <!here>.csv", CSV, channels=["C0001"], external=True,
                           url_private_download="https://drive.example/all.csv")  # fmt: skip
        reason = "all &lt;!here&gt;.csv is stored outside Slack"
    await app.requests.event(file_shared_event("F0BIG", channel_id="C0001"), event_id="Ev1")
    await app.settle()
    assert app.slack.find_action(Action.UPLOAD_REVIEW, "C0001") is None
    (said,) = [m for m in app.slack.messages if m["channel"] == "C0001" and m.get("thread_ts")]
    assert reason in said["text"] and reason in json.dumps(said["blocks"])


async def test_a_fractional_limit_is_the_limit_as_set(db: Database, tmp_path: Path) -> None:
    """MAX_UPLOAD_MB=8.2 was 8,199,999 bytes (8.2 * 1e6 is 8199999.999999999 in floating
    point, cut to a whole byte): a file of exactly 8.2 MB was refused, saying "a.csv is 8.2
    MB; the limit is 8.199999 MB"."""
    async with running_app(db, tmp_path, max_upload_mb=8.2) as app:
        for file_id, size in (("F0FIT", 8_200_000), ("F0BIG", 8_200_001)):
            app.slack.add_file(file_id, f"{file_id}.csv", CSV, channels=["C0001"])
            app.slack.files[file_id]["size"] = size
            await app.requests.event(file_shared_event(file_id, channel_id="C0001"),
                                     event_id=f"Ev{file_id}")  # fmt: skip
            await app.settle()
        said = [m["text"] for m in app.slack.messages if m["channel"] == "C0001"]
        assert app.slack.find_action(Action.UPLOAD_REVIEW, "C0001") is not None, said
        assert [t for t in said if "limit" in t] == [
            "F0BIG.csv is 8.200001 MB; the limit is 8.2 MB."], said


async def test_review_import_of_a_file_the_import_would_refuse_makes_nothing(
    app: Harness,
) -> None:  # fmt: skip
    """An offer made before the file could be checked (by an earlier version): Review import
    made the new segment and a batch, then a review of a file that can't be read."""
    app.slack.add_file("F0BIG", "all.csv", CSV, channels=["C0001"])
    await app.requests.event(file_shared_event("F0BIG", channel_id="C0001"), event_id="Ev1")
    await app.settle()
    offer = app.slack.find_action(Action.UPLOAD_REVIEW, "C0001")
    assert offer is not None
    app.slack.files["F0BIG"]["size"] = 50_000_000
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0BIG", user_id=REP,
                                    message_ts=offer["ts"], state_values=_new_segment("Everyone"))
    await app.settle()
    assert "all.csv is 50.0 MB; the limit is 10 MB." in app.slack.ephemerals[-1]["text"]
    assert await find_segment(app.db, "T0001", "Everyone") is None
    async with app.db.begin() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM import_batch"))).scalar_one() == 0


async def test_review_import_after_the_bot_left_the_channel_posts_to_the_dm_quietly(
    app: Harness, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The bot removed from the channel after its offer: the review went to the requester's
    DM, but the offer's "started a review" update was refused too (not_in_channel), and the
    requester got "Something went wrong on our side…" over a review that was posted, with an
    ERROR and its traceback in the log."""
    app.slack.add_file("F0002", "referrals_q3.csv", CSV, channels=["C0001"])
    await app.requests.event(file_shared_event("F0002", channel_id="C0001"), event_id="Ev1")
    await app.settle()
    offer = app.slack.find_action(Action.UPLOAD_REVIEW, "C0001")
    assert offer is not None
    app.slack.fail("chat.postMessage", "not_in_channel")
    app.slack.fail("chat.update", "not_in_channel")
    with caplog.at_level(logging.INFO):
        await app.requests.block_action(Action.UPLOAD_REVIEW, "F0002", user_id=REP,
                                        message_ts=offer["ts"],
                                        state_values=_new_segment("Q3"))  # fmt: skip
        await app.done()

    review = app.slack.find_action(Action.APPROVE)
    assert review is not None and review["channel"].startswith("D")
    assert [c.args["ts"] for c in app.slack.calls_to("chat.update")] == [offer["ts"]]
    told = [e["text"] for e in app.slack.ephemerals] + [
        m["text"] for m in app.slack.messages_in(review["channel"]) if not m.get("blocks")]
    assert not any("went wrong" in t for t in told), told
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_an_external_file_is_refused_and_never_gets_the_token(app: Harness) -> None:
    async with FakeExternalHost() as drive:
        url = drive.serve("/export.csv", CSV)
        external = app.slack.add_file("F0003", "export.csv", CSV, external=True,
                                      url_private_download=url)  # fmt: skip
        view_id = await _open_modal(app)
        reply = await app.requests.view_submission(
            state_values=_form(files=[external], segment="Drive"), view_id=view_id, user_id=REP
        )
        assert "stored outside Slack" in reply.body["errors"][BlockId.FILES]
        assert drive.requests == []


async def test_segment_suggestions_list_static_segments(app: Harness) -> None:
    await ensure_workspace(app.db, "T0001")
    await import_target(app.db, "T0001", "Spring VIPs", create=True)
    await import_target(app.db, "T0001", "Newsletter", create=True)
    view_id = await _open_modal(app)
    reply = await app.requests.block_suggestion(Action.SEGMENT, "vip", block_id=BlockId.SEGMENT,
                                                view_id=view_id, user_id=REP)  # fmt: skip
    labels = [o["text"]["text"] for o in reply.body["options"]]
    assert labels == ["Spring VIPs (0)"]


async def test_a_long_segment_name_is_cut_in_suggestions_not_its_count(app: Harness) -> None:
    """Options are 75 characters: "name (count)" was cut whole, showing "… (1,2"."""
    await ensure_workspace(app.db, "T0001")
    long = "Customers who bought the spring collection at the Lisbon pop-up store 2026"
    segment = await import_target(app.db, "T0001", long, create=True)
    csv = "email\n" + "".join(f"p{i}@example.com\n" for i in range(1_234))
    await import_files(app.db, "T0001", [("p.csv", io.BytesIO(csv.encode()))], segment=long)
    view_id = await _open_modal(app)
    reply = await app.requests.block_suggestion(Action.SEGMENT, "lisbon", block_id=BlockId.SEGMENT,
                                                view_id=view_id, user_id=REP)  # fmt: skip
    (option,) = reply.body["options"]
    assert option["value"] == str(segment.id)
    assert option["text"]["text"].endswith("… (1,234)") and len(option["text"]["text"]) == 75
    assert app.slack.block_errors == []


async def test_a_10000_row_file_and_many_sources_stay_within_block_limits(app: Harness) -> None:
    rows = "email,first_name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(10_000))
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0004", "big.csv", rows.encode())
    await app.requests.view_submission(state_values=_form(files=[file], segment="Big"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    review = await _review(app)
    batch_id = int(review["blocks"][-1]["elements"][2]["value"])
    for i in range(40):
        await stage_contact(app.db, "T0001", batch_id, email=f"extra{i}@example.com")
    await app.requests.block_action(Action.REVIEW_CONTACTS, str(batch_id), user_id=REP,
                                    message_ts=review["ts"])  # fmt: skip
    await app.settle()

    notifier = SlackNotifier(slack_client(app.settings), app.db, team_leads=app.settings.team_leads)
    await notifier.batch_changed("T0001", batch_id)
    updated = app.slack.message("C0001", review["ts"])
    assert len(updated["blocks"]) <= 50
    assert "more sources" in json.dumps(updated["blocks"])
    assert "10,040 to import" in json.dumps(updated["blocks"])
    modal = app.slack.open_views(REP)[-1]
    assert "10,040 contacts" in json.dumps(modal["blocks"]) and len(modal["blocks"]) < 100
    assert (await load(app.db, "T0001", batch_id)).totals.valid == 10_040
    assert app.slack.block_errors == []


async def test_a_file_with_a_name_of_hundreds_of_ampersands_is_still_offered(
    app: Harness,
) -> None:
    name = "&" * 800 + ".csv"  # escaped, 4,000 characters: past a section's 3,000
    app.slack.add_file("F0009", name, CSV, channels=["C0001"])
    await app.requests.event(file_shared_event("F0009", channel_id="C0001"), event_id="Ev9")
    await app.settle()
    offers = [m for m in app.slack.messages if "&amp;&amp;" in m.get("text", "")]
    assert len(offers) == 1 and app.slack.block_errors == []


async def test_a_search_of_hundreds_of_characters_in_the_contacts_modal_still_answers(
    app: Harness,
) -> None:
    file = app.slack.add_file("F0004", "few.csv", CSV)
    _, modal = await _contacts_modal(app, _form(files=[file], segment="Few"))
    await app.requests.block_action(Action.SEARCH, "é" * 600, user_id=REP, view=modal)
    await app.settle()
    searched = json.dumps(app.slack.open_views(REP)[-1]["blocks"], ensure_ascii=False)
    assert "0 contacts matching “" + "é" * 100 + "”" in searched
    assert app.slack.ephemerals == [] and app.slack.block_errors == []


async def test_the_contacts_modal_finds_a_contact_by_the_name_it_shows(app: Harness) -> None:
    """It lists "Jane Doe", but "Jane Doe" found nothing: the whole query was matched against
    the email, the first name and the last name each. Every word of it must match one."""
    file = app.slack.add_file("F0004", "few.csv", CSV)
    _, modal = await _contacts_modal(app, _form(files=[file], segment="Few"))
    for query, found in (("Jane Doe", "1 contact"), ("doe jane", "1 contact"),
                         ("Jane Patel", "0 contacts"), ("raj fr", "0 contacts")):  # fmt: skip
        modal = app.slack.open_views(REP)[-1]  # as searched last
        await app.requests.block_action(Action.SEARCH, query, user_id=REP, view=modal)
        await app.settle()
        shown = json.dumps(app.slack.open_views(REP)[-1]["blocks"], ensure_ascii=False)
        assert f"{found} matching “{query}”" in shown, (query, shown)
