"""Two files of one name in an import are told apart wherever the review names them."""

from __future__ import annotations

from typing import Any

from handlers.ids import Action, Callback
from tests.fakes.slack_api import find_element
from tests.handlers.conftest import REP, Harness
from tests.handlers.test_all_sources import _buttons
from tests.handlers.test_import_flow import _form, _open_modal, _review
from tests.handlers.test_leads_and_audit import _all_text, _command


async def _two_customers_csv(app: Harness) -> dict[str, Any]:
    """A rep imports two files both called customers.csv (Ann's, then Raj's with a bad row):
    the review message once both are read."""
    view_id = await _open_modal(app)
    a = app.slack.add_file("F0001", "customers.csv", b"email\nann@example.com\n")
    b = app.slack.add_file("F0002", "customers.csv", b"email\nraj@example.org\nbad@@x\n")
    await app.requests.view_submission(state_values=_form(files=[a, b], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
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
    review = await _two_customers_csv(app)
    found = find_element(review["blocks"], Action.REVIEW_CONTACTS)
    assert found is not None
    await app.requests.block_action(Action.REVIEW_CONTACTS, found[1]["value"], user_id=REP,
                                    message_ts=review["ts"])  # fmt: skip
    await app.settle()
    modal = app.slack.open_views(REP)[-1]
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
