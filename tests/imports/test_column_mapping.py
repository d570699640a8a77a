"""Column mappings through the service layer: a file whose email column can't be told fails,
imports with a mapping, and the next export with the same headers maps itself."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.imports import parallel
from bot.imports.batches import add_source, create_batch, fail_source, get_source
from bot.imports.excel import XlsxReader
from bot.imports.files import shown_reader, stage_file
from bot.imports.importer import ImportFailed, import_files, preview_files
from bot.imports.mapping import (
    BEING_READ,
    ColumnMap,
    ColumnMapper,
    column_name,
    columns_for,
    guess,
    headers_key,
    keep_header,
    kept_header,
    kept_title,
    mappable,
    mapper_for,
    parse_maps,
    read_sheet,
    recall,
    remember,
    reread_source,
    samples,
)
from bot.imports.reading import Columns, CsvFileError, CsvReader
from bot.workspaces import ensure_workspace, import_target
from models import Database, SourceKind, SourceStatus
from tests.conftest import BACKEND
from tests.imports.test_excel import workbook
from tests.waiting import backend_pid, until_waiting_or_done

TEAM = "T1"
WORK = (b"Full Name,Work Contact,Given,Preferred tongue\n"
        b"Ada Lovelace,ada@example.com,Ada,en\n"
        b"Bob Stone,bob@example.org,Bob,fr\n"
        b"Cy,,Cy,\n")  # fmt: skip
NEXT_WEEK = (b"Preferred tongue,Given,Work Contact,Full Name\n"  # same headers, new order
             b"de,Dora,dora@example.de,Dora Maar\n")  # fmt: skip


async def _contacts(db: Database) -> dict[str, tuple[str, str | None]]:
    async with db.begin() as conn:
        rows = await conn.execute(text("SELECT email, first_name, locale FROM contact "
                                       "WHERE team_id = :t"), {"t": TEAM})  # fmt: skip
        return {r[0]: (r[1], r[2]) for r in rows}


def test_a_mapped_file_still_reads_its_whole_name_column_when_no_name_is_mapped() -> None:
    """Mapping only the address ("Work Mail") kept the names out: "Name" is read as a whole
    name there too, unless a first or last name column is mapped."""
    header = ["Work Mail", "Name", "Given"]
    assert columns_for(header, ColumnMap(email="Work Mail")).full_name == 1
    assert columns_for(header, ColumnMap(email="Work Mail", first_name="Given")).full_name is None



async def test_a_mapped_email_column_named_like_a_whole_name_is_not_read_as_names(
    db: Database,
) -> None:
    """A CRM's "Contact Name" column holds the addresses; Map columns chooses it for Email and
    leaves the names at (none). It was read as the whole name too: first names were the
    addresses."""
    assert columns_for(["Contact Name", "Phone"],
                       ColumnMap(email="Contact Name")).full_name is None  # fmt: skip
    await ensure_workspace(db, TEAM)
    await import_files(db, TEAM, [("crm.csv", io.BytesIO(b"Contact Name,Phone\n"
                                                          b"ada@example.com,555 0100\n"))],
                       segment="Work", create_segment=True,
                       column_map={"email": "Contact Name"})  # fmt: skip
    # no name column: greeted by the address's part before @, as for any file without names
    assert await _contacts(db) == {"ada@example.com": ("ada", None)}

def test_an_opt_out_column_chosen_as_subscribed_is_read_as_an_opt_out() -> None:
    """Map columns offers one consent field, "Subscribed": choosing "Email Opt Out" for it
    read its "true" as a yes, emailing exactly the people who opted out."""
    header = ["Work Mail", "Email Opt Out", "Accepts Marketing"]
    chosen = columns_for(header, ColumnMap(email="Work Mail", subscribed="Email Opt Out"))
    assert (chosen.subscribed, chosen.opt_out) == (None, 1)
    both = columns_for(header, ColumnMap(email="Work Mail", subscribed="Accepts Marketing"))
    assert (both.subscribed, both.opt_out) == (2, 1)  # recognised by name: read as well
    assert columns_for(header, ColumnMap(email="Email Opt Out")).opt_out is None


def test_a_second_opt_out_column_chosen_as_subscribed_is_read_as_an_opt_out() -> None:
    """A Salesforce-like export with two opt-out columns, "Email Bounced" then "Email Opt
    Out": choosing "Email Opt Out" for Subscribed read its "true" as a yes."""
    header = ["Email", "Email Bounced", "Email Opt Out"]
    chosen = columns_for(header, ColumnMap(email="Email", subscribed="Email Opt Out"))
    assert (chosen.subscribed, chosen.opt_out) == (None, 2)  # the column chosen, as an opt-out


async def test_an_opt_out_chosen_as_subscribed_beside_another_opt_out_keeps_people_out(
    db: Database,
) -> None:
    """Ada opted out ("Email Opt Out" true, not bounced); the second opt-out column chosen as
    Subscribed imported her subscribed, and she was emailed."""
    await ensure_workspace(db, TEAM)
    data = (b"Email,Email Bounced,Email Opt Out\n"
            b"ada@example.com,false,true\n"
            b"bob@example.com,false,false\n")  # fmt: skip
    await import_files(db, TEAM, [("sf.csv", io.BytesIO(data))], segment="Work",
                       create_segment=True, column_map={"subscribed": "Email Opt Out"})
    async with db.begin() as conn:
        rows = await conn.execute(text("SELECT email, subscribed FROM contact WHERE team_id = "
                                       ":t"), {"t": TEAM})  # fmt: skip
        subscribed = {r[0]: bool(r[1]) for r in rows}
    assert subscribed == {"ada@example.com": False, "bob@example.com": True}


def test_headers_key_ignores_order_case_and_spacing() -> None:
    assert headers_key(["Work Contact", "Given"]) == headers_key(["given", " work_contact"])
    assert headers_key(["Work Contact"]) != headers_key(["Work Contact", "Given"])


def test_guess_finds_the_other_fields_without_an_email_column() -> None:
    header = ["Work Contact", "First Name", "Language"]
    assert guess(header) == ColumnMap(None, "First Name", None, "Language")
    assert guess(["Email", "Surname"]) == ColumnMap("Email", None, "Surname")


def test_columns_for_names_a_missing_header() -> None:
    header = ["Work Contact", "Given"]
    assert columns_for(header, ColumnMap("work contact", "Given")) == Columns(0, 1, None, None)
    with pytest.raises(CsvFileError, match="The column 'Work Email' chosen for Email isn't"):
        columns_for(header, ColumnMap("Work Email"))
    with pytest.raises(CsvFileError, match="No email column was chosen"):
        columns_for(header, ColumnMap(None, "Given"))


def test_a_repeated_or_blank_header_is_named_by_which_of_its_columns_it_is() -> None:
    header = ["Email", "Name", "email ", "", "Phone", " "]
    names = [column_name(header, i) for i in range(len(header))]
    assert names[:2] == ["Email", "Name"]  # a name that tells its column stays as it was
    assert columns_for(header, ColumnMap(names[2], names[3], names[5])) == Columns(2, 3, 5, None)
    # the same headers without the second "Email": the choice is not read from the first
    with pytest.raises(CsvFileError) as failure:
        columns_for(["Email", "Name"], ColumnMap(names[2]))
    assert "The column 'email' (no. 2 of the columns so named) chosen for Email" in str(
        failure.value)
    with pytest.raises(CsvFileError, match=r"no\. 1 of the columns without a name"):
        columns_for(["Email", "Name"], ColumnMap("Email", names[3]))


def test_samples_are_the_first_non_empty_values_of_each_column() -> None:
    with CsvReader(io.BytesIO(WORK), columns_of=lambda h: Columns(1, None, None, None)) as r:
        assert samples(r) == [["Ada Lovelace", "Bob Stone", "Cy"],
                              ["ada@example.com", "bob@example.org"], ["Ada", "Bob", "Cy"],
                              ["en", "fr"]]  # fmt: skip


def test_a_file_without_a_recognised_email_column_opens_to_be_shown() -> None:
    with shown_reader(io.BytesIO(WORK), name="work.csv", label="work.csv") as reader:
        assert reader.header[1] == "Work Contact"


def test_parse_maps_and_its_errors() -> None:
    assert parse_maps(['email=Work Email', "First-Name = Given ", "locale=a=b"]) == {
        "email": "Work Email", "first_name": "Given", "locale": "a=b"}
    with pytest.raises(ValueError, match="needs a field and a column"):
        parse_maps(["Work Email"])
    with pytest.raises(ValueError, match="phone is not a field; the fields are email, "):
        parse_maps(["phone=Mobile"])
    with pytest.raises(ValueError, match="names no column"):
        parse_maps(["email="])


def test_parse_maps_refuses_a_field_given_twice() -> None:
    """`--map email=Work --map email=Home` kept the last silently."""
    with pytest.raises(ValueError, match=r"email is given twice \(also --map email='Work'\)"):
        parse_maps(["email=Work", "Email=Home"])
    # the same column again (as headers are matched) is the same mapping
    assert parse_maps(["email=Work Email", "email= work  email"]) == {"email": "work  email"}


async def test_unmapped_fails_mapped_imports_and_next_week_maps_itself(db: Database) -> None:
    await ensure_workspace(db, TEAM)
    with pytest.raises(ImportFailed, match="No email column found"):
        await import_files(db, TEAM, [("work.csv", io.BytesIO(WORK))], segment="Work",
                           create_segment=True)  # fmt: skip
    assert await recall(db, TEAM, WORK.decode().splitlines()[0].split(",")) is None

    result = await import_files(db, TEAM, [("work.csv", io.BytesIO(WORK))], segment="Work",
                                create_segment=True, requested_by="U1",
                                column_map={"email": "Work Contact",
                                            "locale": "Preferred tongue"})  # fmt: skip
    assert (result.batch.valid, result.batch.rejected) == (2, 1)
    assert {e: locale for e, (_, locale) in (await _contacts(db)).items()} == {
        "ada@example.com": "en", "bob@example.org": "fr"}
    header = ["Full Name", "Work Contact", "Given", "Preferred tongue"]
    assert await recall(db, TEAM, header) == ColumnMap("Work Contact", None, None,
                                                       "Preferred tongue")  # fmt: skip

    # next week's export, columns in another order: the remembered mapping applies by itself
    segment = await import_target(db, TEAM, "Work", create=False)
    batch = await create_batch(db, TEAM, segment.id or 0, "U2")
    source = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, "next.csv")
    (staged,) = await stage_file(db, TEAM, source.id or 0, io.BytesIO(NEXT_WEEK), name="next.csv")
    assert (staged.status, staged.valid) == (SourceStatus.PARSED, 1)
    async with db.begin() as conn:
        row = (await conn.execute(text("SELECT email, locale FROM staged_row WHERE source_id = "
                                       ":s"), {"s": source.id})).one()  # fmt: skip
    assert tuple(row) == ("dora@example.de", "de")


async def test_a_mapping_reads_a_report_with_a_title_above_its_header(db: Database) -> None:
    # --map email="Work Contact": "The column 'Work Contact' chosen for Email isn't in this
    # file. Columns found: 'Customer export 2024-05-01'", the title; nothing imported
    await ensure_workspace(db, TEAM)
    report = b"Customer export 2024-05-01\n\n" + WORK
    result = await import_files(db, TEAM, [("report.csv", io.BytesIO(report))], segment="Work",
                                create_segment=True, requested_by="U1",
                                column_map={"email": "Work Contact"})  # fmt: skip
    assert (result.batch.valid, result.batch.rejected) == (2, 1)
    assert set(await _contacts(db)) == {"ada@example.com", "bob@example.org"}


async def test_a_changed_mapping_replaces_the_remembered_one(db: Database) -> None:
    await ensure_workspace(db, TEAM)
    header = ["Work Contact", "Given"]
    await remember(db, TEAM, header, ColumnMap("Work Contact"), "U1")
    await remember(db, TEAM, ["given", "work contact"], ColumnMap("Work Contact", "Given"), "U2")
    assert await recall(db, TEAM, header) == ColumnMap("Work Contact", "Given")
    assert await recall(db, "T2", header) is None  # per workspace
    mapper = await mapper_for(db, TEAM)
    assert mapper(header) == Columns(0, 1, None, None) and mapper.chosen(header)


async def test_a_remembered_mapping_that_doesnt_fit_a_file_falls_back_to_the_guess(
    db: Database,
) -> None:
    """The second of two "Email" columns remembered; a file with one "Email" column has the
    same set of headers, and failed ("'Email' (no. 2 of the columns so named) ... isn't in
    this file"): nothing imported. It is read as guessed; --map still fails when it misses."""
    await ensure_workspace(db, TEAM)
    await remember(db, TEAM, ["Email", "Name", "Email"], ColumnMap(column_name(
        ["Email", "Name", "Email"], 2), "Name"), "U1")  # fmt: skip
    once = b"Email,Name\ndora@example.de,Dora\n"
    result = await import_files(db, TEAM, [("once.csv", io.BytesIO(once))], segment="Work",
                                create_segment=True)  # fmt: skip
    assert (result.batch.valid, result.batch.rejected) == (1, 0)
    assert await _contacts(db) == {"dora@example.de": ("Dora", None)}
    assert await recall(db, TEAM, ["Email", "Name"]) is None  # not this file's, to show
    assert await recall(db, TEAM, ["Email", "Name", "Email"]) is not None
    with pytest.raises(ImportFailed, match="isn't in this file"):
        await import_files(db, TEAM, [("once.csv", io.BytesIO(once))], segment="Work",
                           column_map={"email": column_name(["Email", "Name", "Email"], 2)})


async def test_a_map_of_one_field_keeps_the_remembered_mapping_of_the_others(
    db: Database,
) -> None:
    """"Work Email" was chosen in Slack for this export (its "Email" holds the home addresses
    of an old sign-up form). `import --map locale=Lang` only adds the language column, yet
    the other fields were guessed: the home addresses were imported, and "Email" was
    remembered over the Work Email choice for every later export."""
    await ensure_workspace(db, TEAM)
    data = (b"Email,Work Email,First Name,Lang\n"
            b"ada@home.example,ada@work.example,Ada,fr\n"
            b"bob@home.example,bob@work.example,Bob,de\n")  # fmt: skip
    header = ["Email", "Work Email", "First Name", "Lang"]
    await remember(db, TEAM, header, ColumnMap("Work Email", "First Name"), "U1")
    await import_files(db, TEAM, [("crm.csv", io.BytesIO(data))], segment="Work",
                       create_segment=True, requested_by="U2",
                       column_map={"locale": "Lang"})  # fmt: skip
    assert await _contacts(db) == {"ada@work.example": ("Ada", "fr"),
                                   "bob@work.example": ("Bob", "de")}  # fmt: skip
    assert await recall(db, TEAM, header) == ColumnMap("Work Email", "First Name", None, "Lang")

async def test_dry_run_uses_a_map_and_remembers_nothing(db: Database) -> None:
    await ensure_workspace(db, TEAM)
    result, _ = await preview_files(db, TEAM, [("work.csv", io.BytesIO(WORK))], segment="Work",
                                    create_segment=True,
                                    column_map={"email": "Work Contact"})  # fmt: skip
    assert result.totals.valid == 2
    assert await recall(db, TEAM, ["Full Name", "Work Contact", "Given", "Preferred tongue"]) \
        is None


async def test_a_file_is_put_back_to_be_read_once_until_it_is_read(db: Database) -> None:
    # two submissions that both passed the modal's checks: the second finds it pending
    await ensure_workspace(db, TEAM)
    segment = await import_target(db, TEAM, "Work", create=True)
    batch = await create_batch(db, TEAM, segment.id or 0, "U1")
    source = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, "work.csv", ref="F1")
    (failed,) = await stage_file(db, TEAM, source.id or 0, io.BytesIO(WORK), name="work.csv")
    assert failed.status == SourceStatus.FAILED
    header = ["Full Name", "Work Contact", "Given", "Preferred tongue"]
    await reread_source(db, TEAM, batch.id or 0, source.id or 0, header,
                        ColumnMap("Work Contact"), "U1")  # fmt: skip
    assert (await get_source(db, TEAM, source.id or 0)).status == SourceStatus.PENDING
    with pytest.raises(LookupError, match=BEING_READ):
        await reread_source(db, TEAM, batch.id or 0, source.id or 0, header,
                            ColumnMap("Work Contact", "Given"), "U2")  # fmt: skip
    async with db.begin() as conn:
        jobs = (await conn.execute(text("SELECT COUNT(*) FROM job WHERE team_id = :t "
                                        "AND dedupe_key LIKE 'remap:%'"),
                                   {"t": TEAM})).scalar_one()  # fmt: skip
    assert jobs == 1
    assert await recall(db, TEAM, header) == ColumnMap("Work Contact")  # the loser's not kept


@pytest.mark.skipif(BACKEND != "postgres", reason="SQLite's transactions take its one write "
                    "lock first: keep_header can't read between another's write and commit")
async def test_drawing_the_form_while_a_mapping_is_saved_keeps_the_sheet_it_was_read_from(
    db: Database,
) -> None:
    """Map columns drawn (keep_header) while a mapping of another sheet was being saved: it
    read the header kept before, waited for the saving's row, then wrote the old "read from"
    sheet over the new one, so the next form showed a sheet the file wasn't read from."""
    await ensure_workspace(db, TEAM)
    segment = await import_target(db, TEAM, "Work", create=True)
    batch = await create_batch(db, TEAM, segment.id or 0, "U1")
    source = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, "book.xlsx", ref="F1")
    await keep_header(db, TEAM, source.id or 0, ["Email"], "Sheet1")
    saved = {"columns": ["Email"], "sheet": "Sheet2", "read": "Sheet2"}
    async with db.engine.connect() as saving:  # a mapping of Sheet2 being saved
        transaction = await saving.begin()
        await saving.execute(text("UPDATE import_source SET header = :h WHERE id = :id"),
                             {"h": json.dumps(saved), "id": source.id})  # fmt: skip
        drawing = asyncio.create_task(keep_header(db, TEAM, source.id or 0, ["Email"], "Sheet1"))
        assert await until_waiting_or_done(db, await backend_pid(saving), drawing) is not None
        await transaction.commit()
    await drawing
    kept = (await get_source(db, TEAM, source.id or 0)).header
    assert read_sheet(kept) == "Sheet2"
    assert kept_header(kept) == (["Email"], "Sheet1")  # what the form now drawn shows


async def test_a_workbooks_sheet_is_kept_by_its_position_and_a_name_kept_before_still_reads(
    db: Database,
) -> None:
    """*Map columns* keeps the sheet it shows by its position (its name as shown beside it,
    for a message only): by name, a long one overflowed the modal's metadata and was cut in
    its options. A name a release before positions kept is read as it is."""
    await ensure_workspace(db, TEAM)
    segment = await import_target(db, TEAM, "Work", create=True)
    batch = await create_batch(db, TEAM, segment.id or 0, "U1")
    source = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, "book.xlsx", ref="F1")
    legacy = json.dumps({"columns": ["Email"], "sheet": "Staff", "read": "Customers"})
    assert (kept_header(legacy), kept_title(legacy), read_sheet(legacy)) == (
        (["Email"], "Staff"), "Staff", "Customers")  # fmt: skip
    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_source SET header = :h WHERE id = :id"),
                           {"h": legacy, "id": source.id})  # fmt: skip
    await keep_header(db, TEAM, source.id or 0, ["Work Mail"], 0, "Customers")
    kept = (await get_source(db, TEAM, source.id or 0)).header
    assert (kept_header(kept), kept_title(kept), read_sheet(kept)) == (
        (["Work Mail"], 0), "Customers", "Customers")  # the sheet read since stays kept
    assert kept_header(json.dumps({"columns": [], "sheet": True}))[1] is None  # no position


async def test_a_file_is_mappable_by_how_it_failed_not_by_its_wording(db: Database) -> None:
    """Choosing columns can fix only a file whose columns didn't say where the addresses are;
    a file refused for something else isn't offered *Map columns*, whatever its message."""
    await ensure_workspace(db, TEAM)
    segment = await import_target(db, TEAM, "Work", create=True)
    batch = await create_batch(db, TEAM, segment.id or 0, "U1")
    columns = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, "work.csv", ref="F1")
    (failed,) = await stage_file(db, TEAM, columns.id or 0, io.BytesIO(WORK), name="work.csv")
    assert failed.status == SourceStatus.FAILED and mappable(failed)
    other = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, "other.csv", ref="F2")
    await fail_source(db, TEAM, other.id or 0,
                      CsvFileError("The column separator of this file can't be told."))  # fmt: skip
    refused = await get_source(db, TEAM, other.id or 0)
    assert refused.status == SourceStatus.FAILED and not mappable(refused)


async def _import_big(db: Database, path: Path, lines: list[str],
                      monkeypatch: pytest.MonkeyPatch, column_map: dict[str, str]) -> Any:
    """`lines` as a file big enough for the parser child (its threshold lowered), imported
    into a new segment Big with `column_map`: the import's result."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 64 * 1024)
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size >= parallel.PARALLEL_MIN_BYTES
    await ensure_workspace(db, TEAM)
    with path.open("rb") as stream:
        return await import_files(db, TEAM, [(path.name, stream)], segment="Big",
                                  create_segment=True, column_map=column_map)


async def test_a_big_mapped_file_is_parsed_by_the_child_with_its_mapping(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file big enough for the parser child (the threshold lowered here) with columns chosen
    by hand: the child reads the columns the mapping chose, not the ones it would guess (an
    "email" column that holds something else is there to be guessed wrongly)."""
    lines = ["Full Name,email,Work Contact,Given,Preferred tongue"] + [
        f"Person {n},not-an-address-{n},p{n}@example.com,Given{n},{'fr' if n % 2 else 'de'}"
        for n in range(3000)]  # fmt: skip
    result = await _import_big(db, tmp_path / "big-work.csv", lines, monkeypatch, {
        "email": "Work Contact", "first_name": "Given", "locale": "Preferred tongue"})
    assert (result.batch.valid, result.batch.rejected) == (3000, 0)
    contacts = await _contacts(db)
    assert contacts["p7@example.com"] == ("Given7", "fr")
    assert contacts["p8@example.com"] == ("Given8", "de")


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
def test_a_headerless_file_mapped_by_hand_counts_its_first_row(kind: str) -> None:
    """Map columns on a file without a header offers its first row's values as the column
    names; that row is a contact too, and was counted nowhere, not even as skipped."""
    rows = [["ada@example.com", "Ada"], ["bob@example.com", "Bob"], ["cy@example.com", "Cy"]]
    chosen = Columns(email=0, first_name=1, last_name=None, locale=None)
    if kind == "csv":
        data = "".join(",".join(r) + "\r\n" for r in rows).encode()
        with CsvReader(io.BytesIO(data), columns_of=lambda _header: chosen) as reader:
            records = list(reader.records())
    else:
        data = workbook(("People", rows))
        with XlsxReader(io.BytesIO(data), columns_of=lambda _header: chosen) as reader:
            records = list(reader.records())
    assert records == [(1, rows[0]), (2, rows[1]), (3, rows[2])]


async def _run_background(db: Database, tmp_path: Path, column_map: dict[str, str]) -> str:
    """`import work.csv --background --map ...`, and a worker that runs it: the job's state."""
    from bot.imports.background import enqueue_file_import, import_handler
    from bot.imports.job_kinds import IMPORT_JOB
    from bot.jobs import queue
    from bot.jobs.worker import Worker, WorkerConfig

    await ensure_workspace(db, TEAM)
    path = tmp_path / "work.csv"
    path.write_bytes(WORK)
    job = await enqueue_file_import(db, TEAM, [path], segment="Work", create_segment=True,
                                    requested_by="U1", column_map=column_map)  # fmt: skip
    config = WorkerConfig(lease_seconds=5, poll_seconds=0.05, retry_base_seconds=0)
    await Worker(db, {IMPORT_JOB: import_handler(2)}, config).run_until_idle()
    done = await queue.get_job(db, TEAM, job.id or 0)
    assert done is not None
    return done.state


async def test_a_background_map_that_finds_no_valid_row_is_not_remembered(
    db: Database, tmp_path: Path
) -> None:
    """`import --background --map email="Full Name"` (the wrong column): the job found nothing
    to import, yet the mapping was remembered when it was queued, and every later export of
    that tool was read with it. README: remembered once the import finds valid rows."""
    assert await _run_background(db, tmp_path, {"email": "Full Name"}) == "failed"
    assert await recall(db, TEAM, ["Full Name", "Work Contact", "Given",
                                   "Preferred tongue"]) is None  # fmt: skip


async def test_a_background_map_is_read_by_the_job_and_remembered_once_it_finds_rows(
    db: Database, tmp_path: Path
) -> None:
    """The job reads the files with the mapping given, and remembers it once it found valid
    rows."""
    column_map = {"email": "Work Contact", "locale": "Preferred tongue"}
    assert await _run_background(db, tmp_path, column_map) == "done"
    assert {e: locale for e, (_, locale) in (await _contacts(db)).items()} == {
        "ada@example.com": "en", "bob@example.org": "fr"}
    assert await recall(db, TEAM, ["Full Name", "Work Contact", "Given", "Preferred tongue"]
                        ) == ColumnMap("Work Contact", None, None, "Preferred tongue")  # fmt: skip


CONTACT = b"Contact,Who\na@example.com,Ada\n"


async def test_two_fields_given_one_column_are_refused(db: Database) -> None:
    """`--map email=contact --map first_name=Contact`: the address was imported as the first
    name too, and that mapping remembered (*Map columns* then refused it: a column serves
    once). Refused, naming the column and both fields; nothing imported or remembered."""
    await ensure_workspace(db, TEAM)
    with pytest.raises(ImportFailed, match=r"c1\.csv: The column 'Contact' is chosen for both "
                       r"Email and First name"):  # fmt: skip
        await import_files(db, TEAM, [("c1.csv", io.BytesIO(CONTACT))], segment="S",
                           create_segment=True,
                           column_map={"email": "contact", "first_name": "Contact"})
    assert await _contacts(db) == {}
    assert await recall(db, TEAM, ["Contact", "Who"]) is None
    mapper = await mapper_for(db, TEAM, {"email": "Contact", "first_name": "Who"})
    assert mapper(["Contact", "Who"]) == Columns(0, 1, None, None)  # two columns: fine


PHONE = b"Email,Contact,Name\nz@example.com,555-1234,Zed\ny@example.com,555-9999,Yan\n"


async def test_a_map_is_remembered_only_for_the_files_it_found_valid_rows_in(
    db: Database,
) -> None:
    """`import a.csv b.csv --map email=Contact`: a.csv's "Contact" holds the address, b.csv's
    a phone number (its rows all rejected). The import found a valid row, so the mapping was
    remembered for b.csv's headers too, and b.csv alone then had "Nothing to import"."""
    await ensure_workspace(db, TEAM)
    result = await import_files(db, TEAM, [("a.csv", io.BytesIO(CONTACT)),
                                           ("b.csv", io.BytesIO(PHONE))], segment="S",
                                create_segment=True, column_map={"email": "Contact"})  # fmt: skip
    assert (result.batch.valid, result.batch.rejected) == (1, 2)
    assert await recall(db, TEAM, ["Contact", "Who"]) == ColumnMap("Contact")
    assert await recall(db, TEAM, ["Email", "Contact", "Name"]) is None
    again = await import_files(db, TEAM, [("b.csv", io.BytesIO(PHONE))], segment="S")
    assert again.batch.valid == 2


async def test_a_map_is_remembered_only_for_the_csvs_of_a_zip_it_found_valid_rows_in(
    db: Database,
) -> None:
    import zipfile

    await ensure_workspace(db, TEAM)
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("phones.csv", PHONE)
        archive.writestr("contacts.csv", CONTACT)
    result = await import_files(db, TEAM, [("export.zip", io.BytesIO(data.getvalue()))],
                                segment="S", create_segment=True,
                                column_map={"email": "Contact"})  # fmt: skip
    assert (result.batch.valid, result.batch.rejected) == (1, 2)
    assert await recall(db, TEAM, ["Contact", "Who"]) == ColumnMap("Contact")
    assert await recall(db, TEAM, ["Email", "Contact", "Name"]) is None


async def test_a_background_map_is_remembered_only_for_the_files_it_found_valid_rows_in(
    db: Database, tmp_path: Path
) -> None:
    from bot.imports.background import enqueue_file_import, import_handler
    from bot.imports.job_kinds import IMPORT_JOB
    from bot.jobs import queue
    from bot.jobs.worker import Worker, WorkerConfig

    await ensure_workspace(db, TEAM)
    (tmp_path / "a.csv").write_bytes(CONTACT)
    (tmp_path / "b.csv").write_bytes(PHONE)
    job = await enqueue_file_import(db, TEAM, [tmp_path / "a.csv", tmp_path / "b.csv"],
                                    segment="S", create_segment=True, requested_by="U1",
                                    column_map={"email": "Contact"})  # fmt: skip
    config = WorkerConfig(lease_seconds=5, poll_seconds=0.05, retry_base_seconds=0)
    await Worker(db, {IMPORT_JOB: import_handler(2)}, config).run_until_idle()
    done = await queue.get_job(db, TEAM, job.id or 0)
    assert done is not None and done.state == "done"
    assert set(await _contacts(db)) == {"a@example.com"}
    assert await recall(db, TEAM, ["Contact", "Who"]) == ColumnMap("Contact")
    assert await recall(db, TEAM, ["Email", "Contact", "Name"]) is None


# A report whose title line is as wide as its header, and whose header's names are none the
# aliases know: the header search took the title for the header (no row of fewer fields
# above the data to tell it apart), so a mapping could never find its columns.
TITLED_ROWS = [["Customer export", "December", "2026"], ["Work Mail", "Given", "Family"],
               ["ada@example.com", "Ada", "Lovelace"], ["bob@example.org", "Bob", "Stone"]]
TITLED_HEADER = TITLED_ROWS[1]


def _titled(kind: str) -> tuple[str, bytes]:
    """The titled report as a CSV or as a workbook's only sheet: (file name, bytes)."""
    if kind == "csv":
        return "report.csv", "".join(",".join(r) + "\n" for r in TITLED_ROWS).encode()
    return "report.xlsx", workbook(("Customers", TITLED_ROWS))


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
async def test_a_map_finds_its_header_under_a_title_as_wide_as_it(db: Database,
                                                                  kind: str) -> None:  # fmt: skip
    """`--map email="Work Mail"` failed "The column 'Work Mail' chosen for Email isn't in
    this file. Columns found: 'Customer export', 'December', '2026'": nothing imported, and
    nothing a mapping could name would import it."""
    await ensure_workspace(db, TEAM)
    name, data = _titled(kind)
    result = await import_files(db, TEAM, [(name, io.BytesIO(data))], segment="Work",
                                create_segment=True, requested_by="U1",
                                column_map={"email": "Work Mail", "first_name": "Given",
                                            "last_name": "Family"})  # fmt: skip
    assert (result.batch.rows, result.batch.valid, result.batch.rejected) == (2, 2, 0)
    assert await _contacts(db) == {"ada@example.com": ("Ada", None),
                                   "bob@example.org": ("Bob", None)}  # fmt: skip
    assert await recall(db, TEAM, TITLED_HEADER) == ColumnMap("Work Mail", "Given", "Family")


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
async def test_a_remembered_mapping_finds_its_header_under_a_title_as_wide_as_it(
    db: Database, kind: str
) -> None:
    """Mapped once (in Slack, or with --map) for the export without its title; next month's
    report of the same columns under a title line failed "No email column found. Columns
    found: 'Customer export', 'December', '2026'" instead of mapping itself."""
    await ensure_workspace(db, TEAM)
    await remember(db, TEAM, TITLED_HEADER, ColumnMap("Work Mail", "Given"), "U1")
    segment = await import_target(db, TEAM, "Work", create=True)
    batch = await create_batch(db, TEAM, segment.id or 0, "U2")
    name, data = _titled(kind)
    source = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, name)
    (staged,) = await stage_file(db, TEAM, source.id or 0, io.BytesIO(data), name=name)
    assert (staged.status, staged.error) == (SourceStatus.PARSED, None)
    assert (staged.rows, staged.valid, staged.rejected) == (2, 2, 0)


@pytest.mark.parametrize("kind", ["csv", "xlsx"])
async def test_without_a_mapping_a_title_as_wide_as_the_header_is_still_the_header(
    db: Database, kind: str
) -> None:
    """The search by names alone is as it was: no mapping given, none remembered that fits
    (another export's), and the file fails naming the title's cells, as *Map columns* shows
    them."""
    await ensure_workspace(db, TEAM)
    await remember(db, TEAM, ["Work Mail", "Name"], ColumnMap("Work Mail"), "U1")
    name, data = _titled(kind)
    with pytest.raises(ImportFailed, match=r"No email column found\. Columns found: "
                       r"'Customer export', 'December', '2026'\."):  # fmt: skip
        await import_files(db, TEAM, [(name, io.BytesIO(data))], segment="Work",
                           create_segment=True)  # fmt: skip


async def test_a_big_titled_file_is_read_by_the_parser_child_from_the_header_mapped(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parser child reads a big file with the columns its parent mapped, but not the
    mapping: its own search took the title for the header, and the real header line
    became a row, rejected ("Work Mail" is no address)."""
    lines = ["Customer export,December,2026", "Work Mail,Given,Family"] + [
        f"p{n}@example.com,Given{n},Family{n}" for n in range(3000)]  # fmt: skip
    result = await _import_big(db, tmp_path / "big-report.csv", lines, monkeypatch,
                               {"email": "Work Mail", "first_name": "Given"})
    assert (result.batch.rows, result.batch.valid, result.batch.rejected) == (3000, 3000, 0)
    assert (await _contacts(db))["p7@example.com"] == ("Given7", None)


def test_the_header_a_parent_mapped_is_read_with_its_columns_alone() -> None:
    """What the parser child does (parallel.py): read the file with the parent's columns,
    whatever its own search would take for the header."""
    _name, data = _titled("csv")
    mapper = ColumnMapper(given={"email": "Work Mail", "first_name": "Given"})
    with CsvReader(io.BytesIO(data), columns_of=mapper) as parent:
        columns, records = parent.columns, list(parent.records())
    with CsvReader(io.BytesIO(data), columns_of=lambda _header: columns) as child:
        assert (child.header, child.columns) == (TITLED_HEADER, columns)
        assert list(child.records()) == records == [(3, TITLED_ROWS[2]), (4, TITLED_ROWS[3])]


async def test_a_file_without_a_header_remembers_no_customers_address_as_a_column(
    db: Database,
) -> None:  # fmt: skip
    """A file without a header row is mapped as its error says, by "a value of the first
    row": that first customer's address and name were remembered as the workspace's column
    mapping (`referral-bot mappings` lists them), and stayed after `contacts delete` took
    the contact out "everywhere". Both rows are still imported."""
    from bot.contact_admin import delete_contact, find_by_email

    await ensure_workspace(db, TEAM)
    await import_files(db, TEAM, [("nohdr.csv", io.BytesIO(b"ada@example.com,Ada,Lovelace\n"
                                                           b"bob@example.com,Bob,Stone\n"))],
                       segment="Work", create_segment=True,
                       column_map={"email": "ada@example.com", "first_name": "Ada",
                                   "last_name": "Lovelace"})  # fmt: skip
    assert set(await _contacts(db)) == {"ada@example.com", "bob@example.com"}
    await delete_contact(db, TEAM, await find_by_email(db, TEAM, "ada@example.com"), "cli")
    async with db.begin() as conn:
        kept = (await conn.execute(text(
            "SELECT email, first_name, last_name FROM column_mapping WHERE team_id = :t"),
            {"t": TEAM})).all()  # fmt: skip
    assert [v for row in kept for v in row if v in ("ada@example.com", "Ada", "Lovelace")] == []
