"""Button values naming an id that no INTEGER column holds (past 2,147,483,647): read as any
other value that isn't ours, an old or forged button, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from bot.ids import digits
from handlers.ids import Action
from tests.handlers.conftest import LEAD, Harness
from tests.handlers.test_contact_search import _click, _command, _import, _rendered

PAST_INTEGER = ["2147483648", "99999999999", "999999999999999999"]


@pytest.mark.parametrize("value", ["1", "2147483647", "0002147483647"])
def test_an_id_an_integer_column_holds_is_read(value: str) -> None:
    assert digits(value) == int(value) <= 2**31 - 1  # an INTEGER column's largest


@pytest.mark.parametrize("value", PAST_INTEGER)
def test_an_id_past_what_an_integer_column_holds_is_none_of_ours(value: str) -> None:
    assert digits(value) is None


def _told(answers: list[dict[str, Any]]) -> str:
    return json.dumps(answers, ensure_ascii=False)


@pytest.mark.parametrize("value", PAST_INTEGER)
async def test_a_button_naming_an_id_past_an_integer_column_is_refused_in_words(
    app: Harness, caplog: pytest.LogCaptureFixture, value: str,
) -> None:  # fmt: skip
    """On PostgreSQL a contact's Show or Delete, or a segment's Export, whose value named
    99999999999 failed in the database ("value out of int32 range"): the person was told
    "Something went wrong" and a `listener failed` traceback was logged."""
    await _import(app, "VIP", "ada@example.com,Ada,Lovelace\n")
    shown = await _command(app, "ada")
    listing = await app.listing("segments", LEAD)
    with caplog.at_level(logging.INFO):
        show = await _click(app, Action.CONTACT_SHOW, shown, value=value)
        delete = await _click(app, Action.CONTACT_DELETE, shown, value=value)
        export = await app.click_in(listing, Action.SEGMENT_EXPORT, f"{value}:0", LEAD)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    for answer in (show, delete):
        assert "doesn't name a contact: it may come from an old message" in _rendered(answer)
    told = _told(export) + _told(app.slack.ephemerals)
    assert "Something went wrong" not in told, told
    assert "That button doesn't name a segment: it may come from an old message." in told, told
