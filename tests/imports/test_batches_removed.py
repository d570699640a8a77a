"""A contact removed from an import (*Review contacts*) stays out of what is added after."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from bot.imports.batches import (
    add_source,
    confirm_consent,
    create_batch,
    get_batch,
    stage_contact,
    stage_csv,
    write_rejects,
)
from bot.imports.review import approve, contacts_page, load, remove_contact
from bot.mailchimp.importing import stage_audience
from bot.workspaces import ensure_workspace, import_target
from models import Database, SourceKind

TEAM = "T0REMOVED"


async def _batch(db: Database) -> int:
    await ensure_workspace(db, TEAM)
    segment = await import_target(db, TEAM, "VIP", create=True)
    return (await create_batch(db, TEAM, segment.id or 0, "U1")).id or 0


async def _file(db: Database, batch: int, name: str, data: bytes) -> int:
    source = await add_source(db, TEAM, batch, SourceKind.CSV, name)
    await stage_csv(db, TEAM, source.id or 0, io.BytesIO(data))
    return source.id or 0


async def _remove(db: Database, batch: int, email: str) -> None:
    rows, _ = await contacts_page(db, TEAM, batch, query=email, limit=50)
    (row,) = [r for r in rows if r.email.casefold() == email.casefold()]
    await remove_contact(db, TEAM, batch, row.id)


@contextmanager
def _statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_a_removed_contact_stays_out_of_every_source_added_after(db: Database) -> None:
    """Removed, jane came back in a file, a customer typed in or a Mailchimp list added
    after: only the rows of the import as it stood were removed, and a later source's row of
    the address counted as new (removed rows are no address already seen)."""
    batch = await _batch(db)
    await _file(db, batch, "q3.csv", b"email\njane@example.com\nraj@example.org\n")
    await _remove(db, batch, "jane@example.com")
    assert (await load(db, TEAM, batch)).totals.valid == 1

    more = await _file(db, batch, "more.csv",
                       b"email\nJane@Example.com\nnew@example.com\njane@example.com\n")
    await stage_contact(db, TEAM, batch, email="JANE@example.com")
    audience = await add_source(db, TEAM, batch, SourceKind.MAILCHIMP, "Newsletter", ref="a1")
    await stage_audience(db, TEAM, audience, [
        {"email_address": "jane@example.com", "status": "subscribed"},
        {"email_address": "mc@example.com", "status": "subscribed"},
    ])  # fmt: skip

    view = await load(db, TEAM, batch)
    assert [s.status for s in view.sources] == ["parsed"] * 4
    assert (view.totals.valid, view.totals.duplicates) == (3, 0), view.totals  # raj, new, mc
    assert view.counts[more].rows == 1, view.counts  # new@: jane's two rows count nowhere
    shown, total = await contacts_page(db, TEAM, batch, limit=50)
    assert total == 3 and "jane@example.com" not in {r.email.casefold() for r in shown}
    out = io.StringIO()
    await write_rejects(db, TEAM, batch, out)
    assert "jane" not in out.getvalue().casefold()  # removed: no skipped row of it either


async def test_a_removed_source_or_a_failed_one_removes_nothing_after(db: Database) -> None:
    """Removals of a file taken out of the import went with it: its addresses may come back."""
    from bot.imports.review import remove_source

    batch = await _batch(db)
    q3 = await _file(db, batch, "q3.csv", b"email\njane@example.com\nraj@example.org\n")
    await _remove(db, batch, "jane@example.com")
    await remove_source(db, TEAM, batch, q3)
    await _file(db, batch, "more.csv", b"email\njane@example.com\n")
    assert (await load(db, TEAM, batch)).totals.valid == 1


async def test_no_removal_costs_a_file_nothing_more(db: Database) -> None:
    """With no contact removed from the import, staging a file reads the batch's addresses as
    it did (one pass, removed rows included) and writes no removal: a million-row file pays
    nothing for it. A typed-in customer looks once, and writes nothing either."""
    batch = await _batch(db)
    await _file(db, batch, "q3.csv", b"email\njane@example.com\nraj@example.org\n")
    with _statements(db) as seen:
        await _file(db, batch, "more.csv", b"email\njane@example.com\nnew@example.com\n")
    assert not [s for s in seen if "SET removed = " in s and "removed = removed" not in s], seen
    assert not [s for s in seen if "r.removed" in s or ("LIMIT 1" in s and "removed" in s)], seen
    with _statements(db) as seen:
        await stage_contact(db, TEAM, batch, email="solo@example.com")
    assert not [s for s in seen if "SET removed = " in s and "removed = removed" not in s], seen
    assert (await load(db, TEAM, batch)).totals.valid == 4


async def test_a_duplicate_names_the_row_it_repeats(db: Database) -> None:
    """The skipped-rows CSV says which row each duplicate repeats (the one imported), so a
    merchant fixing an export finds it; a row whose earlier one left the review is imported
    instead, and another duplicate of it then names it."""
    import csv

    batch = await _batch(db)
    a = await _file(db, batch, "a.csv",
                    b"email\nann@example.com\nbob@example.com\nANN@example.com\n")
    await _file(db, batch, "b.csv", b"email\ncy@example.com\nBob@Example.com\n")
    await stage_contact(db, TEAM, batch, email="cy@example.com")
    audience = await add_source(db, TEAM, batch, SourceKind.MAILCHIMP, "Newsletter", ref="a1")
    await stage_audience(db, TEAM, audience, [
        {"email_address": "dee@example.com", "status": "subscribed"},
    ])  # fmt: skip
    await _file(db, batch, "c.csv", b"email\ndee@example.com\n")

    def reasons(text: str) -> dict[tuple[str, str], str]:
        return {(r["source"], r["email"]): r["reason"] for r in csv.DictReader(io.StringIO(text))}

    out = io.StringIO()
    await write_rejects(db, TEAM, batch, out)
    assert reasons(out.getvalue()) == {
        ("a.csv", "ANN@example.com"): "Duplicate of line 2 of 'a.csv'",
        ("b.csv", "Bob@example.com"): "Duplicate of line 3 of 'a.csv'",
        ("cy@example.com", "cy@example.com"): "Duplicate of line 2 of 'b.csv'",
        ("c.csv", "dee@example.com"): "Duplicate of a member of the Mailchimp audience "
                                      "'Newsletter'",
    }
    one = io.StringIO()  # one source's skipped rows (Slack's per-file download) too
    await write_rejects(db, TEAM, batch, one, source_id=a)
    assert reasons(one.getvalue()) == {
        ("a.csv", "ANN@example.com"): "Duplicate of line 2 of 'a.csv'"}

    await _remove(db, batch, "bob@example.com")  # bob's first row leaves the review
    out = io.StringIO()
    await write_rejects(db, TEAM, batch, out)
    assert "bob@" not in out.getvalue().casefold()

    # a.csv removed: ann's row in d.csv (added after) is imported instead, and its next
    # duplicate names that one, not the removed file's row, which stays as it was staged
    from bot.imports.review import remove_source

    later = await _file(db, batch, "d.csv", b"email\nann@example.com\nAnn@example.com\n")
    await remove_source(db, TEAM, batch, a, actor="U1")
    out = io.StringIO()
    await write_rejects(db, TEAM, batch, out, source_id=later)
    assert reasons(out.getvalue()) == {
        ("d.csv", "Ann@example.com"): "Duplicate of line 2 of 'd.csv'"}


async def test_a_second_remove_or_confirm_consent_leaves_the_review_as_drawn(
    db: Database,
) -> None:
    """A double click's second *Remove* (or *Confirm consent*) changes nothing, yet it counted
    the import's revision up: a lead's *Approve* on the review drawn after the first click
    was refused as "changed after the message you clicked was drawn"."""
    batch = await _batch(db)
    await stage_contact(db, TEAM, batch, email="ann@example.com")
    await stage_contact(db, TEAM, batch, email="bob@example.com")
    rows, _ = await contacts_page(db, TEAM, batch)
    ann = next(r for r in rows if r.email == "ann@example.com")
    assert await remove_contact(db, TEAM, batch, ann.id) == []
    assert await confirm_consent(db, TEAM, batch, "U1")
    drawn = (await get_batch(db, TEAM, batch)).revision
    assert await remove_contact(db, TEAM, batch, ann.id) == []  # the second clicks
    assert not await confirm_consent(db, TEAM, batch, "U1")
    assert (await get_batch(db, TEAM, batch)).revision == drawn
    assert (await approve(db, TEAM, batch, "U0LEAD", seen=drawn)).valid == 1


async def test_an_address_taken_out_of_a_review_is_forgotten_with_the_staged_rows(
    db: Database,
) -> None:  # fmt: skip
    """Zed asked not to be imported: a lead took the address out in *Review contacts* and
    rejected the import. Its staged rows went after STAGED_RETENTION_DAYS, but the audit
    entry ("edited import #N (removed zed@example.com)") kept the address for good, of
    someone never a contact, whom no `contacts delete` can find."""
    from datetime import timedelta

    from sqlalchemy import bindparam, text
    from sqlmodel.sql.sqltypes import UTCDateTime

    from bot.imports.retention import FORGOTTEN_REMOVAL, purge_staged
    from bot.imports.review import reject
    from models.clock import utcnow

    batch = await _batch(db)
    await _file(db, batch, "q3.csv",
                b"email,first_name\nada@example.com,Ada\nzed@example.com,Zed\n")  # fmt: skip
    await _remove(db, batch, "zed@example.com")
    await reject(db, TEAM, batch, "U2")
    await purge_staged(db, TEAM, 30, 7)  # too soon: the review's words stay
    detail = text("SELECT detail FROM audit_entry WHERE team_id = :t "
                  "AND action = 'import.contact_removed'")  # fmt: skip
    async with db.begin() as conn:
        assert (await conn.execute(detail, {"t": TEAM})).scalars().all() == [
            "removed zed@example.com"]  # fmt: skip
        await conn.execute(text("UPDATE import_batch SET finished_at = :d").bindparams(
            bindparam("d", type_=UTCDateTime())), {"d": utcnow() - timedelta(days=31)})
    await purge_staged(db, TEAM, 30, 7)
    async with db.begin() as conn:
        staged = (await conn.execute(text("SELECT COUNT(*) FROM staged_row WHERE team_id = :t"),
                                     {"t": TEAM})).scalar()  # fmt: skip
        kept = (await conn.execute(detail, {"t": TEAM})).scalars().all()
    assert (staged, kept) == (0, [FORGOTTEN_REMOVAL])
