"""Clicks that race each other, and duplicates decided over what remains in a batch."""

from __future__ import annotations

import asyncio
import copy
import io
import json
from typing import Any

import pytest

import handlers.import_modal as import_modal
from bot.imports.batches import add_source, create_batch, stage_contact, stage_csv
from bot.imports.review import load
from bot.workspaces import ensure_workspace, import_target
from handlers.ids import Action, BlockId
from tests.fakes.slack_api import Call, find_element
from tests.handlers.conftest import LEAD, REP, Harness, csv_offers
from tests.handlers.test_all_sources import _all_sources, _buttons, _import_zip, _value
from tests.handlers.test_decisions import _start
from tests.handlers.test_import_flow import (
    _contacts_modal,
    _count,
    _form,
    _open_modal,
    _review,
)

ADMIN = "U0ADMIN"  # a second lead: an admin of this workspace


async def test_approve_and_reject_racing_import_a_batch_if_and_only_if_approve_won(
    app: Harness,
) -> None:
    app.slack.users[ADMIN] = {"is_admin": True}
    await ensure_workspace(app.db, "T0001")
    batches = []
    for i in range(12):
        segment = await import_target(app.db, "T0001", f"Race {i}", create=True)
        batch = await create_batch(app.db, "T0001", segment.id or 0, REP)
        await stage_contact(app.db, "T0001", batch.id or 0, email=f"racer{i}@example.com")
        batches.append(batch.id)
    clicks = []
    for batch_id in batches:
        clicks.append(app.requests.block_action(Action.APPROVE, str(batch_id), user_id=LEAD,
                                                message_ts="1.0"))  # fmt: skip
        clicks.append(app.requests.block_action(Action.REJECT, str(batch_id), user_id=ADMIN,
                                                message_ts="1.0"))  # fmt: skip
    replies = await asyncio.gather(*clicks)
    assert all(r.status == 200 for r in replies)
    await app.settle()

    done = rejected = 0
    for i, batch_id in enumerate(batches):
        view = await load(app.db, "T0001", batch_id)
        members = await _count(app, f"SELECT COUNT(*) FROM segment_member "
                                    f"WHERE segment_id = {view.segment.id}")  # fmt: skip
        imported = await _count(app, f"SELECT COUNT(*) FROM contact "
                                     f"WHERE email = 'racer{i}@example.com'")  # fmt: skip
        assert view.batch.status in ("done", "rejected"), view.batch.status
        if view.batch.status == "done":
            done += 1
            assert members == imported == 1 and view.batch.approved_by == LEAD
        else:
            rejected += 1
            assert members == imported == 0 and view.batch.approved_by == ADMIN
    # every loser was told the real state, and only the losers were
    told = {user: [e["text"] for e in app.slack.ephemerals if e["user"] == user]
            for user in (LEAD, ADMIN)}  # fmt: skip
    assert len(told[LEAD]) == rejected and all("already rejected" in t for t in told[LEAD])
    assert len(told[ADMIN]) == done and all("already approved" in t or "already imported" in t
                                            for t in told[ADMIN])  # fmt: skip
    assert await _count(app, "SELECT COUNT(*) FROM job WHERE kind = 'import'") == done


def _csv(emails: list[str]) -> bytes:
    return ("email,first_name\n" + "".join(f"{e},{e[:3]}\n" for e in emails)).encode()


@pytest.mark.parametrize("chosen", [True, False], ids=["segment chosen", "segment typed"])
async def test_the_import_form_submitted_twice_makes_one_import_and_one_review(
    app: Harness, chosen: bool
) -> None:
    """*Review import* pressed again (Slack said it had trouble connecting when the answer
    was slow, and the form stayed open): each submission made an import and posted a review
    of the same files. The form's second submission does nothing."""
    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "VIP", create=True) if chosen else None
    view_id = await _open_modal(app)
    file = app.slack.add_file("F0001", "q3.csv", b"email\nada@example.com\n", user=REP)
    form = _form(files=[file], segment="" if segment else "VIP")
    if segment is not None:
        form[BlockId.SEGMENT][Action.SEGMENT]["selected_option"] = {
            "text": {"type": "plain_text", "text": "VIP"}, "value": str(segment.id)}
    view = {k: v for k, v in app.slack.views[view_id].items() if not k.startswith("_")}
    for _ in range(2):
        await app.requests.view_submission(state_values=form, view=view, user_id=REP)
    await app.settle()

    assert await _count(app, "SELECT COUNT(*) FROM import_batch") == 1
    assert await _count(app, "SELECT COUNT(*) FROM import_source") == 1
    reviews = [m for m in app.slack.messages if m["text"].startswith("Contact import")]
    assert len(reviews) == 1, [m["text"] for m in app.slack.messages]
    dm = app.slack.dm_channels.get(REP)
    assert app.slack.ephemerals == [] and (dm is None or app.slack.messages_in(dm) == [])


async def test_removing_a_file_gives_its_duplicates_in_another_file_back(app: Harness) -> None:
    shared = [f"shared{i}@example.com" for i in range(10)]
    file_a = app.slack.add_file("F000A", "a.csv", _csv(shared + [f"a{i}@example.com"
                                                                 for i in range(10)]))  # fmt: skip
    file_b = app.slack.add_file("F000B", "b.csv", _csv([s.upper() for s in shared]
                                                       + [f"b{i}@example.com" for i in range(5)]))
    view_id = await _open_modal(app)
    await app.requests.view_submission(state_values=_form(files=[file_a, file_b], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.settle()
    message = await _review(app)
    rendered = json.dumps(message["blocks"], ensure_ascii=False)
    assert "20 valid" in rendered and "5 valid · 10 duplicates" in rendered
    assert "25 to import" in rendered

    remove_a = next(b for b in message["blocks"] if "a.csv" in json.dumps(b)
                    and b.get("accessory", {}).get("action_id") == Action.REMOVE_SOURCE)
    await app.requests.block_action(Action.REMOVE_SOURCE, remove_a["accessory"]["value"],
                                    user_id=REP, message_ts=message["ts"])  # fmt: skip
    await app.settle()
    rendered = json.dumps(app.slack.message("C0001", message["ts"])["blocks"], ensure_ascii=False)
    assert "15 valid · 0 duplicates" in rendered and "15 to import" in rendered
    assert "a.csv" not in rendered

    batch = message["blocks"][-1]["elements"][2]["value"]
    await app.requests.block_action(Action.APPROVE, batch, user_id=LEAD, message_ts=message["ts"])
    await app.settle()
    assert await _count(app, "SELECT COUNT(*) FROM contact") == 15
    emails = await _count(app, "SELECT COUNT(*) FROM contact WHERE email LIKE 'SHARED%'")
    assert emails == 10  # B's own spelling: its rows are the ones imported
    view = await load(app.db, "T0001", int(batch))
    b = view.batch
    assert (b.rows, b.valid, b.duplicates, b.rejected) == (15, 15, 0, 0)
    assert b.rows == b.valid + b.duplicates + b.rejected
    assert b.valid == b.new_contacts + b.existing_contacts == b.added_to_segment
    thread = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert any("15 rows read, 15 valid" in t for t in thread)


def _redraws(app: Harness, message: dict[str, Any]) -> list[Call]:
    """The chat.update calls on the review message so far."""
    return [c for c in app.slack.calls_to("chat.update") if c.args.get("ts") == message["ts"]]


async def test_removing_a_file_shares_anew_the_skipped_rows_of_files_it_repeated(
    app: Harness,
) -> None:
    """b.csv's and c.csv's skipped-rows CSVs in the thread list their repeats of a.csv's
    addresses as duplicates that won't be imported; once a.csv is removed they are imported,
    so the thread must not keep saying they won't be."""
    shared = [f"shared{i}@example.com" for i in range(3)]
    file_a = app.slack.add_file("F000A", "a.csv", _csv([*shared, "only-a@example.com"]))
    file_b = app.slack.add_file("F000B", "b.csv", _csv([*shared, "b@example.com"])
                                + b"not-an-email,Bad\n")  # fmt: skip
    file_c = app.slack.add_file("F000C", "c.csv", _csv(["ONLY-A@example.com"]))
    view_id = await _open_modal(app)
    await app.requests.view_submission(
        state_values=_form(files=[file_a, file_b, file_c], segment="VIP"), view_id=view_id,
        user_id=REP)  # fmt: skip
    await app.settle()
    message = await _review(app)

    async def csvs() -> dict[str, list[tuple[str, str]]]:
        """file name -> (comment, rows) of each skipped-rows CSV offered in the thread, in
        order: the CSV its button brings now, with what its DM says over it"""
        out: dict[str, list[tuple[str, str]]] = {}
        for u in await app.csvs_sent(message["ts"]):
            out.setdefault(u.filename.split("-skipped")[0], []).append(
                (u.initial_comment or "", u.text))
        return out

    assert [c for c, _ in (await csvs())["b"]] == [
        "1 rejected row and 3 duplicate rows in *b.csv* won't be imported; this CSV says why."]
    assert len((await csvs())["c"]) == 1 and "a" not in await csvs()

    remove_a = next(b for b in message["blocks"] if "a.csv" in json.dumps(b)
                    and b.get("accessory", {}).get("action_id") == Action.REMOVE_SOURCE)
    updates = len(_redraws(app, message))
    await app.requests.block_action(Action.REMOVE_SOURCE, remove_a["accessory"]["value"],
                                    user_id=REP, message_ts=message["ts"])  # fmt: skip
    await app.settle()
    assert len(_redraws(app, message)) == updates + 1  # once, not once more per file shared
    rendered = json.dumps(app.slack.message("C0001", message["ts"])["blocks"],
                          ensure_ascii=False)  # fmt: skip
    assert "4 valid · 0 duplicates · 1 rejected" in rendered, rendered
    assert "1 valid · 0 duplicates · 0 rejected" in rendered, rendered
    (_, (comment, rows)) = (await csvs())["b"]  # two offers, each bringing b.csv's CSV now
    assert comment.startswith("1 rejected row in *b.csv*"), comment
    assert "not-an-email" in rows and "shared" not in rows
    assert "c" not in await csvs()  # its offer's button says none is skipped now
    assert len(csv_offers(app.slack, message["ts"])) == 3
    told = [m["text"] for m in app.slack.messages_in("C0001", message["ts"])]
    assert told.count("None of the rows of *c.csv* are skipped now: its skipped-rows CSV "
                      "above no longer applies.") == 1, told


async def test_removing_a_contact_removes_every_row_of_its_address(app: Harness) -> None:
    """A repeat customer (a row per order): Remove let the next row in, so the contact removed
    stayed listed and was imported unless Remove was pressed once per line."""
    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "VIP", create=True)
    batch = await create_batch(app.db, "T0001", segment.id or 0, REP)
    source = await add_source(app.db, "T0001", batch.id or 0, "csv", "a.csv")
    rows = _csv(["x@example.com", "X@example.com", "y@example.com", "x@EXAMPLE.com"])
    await stage_csv(app.db, "T0001", source.id or 0, io.BytesIO(rows))
    view = await load(app.db, "T0001", batch.id or 0)
    assert view.totals.valid == 2 and view.totals.duplicates == 2
    from bot.imports.review import contacts_page, remove_contact

    rows, _ = await contacts_page(app.db, "T0001", batch.id or 0)
    assert await remove_contact(app.db, "T0001", batch.id or 0, rows[0].id) == [source.id]
    view = await load(app.db, "T0001", batch.id or 0)
    assert (view.totals.rows, view.totals.valid, view.totals.duplicates) == (1, 1, 0)
    rows, _ = await contacts_page(app.db, "T0001", batch.id or 0)
    assert [r.email for r in rows] == ["y@example.com"]


async def test_two_files_read_at_once_never_both_count_an_address(app: Harness) -> None:
    await ensure_workspace(app.db, "T0001")
    segment = await import_target(app.db, "T0001", "VIP", create=True)
    batch = await create_batch(app.db, "T0001", segment.id or 0, REP)
    emails = [f"both{i}@example.com" for i in range(20_000)]
    sources = [await add_source(app.db, "T0001", batch.id or 0, "csv", f"{n}.csv")
               for n in ("a", "b")]  # fmt: skip
    await asyncio.gather(*(stage_csv(app.db, "T0001", s.id or 0, io.BytesIO(_csv(emails)))
                           for s in sources))  # fmt: skip
    view = await load(app.db, "T0001", batch.id or 0)
    assert view.totals.valid == 20_000 and view.totals.duplicates == 20_000


async def test_two_quick_removes_in_review_contacts_leave_neither_listed(app: Harness) -> None:
    """Two Removes clicked on the same screen: the second's redraw met a hash_conflict (the
    first had redrawn it, from the database before the second removal) and was dropped, so
    the modal listed the removed contact, with its Remove button, for good."""
    csv = b"email,first_name\n" + b"".join(f"p{i}@example.com,P{i}\n".encode()
                                            for i in range(5))  # fmt: skip
    file = app.slack.add_file("F0001", "q.csv", csv)
    review, modal = await _contacts_modal(app, _form(files=[file], segment="VIP"))
    seen = copy.deepcopy(modal)  # the screen both clicks were made on
    rows = [b for b in seen["blocks"]
            if b.get("accessory", {}).get("action_id") == Action.REMOVE_CONTACT]  # fmt: skip
    for address in ("p0@example.com", "p1@example.com"):
        row = next(b for b in rows if address in json.dumps(b))
        await app.requests.block_action(Action.REMOVE_CONTACT, row["accessory"]["value"],
                                        user_id=REP, view=seen)  # fmt: skip
        await app.settle()
    shown = json.dumps(app.slack.views[modal["id"]]["blocks"])
    assert "p0@example.com" not in shown and "p1@example.com" not in shown
    assert "3 to import" in json.dumps(app.slack.message("C0001", review["ts"])["blocks"])


async def test_two_quick_removes_in_all_sources_leave_neither_listed(app: Harness) -> None:
    entries = [(f"e{i:02}.csv", f"email\np{i}@example.com\n".encode()) for i in range(1, 36)]
    review = await _import_zip(app, entries)
    modal = await _all_sources(app, review, REP)
    seen = copy.deepcopy(modal)
    removes = _buttons(seen["blocks"], Action.SOURCES_REMOVE)
    for name in ("e31.csv", "e32.csv"):
        await app.requests.block_action(Action.SOURCES_REMOVE, _value(removes, name),
                                        user_id=REP, view=seen)  # fmt: skip
        await app.settle()
    shown = json.dumps(app.slack.views[modal["id"]]["blocks"], ensure_ascii=False)
    assert "e31.csv" not in shown and "e32.csv" not in shown
    assert "33 to import" in json.dumps(app.slack.message("C0001", review["ts"])["blocks"],
                                        ensure_ascii=False)  # fmt: skip


async def test_a_file_failing_while_its_review_is_posted_says_why_in_the_review(
    app: Harness,
) -> None:
    """nomail.csv's reading ended (failed: no email column) while chat.postMessage of the
    review was on its way: the reading's report found no message to redraw, and the review
    said "Reading…" and "1 file(s) still being read" for good, with no reason and no *Map
    columns*."""
    file = app.slack.add_file("F0001", "nomail.csv", b"name,city\nAda,London\nBob,Paris\n")
    view_id = await _open_modal(app)
    posts = len(app.slack.calls_to("chat.postMessage"))
    gate = app.slack.hold("chat.postMessage")
    await app.requests.view_submission(state_values=_form(files=[file], segment="VIP"),
                                       view_id=view_id, user_id=REP)  # fmt: skip
    await app.slack.wait_for("chat.postMessage", count=posts + 1, timeout=30)  # on its way
    assert await app.worker.run_until_idle() >= 1  # meanwhile the file is read, and fails
    assert await _count(app, "SELECT COUNT(*) FROM import_source WHERE status = 'failed'") == 1
    app.slack.unhold("chat.postMessage")
    gate.set()
    await app.settle()
    review = app.slack.message("C0001", (await _review(app))["ts"])
    rendered = json.dumps(review["blocks"], ensure_ascii=False)
    assert "Reading…" not in rendered and "still being read" not in rendered, rendered
    assert ":warning: No email column found. Columns found: 'name', 'city'." in rendered
    assert find_element(review["blocks"], Action.MAP_COLUMNS) is not None


async def test_two_add_more_forms_with_the_same_file_add_it_once(
    app: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two *Add more* forms naming the same Slack file, submitted at once: each checked the
    import's files before either added one, and both added it (listed as more.csv and
    more (2).csv, downloaded, read and counted twice)."""
    message, batch = await _start(app)
    app.slack.add_file("F0003", "more.csv", b"email\nnew@example.com\n")
    views = []
    for _ in range(2):
        await app.requests.block_action(Action.ADD_MORE, batch, user_id=REP,
                                        message_ts=message["ts"])  # fmt: skip
        await app.settle()
        views.append(app.slack.open_views(REP)[-1]["id"])
    # the forms' checks of the import's files made in pairs, one of each form, so both
    # have checked before either adds: the interleaving of two submissions a moment apart
    real, calls, pairs = import_modal.new_files, 0, [asyncio.Event() for _ in range(4)]

    async def new_files(*args: Any) -> Any:
        nonlocal calls
        pair, calls = pairs[calls // 2], calls + 1
        if calls % 2 == 0:
            pair.set()
        await asyncio.wait_for(pair.wait(), 5)
        return await real(*args)

    monkeypatch.setattr(import_modal, "new_files", new_files)
    await asyncio.gather(*(app.requests.view_submission(
        state_values=_form(files=[app.slack.file_object("F0003")]), view_id=view, user_id=REP)
        for view in views))  # fmt: skip
    await app.settle()
    assert calls == 4
    added = "SELECT COUNT(*) FROM import_source WHERE ref = 'F0003' AND removed = false"
    assert await _count(app, added) == 1
    shown = json.dumps(app.slack.message("C0001", message["ts"])["blocks"])
    assert "more.csv" in shown and "more (2).csv" not in shown, shown
