"""Two files of one name in an import are told apart wherever the review names them."""

from __future__ import annotations

from handlers.ids import Action
from tests.handlers.conftest import REP, Harness
from tests.handlers.test_all_sources import _buttons
from tests.handlers.test_import_flow import _form, _open_modal, _review


async def test_two_files_of_one_name_are_told_apart_on_the_review_message(app: Harness) -> None:
    """Two files both called customers.csv showed one name twice, each with its counts and its
    *Remove*: nobody could tell which export was which, or which one Remove would take out.
    They are named as their skipped-rows CSVs are: customers.csv and customers (2).csv."""
    view_id = await _open_modal(app)
    a = app.slack.add_file("F0001", "customers.csv", b"email\nann@example.com\n")
    b = app.slack.add_file("F0002", "customers.csv", b"email\nraj@example.org\nbad@@x\n")
    await app.requests.view_submission(state_values=_form(files=[a, b], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    review = app.slack.message("C0001", (await _review(app))["ts"])
    lines = [line.split("\n")[:2] for line in _buttons(review["blocks"], Action.REMOVE_SOURCE)]
    assert lines == [
        ["*customers.csv* (CSV file)", ":white_check_mark: 1 valid · 0 duplicates · 0 rejected"],
        ["*customers (2).csv* (CSV file)",
         ":white_check_mark: 1 valid · 0 duplicates · 1 rejected"],
    ], lines  # fmt: skip
