"""The import engine against a real database: counts add up, re-runs change nothing."""

from __future__ import annotations

import asyncio
import io

import asyncpg
import pytest
from sqlalchemy import text

from bot.imports.batches import (
    add_source,
    create_batch,
    queue_batch,
    stage_contact,
    stage_csv,
    write_rejects,
)
from bot.imports.engine import BatchStateError, apply_batch
from bot.imports.importer import ImportFailed, import_files
from bot.workspaces import WorkspaceError, ensure_workspace, import_target, segment_sizes
from models import Database, SourceKind
from tests.conftest import BACKEND, POSTGRES_URL

MESSY = (
    "\ufeffFirst Name;Last Name;Email;Locale;Notes\r\n"
    "Jane;Doe;jane@example.com;fr_FR;vip\r\n"
    ";;\r\n"
    "Raj;Patel; RAJ@Example.org ;;\r\n"
    "Jürgen;Müller;jane@EXAMPLE.com;de;dup of jane\r\n"
    "Nobody;Here;not-an-email;;\r\n"
    '"Ann; Marie";"O\'Neil";ann@example.net;klingon;"multi\r\nline note"\r\n'
    "\r\n"
    ";Solo;solo@example.com;;\r\n"
)


async def _counts(db: Database, team: str) -> dict[str, int]:
    async with db.begin() as conn:
        contacts = (
            await conn.execute(text("SELECT COUNT(*) FROM contact WHERE team_id = :t"), {"t": team})
        ).scalar_one()
        members = (
            await conn.execute(
                text("SELECT COUNT(*) FROM segment_member WHERE team_id = :t"), {"t": team}
            )
        ).scalar_one()
    return {"contacts": contacts, "members": members}


async def _contacts(db: Database, team: str) -> dict[str, tuple[str, str, str | None]]:
    async with db.begin() as conn:
        rows = await conn.execute(
            text("SELECT email, first_name, last_name, locale FROM contact WHERE team_id = :t"),
            {"t": team},
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _identities(batch) -> None:  # type: ignore[no-untyped-def]
    assert batch.rows == batch.valid + batch.duplicates + batch.rejected
    assert batch.valid == batch.new_contacts + batch.existing_contacts
    assert batch.valid == batch.added_to_segment + batch.already_in_segment


async def _import(db: Database, team: str, data: str | bytes, segment: str = "VIP", **kw):  # type: ignore[no-untyped-def]
    raw = data.encode() if isinstance(data, str) else data
    return await import_files(
        db, team, [("contacts.csv", io.BytesIO(raw))], segment=segment, create_segment=True, **kw
    )


async def test_messy_file_lands_with_counts_that_add_up(db: Database) -> None:
    await ensure_workspace(db, "T1")
    out = io.StringIO()
    result = await _import(db, "T1", MESSY, rejects=out)
    batch = result.batch
    assert (batch.rows, batch.valid, batch.duplicates, batch.rejected, batch.warnings) == (
        6, 4, 1, 1, 1,
    )  # fmt: skip
    assert (batch.new_contacts, batch.added_to_segment) == (4, 4)
    _identities(batch)
    contacts = await _contacts(db, "T1")
    assert contacts == {
        "jane@example.com": ("Jane", "Doe", "fr-FR"),
        "RAJ@example.org": ("Raj", "Patel", None),
        "ann@example.net": ("Ann; Marie", "O'Neil", None),
        "solo@example.com": ("solo", "Solo", None),
    }
    rejects = out.getvalue().splitlines()
    assert rejects[0] == "source,line,email,first_name,last_name,locale,subscribed,outcome,reason"
    assert rejects[1].startswith("contacts.csv,5,jane@example.com,Jürgen,Müller,de,,duplicate,")
    assert rejects[2].startswith("contacts.csv,6,not-an-email,Nobody,Here,,,rejected,Invalid email")
    assert len(rejects) == 3


async def test_running_a_finished_batch_again_changes_nothing(db: Database) -> None:
    await ensure_workspace(db, "T1")
    first = (await _import(db, "T1", MESSY)).batch
    before = await _counts(db, "T1")
    again = await apply_batch(db, "T1", first.id)
    assert again.new_contacts == first.new_contacts == 4
    assert await _counts(db, "T1") == before == {"contacts": 4, "members": 4}


async def test_reimport_finds_everyone_known_and_keeps_their_details(db: Database) -> None:
    await ensure_workspace(db, "T1")
    await _import(db, "T1", MESSY)
    changed = (
        "email,first_name,last_name\nJANE@example.com,Janet,Changed\nnew@example.com,New,One\n"
    )
    batch = (await _import(db, "T1", changed)).batch
    assert (batch.new_contacts, batch.existing_contacts) == (1, 1)
    assert (batch.added_to_segment, batch.already_in_segment) == (1, 1)
    _identities(batch)
    contacts = await _contacts(db, "T1")
    assert contacts["jane@example.com"] == ("Jane", "Doe", "fr-FR")  # not overwritten
    assert await _counts(db, "T1") == {"contacts": 5, "members": 5}


async def test_update_existing_overwrites_names_but_keeps_a_known_locale(db: Database) -> None:
    await ensure_workspace(db, "T1")
    await _import(db, "T1", MESSY)
    changed = "email,first_name,last_name\njane@example.com,Janet,Changed\n"
    await _import(db, "T1", changed, update_existing=True)
    assert (await _contacts(db, "T1"))["jane@example.com"] == ("Janet", "Changed", "fr-FR")


async def test_update_existing_with_a_file_that_names_nobody_keeps_the_names(
    db: Database,
) -> None:
    """A consent-only export imported with --update-existing (the README's way to re-subscribe
    people) renamed every known contact after their address ("jane", "bo") and blanked
    their last names."""
    await ensure_workspace(db, "T1")
    await _import(db, "T1", "email,first_name,last_name\njane@example.com,Jane,Doe\n"
                            "bo+shop@example.com,Bo,Lund\nbo@example.com,bo,Lowercase\n")
    consent_only = ("email,accepts_marketing\njane@example.com,yes\nbo+shop@example.com,yes\n"
                    "bo@example.com,yes\n")  # fmt: skip
    await _import(db, "T1", consent_only, update_existing=True)
    contacts = await _contacts(db, "T1")
    assert contacts["jane@example.com"][:2] == ("Jane", "Doe")
    assert contacts["bo+shop@example.com"][:2] == ("Bo", "Lund")
    assert contacts["bo@example.com"][:2] == ("bo", "Lowercase")


async def test_second_segment_reuses_contacts(db: Database) -> None:
    await ensure_workspace(db, "T1")
    await _import(db, "T1", MESSY, segment="VIP")
    batch = (await _import(db, "T1", MESSY, segment="Newsletter")).batch
    assert (batch.new_contacts, batch.added_to_segment) == (0, 4)
    sizes = {s.name: n for s, n in await segment_sizes(db, "T1")}
    assert sizes == {"All Customers": 4, "Newsletter": 4, "VIP": 4}


async def _fifty_queued(db: Database):  # type: ignore[no-untyped-def]
    """An approved batch of 50 new addresses into VIP, not applied yet."""
    await ensure_workspace(db, "T1")
    segment = await import_target(db, "T1", "VIP", create=True)
    batch = await create_batch(db, "T1", segment.id, "U1")
    source = await add_source(db, "T1", batch.id, SourceKind.CSV, "big.csv")
    rows = "email,first_name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(50))
    await stage_csv(db, "T1", source.id, io.BytesIO(rows.encode()))
    await queue_batch(db, "T1", batch.id, "U2")
    return batch


async def test_an_interrupted_import_resumes_exactly(db: Database) -> None:
    batch = await _fifty_queued(db)

    class Crash(Exception):
        pass

    seen: list[int] = []

    async def crash_after_two_chunks(progress) -> None:  # type: ignore[no-untyped-def]
        seen.append(progress.done)
        if len(seen) == 2:
            raise Crash

    with pytest.raises(Crash):
        await apply_batch(db, "T1", batch.id, chunk_size=7, on_progress=crash_after_two_chunks)
    assert (await _counts(db, "T1"))["contacts"] == 14
    done = await apply_batch(db, "T1", batch.id, chunk_size=7)
    assert done.status == "done"
    assert (done.new_contacts, done.added_to_segment, done.valid) == (50, 50, 50)
    _identities(done)
    assert await _counts(db, "T1") == {"contacts": 50, "members": 50}


async def test_two_runners_with_other_chunk_sizes_leave_no_gap(db: Database) -> None:
    """A lease taken over by a worker with another IMPORT_CHUNK_ROWS while the first goes on:
    each claims from exactly where the cursor is, so no range falls between their chunks
    (claimed from anywhere at or past the cursor, a row between them was never applied)."""
    batch = await _fifty_queued(db)

    class Stop(Exception):
        pass

    async def stop_after_one_chunk(progress) -> None:  # type: ignore[no-untyped-def]
        raise Stop

    calls = 0

    async def the_other_runs_one_chunk(progress) -> None:  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:  # after A's first chunk (5 rows), B applies one of 4, then stops
            with pytest.raises(Stop):
                await apply_batch(db, "T1", batch.id, chunk_size=4,
                                  on_progress=stop_after_one_chunk)  # fmt: skip

    done = await apply_batch(db, "T1", batch.id, chunk_size=5,
                             on_progress=the_other_runs_one_chunk)  # fmt: skip
    assert done.status == "done"
    assert (done.new_contacts, done.added_to_segment, done.valid) == (50, 50, 50)
    assert await _counts(db, "T1") == {"contacts": 50, "members": 50}


async def test_duplicates_across_sources_and_a_single_contact(db: Database) -> None:
    await ensure_workspace(db, "T1")
    segment = await import_target(db, "T1", "VIP", create=True)
    batch = await create_batch(db, "T1", segment.id, "U1")
    one = await add_source(db, "T1", batch.id, SourceKind.CSV, "a.csv")
    two = await add_source(db, "T1", batch.id, SourceKind.CSV, "b.csv")
    await stage_csv(db, "T1", one.id, io.BytesIO(b"email\na@example.com\nb@example.com\n"))
    second = await stage_csv(db, "T1", two.id, io.BytesIO(b"email\nB@example.com\nc@example.com\n"))
    assert (second.valid, second.duplicates) == (1, 1)
    typed = await stage_contact(
        db, "T1", batch.id, email=" d@Example.com ", first_name="Dee", locale="pt_br"
    )
    assert (typed.valid, typed.kind) == (1, "contact")
    repeat = await stage_contact(db, "T1", batch.id, email="a@EXAMPLE.com")
    assert repeat.duplicates == 1
    queued = await queue_batch(db, "T1", batch.id, "U2")
    assert (queued.rows, queued.valid, queued.duplicates) == (6, 4, 2)
    done = await apply_batch(db, "T1", batch.id)
    _identities(done)
    contacts = await _contacts(db, "T1")
    assert contacts["d@example.com"] == ("Dee", "", "pt-BR")
    assert set(contacts) == {"a@example.com", "b@example.com", "c@example.com", "d@example.com"}


async def test_workspaces_never_see_each_other(db: Database) -> None:
    await ensure_workspace(db, "T1")
    await ensure_workspace(db, "T2")
    one = (await _import(db, "T1", MESSY)).batch
    two = (await _import(db, "T2", MESSY)).batch
    assert one.new_contacts == two.new_contacts == 4
    with pytest.raises(BatchStateError, match="No import"):
        await apply_batch(db, "T2", one.id)
    out = io.StringIO()
    assert await write_rejects(db, "T2", one.id, out) == 0
    assert await _counts(db, "T1") == await _counts(db, "T2") == {"contacts": 4, "members": 4}


async def test_a_batch_never_goes_into_another_workspaces_segment(db: Database) -> None:
    """The segment's foreign key knows its id, not its workspace: the batch's own check."""
    from bot.imports.batches import ReviewError, create_upload_batch

    await ensure_workspace(db, "T1")
    await ensure_workspace(db, "T2")
    theirs = await import_target(db, "T2", "Theirs", create=True)
    for attempt in (create_batch(db, "T1", theirs.id or 0, "U1"),
                    create_batch(db, "T1", theirs.id or 0, "U1", dry_run=True),
                    create_upload_batch(db, "T1", theirs.id or 0, "U1", file_id="F1",
                                        label="x.csv")):  # fmt: skip
        with pytest.raises(ReviewError, match="doesn't exist in this workspace"):
            await attempt
    async with db.begin() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM import_batch"))).scalar() == 0
        assert (await conn.execute(text(
            "SELECT COUNT(*) FROM audit_entry WHERE team_id = 'T1'"))).scalar() == 0


async def test_a_source_and_the_job_that_reads_it_are_saved_together(db: Database) -> None:
    """A source without its job would stay pending for good (the batch never approvable):
    when the job can't be written, neither is the source (the database refuses jobs here)."""
    from bot.imports.job_kinds import SLACK_FILE_JOB

    if db.dialect != "sqlite":
        pytest.skip("the fault is injected with a SQLite trigger")
    await ensure_workspace(db, "T1")
    target = await import_target(db, "T1", "VIP", create=True)
    batch = await create_batch(db, "T1", target.id or 0, "U1")
    async with db.begin() as conn:
        await conn.execute(text("CREATE TRIGGER no_jobs BEFORE INSERT ON job "
                                "BEGIN SELECT RAISE(ABORT, 'jobs refused'); END"))  # fmt: skip
    with pytest.raises(Exception, match="jobs refused"):
        await add_source(db, "T1", batch.id or 0, SourceKind.CSV, "a.csv", ref="F1",
                         read_by=SLACK_FILE_JOB)  # fmt: skip
    async with db.begin() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM import_source"))).scalar() == 0
        await conn.execute(text("DROP TRIGGER no_jobs"))
    source = await add_source(db, "T1", batch.id or 0, SourceKind.CSV, "a.csv", ref="F1",
                              read_by=SLACK_FILE_JOB)  # fmt: skip
    async with db.begin() as conn:
        key = (await conn.execute(text("SELECT dedupe_key FROM job WHERE kind = :k"),
                                  {"k": SLACK_FILE_JOB})).scalar_one()  # fmt: skip
    assert key == f"stage:{source.id}"


async def test_a_second_reading_of_a_file_read_meanwhile_keeps_its_rows(db: Database) -> None:
    """Two runs read one file (a remap beside a reading, a lease taken over): the one that
    checked "still pending" before the other finished used to clear the rows, fail to mark
    the file read and clear them again, leaving it read with no rows."""
    from bot.imports.batches import get_source, stage_reader
    from bot.imports.reading import CsvReader

    await ensure_workspace(db, "T1")
    target = await import_target(db, "T1", "VIP", create=True)
    batch = await create_batch(db, "T1", target.id or 0, "U1")
    source = await add_source(db, "T1", batch.id or 0, SourceKind.CSV, "a.csv")
    data = b"email\na@example.com\nb@example.com\n"
    stale = await get_source(db, "T1", source.id or 0)  # the second run, checked before
    await stage_csv(db, "T1", source.id or 0, io.BytesIO(data))  # the first run reads it
    again = await stage_reader(db, "T1", stale, CsvReader(io.BytesIO(data)))
    assert again.status == "parsed" and again.valid == 2
    async with db.begin() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM staged_row WHERE source_id = :s"),
                                   {"s": source.id})).scalar() == 2  # fmt: skip


async def test_unreadable_file_imports_nothing(db: Database) -> None:
    await ensure_workspace(db, "T1")
    files = [
        ("good.csv", io.BytesIO(b"email\nok@example.com\n")),
        ("bad.csv", io.BytesIO(b"name,phone\nJane,555\n")),
    ]
    with pytest.raises(ImportFailed, match=r"bad.csv: No email column found.*'name', 'phone'"):
        await import_files(db, "T1", files, segment="New", create_segment=True)
    assert await _counts(db, "T1") == {"contacts": 0, "members": 0}
    assert [s.name for s, _ in await segment_sizes(db, "T1")] == ["All Customers"]


async def test_all_customers_is_not_an_import_target(db: Database) -> None:
    await ensure_workspace(db, "T1")
    with pytest.raises(WorkspaceError, match="built in"):
        await import_target(db, "T1", "all customers", create=True)
    await import_target(db, "T1", "VIP", create=True)
    with pytest.raises(WorkspaceError, match="No segment named 'Gold'"):
        await import_target(db, "T1", "Gold", create=False)
    assert (await import_target(db, "T1", "  vip ", create=False)).name == "VIP"


async def test_a_batch_that_was_not_approved_cannot_be_applied(db: Database) -> None:
    await ensure_workspace(db, "T1")
    segment = await import_target(db, "T1", "VIP", create=True)
    batch = await create_batch(db, "T1", segment.id, "U1")
    with pytest.raises(BatchStateError, match="draft"):
        await apply_batch(db, "T1", batch.id)


async def _approved(db: Database, team: str, rows: int) -> int:
    await ensure_workspace(db, team)
    segment = await import_target(db, team, "VIP", create=True)
    batch = await create_batch(db, team, segment.id, "U1")
    source = await add_source(db, team, batch.id, SourceKind.CSV, "list.csv")
    data = "email,first_name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(rows))
    await stage_csv(db, team, source.id, io.BytesIO(data.encode()))
    await queue_batch(db, team, batch.id, "U2")
    return batch.id


async def test_an_import_whose_staged_rows_are_gone_says_so(db: Database) -> None:
    """PostgreSQL empties its UNLOGGED staged rows when it recovers from a crash: an approved
    import must then fail with a sentence, not report every contact as already known."""
    batch_id = await _approved(db, "T1", 5)
    async with db.begin() as conn:
        await conn.execute(text("DELETE FROM staged_row WHERE batch_id = :b"), {"b": batch_id})
    with pytest.raises(BatchStateError, match=r"are gone .* import the files again"):
        await apply_batch(db, "T1", batch_id)
    assert await _counts(db, "T1") == {"contacts": 0, "members": 0}


@pytest.mark.skipif(BACKEND != "postgres", reason="concurrent writers: PostgreSQL")
async def test_an_address_another_import_adds_meanwhile_is_counted_as_known(db: Database) -> None:
    """New addresses are inserted without ON CONFLICT; when another transaction commits one of
    them while this insert waits for it, the chunk falls back to the conflict-safe insert."""
    batch_id = await _approved(db, "T1", 20)
    other = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": db.schema or ""})
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute(
            "INSERT INTO contact (team_id, email, email_key, first_name, last_name, subscribed,"
            " source, created_at, updated_at) VALUES ('T1', 'p7@example.com', 'p7@example.com',"
            " 'Seven', '', true, 'manual', now(), now())"
        )
        applying = asyncio.create_task(apply_batch(db, "T1", batch_id))
        for _ in range(200):  # until the import waits for this transaction's row
            waiting = await other.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'transactionid' "
                "AND datname = current_database() AND pid <> pg_backend_pid()"
            )
            if waiting or applying.done():
                break
            await asyncio.sleep(0.05)
        assert waiting, "the import never waited for the other transaction"
        await tx.commit()
        done = await applying
    finally:
        await other.close()
    assert (done.status, done.new_contacts, done.existing_contacts) == ("done", 19, 1)
    assert (done.added_to_segment, done.already_in_segment) == (20, 0)
    assert await _counts(db, "T1") == {"contacts": 20, "members": 20}
    assert (await _contacts(db, "T1"))["p7@example.com"][0] == "Seven"  # theirs, kept


@pytest.mark.skipif(BACKEND != "postgres", reason="concurrent writers: PostgreSQL")
async def test_two_imports_updating_the_same_contacts_at_once_dont_deadlock(
    db: Database,
) -> None:  # fmt: skip
    """Two lists of the same customers in opposite orders, each imported with
    --update-existing into its own segment at once: each chunk takes the contacts it updates
    in one order (by id), so neither waits for a row the other holds while holding one it
    wants (PostgreSQL found a deadlock and failed one of them, every time, at 30,000)."""
    n = 30_000

    def listed(order: range | reversed[int], name: str) -> bytes:
        return ("email,first_name\n" + "".join(f"u{i}@example.com,{name}{i}\n"
                                               for i in order)).encode()  # fmt: skip

    await ensure_workspace(db, "T1")
    await import_files(db, "T1", [("all.csv", io.BytesIO(listed(range(n), "S")))],
                       segment="All", create_segment=True)  # fmt: skip
    for segment in ("A", "B"):
        await import_target(db, "T1", segment, create=True)
    results = await asyncio.gather(
        import_files(db, "T1", [("a.csv", io.BytesIO(listed(range(n), "A")))], segment="A",
                     update_existing=True),
        import_files(db, "T1", [("b.csv", io.BytesIO(listed(reversed(range(n)), "B")))],
                     segment="B", update_existing=True),
        return_exceptions=True,
    )  # fmt: skip
    assert [r.batch.status for r in results if not isinstance(r, BaseException)] == [
        "done", "done"], results  # fmt: skip
    sizes = {segment.name: size for segment, size in await segment_sizes(db, "T1")}
    assert (sizes["A"], sizes["B"]) == (n, n)
