"""*Map columns* as people meet it: an upload whose email column can't be told, the modal
with each column's values, the file read again with the choice, and the next file mapping
itself."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from handlers.ids import Action, BlockId, Callback
from handlers.mapping_messages import FIELD_BLOCKS
from tests.fakes.slack_requests import state_static_select
from tests.handlers.conftest import LEAD, REP, Harness, csv_offers
from tests.handlers.test_import_flow import _form, _open_modal, _review
from tests.imports.exports import zip_bytes
from tests.imports.test_excel import workbook

STRANGER = "U0777"
WORK = (b"Full Name,Work Contact,First Name,Preferred tongue\n"
        b"Ada Lovelace,ada@example.com,Ada,en\n"
        b"Bob Stone,bob@example.org,Bob,fr\n"
        b"Cy Twombly,cy@example.net,Cy,<!channel>\n"
        b"Dee,not-an-email,Dee,\n")  # fmt: skip


def _map_buttons(message: dict[str, Any]) -> list[str]:
    return [e["value"] for b in message["blocks"] if b["type"] == "actions"
            for e in b["elements"] if e["action_id"] == Action.MAP_COLUMNS]  # fmt: skip


def _source_lines(message: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in message["blocks"]
            if b.get("accessory", {}).get("action_id") == Action.REMOVE_SOURCE]  # fmt: skip


async def _upload(app: Harness, file_id: str, name: str, data: bytes) -> dict[str, Any]:
    view_id = await _open_modal(app)
    file = app.slack.add_file(file_id, name, data)
    await app.requests.view_submission(state_values=_form(files=[file], segment="Work"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    return app.slack.message("C0001", (await _review(app))["ts"])


async def _click_map(app: Harness, review: dict[str, Any], user: str) -> dict[str, Any]:
    (value,) = _map_buttons(review)
    await app.requests.block_action(Action.MAP_COLUMNS, value, user_id=user,
                                    message_ts=review["ts"])  # fmt: skip
    await app.done()
    return app.slack.open_views(user)[-1]


def _choice(modal: dict[str, Any], block: str) -> dict[str, Any]:
    element = next(b["element"] for b in modal["blocks"] if b.get("block_id") == block)
    return element


def _state(**positions: str) -> dict[str, Any]:
    return {FIELD_BLOCKS[f]: {Action.MAP_FIELD: state_static_select(v)}
            for f, v in positions.items()}  # fmt: skip



async def _next_weeks_export(app: Harness, file_id: str, name: str,
                             data: bytes) -> tuple[dict[str, Any], str]:  # fmt: skip
    """Import `data` into a new segment (Work 2) from the form: its review message and its
    one source's line."""
    view_id = await _open_modal(app)
    file = app.slack.add_file(file_id, name, data)
    await app.requests.view_submission(state_values=_form(files=[file], segment="Work 2"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    review = [m for m in app.slack.messages_in("C0001") if "Work 2" in m.get("text", "")][-1]
    (line,) = _source_lines(review)
    return review, line


async def test_map_columns_reads_the_file_again_and_is_remembered(app: Harness) -> None:
    review = await _upload(app, "F0201", "work.csv", WORK)
    (line,) = _source_lines(review)
    assert ":warning: No email column found." in line
    assert len(_map_buttons(review)) == 1

    modal = await _click_map(app, review, REP)
    assert modal["callback_id"] == Callback.MAP_COLUMNS
    email = _choice(modal, BlockId.MAP_EMAIL)
    texts = [o["text"]["text"] for o in email["options"]]
    assert texts[1] == "Work Contact — ada@example.com, bob@example.org, cy@example.net"
    assert all(len(t) <= 75 for t in texts)
    assert "initial_option" not in email  # nothing guessed for email
    first = _choice(modal, BlockId.MAP_FIRST_NAME)
    assert first["options"][0]["value"] == "none"
    assert first["initial_option"]["text"]["text"] == "First Name — Ada, Bob, Cy"
    locale = _choice(modal, BlockId.MAP_LOCALE)
    assert locale["initial_option"]["value"] == "none"
    assert "Preferred tongue — en, fr, <!channel>" in [o["text"]["text"]
                                                       for o in locale["options"]]  # fmt: skip

    # a column chosen twice, and no email: field errors, nothing changes
    reply = await app.requests.view_submission(
        state_values=_state(first_name="1", locale="1"), view_id=modal["id"], user_id=REP)
    assert reply.body["response_action"] == "errors"
    assert set(reply.body["errors"]) == {BlockId.MAP_EMAIL, BlockId.MAP_LOCALE}
    assert "already chosen for First name" in reply.body["errors"][BlockId.MAP_LOCALE]

    reply = await app.requests.view_submission(
        state_values=_state(email="1", first_name="2", last_name="none", locale="3",
                            subscribed="none"),
        view_id=modal["id"], user_id=REP)  # fmt: skip
    assert reply.body["response_action"] == "update"
    assert "Saving your choice" in json.dumps(reply.body["view"])  # written after the ack
    await app.settle()
    assert "Saved: files with the same headers" in json.dumps(app.slack.views[modal["id"]])
    review = app.slack.message("C0001", review["ts"])
    (line,) = _source_lines(review)
    assert "3 valid · 0 duplicates · 1 rejected" in line, line
    assert "*Total:* 4 rows · *3 to import*" in json.dumps(review["blocks"], ensure_ascii=False)
    async with app.db.begin() as conn:
        row = (await conn.execute(text(
            "SELECT email, first_name, locale, updated_by FROM column_mapping"))).one()
    assert tuple(row) == ("Work Contact", "First Name", "Preferred tongue", REP)

    # next week's export, same headers: it maps itself, and the modal says it was remembered
    second, line = await _next_weeks_export(app, "F0202", "work-2.csv",
                                            WORK.replace(b"ada@", b"ada2@"))  # fmt: skip
    assert "3 valid" in line
    modal = await _click_map(app, second, LEAD)
    assert _choice(modal, BlockId.MAP_EMAIL)["initial_option"]["value"] == "1"
    assert "chosen for files with the same headers before" in json.dumps(modal["blocks"])
    assert app.slack.block_errors == []


async def test_only_the_requester_or_a_lead_maps_columns(app: Harness) -> None:
    review = await _upload(app, "F0203", "work.csv", WORK)
    modal = await _click_map(app, review, STRANGER)
    assert modal.get("callback_id") != Callback.MAP_COLUMNS
    assert "who asked for this import, or a team lead can change it" in json.dumps(modal)
    async with app.db.begin() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM column_mapping"))).scalar_one() == 0
    # a modal opened by the requester, submitted by someone else: refused, nothing remembered
    opened = await _click_map(app, review, REP)
    reply = await app.requests.view_submission(
        state_values=_state(email="1"), view_id=opened["id"], user_id=STRANGER)
    assert reply.body["response_action"] == "update"
    assert "who asked for this import" in json.dumps(reply.body["view"])
    async with app.db.begin() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM column_mapping"))).scalar_one() == 0


async def test_map_columns_on_a_file_deleted_since_says_so(app: Harness) -> None:
    # files.info answers file_not_found: the modal says what happened, in words
    review = await _upload(app, "F0204", "work.csv", WORK)
    del app.slack.files["F0204"]
    modal = await _click_map(app, review, REP)
    assert modal.get("callback_id") != Callback.MAP_COLUMNS
    assert "The file was deleted, or the bot can't see it." in json.dumps(modal)
    assert app.slack.block_errors == []


async def test_a_second_mapping_submitted_while_the_file_is_read_again_is_told(
    app: Harness,
) -> None:
    # the requester and a lead open Map columns on the same file; the requester submits first
    review = await _upload(app, "F0205", "work.csv", WORK)
    mine = await _click_map(app, review, REP)
    theirs = await _click_map(app, review, LEAD)
    choice = _state(email="1", first_name="2", last_name="none", locale="3", subscribed="none")
    first = await app.requests.view_submission(state_values=choice, view_id=mine["id"],
                                               user_id=REP)  # fmt: skip
    second = await app.requests.view_submission(state_values=choice, view_id=theirs["id"],
                                                user_id=LEAD)  # fmt: skip
    assert [r.body["response_action"] for r in (first, second)] == ["update", "update"]
    await app.done()  # each modal says what came of its submission
    told = [json.dumps(app.slack.views[v["id"]]) for v in (mine, theirs)]
    assert sum("Saved: files with the same headers" in t for t in told) == 1, told
    assert sum("being read again already" in t for t in told) == 1, told  # not "can't be chosen"
    async with app.db.begin() as conn:
        queued = (await conn.execute(text(
            "SELECT COUNT(*) FROM job WHERE dedupe_key LIKE 'remap:%'"))).scalar_one()
    assert queued == 1
    await app.settle()
    (line,) = _source_lines(app.slack.message("C0001", review["ts"]))
    assert "3 valid · 0 duplicates · 1 rejected" in line, line


async def test_a_busy_file_host_is_said_in_the_map_columns_modal_not_left_reading(
    app: Harness,
) -> None:
    review = await _upload(app, "F0203", "work.csv", WORK)
    app.slack.failing_downloads = 5  # Slack's file host answers 503 for a while
    modal = await _click_map(app, review, REP)
    shown = json.dumps(modal["blocks"])
    assert "Reading the file" not in shown
    assert "Slack's file service is busy" in shown, shown
    app.slack.failing_downloads = 0
    assert (await _click_map(app, review, REP))["callback_id"] == Callback.MAP_COLUMNS


def _remove_button(message: dict[str, Any], label: str) -> str:
    return next(b["accessory"]["value"] for b in message["blocks"]
                if b.get("accessory", {}).get("action_id") == Action.REMOVE_SOURCE
                and label in b["text"]["text"])  # fmt: skip


async def _map_work_columns(app: Harness, review: dict[str, Any]) -> dict[str, Any]:
    """*Map columns* on the review's one mappable file, WORK's columns chosen: the review
    message once the file was read again."""
    modal = await _click_map(app, review, REP)
    assert modal["callback_id"] == Callback.MAP_COLUMNS
    await app.requests.view_submission(
        state_values=_state(email="1", first_name="2", last_name="none", locale="3",
                            subscribed="none"),
        view_id=modal["id"], user_id=REP)  # fmt: skip
    await app.settle()
    return app.slack.message("C0001", review["ts"])


async def test_map_columns_on_a_zip_entry_after_its_first_entry_was_removed(
    app: Harness,
) -> None:
    # export.zip: customers.csv reads fine, crm.csv has no email column the bot recognises;
    # customers.csv (the ZIP's first entry, which a reading of the whole ZIP starts from) is
    # removed, then crm.csv's columns are mapped: crm.csv is read, customers.csv stays out
    view_id = await _open_modal(app)
    data = zip_bytes({"customers.csv": b"email\nzed@example.com\n", "crm.csv": WORK})
    file = app.slack.add_file("F0400", "export.zip", data, filetype="zip",
                              mimetype="application/zip")  # fmt: skip
    await app.requests.view_submission(state_values=_form(files=[file], segment="Zip"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    review = app.slack.message("C0001", (await _review(app))["ts"])
    removal = _remove_button(review, "export.zip › customers.csv")
    await app.requests.block_action(Action.REMOVE_SOURCE, removal, user_id=REP,
                                    message_ts=review["ts"])  # fmt: skip
    await app.settle()
    review = await _map_work_columns(app, app.slack.message("C0001", review["ts"]))
    (line,) = _source_lines(review)  # was ":hourglass_flowing_sand: Reading…" for good
    assert "*export.zip › crm.csv*" in line and "3 valid · 0 duplicates · 1 rejected" in line, line

    batch = removal.split(":")[0]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=review["ts"])
    await app.settle()
    assert not any("still being read" in e["text"] for e in app.slack.ephemerals)
    thread = [m["text"] for m in app.slack.messages_in("C0001", review["ts"])]
    assert any("Imported into *Zip*" in t and "3 new contacts" in t for t in thread), thread
    async with app.db.begin() as conn:
        emails = set((await conn.execute(text("SELECT email FROM contact"))).scalars())
    assert emails == {"ada@example.com", "bob@example.org", "cy@example.net"}


async def test_map_columns_on_a_file_removed_then_added_again(app: Harness) -> None:
    # work.csv removed, then the same Slack file added again with *Add more*: mapping the
    # columns of the one in the review reads that one
    review = await _upload(app, "F0206", "work.csv", WORK)
    removal = _remove_button(review, "work.csv")
    await app.requests.block_action(Action.REMOVE_SOURCE, removal, user_id=REP,
                                    message_ts=review["ts"])  # fmt: skip
    await app.settle()
    batch = removal.split(":")[0]
    await app.requests.block_action(Action.ADD_MORE, batch, user_id=REP, message_ts=review["ts"])
    await app.settle()
    modal = app.slack.open_views(REP)[-1]
    await app.requests.view_submission(state_values=_form(files=[app.slack.file_object("F0206")]),
                                       view_id=modal["id"], user_id=REP)  # fmt: skip
    await app.settle()
    review = await _map_work_columns(app, app.slack.message("C0001", review["ts"]))
    (line,) = _source_lines(review)  # was ":hourglass_flowing_sand: Reading…" for good
    assert "3 valid · 0 duplicates · 1 rejected" in line, line
    assert "*Total:* 4 rows · *3 to import*" in json.dumps(review["blocks"], ensure_ascii=False)


# "Email" is a column of old, broken addresses; the real ones are in "Work Email"
WRONG_GUESS = (b"Email,Work Email,First Name\n"
               b"n/a,ada@example.com,Ada\n"
               b"n/a,bob@example.org,Bob\n"
               b"n/a,cy@example.net,Cy\n"
               b"n/a,not-an-email,Dee\n")  # fmt: skip


async def _remap(app: Harness, review: dict[str, Any], **positions: str) -> dict[str, Any]:
    """*Map columns* on the review's one file, `positions` chosen; the review message after."""
    modal = await _click_map(app, review, REP)
    choice = {"first_name": "none", "last_name": "none", "locale": "none",
              "subscribed": "none", **positions}  # fmt: skip
    await app.requests.view_submission(state_values=_state(**choice), view_id=modal["id"],
                                       user_id=REP)  # fmt: skip
    await app.settle()
    return app.slack.message("C0001", review["ts"])


async def _thread_csvs(app: Harness, review: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The skipped-rows CSVs offered in the review's thread: (what the offer says, rows
    without header of the CSV its button brings now)."""
    offers = csv_offers(app.slack, review["ts"])
    sent = await app.csvs_sent(review["ts"])
    assert len(sent) == len(offers), (offers, sent)
    return [(offer["text"].removeprefix(":page_facing_up: "), u.text.splitlines()[1:])
            for offer, u in zip(offers, sent, strict=True)]  # fmt: skip


async def test_the_skipped_rows_csv_in_the_thread_follows_a_remap(app: Harness) -> None:
    review = await _upload(app, "F0301", "shop.csv", WRONG_GUESS)
    (line,) = _source_lines(review)
    assert "0 valid · 0 duplicates · 4 rejected" in line, line
    ((comment, rows),) = await _thread_csvs(app, review)
    assert comment.startswith("4 rejected") and len(rows) == 4

    # the right email column: 3 valid, 1 rejected; the thread gets the offer of that
    # reading's CSV, though Slack drops its first post (the report is retried)
    app.slack.outage("chat.postMessage", times=2)  # the client's one retry included
    review = await _remap(app, review, email="1", first_name="2")
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE job SET run_after = CURRENT_TIMESTAMP "
                                "WHERE state = 'queued'"))  # fmt: skip
    await app.settle()
    (line,) = _source_lines(review)
    assert "3 valid · 0 duplicates · 1 rejected" in line, line
    (_, (comment, rows)) = await _thread_csvs(app, review)  # was the first reading's alone
    assert comment.startswith("1 rejected row in *shop.csv*"), comment
    assert len(rows) == 1 and "not-an-email" in rows[0], rows

    # the reading job run again (a worker died before marking it done): not shared twice
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE job SET state = 'queued', run_after = CURRENT_TIMESTAMP "
                                "WHERE dedupe_key LIKE 'remap:%'"))  # fmt: skip
    await app.settle()
    assert len(await _thread_csvs(app, review)) == 2

    # the same choice again: a new reading, whose CSV is shared in turn
    review = await _remap(app, review, email="1", first_name="2")
    assert len(await _thread_csvs(app, review)) == 3


async def test_a_remap_that_skips_no_row_says_the_csv_no_longer_applies(app: Harness) -> None:
    data = WRONG_GUESS.replace(b"not-an-email", b"dee@example.com")
    review = await _upload(app, "F0302", "shop.csv", data)
    assert len(await _thread_csvs(app, review)) == 1  # 4 rows "won't be imported"
    review = await _remap(app, review, email="1", first_name="2")
    (line,) = _source_lines(review)
    assert "4 valid · 0 duplicates · 0 rejected" in line, line
    assert len(csv_offers(app.slack, review["ts"])) == 1
    assert await app.csvs_sent(review["ts"]) == []  # its button says why, where it's clicked
    told = [r["text"] for url in app.slack.responses for r in app.slack.responses[url]]
    assert told[-1] == "None of the rows of *shop.csv* are skipped now.", told
    told = [m["text"] for m in app.slack.messages_in("C0001", review["ts"])]
    assert told.count("None of the rows of *shop.csv* are skipped now: its skipped-rows CSV "
                      "above no longer applies.") == 1, told

    # back to the wrong column: its CSV again; then right again: told again, once
    review = await _remap(app, review, email="0", first_name="2")
    ((_, first), (_, second)) = await _thread_csvs(app, review)
    assert second == first
    review = await _remap(app, review, email="1", first_name="2")
    told = [m["text"] for m in app.slack.messages_in("C0001", review["ts"])]
    assert sum("are skipped now" in t for t in told) == 2, told


async def test_a_remap_that_skips_no_row_of_the_second_file_of_one_name_names_it_so(
    app: Harness,
) -> None:
    """Two files called shop.csv, the second read by the wrong column: its CSV in the thread,
    titled "shop (2).csv", was said to no longer apply as "*shop.csv*'s", the file with
    nothing skipped, once the second was mapped right. It names the file as the CSV did."""
    # here: test_sources_told_apart imports test_all_sources, which imports this file
    from tests.handlers.test_sources_told_apart import _button_of

    review = await _upload(app, "F0303", "shop.csv", b"email\nzed@example.com\n")
    await _add_more(app, review, "F0304", "shop.csv",
                    WRONG_GUESS.replace(b"not-an-email", b"dee@example.com"))  # fmt: skip
    review = app.slack.message("C0001", review["ts"])
    ((comment, _),) = await _thread_csvs(app, review)
    assert "*shop (2).csv*" in comment, comment
    await app.requests.block_action(Action.MAP_COLUMNS,
                                    _button_of(review, Action.MAP_COLUMNS, "shop (2).csv"),
                                    user_id=REP, message_ts=review["ts"])  # fmt: skip
    await app.done()
    modal = app.slack.open_views(REP)[-1]
    choice = _state(email="1", first_name="2", last_name="none", locale="none",
                    subscribed="none")  # fmt: skip
    await app.requests.view_submission(state_values=choice, view_id=modal["id"], user_id=REP)
    await app.settle()
    told = [m["text"] for m in app.slack.messages_in("C0001", review["ts"])]
    assert "None of the rows of *shop (2).csv* are skipped now: its skipped-rows CSV above no "\
           "longer applies." in told, told
    assert not [t for t in told if "*shop.csv* are skipped now" in t], told


async def _remove_contact(app: Harness, review: dict[str, Any], first_name: str,
                          then: Callable[[], None] | None = None) -> None:  # fmt: skip
    """*Review contacts*, then Remove on the contact of that first name (`then`: done between
    the two, once the list is shown)."""
    (batch,) = [e["value"] for b in review["blocks"] if b["type"] == "actions"
                for e in b["elements"] if e["action_id"] == Action.REVIEW_CONTACTS]  # fmt: skip
    await app.requests.block_action(Action.REVIEW_CONTACTS, batch, user_id=REP,
                                    message_ts=review["ts"])  # fmt: skip
    await app.settle()
    if then is not None:
        then()
    modal = app.slack.open_views(REP)[-1]
    (row,) = [b for b in modal["blocks"] if b.get("text", {}).get("text", "").split("*")[1:2]
              == [first_name]]  # fmt: skip
    await app.requests.block_action(Action.REMOVE_CONTACT, row["accessory"]["value"],
                                    user_id=REP, view=modal["id"])  # fmt: skip
    await app.settle()


async def test_a_contact_removed_shares_anew_the_csv_its_duplicate_was_skipped_in(
    app: Harness,
) -> None:
    """Xa in a.csv, then Xb (the same address) in b.csv, added with *Add more*: b.csv's CSV in
    the thread skips Xb. Removing Xa removes the address, Xb too, so b.csv's CSV is shared
    anew without it; removing Yb, who has no duplicate, shares nothing."""
    review = await _upload(app, "F0310", "a.csv", b"email,first_name\nx@example.com,Xa\n")
    await _add_more(app, review, "F0311", "b.csv", b"email,first_name\nX@example.com,Xb\n"
                                                   b"y@example.com,Yb\nnot-an-email,Bad\n")
    ((comment, rows),) = await _thread_csvs(app, review)
    assert "*b.csv*" in comment and len(rows) == 2 and "X@example.com" in rows[0], rows

    updates = _review_updates(app, review)
    await _remove_contact(app, review, "Xa")
    assert _review_updates(app, review) == updates + 1  # once, not once more for b.csv's CSV
    lines = _source_lines(app.slack.message("C0001", review["ts"]))
    assert "*b.csv* (CSV file)\n:white_check_mark: 1 valid · 0 duplicates · 1 rejected" in lines
    (_, (comment, rows)) = await _thread_csvs(app, review)
    assert comment.startswith("1 rejected row in *b.csv*"), comment  # no duplicate now
    assert len(rows) == 1 and "not-an-email" in rows[0], rows

    await _remove_contact(app, review, "Yb")
    assert len(await _thread_csvs(app, review)) == 2  # nothing it lists changed


async def test_a_contact_removed_while_slack_refuses_the_list_redraw_still_shares_the_csv(
    app: Harness,
) -> None:
    """The removal is made and committed before the Review contacts list is redrawn: when
    Slack refuses that redraw (rate limited), b.csv's skipped-rows CSV must still be shared
    anew, since nothing would share it later."""
    review = await _upload(app, "F0312", "a.csv", b"email,first_name\nx@example.com,Xa\n")
    await _add_more(app, review, "F0313", "b.csv", b"email,first_name\nX@example.com,Xb\n"
                                                   b"not-an-email,Bad\n")
    assert len(await _thread_csvs(app, review)) == 1

    await _remove_contact(app, review, "Xa",
                          then=lambda: app.slack.fail("views.update", "ratelimited", times=5))
    (_, (comment, _rows)) = await _thread_csvs(app, review)
    assert comment.startswith("1 rejected row in *b.csv*"), comment  # no duplicate now


async def test_contacts_removed_by_hand_stay_removed_when_the_file_is_mapped_again(
    app: Harness,
) -> None:
    """Someone removes Bob (both his rows) from the review, then maps the file's locale
    column: the file is read again, and Bob must not come back to be imported."""
    data = WORK + b"Bob Again,BOB@example.org,Robert,fr\n"
    review = await _upload(app, "F0303", "work.csv", data)
    review = await _remap(app, review, email="1", first_name="2")
    (line,) = _source_lines(review)
    assert "3 valid · 1 duplicate · 1 rejected" in line, line
    await _remove_contact(app, review, "Bob")  # the address: his second row, Robert, too
    (line,) = _source_lines(app.slack.message("C0001", review["ts"]))
    assert "2 valid · 0 duplicates · 1 rejected" in line, line

    review = await _remap(app, review, email="1", first_name="2", locale="3")
    (line,) = _source_lines(review)
    assert "2 valid · 0 duplicates · 1 rejected" in line, line
    await _remap(app, review, email="1", first_name="2")  # and again
    (line,) = _source_lines(app.slack.message("C0001", review["ts"]))
    assert "2 valid · 0 duplicates · 1 rejected" in line, line

    (batch,) = [e["value"] for b in review["blocks"] if b["type"] == "actions"
                for e in b["elements"] if e["action_id"] == Action.APPROVE]  # fmt: skip
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=review["ts"])
    await app.settle()
    async with app.db.begin() as conn:
        emails = (await conn.execute(text("SELECT email FROM contact ORDER BY email"))).scalars()
        assert list(emails) == ["ada@example.com", "cy@example.net"]


# Two "Email" columns: the shop's own address first, the customer's second; and a file whose
# address column has no header at all
TWICE = (b"Email,First Name,Email\n"
         b"info@shop.example,Ada,ada@example.com\n"
         b"info@shop.example,Bob,bob@example.org\n")  # fmt: skip
NAMELESS = (b"Name,,Phone\n"
            b"Ada,ada@example.com,555 0100\n"
            b"Bob,bob@example.org,555 0101\n")  # fmt: skip


async def test_a_repeated_header_chosen_by_position_reads_that_column(app: Harness) -> None:
    # the second "Email" chosen: the first was read instead (1 valid: info@shop.example, and
    # Bob's row a duplicate of it); the modal preselects the choice when opened again
    review = await _upload(app, "F0501", "twice.csv", TWICE)
    review = await _remap(app, review, email="2", first_name="1")
    (line,) = _source_lines(review)
    assert "2 valid · 0 duplicates · 0 rejected" in line, line
    async with app.db.begin() as conn:
        rows = (await conn.execute(text("SELECT email, first_name FROM staged_row WHERE NOT "
                                        "removed ORDER BY line"))).all()  # fmt: skip
    assert [tuple(r) for r in rows] == [("ada@example.com", "Ada"), ("bob@example.org", "Bob")]
    modal = await _click_map(app, review, REP)
    assert _choice(modal, BlockId.MAP_EMAIL)["initial_option"]["value"] == "2"


async def test_a_second_email_remembered_doesnt_fail_a_file_with_one_email_column(
    app: Harness,
) -> None:
    """The second "Email" of TWICE was chosen and remembered; a file with the same names but
    one "Email" column (its headers count as the same set) failed: "The column 'Email' (no. 2
    of the columns so named) chosen for Email isn't in this file". It is read by its guess."""
    review = await _upload(app, "F0504", "twice.csv", TWICE)
    await _remap(app, review, email="2", first_name="1")
    review, line = await _next_weeks_export(app, "F0505", "once.csv",
                                            b"Email,First Name\ndora@example.de,Dora\n")
    assert "1 valid · 0 duplicates · 0 rejected" in line, line
    modal = await _click_map(app, review, REP)  # the guess, said to be one
    assert _choice(modal, BlockId.MAP_EMAIL)["initial_option"]["value"] == "0"
    assert "Columns were guessed from their names." in json.dumps(modal)


async def test_a_column_without_a_header_can_be_chosen(app: Harness) -> None:
    # the modal offers "(column 2, no name)"; choosing it left the modal at "Saving…" and the
    # file unread (a mapping of the empty header has no email column)
    review = await _upload(app, "F0502", "nameless.csv", NAMELESS)
    review = await _remap(app, review, email="1", first_name="0")
    assert any("Saved: files with the same headers" in json.dumps(v)
               for v in app.slack.views.values())  # fmt: skip
    (line,) = _source_lines(review)
    assert "2 valid · 0 duplicates · 0 rejected" in line, line

    # next week's export, same headers: it maps itself
    _, line = await _next_weeks_export(app, "F0503", "nameless-2.csv",
                                       NAMELESS.replace(b"ada@", b"ada2@"))  # fmt: skip
    assert "2 valid · 0 duplicates · 0 rejected" in line, line


async def test_map_columns_on_a_workbook_shows_the_sheet_with_the_addresses(app: Harness) -> None:
    # a summary tab before the customers, whose email column isn't recognised: the failure
    # and the modal named the summary's columns ('Total', '2'), so "Work Contact" could never
    # be chosen and the workbook never imported
    data = workbook(("Summary", [["Total", 2]]),
                    ("People", [["Work Contact", "Given"], ["ada@example.com", "Ada"],
                                ["bob@example.org", "Bob"]]))  # fmt: skip
    review = await _upload(app, "F0504", "book.xlsx", data)
    (line,) = _source_lines(review)
    assert "Columns found: 'Work Contact', 'Given'." in line, line
    assert "That is the sheet “People”; the other sheets (“Summary”)" in line, line
    modal = await _click_map(app, review, REP)
    texts = [o["text"]["text"] for o in _choice(modal, BlockId.MAP_EMAIL)["options"]]
    assert texts == ["Work Contact — ada@example.com, bob@example.org", "Given — Ada, Bob"]
    review = await _remap(app, review, email="0", first_name="1")
    (line,) = _source_lines(review)
    assert "2 valid · 0 duplicates · 0 rejected" in line, line
    assert "Only the sheet “People” was read; not read: “Summary”" in line, line


def _context_texts(modal: dict[str, Any]) -> list[str]:
    return [e["text"] for b in modal["blocks"] if b["type"] == "context" for e in b["elements"]]


def _sheet_value(modal: dict[str, Any], title: str) -> str:
    """The value of the *Sheet* option showing `title` (the sheet's position)."""
    sheets = next(b for b in modal["blocks"] if b.get("block_id") == BlockId.MAP_SHEET)
    (value,) = [o["value"] for o in sheets["accessory"]["options"] if o["text"]["text"] == title]
    return str(value)


async def _switch_sheet(app: Harness, modal: dict[str, Any], user: str,
                        sheet: str) -> dict[str, Any]:  # fmt: skip
    """Choose the option of value `sheet` (_sheet_value) under *Sheet* in the open *Map
    columns* modal: the modal redrawn."""
    await app.requests.block_action(Action.MAP_SHEET, view=modal["id"], user_id=user,
                                    action=state_static_select(sheet))  # fmt: skip
    await app.done()
    return app.slack.views[modal["id"]]


async def _map_and_read(app: Harness, review: dict[str, Any], modal: dict[str, Any],
                        user: str, *, email: str, first_name: str) -> str:  # fmt: skip
    """Submit the modal with those columns; the file's line on the review once read again."""
    await app.requests.view_submission(state_values=_state(
        email=email, first_name=first_name, last_name="none", locale="none",
        subscribed="none"), view_id=modal["id"], user_id=user)  # fmt: skip
    await app.settle()
    (line,) = _source_lines(app.slack.message("C0001", review["ts"]))
    return line


async def test_map_columns_on_a_workbook_chooses_the_sheet_and_reads_it(app: Harness) -> None:
    """A staff list first (its "Email" recognised), the customers next under "Work Mail":
    *Map columns* offered the staff list's columns only, with no word of the other sheet, so
    the customers could never be imported from Slack. It says which sheet it shows, offers
    the others, and mapping the customers' sheet makes the import read it."""
    from tests.imports.test_excel import STAFF_THEN_CUSTOMERS

    review = await _upload(app, "F0505", "two.xlsx", workbook(*STAFF_THEN_CUSTOMERS))
    (line,) = _source_lines(review)
    assert "1 valid" in line and "Only the sheet “Staff” was read" in line, line
    modal = await _click_map(app, review, REP)
    texts = [o["text"]["text"] for o in _choice(modal, BlockId.MAP_EMAIL)["options"]]
    assert texts == ["Name — Me", "Email — me@shop.example"]
    assert ("These are the columns of the sheet “Staff”; only one sheet is read, not the "
            "workbook's others (“Customers”). To import another sheet, choose it under "
            "*Sheet*") in _context_texts(modal)[0]  # fmt: skip
    sheets = next(b for b in modal["blocks"] if b.get("block_id") == BlockId.MAP_SHEET)
    assert [(o["value"], o["text"]["text"]) for o in sheets["accessory"]["options"]] == [
        ("0", "Staff"), ("1", "Customers")]  # by position: a name is cut at 150 in a value

    modal = await _switch_sheet(app, modal, REP, _sheet_value(modal, "Customers"))
    texts = [o["text"]["text"] for o in _choice(modal, BlockId.MAP_EMAIL)["options"]]
    assert texts == ["Work Mail — w1@example.com, w2@example.com", "Name — W One, W Two"]
    assert "the sheet “Customers”; only one sheet is read, not the workbook's others " \
        "(“Staff”)" in _context_texts(modal)[0]
    line = await _map_and_read(app, review, modal, REP, email="0", first_name="1")
    assert "2 valid" in line and "Only the sheet “Customers” was read" in line, line
    review = app.slack.message("C0001", review["ts"])
    # opened again, it shows the sheet read: the one the remembered mapping fits
    modal = await _click_map(app, review, REP)
    assert _choice(modal, BlockId.MAP_EMAIL)["initial_option"]["text"]["text"].startswith(
        "Work Mail — ")
    assert "These columns were chosen for files with the same headers before." in (
        _context_texts(modal)[0])


def _review_updates(app: Harness, review: dict[str, Any]) -> int:
    """How many times the review message was redrawn (chat.update on it) so far."""
    return sum(1 for c in app.slack.calls_to("chat.update") if c.args.get("ts") == review["ts"])


async def _add_more(app: Harness, review: dict[str, Any], file_id: str, name: str,
                    data: bytes) -> None:  # fmt: skip
    """*Add more* on the review message, with one more file."""
    (batch,) = [e["value"] for b in review["blocks"] if b["type"] == "actions"
                for e in b["elements"] if e["action_id"] == Action.ADD_MORE]  # fmt: skip
    await app.requests.block_action(Action.ADD_MORE, batch, user_id=REP, message_ts=review["ts"])
    await app.settle()
    file = app.slack.add_file(file_id, name, data)
    await app.requests.view_submission(state_values=_form(files=[file]),
                                       view_id=app.slack.open_views(REP)[-1]["id"], user_id=REP)
    await app.settle()


async def test_a_remap_shares_anew_the_csv_of_another_file_whose_duplicates_it_let_in(
    app: Harness,
) -> None:
    """a.csv is read by its "Email" column, so b.csv's X@ repeats a.csv's x@ and b.csv's CSV
    in the thread skips it. Mapping a.csv's "Work Email" instead takes x@ out of a.csv: Xb is
    imported now, so b.csv's CSV is shared anew without it, as when a.csv is removed."""
    review = await _upload(app, "F0320", "a.csv", b"Email,Work Email,First Name\n"
                                                  b"x@example.com,wx@example.com,Xa\n")
    await _add_more(app, review, "F0321", "b.csv", b"email,first_name\nX@example.com,Xb\n"
                                                   b"not-an-email,Bad\n")  # fmt: skip
    review = app.slack.message("C0001", review["ts"])
    ((comment, rows),) = await _thread_csvs(app, review)
    assert comment.startswith("1 rejected row and 1 duplicate row in *b.csv*"), comment
    a_map = min(_map_buttons(review), key=lambda v: int(v.split(":")[1]))  # a.csv's
    await app.requests.block_action(Action.MAP_COLUMNS, a_map, user_id=REP,
                                    message_ts=review["ts"])  # fmt: skip
    await app.done()
    modal = app.slack.open_views(REP)[-1]
    updates = _review_updates(app, review)
    app.slack.outage("chat.postMessage", times=2)  # b.csv's new offer: retried by a job
    await app.requests.view_submission(
        state_values=_state(email="1", first_name="2", last_name="none", locale="none",
                            subscribed="none"), view_id=modal["id"], user_id=REP)  # fmt: skip
    await app.settle()
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE job SET run_after = CURRENT_TIMESTAMP "
                                "WHERE state = 'queued'"))  # fmt: skip
    await app.settle()
    assert _review_updates(app, review) == updates + 2  # "Reading…", then a.csv's new counts
    lines = _source_lines(app.slack.message("C0001", review["ts"]))
    assert any("*b.csv*" in x and "1 valid · 0 duplicates · 1 rejected" in x for x in lines), lines
    (_, (comment, rows)) = await _thread_csvs(app, review)
    assert comment.startswith("1 rejected row in *b.csv*"), comment
    assert len(rows) == 1 and "not-an-email" in rows[0], rows


async def test_read_again_keeps_a_column_past_the_first_99_of_a_wide_export(
    app: Harness,
) -> None:  # fmt: skip
    """A 121-column export with consent in its last column: Map columns offers that column
    preselected, so submitting the modal as shown (to fix another field, say) doesn't read
    the file again without consent (unsubscribed people imported as subscribed)."""
    header = ["Email", "First Name", *(f"prop{i}" for i in range(2, 120)),
              "Marketing contact status"]  # fmt: skip
    rows = [["ada@example.com", "Ada", *[""] * 118, "subscribed"],
            ["bob@example.com", "Bob", *[""] * 118, "unsubscribed"]]  # fmt: skip
    data = "".join(",".join(r) + "\n" for r in [header, *rows]).encode()
    review = await _upload(app, "F0301", "hubspot.csv", data)

    async def consent() -> list[tuple[str, object]]:
        async with app.db.begin() as conn:
            return [(e, bool(s) if s is not None else None) for e, s in await conn.execute(text(
                "SELECT email, subscribed FROM staged_row ORDER BY id"))]  # fmt: skip

    assert await consent() == [("ada@example.com", True), ("bob@example.com", False)]
    modal = await _click_map(app, review, REP)
    shown = {bid: next(b["element"] for b in modal["blocks"] if b.get("block_id") == bid)
             for bid in FIELD_BLOCKS.values()}  # fmt: skip
    assert shown[FIELD_BLOCKS["subscribed"]]["initial_option"]["value"] == "120"
    assert all(len(e["options"]) <= 100 for e in shown.values())
    # the note and every menu agree: Email listed 100 columns under "Only the first 99"
    notes = [e["text"] for b in modal["blocks"] if b["type"] == "context"
             for e in b["elements"] if "columns can be chosen" in e["text"]]  # fmt: skip
    assert notes == ["Only the first 99 of 121 columns can be chosen."]
    assert {len([o for o in e["options"] if o["value"] != "none"])
            for e in shown.values()} == {99}  # fmt: skip
    state = {bid: {Action.MAP_FIELD: {"type": "static_select",
                                      "selected_option": e.get("initial_option")}}
             for bid, e in shown.items()}  # fmt: skip
    await app.requests.view_submission(state_values=state, view_id=modal["id"], user_id=REP)
    await app.settle()
    assert await consent() == [("ada@example.com", True), ("bob@example.com", False)]
    assert app.slack.block_errors == []


async def test_mapping_one_file_reads_again_the_other_file_of_the_import_with_its_headers(
    app: Harness,
) -> None:
    """Two weekly exports of the same tool in one import, both "No email column found". Map
    columns on the first said "Saved: files with the same headers will be read with these
    columns", yet the second, with the very same headers, stayed failed (and was left out of
    an approval)."""
    review = await _upload(app, "F0711", "week1.csv", WORK)
    await _add_more(app, review, "F0712", "week2.csv", WORK.replace(b"ada@", b"ada2@"))
    review = app.slack.message("C0001", review["ts"])
    first = min(_map_buttons(review), key=lambda v: int(v.split(":")[1]))
    await app.requests.block_action(Action.MAP_COLUMNS, first, user_id=REP,
                                    message_ts=review["ts"])  # fmt: skip
    await app.done()
    modal = app.slack.open_views(REP)[-1]
    await app.requests.view_submission(
        state_values=_state(email="1", first_name="2", last_name="none", locale="3",
                            subscribed="none"), view_id=modal["id"], user_id=REP)  # fmt: skip
    await app.settle()
    assert "Saved: files with the same headers" in json.dumps(app.slack.views[modal["id"]])
    lines = _source_lines(app.slack.message("C0001", review["ts"]))
    assert "3 valid · 0 duplicates · 1 rejected" in lines[0], lines
    assert "1 valid · 2 duplicates · 1 rejected" in lines[1], lines  # Bob and Cy in both


async def test_a_file_is_read_again_with_the_columns_submitted_for_it(app: Harness) -> None:
    """Two imports of the same tool's export, both failed. The requester maps the first with
    the Work Contact column; a lead, a moment later and before that reading ran, maps the
    other with Full Name. The modal said the first is read again with the requester's
    columns; its reading read whatever was remembered when it ran: the lead's, 0 valid."""
    first = await _upload(app, "F0721", "week1.csv", WORK)
    second, _ = await _next_weeks_export(app, "F0722", "week2.csv",
                                         WORK.replace(b"ada@", b"ada2@"))  # fmt: skip
    views = [await _click_map(app, first, REP), await _click_map(app, second, LEAD)]
    await app.requests.view_submission(
        state_values=_state(email="1", first_name="2", last_name="none", locale="3",
                            subscribed="none"), view_id=views[0]["id"], user_id=REP)
    await app.done()
    await app.requests.view_submission(
        state_values=_state(email="0", first_name="none", last_name="none", locale="none",
                            subscribed="none"), view_id=views[1]["id"], user_id=LEAD)
    await app.settle()
    (line,) = _source_lines(app.slack.message("C0001", first["ts"]))
    assert "3 valid · 0 duplicates · 1 rejected" in line, line


async def test_the_sheet_chosen_is_read_though_the_first_sheets_columns_were_saved(
    app: Harness,
) -> None:
    """*Map columns* saved once on the staff list ("Name, Email", as shown), then the
    customers' sheet chosen under *Sheet* and mapped: the import read the staff list again
    ("Only the sheet “Staff” was read"), the first sheet any remembered mapping fitted, not
    the sheet the person chose and mapped."""
    from tests.imports.test_excel import STAFF_THEN_CUSTOMERS

    review = await _upload(app, "F0505", "two.xlsx", workbook(*STAFF_THEN_CUSTOMERS))
    modal = await _click_map(app, review, REP)  # it shows "Staff", saved as it is
    line = await _map_and_read(app, review, modal, REP, email="1", first_name="0")
    assert "1 valid" in line and "Only the sheet “Staff” was read" in line, line

    review = app.slack.message("C0001", review["ts"])
    modal = await _click_map(app, review, REP)
    modal = await _switch_sheet(app, modal, REP, _sheet_value(modal, "Customers"))
    assert "the sheet “Customers”" in _context_texts(modal)[0]
    line = await _map_and_read(app, review, modal, REP, email="0", first_name="1")
    assert "2 valid" in line and "Only the sheet “Customers” was read" in line, line
    review = app.slack.message("C0001", review["ts"])
    # opened again, it shows the sheet read, not the staff list its saved columns fit
    modal = await _click_map(app, review, REP)
    assert "the sheet “Customers”" in _context_texts(modal)[0]
    assert _choice(modal, BlockId.MAP_EMAIL)["initial_option"]["text"]["text"].startswith(
        "Work Mail — ")


async def test_a_form_left_open_on_one_sheet_saves_nothing_once_another_shows_another(
    app: Harness,
) -> None:
    """*Map columns* open twice (another window, a teammate), the second switched to the
    customers' sheet: submitting the first applied its positions, chosen on the staff list,
    to the customers' columns kept by the second, and read the customers with a mapping
    nobody chose (remembered for their headers)."""
    from tests.imports.test_excel import STAFF_THEN_CUSTOMERS

    review = await _upload(app, "F0505", "two.xlsx", workbook(*STAFF_THEN_CUSTOMERS))
    first = await _click_map(app, review, REP)  # "Staff": Name, Email
    second = await _click_map(app, review, LEAD)
    second = await _switch_sheet(app, second, LEAD, _sheet_value(second, "Customers"))
    reply = await app.requests.view_submission(state_values=_state(
        email="1", first_name="0", last_name="none", locale="none", subscribed="none"),
        view_id=first["id"], user_id=REP)  # fmt: skip
    assert reply.body["response_action"] == "update"
    told = json.dumps(reply.body["view"], ensure_ascii=False)
    assert "opened again since, on the sheet “Customers”, not “Staff” as here" in told, told
    await app.settle()
    review = app.slack.message("C0001", review["ts"])
    (line,) = _source_lines(review)
    assert "1 valid" in line and "Only the sheet “Staff” was read" in line, line  # as it was

    # the second form, on the customers' sheet, is the one that counts
    line = await _map_and_read(app, review, second, LEAD, email="0", first_name="1")
    assert "2 valid" in line and "Only the sheet “Customers” was read" in line, line


async def test_next_months_report_under_a_title_maps_itself(app: Harness) -> None:
    """Columns chosen in *Map columns* for an export whose names none are recognised; next
    month the same export came as a report, a title line as wide as its header above it
    ("Customer export,December,2026"): the title was taken for the header, and the upload
    failed "No email column found. Columns found: 'Customer export', 'December', '2026'"
    instead of mapping itself, as a CSV and as a workbook."""
    from tests.imports.test_column_mapping import TITLED_ROWS

    plain = b"Work Mail,Given,Family\nzed@example.com,Zed,Zero\n"
    review = await _upload(app, "F0601", "customers.csv", plain)
    review = await _remap(app, review, email="0", first_name="1", last_name="2")
    (line,) = _source_lines(review)
    assert "1 valid" in line, line
    titled = "".join(",".join(r) + "\n" for r in TITLED_ROWS).encode()
    second, line = await _next_weeks_export(app, "F0602", "report.csv", titled)
    assert "2 valid · 0 duplicates · 0 rejected" in line, line
    # *Map columns* on the CSV shows the header it was read by too (it showed the title's
    # cells: its reader searched the header by names alone)
    modal = await _click_map(app, second, LEAD)
    texts = [o["text"]["text"] for o in _choice(modal, BlockId.MAP_EMAIL)["options"]]
    assert texts[0] == "Work Mail — ada@example.com, bob@example.org", texts
    book = workbook(("Customers", TITLED_ROWS))
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0603", "report.xlsx", book)
    await app.requests.view_submission(state_values=_form(files=[file], segment="Work 3"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    third = [m for m in app.slack.messages_in("C0001") if "Work 3" in m.get("text", "")][-1]
    (line,) = _source_lines(third)
    assert "2 valid · 0 duplicates · 0 rejected" in line, line
    # *Map columns* on the workbook shows the header it was read by, the choice preselected
    modal = await _click_map(app, third, LEAD)
    texts = [o["text"]["text"] for o in _choice(modal, BlockId.MAP_EMAIL)["options"]]
    assert texts[0] == "Work Mail — ada@example.com, bob@example.org", texts
    assert _choice(modal, BlockId.MAP_EMAIL)["initial_option"]["value"] == "0"
    assert app.slack.block_errors == []


async def test_map_columns_opens_on_a_workbook_whose_sheet_name_is_long(app: Harness) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = workbook(("Summary", [["Total", 2]]),
                        ("P" * 3000, [["Work Contact", "Given"], ["ada@example.com", "Ada"]]))
    review = await _upload(app, "F0504", "book.xlsx", data)
    modal = await _click_map(app, review, REP)
    assert app.slack.block_errors == []
    assert modal.get("callback_id") == Callback.MAP_COLUMNS, modal


async def test_a_sheet_whose_name_is_over_150_characters_can_be_chosen(app: Harness) -> None:
    import warnings

    long = "Customers " + "C" * 190
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = workbook(("Staff", [["Name", "Email"], ["Me", "me@shop.example"]]),
                        (long, [["Work Mail", "Name"], ["w1@example.com", "W One"]]))
    review = await _upload(app, "F0505", "two.xlsx", data)
    modal = await _click_map(app, review, REP)
    sheets = next(b for b in modal["blocks"] if b.get("block_id") == BlockId.MAP_SHEET)
    value = sheets["accessory"]["options"][1]["value"]
    modal = await _switch_sheet(app, modal, REP, value)
    shown = [b.get("block_id") for b in modal["blocks"]]
    assert BlockId.MAP_EMAIL in shown, json.dumps(modal["blocks"])[:400]
    texts = [o["text"]["text"] for o in _choice(modal, BlockId.MAP_EMAIL)["options"]]
    assert texts == ["Work Mail — w1@example.com", "Name — W One"], texts


async def _as_an_older_release_kept(app: Harness, modal: dict[str, Any], sheet: str,
                                    read: str | None) -> None:  # fmt: skip
    """The open `modal`'s metadata, and the header its source keeps, as a release before
    positions wrote them: the sheet by its name (its *Sheet* options' values were names)."""
    meta = json.loads(modal["private_metadata"])
    app.slack.views[modal["id"]]["private_metadata"] = json.dumps(
        {"batch": meta["batch"], "source": meta["source"], "sheet": sheet})
    kept = {"columns": ["Name", "Email"] if sheet == "Staff" else ["Work Mail", "Name"],
            "sheet": sheet, "read": read}  # fmt: skip
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE import_source SET header = :h WHERE id = :s"),
                           {"h": json.dumps(kept), "s": meta["source"]})  # fmt: skip


async def test_a_map_columns_modal_an_older_release_drew_still_works(app: Harness) -> None:
    """*Sheet*'s options and the modal's metadata held the sheet's name before they held its
    position: a modal left open over a deploy still switches sheets (by a name) and saves (a
    name kept), and one whose sheet another modal changed since is told so."""
    from tests.imports.test_excel import STAFF_THEN_CUSTOMERS

    review = await _upload(app, "F0505", "two.xlsx", workbook(*STAFF_THEN_CUSTOMERS))
    modal = await _click_map(app, review, REP)
    await _as_an_older_release_kept(app, modal, "Staff", None)
    line = await _map_and_read(app, review, modal, REP, email="1", first_name="0")
    assert "1 valid" in line and "Only the sheet “Staff” was read" in line, line

    review = app.slack.message("C0001", review["ts"])
    modal = await _click_map(app, review, REP)
    await _as_an_older_release_kept(app, modal, "Staff", "Staff")
    modal = await _switch_sheet(app, modal, REP, "Customers")  # an old option's value
    texts = [o["text"]["text"] for o in _choice(modal, BlockId.MAP_EMAIL)["options"]]
    assert texts == ["Work Mail — w1@example.com, w2@example.com", "Name — W One, W Two"]
    assert json.loads(modal["private_metadata"])["sheet"] == 1  # drawn anew: by position
    line = await _map_and_read(app, review, modal, REP, email="0", first_name="1")
    assert "2 valid" in line and "Only the sheet “Customers” was read" in line, line

    # an old modal on the staff list, once a new one kept the customers' sheet
    review = app.slack.message("C0001", review["ts"])
    modal = await _click_map(app, review, REP)
    meta = json.loads(modal["private_metadata"])
    old = {"batch": meta["batch"], "source": meta["source"], "sheet": "Staff"}
    reply = await app.requests.view_submission(state_values=_state(
        email="1", first_name="0", last_name="none", locale="none", subscribed="none"),
        view_id=modal["id"], user_id=REP, private_metadata=json.dumps(old))  # fmt: skip
    told = json.dumps(reply.body["view"], ensure_ascii=False)
    assert ("opened again since, on the sheet “Customers”, not the one shown here: nothing "
            "was saved") in told, told


HEADERLESS = (b"ada@example.com,Ada,Lovelace\n"
              b"bob@example.org,Bob,Stone\n")  # fmt: skip


async def test_a_headerless_file_mapped_in_slack_is_read_and_said_truthfully(app: Harness) -> None:
    """A file without a header row, mapped by its first row's values: its mapping isn't
    remembered for other files (its "header" is a customer's address and name), and the
    modal said "Saved: files with the same headers will be read with these columns"; opened
    again, it showed the guess, not what the file is read with."""
    review = await _upload(app, "F0901", "nohdr.csv", HEADERLESS)
    review = await _remap(app, review, email="0", first_name="1", last_name="2")
    (line,) = _source_lines(review)
    assert "2 valid" in line, line
    async with app.db.begin() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM column_mapping"))).scalar() == 0
    said = " ".join(json.dumps(v) for v in app.slack.views.values())
    assert "Saved: files with the same headers" not in said
    assert "It has no header row, so they aren't remembered for other files." in said
    modal = await _click_map(app, review, REP)
    assert _choice(modal, BlockId.MAP_EMAIL).get("initial_option", {}).get("value") == "0"
    said = json.dumps(modal["blocks"], ensure_ascii=False)
    assert "These columns were chosen for this file before." in said, said
    assert "it has no header row, so your choice is for this file alone" in said
    assert "guessed from their names" not in said and "map themselves next time" not in said


# a file without a header row whose first row names an email column beside the address:
# "E-post" (Swedish for email) is how that customer signed up
SIGNED_UP = (b"Anna,Svensson,anna@example.se,E-post\n"
             b"Bo,Ek,bo@example.se,Butik\n")  # fmt: skip


async def test_a_first_row_naming_an_email_column_beside_an_address_is_no_header(
    app: Harness,
) -> None:  # fmt: skip
    """The row was taken for the header, its "E-post" the email column: the review said
    "0 valid · 0 duplicates · 1 rejected" (Bo's address "Butik"), Anna counted nowhere. It
    is a file without a header row, told and mapped as any such file."""
    review = await _upload(app, "F0903", "signups.csv", SIGNED_UP)
    (line,) = _source_lines(review)
    assert ":warning: No email column found." in line, line
    assert "first row looks like data" in line, line
    review = await _remap(app, review, email="2", first_name="0", last_name="1")
    (line,) = _source_lines(review)
    assert "2 valid" in line, line
    async with app.db.begin() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM column_mapping"))).scalar() == 0
    modal = await _click_map(app, review, REP)
    said = json.dumps(modal["blocks"], ensure_ascii=False)
    assert "it has no header row, so your choice is for this file alone" in said, said


async def test_a_headerless_files_first_row_is_forgotten_with_its_imports_rows(
    app: Harness,
) -> None:  # fmt: skip
    """The header kept on its source for *Map columns* is that first customer's address and
    name, kept with the import for good (after `contacts delete` too): it goes with the
    import's staged rows."""
    from datetime import timedelta

    from sqlalchemy import bindparam
    from sqlmodel.sql.sqltypes import UTCDateTime

    from bot.imports.retention import purge_staged
    from models.clock import utcnow

    review = await _upload(app, "F0902", "nohdr.csv", HEADERLESS)
    review = await _remap(app, review, email="0", first_name="1", last_name="2")
    (batch,) = [e["value"] for b in review["blocks"] if b["type"] == "actions"
                for e in b["elements"] if e["action_id"] == Action.APPROVE]  # fmt: skip
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=review["ts"])
    await app.settle()
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET finished_at = :d").bindparams(
            bindparam("d", type_=UTCDateTime())), {"d": utcnow() - timedelta(days=31)})
    await purge_staged(app.db, "T0001", 30, 7)
    async with app.db.begin() as conn:
        kept = [str(h) for (h,) in await conn.execute(text("SELECT header FROM import_source"))]
    assert not [h for h in kept if "ada@example.com" in h], kept


async def test_a_real_header_mentioning_an_address_is_not_said_headerless(
        app: Harness) -> None:  # fmt: skip
    """A header cell mentioning an address among words (a form's question) made *Map
    columns* say the file had no header row and its choice was for it alone."""
    data = (b"Work Contact,Given,Questions? (ask help@shop.example)\n"
            b"ada@example.com,Ada,none\n")  # fmt: skip
    review = await _upload(app, "F0951", "form.csv", data)
    modal = await _click_map(app, review, REP)
    said = json.dumps(modal["blocks"], ensure_ascii=False)
    assert "files with the same headers map themselves next time" in said, said
    assert "no header row" not in said, said
