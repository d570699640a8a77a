"""Mailchimp's ZIP, Excel workbooks and consent columns as a person meets them in Slack: an
upload or the import form, the review message's sources and notes, then the import."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from bot.workspaces import ensure_workspace, import_target
from handlers.ids import Action, BlockId
from tests.fakes.slack_requests import file_shared_event
from tests.handlers.conftest import LEAD, REP, Harness
from tests.handlers.test_import_flow import _form, _open_modal, _review
from tests.imports import exports
from tests.imports.test_archives import bomb

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _source_texts(message: dict[str, Any]) -> list[str]:
    """The review message's source lines (the sections with a Remove button), as sent."""
    return [b["text"]["text"] for b in message["blocks"]
            if b.get("accessory", {}).get("action_id") == Action.REMOVE_SOURCE]  # fmt: skip


async def _submitted(app: Harness, segment: str, *files: dict[str, Any]) -> list[str]:
    """Send the import form with `files` (added to the fake first); the review's source lines."""
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(files=list(files), segment=segment),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    return _source_texts(app.slack.message("C0001", (await _review(app))["ts"]))


async def _count(app: Harness, sql: str) -> int:
    async with app.db.begin() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def test_an_uploaded_mailchimp_zip_becomes_three_sources(app: Harness) -> None:
    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "Newsletter", create=True)
    name = "audience <!channel>.zip"  # file names are the uploader's to choose
    app.slack.add_file("F0100", name, exports.mailchimp_zip(), filetype="zip",
                       mimetype="application/zip", channels=["C0001"])  # fmt: skip
    assert (await app.requests.event(file_shared_event("F0100"), event_id="Ev10")).status == 200
    await app.settle()
    offers = [m for m in app.slack.messages if "audience" in m.get("text", "")]
    assert len(offers) == 1 and "&lt;!channel&gt;" in offers[0]["text"]

    chosen = {BlockId.UPLOAD: {Action.UPLOAD_SEGMENT: {
        "type": "external_select", "selected_option": {
            "text": {"type": "plain_text", "text": "Newsletter"}, "value": str(segment.id)}}}}
    await app.requests.block_action(Action.UPLOAD_REVIEW, "F0100", user_id=REP,
                                    message_ts=offers[0]["ts"], state_values=chosen)
    await app.settle()  # fmt: skip
    review = app.slack.message("C0001", (await _review(app))["ts"])
    lines = _source_texts(review)
    assert len(lines) == 3, lines
    prefix = "*audience &lt;!channel&gt;.zip › "
    assert [line.split("\n")[0] for line in lines] == [
        f"{prefix}{exports.SUBSCRIBED_CSV}* (CSV in a ZIP)",
        f"{prefix}{exports.UNSUBSCRIBED_CSV}* (CSV in a ZIP)",
        f"{prefix}{exports.CLEANED_CSV}* (CSV in a ZIP)",
    ]
    assert "2 valid · 0 duplicates · 0 rejected" in lines[0]
    assert ":information_source: Recognised as Mailchimp's subscribed members export." in lines[0]
    assert ("Not read from audience &lt;!channel&gt;.zip (only its CSV files are): “readme.txt”"
            in lines[0])  # fmt: skip
    assert "1 valid" in lines[1] and "imported as unsubscribed" in lines[1]
    assert "0 valid · 0 duplicates · 2 rejected" in lines[2] and "addresses bounced" in lines[2]
    assert "<!channel>" not in json.dumps(review["blocks"])
    assert "*Total:* 5 rows · *3 to import*" in json.dumps(review["blocks"], ensure_ascii=False)
    skipped = await app.csvs_sent(review["ts"])
    assert len(skipped) == 1 and "cleaned by Mailchimp (address bounced)" in skipped[0].text

    batch = review["blocks"][-1]["elements"][0]["value"]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=review["ts"])
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 3
    assert await _count(app, "SELECT COUNT(*) FROM contact WHERE NOT subscribed") == 1
    assert await _count(app, "SELECT COUNT(*) FROM import_source") == 3
    assert app.slack.block_errors == []


async def test_an_xlsx_and_a_consent_column_through_the_import_form(app: Harness) -> None:
    view_id = await _open_modal(app)
    modal = app.slack.open_views(REP)[-1]
    inputs = [b["element"] for b in modal["blocks"] if b.get("block_id") == BlockId.FILES]
    assert {"xlsx", "zip", "csv"} <= set(inputs[0]["filetypes"])
    workbook = app.slack.add_file("F0101", "Kunden.xlsx", exports.xlsx_workbook(),
                                  filetype="xlsx", mimetype=XLSX)  # fmt: skip
    profiles = app.slack.add_file("F0102", "klaviyo.csv", exports.klaviyo_profiles())
    reply = await app.requests.view_submission(
        state_values=_form(files=[workbook, profiles], segment="Kunden"), view_id=view_id,
        user_id=REP,
    )  # fmt: skip
    assert reply.status == 200 and not reply.body
    await app.settle()
    review = app.slack.message("C0001", (await _review(app))["ts"])
    excel, klaviyo = _source_texts(review)
    assert excel.startswith("*Kunden.xlsx* (Excel file)\n:white_check_mark: 2 valid")
    assert "1 rejected" in excel
    assert "Only the sheet “Customers” was read; not read: “Notes”." in excel
    assert "5 valid · 0 duplicates · 0 rejected · 2 with a warning" in klaviyo
    assert (":warning: 2 rows have a consent value we don't recognise: “MAYBE” (1), “maybe” (1)."
            in klaviyo)  # fmt: skip

    batch = review["blocks"][-1]["elements"][0]["value"]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=review["ts"])
    await app.settle()
    async with app.db.begin() as conn:
        rows = (await conn.execute(text(
            "SELECT email, locale, subscribed FROM contact ORDER BY email"))).all()  # fmt: skip
    contacts = {r[0]: (r[1], bool(r[2])) for r in rows}
    assert contacts["jurgen@example.de"] == ("de", True)
    assert contacts["maybe1@example.com"] == (None, False)
    assert contacts["never@example.com"] == (None, False)
    assert len(contacts) == 7
    assert app.slack.block_errors == []


async def test_a_macro_enabled_workbook_is_read_like_any_workbook(app: Harness) -> None:
    """An .xlsm was refused ("not a CSV file: export it as CSV") though it is the same
    workbook to read (its macros never run)."""
    modal_files = await _submitted(app, "Kunden", app.slack.add_file(
        "F0105", "Kunden.xlsm", exports.xlsx_workbook(), filetype="xlsm",
        mimetype="application/vnd.ms-excel.sheet.macroEnabled.12"))  # fmt: skip
    (line,) = modal_files
    assert line.startswith("*Kunden.xlsm* (Excel file)\n:white_check_mark: 2 valid"), line


async def test_a_zip_bomb_from_the_form_fails_its_source_with_a_sentence(app: Harness) -> None:
    file = app.slack.add_file("F0103", "export.zip", bomb(2 * 1024 * 1024), filetype="zip",
                              mimetype="application/zip")  # fmt: skip
    (line,) = await _submitted(app, "Bomb", file)
    assert line.startswith("*export.zip* (ZIP file)\n:warning: contacts.csv in this ZIP is "
                           "compressed")  # fmt: skip
    assert "which is how a ZIP bomb looks" in line
    assert await _count(app, "SELECT COUNT(*) FROM staged_row") == 0
    assert await _count(app, "SELECT COUNT(*) FROM import_source") == 1


async def test_a_file_is_called_what_its_bytes_are_not_what_its_name_says(app: Harness) -> None:
    """A workbook saved as "contacts.csv" is read as the workbook it is, and the review says
    so (it said "CSV file", from the name)."""
    workbook = app.slack.add_file("F0104", "contacts.csv", exports.xlsx_workbook())
    plain = app.slack.add_file("F0105", "klaviyo.csv", exports.klaviyo_profiles())
    excel, csv = await _submitted(app, "Named", workbook, plain)
    assert excel.startswith("*contacts.csv* (Excel file)\n:white_check_mark: 2 valid"), excel
    assert csv.startswith("*klaviyo.csv* (CSV file)\n:white_check_mark: 5 valid"), csv


async def test_a_files_name_in_a_note_never_turns_it_into_a_warning(app: Harness) -> None:
    """Notes quote the names of sheets and files; one named like the consent warning once
    got a :warning: and made unknown locales read as "with a warning"."""
    import io
    import zipfile

    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("contacts.csv", "email,locale\nann@example.com,Klingon\n"
                                         "bob@example.com,fr\n")  # fmt: skip
        archive.writestr("a consent value we don't recognise.txt", "hello")
    file = app.slack.add_file("F0106", "export.zip", packed.getvalue(), filetype="zip",
                              mimetype="application/zip")  # fmt: skip
    (line,) = await _submitted(app, "Names", file)
    assert "2 valid · 0 duplicates · 0 rejected · 1 with an unknown locale" in line, line
    assert ":information_source: Not read from export.zip" in line, line
    assert ":warning:" not in line, line


async def test_a_warning_of_cells_past_the_header_is_no_rows_warning(app: Harness) -> None:
    """A file's warning came to speak of cells past the header too: unknown locales were then
    counted "with a warning" beside a warning line about something else."""
    file = app.slack.add_file("F0107", "contacts.csv", b"email,locale\nann@example.com,Klingon\n"
                                                       b"bob@example.com,fr,extra\n")  # fmt: skip
    (line,) = await _submitted(app, "Past", file)
    assert "2 valid · 0 duplicates · 0 rejected · 1 with an unknown locale" in line, line
    assert ":warning: 1 row has more cells than the header has columns (line 3)" in line, line
