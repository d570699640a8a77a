"""The product as a user meets it: signed requests in, Slack Web API calls out."""

from __future__ import annotations

import codecs
import json

from sqlalchemy import text

from handlers.ids import Action, BlockId, Callback
from tests.fakes.slack_api import find_element
from tests.handlers.conftest import LEAD, REP, Harness

CSV = (
    b"first_name,last_name,email,locale\n"
    b"Jane,Doe,jane@example.com,en\n"
    b"Raj,Patel,raj@example.org,fr_FR\n"
    b"Jane,Again,JANE@example.com,\n"
    b"Bad,Row,not-an-email,\n"
)


def _form(files: list[dict] | None = None, segment: str = "", email: str = "",
          first: str = "", locale: str = "", consent: bool = False) -> dict:  # fmt: skip
    """state.values of the import modal, as Slack sends them."""

    def value(block: str, action: str, v: str) -> dict:
        return {block: {action: {"type": "plain_text_input", "value": v or None}}}

    values: dict = {}
    values.update(value(BlockId.NEW_SEGMENT, Action.NEW_SEGMENT, segment))
    values.update(value(BlockId.EMAIL, Action.EMAIL, email))
    values.update(value(BlockId.FIRST_NAME, Action.FIRST_NAME, first))
    values.update(value(BlockId.LAST_NAME, Action.LAST_NAME, ""))
    values.update(value(BlockId.LOCALE, Action.LOCALE, locale))
    values[BlockId.SEGMENT] = {Action.SEGMENT: {"type": "external_select",
                                                "selected_option": None}}  # fmt: skip
    values[BlockId.FILES] = {Action.FILES: {"type": "file_input", "files": files or []}}
    ticked = [{"text": {"type": "plain_text", "text": "These people agreed to hear from us"},
               "value": "agreed"}] if consent else []  # fmt: skip
    values[BlockId.CONSENT] = {Action.CONSENT: {"type": "checkboxes",
                                                "selected_options": ticked}}  # fmt: skip
    return values


async def _open_modal(app: Harness) -> str:
    reply = await app.requests.slash_command(text="import", user_id=REP, channel_id="C0001")
    assert reply.status == 200
    await app.slack.wait_for("views.open")
    views = app.slack.open_views(REP)
    assert views and views[-1]["callback_id"] == Callback.IMPORT
    return views[-1]["id"]


async def _review(app: Harness) -> dict:
    message = app.slack.find_action(Action.APPROVE, "C0001")
    assert message is not None, [m.get("text") for m in app.slack.messages]
    return message


async def _contacts_modal(app: Harness, form: dict) -> tuple[dict, dict]:
    """A rep submits the import form with `form`, then clicks *Review contacts*: the review
    message and the contacts modal that opened."""
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=form, view_id=view_id, user_id=REP)
    await app.settle()
    review = await _review(app)
    return review, await _open_contacts(app, review)


async def _open_contacts(app: Harness, review: dict) -> dict:
    """The rep clicks *Review contacts* on the review message: the modal that opened."""
    found = find_element(review["blocks"], Action.REVIEW_CONTACTS)
    assert found is not None
    await app.requests.block_action(Action.REVIEW_CONTACTS, found[1]["value"], user_id=REP,
                                    message_ts=review["ts"])  # fmt: skip
    await app.settle()
    return app.slack.open_views(REP)[-1]


async def _import_files(app: Harness, *files: tuple[str, str, bytes]) -> None:
    """A rep imports (file id, name, content) files into VIP through the form, all read."""
    view_id = await _open_modal(app)
    added = [app.slack.add_file(file_id, name, content) for file_id, name, content in files]
    await app.requests.view_submission(state_values=_form(files=added, segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()


async def _count(app: Harness, sql: str) -> int:
    async with app.db.begin() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def test_help_is_the_default_answer(app: Harness) -> None:
    reply = await app.requests.slash_command(text="", user_id=REP)
    assert reply.status == 200 and "/referral import" in json.dumps(reply.body)


async def test_whole_flow_from_command_to_result_in_the_thread(app: Harness) -> None:
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "referrals_q3.csv", CSV)
    reply = await app.requests.view_submission(
        state_values=_form(files=[file], segment="Q3 referrals", email="solo@example.com",
                           first="Solo"),
        view_id=view_id, user_id=REP,
    )  # fmt: skip
    assert reply.status == 200 and not reply.body
    await app.settle()
    message = await _review(app)
    rendered = json.dumps(message["blocks"])
    assert "Q3 referrals" in rendered and "referrals_q3.csv" in rendered
    assert "2 valid" in rendered and "1 duplicate " in rendered and "1 rejected" in rendered
    assert "solo@example.com" in rendered
    assert [d.token_sent for d in app.slack.downloads] == [True]
    # the reviewer sees why rows will be skipped, before approving; the CSV by DM
    (skipped,) = await app.csvs_sent(message["ts"])
    assert "not-an-email" in skipped.text
    # the duplicate names the row it repeats, as the merchant finds it in the file
    assert "Duplicate of line 2 of 'referrals_q3.csv'" in skipped.text

    # a rep can't approve
    await app.requests.block_action(Action.APPROVE, message["blocks"][-1]["elements"][2]["value"],
                                    user_id=REP, message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert "Only team leads" in app.slack.ephemerals[-1]["text"]
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 0

    batch_id = message["blocks"][-1]["elements"][2]["value"]
    await app.requests.block_action(Action.APPROVE, batch_id, user_id=LEAD,
                                    message_ts=message["ts"])  # fmt: skip
    await app.requests.block_action(
        Action.APPROVE, batch_id, user_id=LEAD, message_ts=message["ts"]
    )  # double click
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 3
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'import'") == 1
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert any("Imported into *Q3 referrals*" in t and "3 new contacts" in t for t in thread)
    assert any("Next step" in t for t in thread)
    assert len(app.slack.uploads) == 1
    record = app.slack.message("C0001", message["ts"])
    assert app.slack.find_action(Action.APPROVE, "C0001") is None  # read-only now
    assert f"<@{LEAD}>" in json.dumps(record["blocks"])
    assert app.slack.block_errors == []


async def test_one_customer_by_email_is_counted_in_the_singular(app: Harness) -> None:
    """The form's one customer by email, approved: the thread read "1 rows read, 1 valid.
    1 new contacts … 0 were already in it", and the review "*Total:* 1 rows"."""
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(segment="Solo", email="solo@example.com",
                                                          first="Solo"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    message = await _review(app)
    assert "*Total:* 1 row · *1 to import* · 0 duplicates · 0 rejected" in json.dumps(
        message["blocks"], ensure_ascii=False)  # fmt: skip
    await app.requests.block_action(Action.APPROVE, message["blocks"][-1]["elements"][2]["value"],
                                    user_id=LEAD, message_ts=message["ts"])  # fmt: skip
    await app.settle()
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    result = next(t for t in thread if t.startswith(":white_check_mark: Imported"))
    assert result.startswith(":white_check_mark: Imported into *Solo*: 1 row read, 1 valid.\n"
                             "• 1 new contact, 0 already known\n"
                             "• 1 added to the segment, 0 were already in it\n"
                             "• 0 duplicates and 0 rejected rows skipped"), result
    record = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert "1 new contact, 1 added to the segment" in record, record


async def test_the_skipped_rows_csv_in_the_thread_opens_in_excel_with_its_accents(
    app: Harness,
) -> None:
    """Excel opens a CSV without a byte order mark in the ANSI code page: the skipped-rows CSV
    of a French shop read "JosÃ© MÃ¼ller" (the segment export has a BOM for that reason)."""
    view_id = await _open_modal(app)
    data = "email,first_name,last_name\njosé@@example.com,José,Müller\n".encode()
    file = app.slack.add_file("F0009", "clients.csv", data)
    await app.requests.view_submission(state_values=_form(files=[file], segment="Clients"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()

    (skipped,) = await app.csvs_sent((await _review(app))["ts"])
    content = skipped.content or b""
    assert content.startswith(codecs.BOM_UTF8), content[:40]
    assert "José,Müller" in content.decode("utf-8-sig")


async def test_inline_errors_and_nothing_created(app: Harness) -> None:
    view_id = await _open_modal(app)
    pdf = app.slack.add_file("F0009", "deck.pdf", b"%PDF-1.4", filetype="pdf",
                             mimetype="application/pdf")  # fmt: skip
    reply = await app.requests.view_submission(
        state_values=_form(files=[pdf], email="nope@@x"), view_id=view_id, user_id=REP
    )
    assert reply.status == 200
    errors = reply.body["errors"]
    assert set(errors) == {BlockId.SEGMENT, BlockId.FILES, BlockId.EMAIL}
    assert "not a CSV" in errors[BlockId.FILES]
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 0
    # nothing to import: the form said "Add a CSV file", though a workbook or a ZIP does too
    empty = await app.requests.view_submission(state_values=_form(segment="Clients"),
                                               view_id=view_id, user_id=REP)  # fmt: skip
    assert empty.body["errors"][BlockId.FILES] == (
        "Add a file (CSV, Excel or ZIP), a Mailchimp list, or a customer's email below.")


async def test_every_file_the_form_refuses_is_named(app: Harness) -> None:
    """deck.pdf and notes.docx submitted together: the form's error named notes.docx only,
    and deck.pdf was refused again once notes.docx was taken out."""
    view_id = await _open_modal(app)
    pdf = app.slack.add_file("F0008", "deck.pdf", b"%PDF-1.4", filetype="pdf",
                             mimetype="application/pdf")  # fmt: skip
    docx = app.slack.add_file("F0009", "notes.docx", b"PK", filetype="docx",
                              mimetype="application/msword")  # fmt: skip
    reply = await app.requests.view_submission(
        state_values=_form(files=[pdf, docx], segment="Clients"), view_id=view_id, user_id=REP
    )
    said = reply.body["errors"][BlockId.FILES]
    assert "deck.pdf" in said and "notes.docx" in said, said
    assert len(said) <= 150, said


async def test_naming_all_customers_as_a_new_segment_says_what_to_do(app: Harness) -> None:
    from bot.workspaces import ensure_workspace

    await ensure_workspace(app.db, "T0001")
    view_id = await _open_modal(app)
    reply = await app.requests.view_submission(
        state_values=_form(email="a@example.com", segment="all customers"), view_id=view_id,
        user_id=REP)  # fmt: skip
    # not "choose it above": All Customers is never among the segments offered there
    assert reply.body["errors"] == {BlockId.NEW_SEGMENT: (
        "All Customers is built in and holds every contact already: name a segment to "
        "import into.")}  # fmt: skip


async def test_a_new_segment_name_that_cant_be_used_is_said_on_the_field(app: Harness) -> None:
    """Only invisible characters, or a reserved name: said on the field, not by a direct
    message after the form (and its files) closed."""
    view_id = await _open_modal(app)
    for name, said in (("\u200b", "A segment needs a name."),
                       ("deleted:3", "'deleted:3' is reserved: choose another name.")):
        reply = await app.requests.view_submission(
            state_values=_form(email="a@example.com", segment=name), view_id=view_id,
            user_id=REP)  # fmt: skip
        assert reply.body["errors"] == {BlockId.NEW_SEGMENT: said}
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 0


async def test_a_segment_deleted_while_the_form_was_open_is_said_on_the_field(
    app: Harness,
) -> None:
    """Chosen in the menu, then deleted by someone else before the form was submitted: the
    form closed, its files and typed fields lost, and a direct message said "That segment
    no longer exists." Said on the field instead, the form kept."""
    from bot.segments import delete_segment
    from bot.workspaces import ensure_workspace, import_target

    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "VIP", create=True)
    view_id = await _open_modal(app)
    await delete_segment(app.db, "T0001", segment.id or 0, actor=LEAD)
    form = _form(email="a@example.com")
    form[BlockId.SEGMENT][Action.SEGMENT]["selected_option"] = {
        "text": {"type": "plain_text", "text": "VIP"}, "value": str(segment.id)}
    reply = await app.requests.view_submission(state_values=form, view_id=view_id, user_id=REP)

    assert reply.body["errors"] == {BlockId.SEGMENT: (
        "That segment was deleted: choose another, or name a new one below.")}  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 0


async def test_remove_a_source_then_a_contact(app: Harness) -> None:
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "q3.csv", CSV)
    await app.requests.view_submission(
        state_values=_form(files=[file], segment="VIP", email="solo@example.com"),
        view_id=view_id, user_id=REP,
    )  # fmt: skip
    await app.settle()
    message = await _review(app)
    remove = [b for b in message["blocks"] if b.get("accessory", {}).get("action_id")
              == Action.REMOVE_SOURCE]  # fmt: skip
    await app.requests.block_action(Action.REMOVE_SOURCE, remove[1]["accessory"]["value"],
                                    user_id=REP, message_ts=message["ts"])  # fmt: skip
    await app.settle()
    rendered = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert "solo@example.com" not in rendered and "2 to import" in rendered

    batch = message["blocks"][-1]["elements"][0]["value"]
    await app.requests.block_action(Action.REVIEW_CONTACTS, batch, user_id=REP,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    modal = app.slack.open_views(REP)[-1]
    assert modal["callback_id"] == Callback.CONTACTS and "raj@example.org" in json.dumps(modal)
    raj = next(b for b in modal["blocks"] if "raj@example.org" in json.dumps(b))
    await app.requests.block_action(Action.REMOVE_CONTACT, raj["accessory"]["value"],
                                    user_id=REP, view=modal["id"])  # fmt: skip
    await app.settle()
    assert "raj@example.org" not in json.dumps(app.slack.views[modal["id"]]["blocks"])
    assert "1 to import" in json.dumps(app.slack.message("C0001", message["ts"])["blocks"])


async def test_another_workspaces_batch_id_does_nothing(app: Harness) -> None:
    """A forged button value naming a batch of another workspace in the same database."""
    from bot.imports.batches import create_batch, stage_contact
    from bot.workspaces import ensure_workspace, import_target

    await ensure_workspace(app.db, "T0002")
    segment = await import_target(app.db, "T0002", "Theirs", create=True)
    theirs = await create_batch(app.db, "T0002", segment.id, "U0900")
    await stage_contact(app.db, "T0002", theirs.id, email="their@example.com")
    for action in (Action.APPROVE, Action.REMOVE_SOURCE, Action.CANCEL, Action.WITHDRAW):
        value = f"{theirs.id}:1" if action == Action.REMOVE_SOURCE else str(theirs.id)
        reply = await app.requests.block_action(action, value, user_id=LEAD, message_ts="1.0")
        assert reply.status == 200, action
    await app.settle()
    notes = [e["text"] for e in app.slack.ephemerals]
    assert len(notes) == 4 and all("doesn't exist in this workspace" in n for n in notes)
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'import'") == 0
    assert await _count(app, "SELECT COUNT(*) FROM import_source WHERE removed") == 0
    assert await _count(app, "SELECT COUNT(*) FROM import_batch WHERE status = 'draft'") == 1


async def test_unsigned_or_stale_requests_are_refused(app: Harness) -> None:
    bad = await app.requests.slash_command(text="import", user_id=REP, bad_signature=True)
    stale = await app.requests.slash_command(text="import", user_id=REP, stale=True)
    assert (bad.status, stale.status) == (401, 401)
    await app.settle()
    assert app.slack.calls_to("views.open") == []


async def test_review_contacts_next_after_rows_went_skips_none(app: Harness) -> None:
    """The rep reads page 1 of *Review contacts* (a0-a4, b00-b04); meanwhile a lead removes
    a.csv on the review message. *Next* asked for offset 10 of the list as it is now, which
    starts at b10: b05-b09 were never shown to the rep, who approved without seeing them."""
    message, modal = await _two_files_reviewed(app, 5, 20)
    page1 = json.dumps(modal["blocks"])
    assert "a0@example.org" in page1 and "b04@example.com" in page1, page1
    assert "b05@example.com" not in page1
    await _remove_file(app, message, "a.csv")
    shown = await _page_click(app, modal, f"{Action.PAGE}_next")
    # the rep saw b00-b04 on page 1: page 2 goes on from b05
    assert _addresses(shown) == [f"b{i:02}@example.com" for i in range(5, 15)], shown
    assert "showing 6-15" in shown, shown
    shown = await _page_click(app, modal, Action.PAGE)
    # the five before it start the list: its first page, filled
    assert _addresses(shown) == [f"b{i:02}@example.com" for i in range(10)], shown
    assert "showing 1-10" in shown and '"Previous"' not in shown, shown
    assert app.slack.block_errors == []


async def _two_files_reviewed(app: Harness, a: int, b: int) -> tuple[dict, dict]:
    """A review of a.csv (a0...) and b.csv (b00...), and its Review contacts open (page 1)."""
    first = app.slack.add_file("F0001", "a.csv", b"email\n" + b"".join(
        f"a{i}@example.org\n".encode() for i in range(a)))  # fmt: skip
    second = app.slack.add_file("F0002", "b.csv", b"email\n" + b"".join(
        f"b{i:02}@example.com\n".encode() for i in range(b)))  # fmt: skip
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(files=[first, second], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    message = await _review(app)
    batch = find_element(message["blocks"], Action.REVIEW_CONTACTS)
    assert batch is not None
    await app.requests.block_action(Action.REVIEW_CONTACTS, batch[1]["value"], user_id=REP,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    return message, app.slack.open_views(REP)[-1]


async def _page_click(app: Harness, modal: dict, action: str) -> str:
    button = find_element(app.slack.views[modal["id"]]["blocks"], action)
    assert button is not None, action
    await app.requests.block_action(action, button[1]["value"], user_id=REP, view=modal["id"])
    await app.settle()
    return json.dumps(app.slack.views[modal["id"]]["blocks"])


async def _remove_file(app: Harness, message: dict, name: str) -> None:
    remove = next(b for b in message["blocks"]
                  if b.get("accessory", {}).get("action_id") == Action.REMOVE_SOURCE
                  and name in json.dumps(b))  # fmt: skip
    await app.requests.block_action(Action.REMOVE_SOURCE, remove["accessory"]["value"],
                                    user_id=LEAD, message_ts=message["ts"])  # fmt: skip
    await app.settle()


def _addresses(shown: str) -> list[str]:
    import re

    return sorted(set(re.findall(r"\w+@example\.\w+", shown)))


async def test_review_contacts_previous_after_the_rows_before_went_shows_the_first_page(
    app: Harness,
) -> None:
    """On page 2 (b00-b09), a lead removes a.csv (the rows before it): Previous showed the
    list's last page (b10-b19), moving forward."""
    message, modal = await _two_files_reviewed(app, 10, 20)
    shown = await _page_click(app, modal, f"{Action.PAGE}_next")
    assert _addresses(shown) == [f"b{i:02}@example.com" for i in range(10)], shown
    await _remove_file(app, message, "a.csv")
    shown = await _page_click(app, modal, Action.PAGE)
    assert _addresses(shown) == [f"b{i:02}@example.com" for i in range(10)], shown
    assert "showing 1-10" in shown and '"Previous"' not in shown, shown


async def test_review_contacts_next_past_the_rows_left_shows_the_last_page(
    app: Harness,
) -> None:
    """Page 1 shows a0-a9; a lead removes b.csv (every row after it): Next found nothing and
    showed the list's last page, read with a row id PostgreSQL refused (2**62 for an
    INTEGER): the listener failed and the modal kept its stale Next."""
    message, modal = await _two_files_reviewed(app, 10, 5)
    await _remove_file(app, message, "b.csv")
    shown = await _page_click(app, modal, f"{Action.PAGE}_next")
    assert _addresses(shown) == [f"a{i}@example.org" for i in range(10)], shown
    assert '"Next"' not in shown and "showing 1-10" in shown, shown
    assert app.slack.block_errors == []


async def test_review_contacts_past_the_last_page_shows_the_last_page_with_rows(
    app: Harness,
) -> None:
    """Rows can go by more than a page while the modal is open (a file removed on the review
    message): its next redraw stepped back one page only, to an empty page with only
    *Previous*. It shows the last page that has rows."""
    big = app.slack.add_file("F0001", "big.csv", b"email\n" + b"".join(
        f"p{i:02}@example.com\n".encode() for i in range(25)))  # fmt: skip
    small = app.slack.add_file("F0002", "small.csv",
                               b"email\nx1@example.org\nx2@example.org\nx3@example.org\n")
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(files=[big, small], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    message = await _review(app)
    batch = message["blocks"][-1]["elements"][0]["value"]
    await app.requests.block_action(Action.REVIEW_CONTACTS, batch, user_id=REP,
                                    message_ts=message["ts"])  # fmt: skip
    await app.settle()
    modal = app.slack.open_views(REP)[-1]
    for _ in range(2):  # to the third page: rows 21-28
        nxt = find_element(modal["blocks"], f"{Action.PAGE}_next")
        assert nxt is not None
        await app.requests.block_action(f"{Action.PAGE}_next", nxt[1]["value"], user_id=REP,
                                        view=modal["id"])  # fmt: skip
        await app.settle()
        modal = app.slack.views[modal["id"]]
    shown = json.dumps(modal["blocks"])
    assert "x1@example.org" in shown and "showing 21-28" in shown, shown
    remove = [b for b in message["blocks"] if b.get("accessory", {}).get("action_id")
              == Action.REMOVE_SOURCE]  # fmt: skip
    await app.requests.block_action(Action.REMOVE_SOURCE, remove[0]["accessory"]["value"],
                                    user_id=REP, message_ts=message["ts"])  # fmt: skip
    await app.settle()
    x1 = next(b for b in modal["blocks"] if "x1@example.org" in json.dumps(b))
    await app.requests.block_action(Action.REMOVE_CONTACT, x1["accessory"]["value"],
                                    user_id=REP, view=modal["id"])  # fmt: skip
    await app.settle()
    shown = json.dumps(app.slack.views[modal["id"]]["blocks"])
    assert "x2@example.org" in shown and "x3@example.org" in shown, shown
    assert "showing 1-2" in shown and "Previous" not in shown, shown


async def test_review_contacts_opens_before_the_import_rows_are_counted(app: Harness) -> None:
    """A trigger id lives 3 s: the list opened only once the import's rows were counted and
    read (a million of them, or a database busy with an apply, could outlast it). It opens
    first, saying it is loading, and is filled after."""
    file = app.slack.add_file("F0001", "q3.csv", CSV)
    await _contacts_modal(app, _form(files=[file], segment="VIP"))

    (opened,) = app.slack.calls_to("views.open")[-1:]
    assert "Loading…" in json.dumps(opened.args, ensure_ascii=False)
    assert "jane@example.com" not in json.dumps(opened.args)
    assert "jane@example.com" in json.dumps(app.slack.open_views(REP)[-1])


async def test_two_files_of_one_name_get_skipped_rows_csvs_told_apart(app: Harness) -> None:
    """Two files both called customers.csv got skipped-rows CSVs of one name, one title and
    one comment: nobody could tell which export a row came from."""
    await _import_files(app, ("F0001", "customers.csv", b"email\nnot-an-email\n"),
                        ("F0002", "customers.csv", b"email\nbad@@x\n"))
    shared = sorted((u.filename, u.title) for u in await app.csvs_sent((await _review(app))["ts"]))
    assert shared == [
        ("customers _2_-skipped-rows.csv",
         "customers (2).csv: rows that won't be imported, and why"),
        ("customers-skipped-rows.csv", "customers.csv: rows that won't be imported, and why"),
    ], shared  # fmt: skip
