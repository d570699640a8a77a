"""Two files of one name in an import are told apart wherever the review names them."""

from __future__ import annotations

import csv
import io
from typing import Any

from handlers.ids import Action, Callback
from tests.handlers.conftest import REP, Harness
from tests.handlers.test_all_sources import _buttons
from tests.handlers.test_column_mapping import _state
from tests.handlers.test_import_flow import (
    _form,
    _import_files,
    _open_contacts,
    _open_modal,
    _review,
)
from tests.handlers.test_leads_and_audit import _all_text, _command
from tests.imports.exports import zip_bytes


async def _two_customers_csv(app: Harness) -> dict[str, Any]:
    """A rep imports two files both called customers.csv (Ann's, then Raj's with a bad row):
    the review message once both are read."""
    await _import_files(app, ("F0001", "customers.csv", b"email\nann@example.com\n"),
                        ("F0002", "customers.csv", b"email\nraj@example.org\nbad@@x\n"))
    return app.slack.message("C0001", (await _review(app))["ts"])


def _button_of(review: dict[str, Any], action: str, name: str) -> str:
    """The value of the `action` button of the source shown as `name` on the review."""
    (value,) = [v for line, v in _buttons(review["blocks"], action).items()
                if line.startswith(f"*{name}*")]  # fmt: skip
    return value


async def test_two_files_of_one_name_are_told_apart_on_the_review_message(app: Harness) -> None:
    """Two files both called customers.csv showed one name twice, each with its counts and its
    *Remove*: nobody could tell which export was which, or which one Remove would take out.
    They are named as their skipped-rows CSVs are: customers.csv and customers (2).csv."""
    review = await _two_customers_csv(app)
    lines = [line.split("\n")[:2] for line in _buttons(review["blocks"], Action.REMOVE_SOURCE)]
    assert lines == [
        ["*customers.csv* (CSV file)", ":white_check_mark: 1 valid · 0 duplicates · 0 rejected"],
        ["*customers (2).csv* (CSV file)",
         ":white_check_mark: 1 valid · 0 duplicates · 1 rejected"],
    ], lines  # fmt: skip


async def test_review_contacts_names_each_contacts_file_told_apart(app: Harness) -> None:
    """*Review contacts* said "from customers.csv" under Ann and Raj alike, though they came
    from two different exports: each row names its file as the review message does."""
    modal = await _open_contacts(app, await _two_customers_csv(app))
    assert modal["callback_id"] == Callback.CONTACTS
    rows = [b["text"]["text"] for b in modal["blocks"]
            if b.get("accessory", {}).get("action_id") == Action.REMOVE_CONTACT]  # fmt: skip
    assert [row.split("  ", 1)[1] for row in rows] == [
        "ann@example.com\ndefault locale · from customers.csv",
        "raj@example.org\ndefault locale · from customers (2).csv",
    ], rows
    assert app.slack.block_errors == []


async def test_map_columns_of_the_second_file_of_one_name_names_it_so(app: Harness) -> None:
    """*Map columns* under "customers (2).csv" opened a modal asking about the columns of
    "customers.csv": the rep could not tell which of the two files it would read again."""
    review = await _two_customers_csv(app)
    await app.requests.block_action(Action.MAP_COLUMNS,
                                    _button_of(review, Action.MAP_COLUMNS, "customers (2).csv"),
                                    user_id=REP, message_ts=review["ts"])  # fmt: skip
    await app.done()
    modal = app.slack.open_views(REP)[-1]
    assert modal["callback_id"] == Callback.MAP_COLUMNS
    assert modal["blocks"][0]["text"]["text"].startswith(
        "Which column of *customers (2).csv* holds each field?"), modal["blocks"][0]
    assert app.slack.block_errors == []


async def test_the_audit_log_says_which_file_of_one_name_was_removed(app: Harness) -> None:
    """Removing the second customers.csv was logged as "removed customers.csv": the log
    could not say which of the two exports left the import. It names it as the review
    message did when *Remove* was clicked."""
    review = await _two_customers_csv(app)
    await app.requests.block_action(Action.REMOVE_SOURCE,
                                    _button_of(review, Action.REMOVE_SOURCE, "customers (2).csv"),
                                    user_id=REP, message_ts=review["ts"])  # fmt: skip
    await app.settle()
    shown = _all_text(await _command(app, "audit"))
    assert "removed customers (2).csv" in shown, shown
    assert "removed customers.csv" not in shown, shown


async def test_the_skipped_rows_csv_of_the_second_file_of_one_name_names_it_so(
    app: Harness,
) -> None:
    """The CSV shared as "customers (2).csv: rows that won't be imported" said customers.csv
    in its source column, on every row: opened beside the other file's, the rows read as
    the first export's. Its rows name their file as its title does."""
    review = await _two_customers_csv(app)
    (shared,) = await app.csvs_sent(review["ts"])
    assert shared.title == "customers (2).csv: rows that won't be imported, and why"
    rows = list(csv.reader(io.StringIO((shared.content or b"").decode("utf-8-sig"))))
    assert [(row[0], row[2]) for row in rows[1:]] == [("customers (2).csv", "bad@@x")], rows


async def test_a_csv_gone_from_the_second_zip_of_one_name_is_named_so(app: Harness) -> None:
    """Two uploads of export.zip, each with a customers.csv: *Map columns* on the second's,
    whose file in Slack was replaced meanwhile by one without it, failed it with "export.zip ›
    customers.csv is no longer in export.zip" under the name "export.zip › customers (2).csv",
    as if the other upload's were gone. The warning names it as the line it is under."""
    view_id = await _open_modal(app)
    files = [app.slack.add_file(f"F000{n}", "export.zip",
                                zip_bytes({"customers.csv": f"email\nc{n}@example.com\n".encode()}),
                                filetype="zip", mimetype="application/zip")
             for n in (1, 2)]  # fmt: skip
    await app.requests.view_submission(state_values=_form(files=files, segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    review = app.slack.message("C0001", (await _review(app))["ts"])
    name = "export.zip › customers (2).csv"
    await app.requests.block_action(Action.MAP_COLUMNS,
                                    _button_of(review, Action.MAP_COLUMNS, name),
                                    user_id=REP, message_ts=review["ts"])  # fmt: skip
    await app.done()
    modal = app.slack.open_views(REP)[-1]
    assert modal["callback_id"] == Callback.MAP_COLUMNS
    # replaced in Slack while the modal was open
    app.slack.add_file("F0002", "export.zip", zip_bytes({"other.csv": b"email\nx@example.com\n"}),
                       filetype="zip", mimetype="application/zip")  # fmt: skip
    choice = _state(email="0", first_name="none", last_name="none", locale="none",
                    subscribed="none")  # fmt: skip
    await app.requests.view_submission(state_values=choice, view_id=modal["id"], user_id=REP)
    await app.settle()
    lines = _buttons(app.slack.message("C0001", review["ts"])["blocks"], Action.REMOVE_SOURCE)
    (gone,) = [line for line in lines if line.startswith(f"*{name}*")]
    assert gone.endswith(f":warning: {name} is no longer in export.zip."), gone
