"""*All sources*: every source of an import reachable from Slack, with its buttons, though the
review message has room for 30 of them and 10 *Map columns* rows."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from handlers.ids import Action, Callback
from tests.fakes.slack_api import find_element
from tests.handlers.conftest import REP, Harness
from tests.handlers.test_column_mapping import WORK, _state
from tests.handlers.test_import_flow import _form, _open_modal, _review
from tests.imports.exports import zip_bytes

STRANGER = "U0777"


async def _import_zip(app: Harness, entries: list[tuple[str, bytes]]) -> dict[str, Any]:
    """A rep imports export.zip with `/referral import`: the review message once it is read."""
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0500", "export.zip", zip_bytes(dict(entries)), filetype="zip",
                              mimetype="application/zip")  # fmt: skip
    await app.requests.view_submission(state_values=_form(files=[file], segment="Zip"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    return app.slack.message("C0001", (await _review(app))["ts"])


def _buttons(blocks: list[dict[str, Any]], action: str) -> dict[str, str]:
    """The source line's text -> value of each `action` button (Remove on the line itself,
    Map columns in the row under it)."""
    found: dict[str, str] = {}
    for i, block in enumerate(blocks):
        line = block.get("text", {}).get("text", "")
        if block.get("accessory", {}).get("action_id") == action:
            found[line] = block["accessory"]["value"]
        elif block["type"] == "actions" and i and any(e["action_id"] == action
                                                      for e in block["elements"]):  # fmt: skip
            found[blocks[i - 1]["text"]["text"]] = block["elements"][0]["value"]
    return found


def _value(buttons: dict[str, str], name: str) -> str:
    (value,) = [v for line, v in buttons.items() if f" {name}*" in line]
    return value


async def _all_sources(app: Harness, review: dict[str, Any], user: str) -> dict[str, Any]:
    found = find_element(review["blocks"], Action.SOURCES_OPEN)
    assert found is not None, json.dumps(review["blocks"])[-600:]
    await app.requests.block_action(Action.SOURCES_OPEN, found[1]["value"], user_id=user,
                                    message_ts=review["ts"])  # fmt: skip
    await app.done()
    modal = app.slack.open_views(user)[-1]
    assert modal["callback_id"] == Callback.SOURCES
    return modal


async def _removed(app: Harness) -> set[str]:
    async with app.db.begin() as conn:
        return set((await conn.execute(text(
            "SELECT label FROM import_source WHERE removed"))).scalars())  # fmt: skip


async def test_sources_past_the_30th_can_be_removed_and_mapped_from_slack(app: Harness) -> None:
    # a ZIP of 35 CSVs: e34 has a name with Slack markup and repeats e01's address, e35's
    # email column can't be told
    entries = [(f"e{i:02}.csv", f"email\np{i}@example.com\n".encode()) for i in range(1, 34)]
    entries += [("<!channel> e34.csv", b"email\np1@example.com\np34@example.com\n"),
                ("e35.csv", WORK)]  # fmt: skip
    review = await _import_zip(app, entries)
    shown = json.dumps(review["blocks"], ensure_ascii=False)
    assert len(review["blocks"]) <= 50
    assert "e30.csv" in shown and "e31.csv" not in shown
    assert "…and 5 more sources (counted in the total)" in shown
    assert "*Total:* 35 rows · *34 to import* · 1 duplicate " in shown

    # anyone may look; only the requester or a lead may change
    theirs = await _all_sources(app, review, STRANGER)
    await app.requests.block_action(Action.SOURCES_REMOVE,
                                    _value(_buttons(theirs["blocks"], Action.SOURCES_REMOVE),
                                           "e31.csv"),
                                    user_id=STRANGER, view=theirs)  # fmt: skip
    await app.done()
    told = [m["text"] for m in app.slack.messages_in(app.slack.dm_channels[STRANGER])]
    assert any("who asked for this import, or a team lead can change it" in t for t in told)
    assert await _removed(app) == set()

    modal = await _all_sources(app, review, REP)
    listed = json.dumps(modal["blocks"], ensure_ascii=False)
    assert "sources 31–35 of 35" in listed
    removes = _buttons(modal["blocks"], Action.SOURCES_REMOVE)
    assert len(removes) == 5 and len(_buttons(modal["blocks"], Action.MAP_COLUMNS)) == 5
    assert "&lt;!channel&gt; e34.csv" in listed and "<!channel>" not in listed

    # Remove e34: the modal and the review message say so, and e01's duplicate is gone
    await app.requests.block_action(Action.SOURCES_REMOVE, _value(removes, "e34.csv"),
                                    user_id=REP, view=modal)  # fmt: skip
    await app.settle()
    assert await _removed(app) == {"export.zip › <!channel> e34.csv"}
    modal = app.slack.views[modal["id"]]
    listed = json.dumps(modal["blocks"], ensure_ascii=False)
    assert "sources 31–34 of 34" in listed and "e34.csv" not in listed
    review = app.slack.message("C0001", review["ts"])
    shown = json.dumps(review["blocks"], ensure_ascii=False)
    assert "…and 4 more sources" in shown
    assert "*Total:* 33 rows · *33 to import* · 0 duplicates" in shown

    # Map columns on e35 opens on top of the list; the file is read again with the choice
    await app.requests.block_action(
        Action.MAP_COLUMNS, _value(_buttons(modal["blocks"], Action.MAP_COLUMNS), "e35.csv"),
        user_id=REP, view=modal)  # fmt: skip
    await app.done()
    mapping = app.slack.open_views(REP)[-1]
    assert mapping["callback_id"] == Callback.MAP_COLUMNS
    assert mapping["previous_view_id"] == modal["id"]  # closing it goes back to the list
    await app.requests.view_submission(
        state_values=_state(email="1", first_name="2", last_name="none", locale="3",
                            subscribed="none"),
        view_id=mapping["id"], user_id=REP)  # fmt: skip
    await app.settle()
    shown = json.dumps(app.slack.message("C0001", review["ts"])["blocks"], ensure_ascii=False)
    assert "*Total:* 37 rows · *36 to import*" in shown

    # Previous: the message's 30, each with Map columns (the message has room for 10 rows)
    await app.requests.block_action(Action.SOURCES_PREVIOUS, "0", user_id=REP,
                                    view=app.slack.views[modal["id"]])  # fmt: skip
    await app.done()
    first = app.slack.views[modal["id"]]
    assert "sources 1–30 of 34" in json.dumps(first["blocks"], ensure_ascii=False)
    assert len(_buttons(first["blocks"], Action.MAP_COLUMNS)) == 30
    assert len(first["blocks"]) <= 100
    assert app.slack.block_errors == []


async def test_files_past_the_tenth_get_map_columns_from_all_sources(app: Harness) -> None:
    entries = [(f"e{i:02}.csv", f"email\np{i}@example.com\n".encode()) for i in range(1, 13)]
    review = await _import_zip(app, entries)
    shown = json.dumps(review["blocks"], ensure_ascii=False)
    assert len(_buttons(review["blocks"], Action.MAP_COLUMNS)) == 10
    assert "*Map columns* for 2 more files: under *All sources*." in shown
    modal = await _all_sources(app, review, REP)
    maps = _buttons(modal["blocks"], Action.MAP_COLUMNS)
    assert len(maps) == 12 and "Next" not in json.dumps(modal["blocks"])
    await app.requests.block_action(Action.MAP_COLUMNS, _value(maps, "e12.csv"), user_id=REP,
                                    view=modal)  # fmt: skip
    await app.done()
    mapping = app.slack.open_views(REP)[-1]
    assert mapping["callback_id"] == Callback.MAP_COLUMNS
    assert "export.zip › e12.csv" in json.dumps(mapping["blocks"], ensure_ascii=False)
    assert app.slack.block_errors == []


async def test_past_the_30th_the_files_shown_without_map_columns_are_said_too(
    app: Harness,
) -> None:
    """35 files, e25's email column can't be told: the message shows it failed but has no
    room for its *Map columns* (10 rows, e01–e10's), and said only that *All sources* lists
    the 5 sources past the 30th, opening on them; nothing led to e25's *Map columns*."""
    entries = [(f"e{i:02}.csv", f"email\np{i}@example.com\n".encode()) for i in range(1, 36)]
    entries[24] = ("e25.csv", WORK)
    review = await _import_zip(app, entries)
    assert len(review["blocks"]) <= 50
    assert "e25.csv" not in json.dumps(_buttons(review["blocks"], Action.MAP_COLUMNS))
    (line,) = [b["text"]["text"] for b in review["blocks"]
               if b.get("accessory", {}).get("action_id") == Action.SOURCES_OPEN]  # fmt: skip
    assert line == ("…and 5 more sources (counted in the total): *All sources* lists them with "
                    "their buttons.\n*Map columns* for 20 more files: *All sources*, then "
                    "*Previous*.")  # fmt: skip
    modal = await _all_sources(app, review, REP)
    assert "sources 31–35 of 35" in json.dumps(modal["blocks"], ensure_ascii=False)
    await app.requests.block_action(Action.SOURCES_PREVIOUS, "0", user_id=REP, view=modal)
    await app.done()
    first = app.slack.views[modal["id"]]
    assert ":warning:" in _line(first, "e25.csv")  # failed: mapping its columns reads it
    await app.requests.block_action(Action.MAP_COLUMNS,
                                    _value(_buttons(first["blocks"], Action.MAP_COLUMNS),
                                           "e25.csv"),
                                    user_id=REP, view=first)  # fmt: skip
    await app.done()
    mapping = app.slack.open_views(REP)[-1]
    assert mapping["callback_id"] == Callback.MAP_COLUMNS
    assert "export.zip › e25.csv" in json.dumps(mapping["blocks"], ensure_ascii=False)
    assert app.slack.block_errors == []


def _line(modal: dict[str, Any], name: str) -> str:
    (line,) = [b["text"]["text"] for b in modal["blocks"]
               if f" {name}*" in b.get("text", {}).get("text", "")]  # fmt: skip
    return line


async def test_the_list_under_map_columns_shows_the_file_read_again(app: Harness) -> None:
    # e12's email column can't be told: All sources lists it failed, with Map columns
    entries = [(f"e{i:02}.csv", f"email\np{i}@example.com\n".encode()) for i in range(1, 12)]
    review = await _import_zip(app, [*entries, ("e12.csv", WORK)])
    modal = await _all_sources(app, review, REP)
    assert ":warning:" in _line(modal, "e12.csv")
    await app.requests.block_action(Action.MAP_COLUMNS,
                                    _value(_buttons(modal["blocks"], Action.MAP_COLUMNS),
                                           "e12.csv"),
                                    user_id=REP, view=modal)  # fmt: skip
    await app.done()
    mapping = app.slack.open_views(REP)[-1]
    await app.requests.view_submission(
        state_values=_state(email="1", first_name="2", last_name="none", locale="3",
                            subscribed="none"),
        view_id=mapping["id"], user_id=REP)  # fmt: skip
    await app.done()
    # saved: the list below says the file is being read, as the review message does
    assert "Reading…" in _line(app.slack.views[modal["id"]], "e12.csv")
    await app.settle()
    # read: the list below shows its new counts (and its Map columns again) at once
    listed = app.slack.views[modal["id"]]
    assert "3 valid · 0 duplicates · 1 rejected" in _line(listed, "e12.csv")
    assert "e12.csv" in " ".join(_buttons(listed["blocks"], Action.MAP_COLUMNS))
    assert "sources 1–12 of 12" in json.dumps(listed["blocks"], ensure_ascii=False)
    assert "Saved" in json.dumps(app.slack.views[mapping["id"]]["blocks"])  # still on top
    assert app.slack.block_errors == []
