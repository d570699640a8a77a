"""Real exports (Shopify, Mailchimp's ZIP, HubSpot, Klaviyo, Excel, French headers) through the
service layer into the database: sources, notes, counts, reasons, locale and consent."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import text

from bot.imports import parallel
from bot.imports.background import _unread_source
from bot.imports.batches import add_source, create_batch, queue_batch
from bot.imports.engine import apply_batch
from bot.imports.files import entry_labels, stage_file
from bot.imports.importer import ImportFailed, import_files
from bot.imports.recognise import CLEANED_REASON
from bot.imports.review import remove_source
from bot.workspaces import ensure_workspace, import_target
from models import BatchStatus, Database, ImportBatch, ImportSource, SourceKind
from tests.imports import csv_samples as samples
from tests.imports import exports
from tests.imports.test_archives import bomb
from tests.imports.test_excel import excel_written, workbook

TEAM = "T1"
ZIP_LABELS = [f"export.zip › {name}" for name in
              (exports.SUBSCRIBED_CSV, exports.UNSUBSCRIBED_CSV, exports.CLEANED_CSV)]  # fmt: skip


async def _contacts(db: Database) -> dict[str, tuple[str, str, str | None, bool]]:
    """email -> (first name, last name, locale, subscribed)."""
    async with db.begin() as conn:
        rows = await conn.execute(text("SELECT email, first_name, last_name, locale, subscribed "
                                       "FROM contact WHERE team_id = :t"), {"t": TEAM})  # fmt: skip
        return {r[0]: (r[1], r[2], r[3], bool(r[4])) for r in rows}


async def _sources(db: Database, batch_id: int) -> list[ImportSource]:
    async with db.session() as session:
        from sqlmodel import col, select

        return list((await session.exec(
            select(ImportSource).where(ImportSource.batch_id == batch_id)
            .order_by(col(ImportSource.id))
        )).all())  # fmt: skip


async def _staged(db: Database, source_id: int) -> list[tuple[str, str, str | None, bool | None]]:
    """(email, outcome, reason, subscribed) of a source's staged rows, in order."""
    async with db.begin() as conn:
        rows = await conn.execute(text("SELECT email, outcome, reason, subscribed FROM staged_row "
                                       "WHERE source_id = :s ORDER BY id"), {"s": source_id})
        return [(r[0], r[1], r[2], None if r[3] is None else bool(r[3])) for r in rows]


async def _draft(db: Database, label: str, ref: str | None = None) -> tuple[int, ImportSource]:
    await ensure_workspace(db, TEAM)
    segment = await import_target(db, TEAM, "Imported", create=True)
    batch = await create_batch(db, TEAM, segment.id or 0, "U1")
    source = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, label, ref=ref)
    return batch.id or 0, source


async def _apply(db: Database, batch_id: int) -> ImportBatch:
    await queue_batch(db, TEAM, batch_id, "U1")
    return await apply_batch(db, TEAM, batch_id)


async def _import(db: Database, name: str, data: bytes, **kw: object):  # type: ignore[no-untyped-def]
    await ensure_workspace(db, TEAM)
    return await import_files(db, TEAM, [(name, io.BytesIO(data))], segment="Imported",
                              create_segment=True, **kw)  # type: ignore[arg-type]


# --- Mailchimp's audience export -----------------------------------------------------------


async def test_the_mailchimp_zip_imports_through_the_command_line_path(db: Database) -> None:
    rejects = io.StringIO()
    result = await _import(db, "export.zip", exports.mailchimp_zip(), rejects=rejects)
    batch = result.batch
    assert (batch.status, batch.rows, batch.valid, batch.duplicates, batch.rejected) == (
        BatchStatus.DONE, 5, 3, 0, 2)  # fmt: skip
    assert await _contacts(db) == {
        "ada@example.com": ("Ada", "Lovelace", None, True),
        "li@example.cn": ("Li", "Wei", None, True),
        "gone@example.com": ("Gone", "Away", None, False),  # enrolled, never emailed
    }
    sources = await _sources(db, batch.id or 0)
    assert [s.label for s in sources] == ZIP_LABELS
    assert [(s.status, s.rows, s.valid, s.rejected) for s in sources] == [
        ("parsed", 2, 2, 0), ("parsed", 1, 1, 0), ("parsed", 2, 0, 2)]  # fmt: skip
    subscribed, unsubscribed, cleaned = (s.note or "" for s in sources)
    assert "Mailchimp's subscribed members export" in subscribed
    assert "Not read from export.zip (only its CSV files are): “readme.txt”" in subscribed
    assert "__MACOSX" not in subscribed
    assert "imported as unsubscribed (enrolled in campaigns, never emailed)" in unsubscribed
    assert "cleaned members export: these addresses bounced" in cleaned
    skipped = rejects.getvalue().splitlines()
    assert len(skipped) == 3 and all(CLEANED_REASON in line for line in skipped[1:])
    assert "bounced@example.com" in skipped[1] and ZIP_LABELS[2] in skipped[1]


async def test_a_zip_staged_again_adds_no_source_twice(db: Database) -> None:
    """A retried job: the ZIP is read again; only what was never marked read is staged."""
    batch_id, origin = await _draft(db, "export.zip", ref="F0001")
    data = exports.mailchimp_zip()
    first = await stage_file(db, TEAM, origin.id or 0, io.BytesIO(data), name="export.zip")
    assert [s.label for s in first] == ZIP_LABELS
    assert [s.ref for s in first] == ["F0001"] * 3
    assert await _unread_source(db, TEAM, origin.id or 0) is None  # nothing left to read

    # the worker died after adding the third source, before staging it
    third = first[2].id
    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_source SET status = 'pending', rows = 0, "
                                "rejected = 0, note = NULL WHERE id = :s"), {"s": third})
        await conn.execute(text("DELETE FROM staged_row WHERE source_id = :s"), {"s": third})
    assert await _unread_source(db, TEAM, origin.id or 0) is not None
    again = await stage_file(db, TEAM, origin.id or 0, io.BytesIO(data), name="export.zip")
    assert [s.id for s in again] == [s.id for s in first]
    sources = await _sources(db, batch_id)
    assert [(s.label, s.status, s.rows) for s in sources] == [
        (ZIP_LABELS[0], "parsed", 2), (ZIP_LABELS[1], "parsed", 1), (ZIP_LABELS[2], "parsed", 2)]
    assert [len(await _staged(db, s.id or 0)) for s in sources] == [2, 1, 2]
    assert "bounced" in (sources[2].note or "")

    result = await _apply(db, batch_id)
    assert (result.status, result.new_contacts) == (BatchStatus.DONE, 3)
    assert (await _contacts(db))["gone@example.com"][3] is False


async def test_mailchimp_files_uploaded_one_at_a_time_are_recognised(db: Database) -> None:
    batch_id, unsub = await _draft(db, "members.csv")  # renamed: told by its columns
    await stage_file(db, TEAM, unsub.id or 0, io.BytesIO(exports.mailchimp_unsubscribed()),
                     name="members.csv")  # fmt: skip
    cleaned = await add_source(db, TEAM, batch_id, SourceKind.CSV, "bounces.csv")
    await stage_file(db, TEAM, cleaned.id or 0, io.BytesIO(exports.mailchimp_cleaned()),
                     name="bounces.csv")  # fmt: skip
    name = "nonsubscribed_members_export_9f8e7d.csv"
    transactional = await add_source(db, TEAM, batch_id, SourceKind.CSV, name)
    await stage_file(db, TEAM, transactional.id or 0, io.BytesIO(exports.mailchimp_members(
        [], ("buyer@example.com", "Bea", "Buyer"))), name=name)  # fmt: skip
    sources = await _sources(db, batch_id)
    assert ["unsubscribed members" in (s.note or "") for s in sources] == [True, False, False]
    assert "cleaned members export" in (sources[1].note or "")
    assert "non-subscribed contacts export: they never opted in" in (sources[2].note or "")
    assert await _staged(db, cleaned.id or 0) == [
        ("bounced@example.com", "rejected", CLEANED_REASON, False),
        ("typo@exmaple.com", "rejected", CLEANED_REASON, False),
    ]
    await _apply(db, batch_id)
    contacts = await _contacts(db)
    assert set(contacts) == {"gone@example.com", "buyer@example.com"}
    assert not any(subscribed for *_, subscribed in contacts.values())


async def test_an_unsubscribe_later_in_the_import_is_heeded_not_dropped(db: Database) -> None:
    """A shop's customers (accepts marketing: yes) and Mailchimp's export in one import: the
    person in the unsubscribed CSV was a duplicate of the shop's row, never applied, and was
    imported subscribed. The same for "yes" then "no" in one file. A removed file says
    nothing."""
    batch_id, shop = await _draft(db, "customers.csv")
    shopify = samples.csv_bytes([["Email", "First Name", "Accepts Email Marketing"],
                                 ["gone@example.com", "Gone", "yes"],
                                 ["twice@example.com", "Twice", "yes"],
                                 ["twice@example.com", "Twice", "no"],
                                 ["kept@example.com", "Kept", "yes"]])  # fmt: skip
    await stage_file(db, TEAM, shop.id or 0, io.BytesIO(shopify), name="customers.csv")
    mc = await add_source(db, TEAM, batch_id, SourceKind.CSV, "export.zip")
    await stage_file(db, TEAM, mc.id or 0, io.BytesIO(exports.mailchimp_zip()), name="export.zip")
    later = await add_source(db, TEAM, batch_id, SourceKind.CSV, "later.csv")
    await stage_file(db, TEAM, later.id or 0, io.BytesIO(samples.csv_bytes(
        [["Email", "Accepts Email Marketing"], ["kept@example.com", "no"]])), name="later.csv")
    await remove_source(db, TEAM, batch_id, later.id or 0)
    assert (await _apply(db, batch_id)).status == BatchStatus.DONE
    contacts = await _contacts(db)
    assert contacts["gone@example.com"][3] is False  # unsubscribed in Mailchimp
    assert contacts["twice@example.com"][3] is False
    assert contacts["kept@example.com"][3] is True  # its "no" was in a removed file


async def test_an_address_mailchimp_cleaned_is_imported_not_subscribed_from_another_file(
    db: Database,
) -> None:
    """Mailchimp's export (bounced@ in its cleaned CSV) and a shop's list saying "yes" for
    bounced@, in one import: bounced@ was imported subscribed and invited, and the invite
    bounced again. The cleaned row is still a skipped row with its reason."""
    shop = samples.csv_bytes([["Email", "First Name", "Accepts Email Marketing"],
                              ["bounced@example.com", "Bo", "yes"],
                              ["kept@example.com", "Kept", "yes"]])  # fmt: skip
    rejects = io.StringIO()
    await ensure_workspace(db, TEAM)
    result = await import_files(db, TEAM, [("export.zip", io.BytesIO(exports.mailchimp_zip())),
                                           ("customers.csv", io.BytesIO(shop))],
                                segment="Imported", create_segment=True,
                                rejects=rejects)  # fmt: skip
    batch = result.batch
    assert (batch.status, batch.rows, batch.valid, batch.rejected) == (BatchStatus.DONE, 7, 5, 2)
    contacts = await _contacts(db)
    assert contacts["bounced@example.com"][3] is False  # never emailed
    assert contacts["kept@example.com"][3] is True
    assert contacts["ada@example.com"][3] is True
    sources = await _sources(db, batch.id or 0)
    assert [(s.rows, s.valid, s.rejected) for s in sources] == [
        (2, 2, 0), (1, 1, 0), (2, 0, 2), (2, 2, 0)]  # fmt: skip
    skipped = rejects.getvalue().splitlines()
    assert len(skipped) == 3 and all(CLEANED_REASON in line for line in skipped[1:])
    assert "bounced@example.com" in skipped[1]


async def test_a_file_of_their_own_named_like_mailchimps_cleaned_export_imports(
    db: Database,
) -> None:
    """`cleaned_customer_export.csv` (tidied by the merchant): every row was skipped as
    "cleaned by Mailchimp (address bounced)" for its name alone."""
    batch_id, src = await _draft(db, "cleaned_customer_export.csv")
    data = samples.csv_bytes([["Email", "First Name", "Last Name"],
                              ["ada@example.com", "Ada", "L"], ["bob@example.com", "Bob", "B"]])
    await stage_file(db, TEAM, src.id or 0, io.BytesIO(data), name="cleaned_customer_export.csv")
    (source,) = await _sources(db, batch_id)
    assert (source.valid, source.rejected) == (2, 0)


async def test_a_zip_read_part_way_whose_first_csv_was_removed_reads_the_rest(
    db: Database, tmp_path: Path
) -> None:
    """A reading cut short at the ZIP's third CSV, then its first CSV removed: the retry
    read nothing more, the third stayed "Reading..." and no approval could pass."""
    data = exports.zip_bytes({f"{n}.csv": f"email\n{n}@example.com\n".encode()
                              for n in ("a", "b", "c")})  # fmt: skip
    batch_id, origin = await _draft(db, "export.zip", ref=str(tmp_path / "export.zip"))
    await stage_file(db, TEAM, origin.id or 0, io.BytesIO(data), name="export.zip")
    third = (await _sources(db, batch_id))[2]
    async with db.begin() as conn:  # as the reading cut short left it
        await conn.execute(text("DELETE FROM staged_row WHERE source_id = :s"), {"s": third.id})
        await conn.execute(text("UPDATE import_source SET status = 'pending' WHERE id = :s"),
                           {"s": third.id})  # fmt: skip
    await remove_source(db, TEAM, batch_id, origin.id or 0)
    [removed] = [s for s in await _sources(db, batch_id) if s.id == origin.id]
    await stage_file(db, TEAM, removed.id or 0, io.BytesIO(data), name="export.zip")  # retry
    sources = await _sources(db, batch_id)
    assert [(s.status, s.removed) for s in sources] == [
        ("parsed", True), ("parsed", False), ("parsed", False)]  # fmt: skip
    assert await _staged(db, sources[2].id or 0) == [("c@example.com", "valid", None, None)]


async def test_an_opt_out_column_keeps_those_who_opted_out_from_being_emailed(
    db: Database,
) -> None:
    """Salesforce's "Email Opt Out" (true = do not email) was no consent column: everyone was
    imported subscribed. HubSpot's "Unsubscribed from all email" beside its marketing status:
    either saying no is a no. A value it can't read is a no too, and said."""
    batch_id, crm = await _draft(db, "salesforce.csv")
    data = samples.csv_bytes([["First Name", "Email", "Email Opt Out"],
                              ["Ada", "ada@example.com", "true"],
                              ["Bob", "bob@example.com", "false"],
                              ["Cy", "cy@example.com", ""],
                              ["Di", "di@example.com", "2024-03-01"]])  # fmt: skip
    await stage_file(db, TEAM, crm.id or 0, io.BytesIO(data), name="salesforce.csv")
    hub = await add_source(db, TEAM, batch_id, SourceKind.CSV, "hubspot.csv")
    data = samples.csv_bytes([["Email", "Marketing contact status", "Unsubscribed from all email"],
                              ["eve@example.com", "Marketing contact", "true"],
                              ["fay@example.com", "Marketing contact", "false"],
                              ["gus@example.com", "Non-marketing contact", "false"]])  # fmt: skip
    await stage_file(db, TEAM, hub.id or 0, io.BytesIO(data), name="hubspot.csv")
    (first, _) = await _sources(db, batch_id)
    assert first.warnings == 1 and "2024-03-01" in (first.warning or "")
    await _apply(db, batch_id)
    subscribed = {email: row[3] for email, row in (await _contacts(db)).items()}
    assert subscribed == {"ada@example.com": False, "bob@example.com": True,
                          "cy@example.com": True, "di@example.com": False,
                          "eve@example.com": False, "fay@example.com": True,
                          "gus@example.com": False}  # fmt: skip


# --- other tools' exports ------------------------------------------------------------------


async def test_shopify_hubspot_klaviyo_and_french_exports(db: Database) -> None:
    batch_id, shopify = await _draft(db, "customers_export.csv")
    files = [("customers_export.csv", exports.shopify_customers(), shopify),
             ("hubspot-crm-exports-all-contacts.csv", exports.hubspot_contacts(), None),
             ("klaviyo_profiles.csv", exports.klaviyo_profiles(), None),
             ("clients.csv", exports.french_spreadsheet(), None)]  # fmt: skip
    for name, data, source in files:
        source = source or await add_source(db, TEAM, batch_id, SourceKind.CSV, name)
        staged = await stage_file(db, TEAM, source.id or 0, io.BytesIO(data), name=name)
        assert [s.status for s in staged] == ["parsed"], staged[0].error
    sources = await _sources(db, batch_id)
    assert [(s.rows, s.valid, s.duplicates, s.rejected, s.warnings) for s in sources] == [
        (4, 3, 1, 0, 0), (3, 3, 0, 0, 0), (5, 5, 0, 0, 2), (3, 3, 0, 0, 0)]  # fmt: skip
    klaviyo = sources[2].warning or ""
    assert "2 rows have a consent value we don't recognise: “MAYBE” (1), “maybe” (1)" in klaviyo
    assert "imported as not subscribed" in klaviyo
    assert [s.note for s in sources] == [None, None, None, None]
    assert [s.warning for i, s in enumerate(sources) if i != 2] == [None, None, None]
    reasons = {r[0]: r[2] for r in await _staged(db, sources[2].id or 0)}
    assert reasons["maybe1@example.com"] == (
        "Unrecognised consent value 'MAYBE': treated as not subscribed")

    result = await _apply(db, batch_id)
    assert result.status == BatchStatus.DONE
    contacts = await _contacts(db)
    # Shopify: Accepts Email Marketing "yes"; the workspace default language
    assert contacts["ada@example.com"] == ("Ada", "Lovelace", None, True)
    assert contacts["zoe@example.ie"][2:] == (None, True)
    # HubSpot: "French" and "German" as HubSpot shows them; its marketing contact status
    assert contacts["amelie@example.fr"] == ("Amélie", "Poulain", "fr", True)
    assert contacts["hans@example.de"] == ("Hans", "Meier", "de", False)
    assert contacts["pat@example.com"][2:] == (None, True)
    # Klaviyo: SUBSCRIBED, NEVER_SUBSCRIBED, UNSUBSCRIBED; a value we can't read is not a yes
    assert {e: contacts[e][3] for e in ("sub@example.com", "never@example.com",
                                        "unsub@example.com", "maybe1@example.com",
                                        "maybe2@example.com")} == {
        "sub@example.com": True, "never@example.com": False, "unsub@example.com": False,
        "maybe1@example.com": False, "maybe2@example.com": False}  # fmt: skip
    # French headers (Prénom, Nom, Courriel, Langue) in a cp1252 file with `;`
    assert contacts["elodie@example.fr"] == ("Élodie", "Martin", "fr", True)
    assert contacts["luc@example.fr"] == ("Luc", "Bernard", "fr-CA", True)
    assert contacts["zoe@example.fr"] == ("Zoé", "Durand", None, True)


async def test_an_xlsx_workbook_imports_its_first_sheet(db: Database) -> None:
    result = await _import(db, "Kunden.xlsx", exports.xlsx_workbook())
    batch = result.batch
    assert (batch.rows, batch.valid, batch.rejected) == (3, 2, 1)
    assert await _contacts(db) == {
        "jurgen@example.de": ("Jürgen", "Müller", "de", True),
        "ana@example.es": ("Ana", "García", "es", True),
    }
    (source,) = await _sources(db, batch.id or 0)
    assert source.label == "Kunden.xlsx"
    assert source.note == (
        "Only the sheet “Customers” was read; not read: “Notes”. Move their rows into one "
        "sheet, or save each sheet as a file of its own."
    )


# --- files refused, nothing written -------------------------------------------------------


@pytest.mark.parametrize(
    ("archive", "sentence"),
    [
        (bomb(2 * 1024 * 1024), "which is how a ZIP bomb looks"),
        (exports.zip_bytes({"list.csv": b"email\na@example.com\n",
                            "../../etc/cron.d/evil.csv": b"email\nb@example.com\n"}),
         "the entry '../../etc/cron.d/evil.csv' points outside the archive's folder"),
        (exports.zip_bytes({"notes.pdf": b"%PDF-1.4"}), "This ZIP holds no CSV file"),
    ],
    ids=["bomb", "traversal", "no-csv"],
)
async def test_a_dangerous_zip_is_refused_with_a_sentence(db: Database, archive: bytes,
                                                          sentence: str) -> None:  # fmt: skip
    batch_id, origin = await _draft(db, "export.zip", ref="F0002")
    (source,) = await stage_file(db, TEAM, origin.id or 0, io.BytesIO(archive), name="export.zip")
    assert source.status == "failed" and sentence in (source.error or "")
    assert [s.id for s in await _sources(db, batch_id)] == [origin.id]
    assert await _staged(db, origin.id or 0) == []


async def test_a_bomb_over_max_unzipped_is_refused_through_the_cli_path(db: Database) -> None:
    with pytest.raises(ImportFailed, match="more than the 1 MB limit"):
        await _import(db, "export.zip", bomb(2 * 1024 * 1024), max_unzipped_bytes=1024 * 1024)
    async with db.begin() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM import_batch"))).scalar_one() == 0


async def test_one_bad_csv_in_a_zip_fails_only_its_source(db: Database) -> None:
    batch_id, origin = await _draft(db, "lists.zip", ref="F0003")
    data = exports.zip_bytes({"good.csv": b"email\na@example.com\n",
                              "phones.csv": b"name,phone\nAda,555\n",
                              "sub/good.csv": b"email\nb@example.com\n"})  # fmt: skip
    staged = await stage_file(db, TEAM, origin.id or 0, io.BytesIO(data), name="lists.zip")
    assert [(s.label, s.status) for s in staged] == [
        ("lists.zip › good.csv", "parsed"), ("lists.zip › phones.csv", "failed"),
        ("lists.zip › good.csv (2)", "parsed")]  # fmt: skip
    assert "No email column found" in (staged[1].error or "")
    assert await _staged(db, staged[1].id or 0) == []
    assert (await _apply(db, batch_id)).valid == 2


async def test_what_a_zip_held_besides_its_csvs_is_said_when_its_first_csv_fails(
    db: Database,
) -> None:
    """The note "Not read from lists.zip (only its CSV files are): …" went on the first CSV
    only, and a failed file shows its error, not its notes: the workbook in the ZIP was
    never read and nothing said so. It goes on the first CSV read, else on the failure."""
    workbook_in_zip = workbook(("S", [["email"], ["b@example.com"]]))
    _, origin = await _draft(db, "lists.zip", ref="F0009")
    data = exports.zip_bytes({"phones.csv": b"name,phone\nAda,555\n",
                              "good.csv": b"email\na@example.com\n",
                              "customers.xlsx": workbook_in_zip})  # fmt: skip
    staged = await stage_file(db, TEAM, origin.id or 0, io.BytesIO(data), name="lists.zip")
    assert [s.status for s in staged] == ["failed", "parsed"]
    assert "customers.xlsx" not in (staged[0].error or "")
    assert "Not read from lists.zip (only its CSV files are): “customers.xlsx”" in (
        staged[1].note or "")

    _, origin = await _draft(db, "phones.zip", ref="F0010")
    data = exports.zip_bytes({"phones.csv": b"name,phone\nAda,555\n",
                              "customers.xlsx": workbook_in_zip})  # fmt: skip
    for _reading in range(2):  # a retried job says it once
        (failed,) = await stage_file(db, TEAM, origin.id or 0, io.BytesIO(data),
                                     name="phones.zip")  # fmt: skip
        assert failed.status == "failed" and failed.failed_on_columns
        assert (failed.error or "").startswith("No email column found")
        assert (failed.error or "").count("Not read from phones.zip") == 1, failed.error


async def test_a_sheet_damaged_part_way_fails_its_source_and_stages_nothing(
    db: Database,
) -> None:
    good = "".join(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{t}</t></is></c></row>'
                   for r, t in enumerate(["email", "a@example.com", "b@example.com"], 1))
    data = excel_written(good + '<row r="4"><c r="A4" t="inlineStr"><is><t>c@ex')
    _, source = await _draft(db, "broken.xlsx")
    (staged,) = await stage_file(db, TEAM, source.id or 0, io.BytesIO(data), name="broken.xlsx")
    assert staged.status == "failed" and "Excel file is damaged" in (staged.error or "")
    assert await _staged(db, source.id or 0) == []

    # the command line checks only the start of a sheet: it finds out while staging
    with pytest.raises(ImportFailed, match=r"broken\.xlsx: This Excel file is damaged"):
        await _import(db, "broken.xlsx", data)
    async with db.begin() as conn:
        statuses = (await conn.execute(text("SELECT status FROM import_batch ORDER BY id"))).all()
    assert [s[0] for s in statuses] == ["draft", "cancelled"]  # nothing imported
    assert await _contacts(db) == {}


async def test_an_encrypted_workbook_gets_a_sentence(db: Database) -> None:
    from tests.imports.test_excel import ole_file

    _, source = await _draft(db, "locked.xlsx")
    data = ole_file("Root Entry", "EncryptionInfo", "EncryptedPackage")
    (staged,) = await stage_file(db, TEAM, source.id or 0, io.BytesIO(data), name="locked.xlsx")
    assert staged.status == "failed" and "password-protected" in (staged.error or "")


# --- big files: the parallel parser only for plain ones -----------------------------------


async def test_big_files_on_disk_keep_their_kind_and_consent_notes(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 4 * 1024 * 1024)  # 16 MB in use
    people = [(f"gone{i}@example.com", "Gone", str(i)) for i in range(40_000)]
    unsub = tmp_path / "unsubscribed_members_export_big.csv"
    unsub.write_bytes(exports.mailchimp_members(exports.UNSUB_COLUMNS, *people))
    plain = tmp_path / "plain.csv"
    lines = ["email,accepts_marketing"] + [
        f"p{i}@example.com,{'later' if i % 1000 == 0 else 'yes'}" for i in range(200_000)]
    plain.write_text("\n".join(lines) + "\n")
    assert min(unsub.stat().st_size, plain.stat().st_size) >= parallel.PARALLEL_MIN_BYTES
    batch_id, first = await _draft(db, unsub.name)
    second = await add_source(db, TEAM, batch_id, SourceKind.CSV, plain.name)
    for path, source in ((unsub, first), (plain, second)):
        with path.open("rb") as stream:
            (staged,) = await stage_file(db, TEAM, source.id or 0, stream, name=path.name)
        assert staged.status == "parsed", staged.error
    sources = await _sources(db, batch_id)
    assert "unsubscribed members export" in (sources[0].note or "")
    assert sources[1].note is None and sources[1].warning == (
        "200 rows have a consent value we don't recognise: “later” (200). They are imported as "
        "not subscribed (never emailed); use yes/no, subscribed/unsubscribed or opted in/opted "
        "out.")  # fmt: skip
    async with db.begin() as conn:
        counts = dict((await conn.execute(text(
            "SELECT source_id, SUM(CASE WHEN subscribed THEN 1 ELSE 0 END) FROM staged_row "
            "GROUP BY source_id"))).all())  # fmt: skip
    assert counts == {first.id: 0, second.id: 199_800}


async def test_a_background_import_reads_a_zip_and_a_workbook(db: Database,
                                                              tmp_path: Path) -> None:  # fmt: skip
    """`import --background`: the job stages each file from its path, a ZIP into three."""
    from bot.imports.background import enqueue_file_import, import_handler
    from bot.imports.job_kinds import IMPORT_JOB
    from bot.jobs import queue
    from bot.jobs.worker import Worker, WorkerConfig

    await ensure_workspace(db, TEAM)
    archive, workbook = tmp_path / "export.zip", tmp_path / "Kunden.xlsx"
    archive.write_bytes(exports.mailchimp_zip())
    workbook.write_bytes(exports.xlsx_workbook())
    job = await enqueue_file_import(db, TEAM, [archive, workbook], segment="Background",
                                    create_segment=True)  # fmt: skip
    config = WorkerConfig(lease_seconds=5, poll_seconds=0.05, retry_base_seconds=0)
    await Worker(db, {IMPORT_JOB: import_handler(2)}, config).run_until_idle()
    done = await queue.get_job(db, TEAM, job.id or 0)
    assert done is not None and done.state == "done", done and done.last_error
    sources = await _sources(db, int(json.loads(job.payload)["batch_id"]))
    assert [s.label for s in sources] == [ZIP_LABELS[0], "Kunden.xlsx", *ZIP_LABELS[1:]]
    assert [s.status for s in sources] == ["parsed"] * 4
    contacts = await _contacts(db)
    assert len(contacts) == 5 and contacts["gone@example.com"][3] is False


# --- what the file reader copes with, seen in the contacts stored --------------------------


async def test_a_shift_jis_export_stores_the_names_as_written(db: Database) -> None:
    """Excel's "CSV" on a Japanese system is Shift-JIS: "悠斗 田中" was stored as "—I“l “c’†"."""
    data = "email,first_name,last_name\r\nyuto@example.jp,悠斗,田中\r\n".encode("shift_jis")

    result = await _import(db, "顧客.csv", data)

    assert (result.batch.valid, result.batch.rejected) == (1, 0)
    assert (await _contacts(db))["yuto@example.jp"][:2] == ("悠斗", "田中")


@pytest.mark.parametrize(("encoding", "rows"), [
    ("cp1255", [("נועה", "כהן", "noa@example.co.il", "he"),
                ("יוסף", "לוי", "yosef@example.co.il", "he-IL"),
                ("מיכל", "בן-דוד", "michal@example.co.il", "he")]),
    ("cp1256", [("ليلى", "منصور", "layla@example.lb", "ar-LB"),
                ("هدى", "الهاشمي", "huda@example.jo", "ar"),
                ("حسن", "الزهراني", "hassan@example.sa", "ar-SA"),
                ("منى", "العلي", "mona@example.eg", "ar")]),
    ("cp874", [("วิชัย", "มั่นคง", "wichai@example.co.th", "th"),
               ("สุดา", "ทองดี", "suda@example.co.th", "th-TH"),
               ("มาลี", "ศรีสุข", "malee@example.co.th", "th")]),
], ids=["hebrew", "arabic", "thai"])  # fmt: skip
async def test_hebrew_arabic_and_thai_exports_store_the_names_as_written(
    db: Database, encoding: str, rows: list[tuple[str, str, str, str]]
) -> None:
    """Excel's "CSV" on an Israeli, Arab or Thai system: the Hebrew file was refused as reading
    just as well as Cyrillic, the Arabic one as Thai, and "วิชัย มั่นคง" was stored as Shift-JIS's
    "ﾇﾔｪﾑﾂ ﾁﾑ雹､ｧ"."""
    data = ("email,first_name,last_name,locale\r\n"
            + "".join(f"{e},{f},{la},{loc}\r\n" for f, la, e, loc in rows)).encode(encoding)

    result = await _import(db, "customers.csv", data)

    assert (result.batch.valid, result.batch.rejected) == (len(rows), 0)
    contacts = await _contacts(db)
    assert [contacts[e][:3] for _, _, e, _ in rows] == [(f, la, loc) for f, la, _, loc in rows]


async def test_a_multiline_note_mentioning_an_address_is_imported_not_rejected(
    db: Database,
) -> None:
    """Ann's row was rejected as "Malformed CSV (lines 2-3): a quote that never closes...":
    her note's second line has an address and a comma."""
    data = (b"email,first_name,notes\r\n"
            b'ann@example.com,Ann,"Wholesale.\nBilling: accounts@acme.com, ext 204"\r\n'
            b"bob@example.com,Bob,\r\n")  # fmt: skip
    rejects = io.StringIO()

    result = await _import(db, "list.csv", data, rejects=rejects)

    assert (result.batch.valid, result.batch.rejected) == (2, 0), rejects.getvalue()
    assert set(await _contacts(db)) == {"ann@example.com", "bob@example.com"}


async def test_a_quoted_note_of_sixty_lines_is_imported_not_rejected(db: Database) -> None:
    note = "\n".join(f"line {i}" for i in range(60))
    data = f'email,first_name,notes\r\nann@example.com,Ann,"{note}"\r\n'.encode()
    rejects = io.StringIO()

    result = await _import(db, "list.csv", data, rejects=rejects)

    assert (result.batch.valid, result.batch.rejected) == (1, 0), rejects.getvalue()
    assert (await _contacts(db))["ann@example.com"][0] == "Ann"


@pytest.mark.parametrize("above", [b"sep=;\r\n", b"Customer export 2024-05-01\r\n\r\n"],
                         ids=["sep", "title"])
async def test_a_line_above_the_header_no_longer_refuses_the_file(db: Database,
                                                                  above: bytes) -> None:
    """Excel's `sep=;` line or a report's title was taken for the header: "No email column
    found. Columns found: 'sep='...", and nothing could be imported."""
    data = above + b"email;first_name\r\nann@example.com;Ann\r\n"

    result = await _import(db, "export.csv", data)

    assert (result.batch.valid, result.batch.rejected) == (1, 0)
    assert (await _contacts(db))["ann@example.com"][0] == "Ann"


HEADERLESS = [["ann@example.com", "", ""],  # 1: a row of data, fewer fields than the next
              ["Bob", "Ray", "Paris"],  # 2: no address: the header chosen, named by the mapping
              ["cy@example.com", "Cy", "Lee"], ["ann@example.com", "Ann", "Lee"]]  # fmt: skip


@pytest.mark.parametrize("name", ["people.csv", "people.xlsx"])
async def test_a_headerless_first_row_above_the_chosen_header_is_imported(
    db: Database, name: str
) -> None:
    """A headerless file whose first row lacks names, below it a row without an address:
    that row was chosen as the header (the first row taken for a title above it) and the
    first row was counted nowhere, neither imported nor in the rejects file."""
    if name.endswith(".csv"):
        data = "".join(",".join(row) + "\r\n" for row in HEADERLESS).encode()
    else:
        data = workbook(("People", [[cell for cell in row if cell] for row in HEADERLESS]))
    rejects = io.StringIO()

    result = await _import(db, name, data, rejects=rejects,
                           column_map={"email": "Bob", "first_name": "Ray"})  # fmt: skip

    batch = result.batch
    assert (batch.rows, batch.valid, batch.duplicates, batch.rejected) == (3, 2, 1, 0)
    assert set(await _contacts(db)) == {"ann@example.com", "cy@example.com"}
    assert [row[1] for row in csv.reader(io.StringIO(rejects.getvalue()))][1:] == ["4"]


# Files without a header row whose first row holds, beside its customer's address, a word
# that names an email column: "E-post" for how that customer signed up (Swedish for email).
SIGNED_UP = [["Anna", "Svensson", "anna@example.se", "E-post"],
             ["Bo", "Ek", "bo@example.se", "Butik"], ["Cy", "Lo", "cy@example.se", "E-post"]]
CHANNEL_FIRST = [["E-post", "anna@example.se", "Anna"], ["Butik", "bo@example.se", "Bo"]]


@pytest.mark.parametrize("name", ["signups.csv", "signups.xlsx"])
@pytest.mark.parametrize("rows", [SIGNED_UP, CHANNEL_FIRST], ids=["channel-last", "channel-first"])
async def test_a_first_row_holding_an_address_is_no_header_whatever_it_names(
    db: Database, name: str, rows: list[list[str]]
) -> None:
    """The first row was taken for the header, "E-post" its email column: that customer was
    counted nowhere and the others rejected for an address "Butik" ("2 rows read, 0 valid,
    2 rejected"). A row with an address in it is data: the file has no header row, and is
    told so as any such file is, then imported whole with its columns named."""
    data = (samples.csv_bytes(rows) if name.endswith(".csv")
            else workbook(("People", rows)))  # fmt: skip
    with pytest.raises(ImportFailed) as failed:
        await _import(db, name, data)
    told = str(failed.value)
    assert "No email column found" in told and "The first row looks like data" in told, told
    assert await _contacts(db) == {}

    address = rows[0].index("anna@example.se")
    result = await _import(db, name, data, column_map={"email": rows[0][address]})
    batch = result.batch
    assert (batch.rows, batch.valid, batch.rejected) == (len(rows), len(rows), 0)
    assert "anna@example.se" in await _contacts(db)


async def test_a_title_holding_an_address_above_the_header_is_rejected_saying_why(
    db: Database,
) -> None:
    """The title's line was counted nowhere: every line holding an address shows in the
    counts, and this one in the rejects file with its reason."""
    data = (b"Customer export, sent by ops@example.com\r\n\r\n"
            b"email,first_name,last_name\r\nann@example.com,Ann,Lee\r\n")
    rejects = io.StringIO()

    result = await _import(db, "report.csv", data, rejects=rejects)

    batch = result.batch
    assert (batch.rows, batch.valid, batch.duplicates, batch.rejected) == (2, 1, 0, 1)
    assert set(await _contacts(db)) == {"ann@example.com"}
    (_, rejected) = list(csv.reader(io.StringIO(rejects.getvalue())))
    assert rejected[1] == "1" and rejected[-1] == (
        "Above the header row (line 3), so not read as a contact: if it is one, move it below "
        "the header")


async def test_excel_escaped_carriage_returns_are_not_stored_as_text(db: Database) -> None:
    """Cells Excel saved with a carriage return: the address was rejected as invalid and the
    name stored as "Ann_x000D_"."""
    data = excel_written(
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
        '<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c></row>',
        ["Email", "First Name", "ann@example.com_x000D_\n", "Ann_x000D_\n"])
    rejects = io.StringIO()

    result = await _import(db, "list.xlsx", data, rejects=rejects)

    assert (result.batch.valid, result.batch.rejected) == (1, 0), rejects.getvalue()
    assert (await _contacts(db))["ann@example.com"][0] == "Ann"


async def test_a_row_fixed_in_the_rejects_csv_and_imported_again_keeps_its_consent(
    db: Database,
) -> None:
    """The rejects CSV is where a merchant fixes a rejected row (a trailing dot) to import it
    again, but it kept only the address and names: Bob's "no" was gone, and importing the
    fixed file subscribed (and emailed) someone who had said no. The row's consent and locale
    are columns the importer reads back; nothing else of the file is read as a contact's."""
    data = (b"Email,First Name,Accepts Email Marketing,Locale\r\n"
            b"ada@example.com,Ada,yes,en\r\n"
            b"bob@example.com.,Bob,no,fr\r\n"  # rejected: trailing dot
            b"ADA@example.com,Ada,yes,de\r\n"  # duplicate
            b"cy@example.com.,Cy,,\r\n")  # rejected, no consent given
    rejects = io.StringIO()
    await _import(db, "shop.csv", data, rejects=rejects)
    fixed = rejects.getvalue().replace("example.com.,", "example.com,")

    result = await _import(db, "shop-skipped-rows.csv", fixed.encode())

    assert (result.batch.valid, result.batch.warnings) == (3, 0), fixed
    contacts = await _contacts(db)
    assert contacts["bob@example.com"][2:] == ("fr", False), fixed
    assert contacts["cy@example.com"][3] is True  # as the first file said: nothing
    assert contacts["ada@example.com"] == ("Ada", "", "en", True)
    listed = {r["email"]: (r["subscribed"], r["locale"], r["outcome"])
              for r in csv.DictReader(io.StringIO(rejects.getvalue()))}  # fmt: skip
    assert listed["ADA@example.com"] == ("yes", "de", "duplicate")
    assert listed["bob@example.com."] == ("no", "fr", "rejected")
    assert listed["cy@example.com."] == ("", "", "rejected")


async def test_a_locale_cell_of_spaces_counts_no_warning(db: Database) -> None:
    data = b"email,first_name,locale\r\nann@example.com,Ann, \r\n"

    result = await _import(db, "list.csv", data)

    assert (result.batch.valid, result.batch.warnings) == (1, 0)
    assert (await _contacts(db))["ann@example.com"][2] is None


async def test_a_workbook_whose_first_sheet_is_a_summary_imports_its_customers(
    db: Database,
) -> None:
    """It was refused: "No email column found. Columns found: 'Total', '1'"."""
    data = workbook(("Summary", [["Total", 1]]),
                    ("Contacts", [["Email", "First Name"], ["ann@example.com", "Ann"]]))

    result = await _import(db, "customers.xlsx", data)

    assert (result.batch.valid, result.batch.rejected) == (1, 0)
    assert (await _contacts(db))["ann@example.com"][0] == "Ann"
    source = (await _sources(db, result.batch.id))[0]
    assert source.note is not None and "“Contacts” was read; not read: “Summary”" in source.note


async def test_email_formulas_saved_without_results_are_said_on_the_review(
    db: Database,
) -> None:
    """A workbook a script wrote (openpyxl, pandas) holds formulas without their results:
    its email column of =LOWER(...) read as empty, every row "Missing email", no hint why."""
    data = workbook(("Customers", [["Email", "Name"], ['=LOWER("ADA@EXAMPLE.COM")', "Ada"],
                                   ['=LOWER("BOB@EXAMPLE.COM")', "Bob"], ["cy@example.com", "Cy"]]))
    batch_id, source = await _draft(db, "export.xlsx")
    await stage_file(db, TEAM, source.id or 0, io.BytesIO(data), name="export.xlsx")
    (read,) = await _sources(db, batch_id)
    assert (read.valid, read.rejected) == (1, 2)
    assert "2 cells are formulas saved without a result" in (read.note or ""), read.note
    assert "open the file in Excel, save it" in (read.note or "")


async def test_a_no_merged_down_the_consent_column_is_heeded_on_every_row(
    db: Database,
) -> None:
    """A "No" merged down the Subscribed column beside three people (C2:C4) counted for the
    first only: Excel keeps the value in the top cell, so the two under it read empty,
    were imported subscribed and emailed."""
    book = openpyxl.Workbook()
    sheet = book.active
    for row in (["Email", "Name", "Subscribed"], ["ann@example.com", "Ann", "No"],
                ["bob@example.com", "Bob"], ["cy@example.com", "Cy"], ["di@example.com", "Di"]):
        sheet.append(row)
    sheet.merge_cells("C2:C4")
    out = io.BytesIO()
    book.save(out)

    await _import(db, "customers.xlsx", out.getvalue())

    assert {email: c[3] for email, c in (await _contacts(db)).items()} == {
        "ann@example.com": False, "bob@example.com": False, "cy@example.com": False,
        "di@example.com": True}  # fmt: skip


async def test_a_binary_excel_workbook_is_told_what_it_is(db: Database) -> None:
    """An .xlsb was told "This ZIP holds no CSV file (it holds [Content_Types].xml,
    workbook.bin, sheet1.bin)"."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.bin", b"\x83\x01\x00")
        archive.writestr("xl/worksheets/sheet1.bin", b"\x81\x01\x00")
    with pytest.raises(ImportFailed) as failed:
        await _import(db, "customers.xlsb", out.getvalue())
    assert "Excel binary workbook (.xlsb)" in str(failed.value)
    assert "ZIP" not in str(failed.value)


_WEB_PAGE = ('\ufeff \n<html><head><meta charset="utf-8"></head><body><table>\n'
             "<tr><th>Email</th><th>First Name</th></tr>\n"
             "<tr><td>h1@example.com</td><td>H</td></tr>\n</table></body></html>\n")
_XML_SPREADSHEET = ('<?xml version="1.0"?>\n<?mso-application progid="Excel.Sheet"?>\n'
                    '<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet" '
                    'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet">\n'
                    '<Worksheet ss:Name="Sheet1"><Table><Row><Cell><Data ss:Type="String">Email'
                    "</Data></Cell></Row></Table></Worksheet></Workbook>\n")


@pytest.mark.parametrize(("data", "told"), [
    (_WEB_PAGE.encode("utf-8"), "This is a web page (HTML table) saved as .xls: open it in "
                                "Excel and save it as .xlsx or CSV."),
    (_WEB_PAGE[1:].encode("utf-16"), "This is a web page (HTML table) saved as .xls"),
    (b"<!DOCTYPE html><html><body><TABLE><tr><td>Email</td></tr></TABLE>",
     "This is a web page (HTML table) saved as .xls"),
    (b"<table border=1><tr><td>Email</td></tr></table>", "web page (HTML table) saved as .xls"),
    (_XML_SPREADSHEET.encode(), "This is an Excel 2003 XML spreadsheet saved as .xls: open it "
                                "in Excel and save it as .xlsx or CSV."),
])  # fmt: skip
async def test_a_web_page_saved_as_xls_is_told_what_it_is(db: Database, data: bytes,
                                                         told: str) -> None:  # fmt: skip
    """Salesforce's formatted report, NetSuite, Zoho...: "Export to Excel" writes an HTML
    table named .xls. It was told "No email column found. Columns found: '<html><head>...'"."""
    with pytest.raises(ImportFailed) as failed:
        await _import(db, "report.xls", data)
    assert told in str(failed.value) and "<html>" not in str(failed.value)
    assert await _contacts(db) == {}

    _batch, source = await _draft(db, "report.xls", ref="F1")  # as a Slack upload is read
    [read] = await stage_file(db, TEAM, source.id or 0, io.BytesIO(data), name="report.xls")
    assert read.status == "failed" and told in (read.error or ""), read.error


async def test_a_web_page_named_csv_is_told_it_is_no_csv(db: Database) -> None:
    with pytest.raises(ImportFailed) as failed:
        await _import(db, "customers.csv", _WEB_PAGE.encode())
    assert "This is a web page (HTML table), not a CSV file: open it in Excel" in str(
        failed.value)


async def test_an_ods_spreadsheet_is_told_what_it_is(db: Database) -> None:
    """It was told "This ZIP holds no CSV file (it holds mimetype, content.xml)"."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", "<office:document-content/>")

    with pytest.raises(ImportFailed) as failed:
        await _import(db, "customers.ods", out.getvalue())

    message = str(failed.value)
    assert "OpenDocument spreadsheet" in message and "ZIP" not in message
    assert "save it as CSV or as an Excel .xlsx workbook" in message
    assert await _contacts(db) == {}


def test_entry_labels_are_stable_and_distinct() -> None:
    with zipfile.ZipFile(io.BytesIO(exports.zip_bytes(
        {"a/list.csv": b"email\n", "b/list.csv": b"email\n", "c.csv": b"email\n"}
    ))) as archive:  # fmt: skip
        from bot.imports.archives import ZipEntry

        entries = [ZipEntry(i.filename.rsplit("/", 1)[-1], i.file_size, archive, i)
                   for i in archive.infolist()]  # fmt: skip
        assert entry_labels("x.zip", entries) == ["x.zip › list.csv", "x.zip › list.csv (2)",
                                                  "x.zip › c.csv"]  # fmt: skip


REPORT = [["Customer report", None, None],
          ["Exported by", "ops@shop.example", None],  # label and address, two cells
          ["Date", "2024-05-01", None],
          [None, None, None],
          ["Email", "First Name", "Last Name"],  # the header, on row 5
          ["ada@example.com", "Ada", "Lovelace"]]  # fmt: skip


def _report_file(name: str, rows: list[list[str | None]]) -> bytes:
    """`rows` as the file `name` says: CSV (an empty cell for None) or a one-sheet workbook."""
    if name.endswith(".csv"):
        return "".join(",".join(c or "" for c in row) + "\r\n" for row in rows).encode()
    return workbook(("Report", rows))


@pytest.mark.parametrize("name", ["report.csv", "report.xlsx"])
async def test_a_report_naming_its_sender_in_a_cell_of_its_own_finds_its_header(
    db: Database, name: str
) -> None:
    """A report's "Exported by | ops@shop.example" line, label and address in two cells as a
    spreadsheet writes it, read as a row of data and stopped the header search above the
    real header: the title was taken for the header and the whole file refused ("No email
    column found. Columns found: 'Customer report'")."""
    rejects = io.StringIO()

    result = await _import(db, name, _report_file(name, REPORT), rejects=rejects)

    assert set(await _contacts(db)) == {"ada@example.com"}
    assert result.batch.valid == 1
    assert f"{name},2,,,,,,rejected,\"Above the header row (line 5)" in rejects.getvalue()


LABEL_OVER_EMAIL = [["Exported by", "ops@shop.example", None],  # the address under "Email"
                    ["Language", "Email", "First Name"],
                    ["fr", "ada@example.com", "Ada"]]  # fmt: skip


@pytest.mark.parametrize("name", ["report.csv", "report.xlsx"])
async def test_a_label_line_whose_address_falls_in_the_email_column_is_not_imported(
    db: Database, name: str
) -> None:
    """"Exported by | ops@shop.example" above a header recognised by name, its address in the
    email column's place, was imported: the shop's own address a customer (its locale
    "Exported by"), to be invited. Found by fuzzing the importer."""
    rejects = io.StringIO()

    result = await _import(db, name, _report_file(name, LABEL_OVER_EMAIL), rejects=rejects)

    assert set(await _contacts(db)) == {"ada@example.com"}
    batch = result.batch
    assert (batch.rows, batch.valid, batch.duplicates, batch.rejected) == (2, 1, 0, 1)
    assert f"{name},1,,,,,,rejected,\"Above the header row (line 2)" in (
        rejects.getvalue())


async def test_addresses_pasted_with_a_name_or_as_mailto_links_are_imported(db: Database) -> None:
    data = (b"Email,First Name\r\n"
            b"Ada Lovelace <ada@example.com>,Ada\r\nmailto:bob@example.com,Bob\r\n")

    result = await _import(db, "pasted.csv", data)

    assert result.batch.valid == 2
    assert set(await _contacts(db)) == {"ada@example.com", "bob@example.com"}


async def _a_file_to_read(db: Database) -> tuple[ImportBatch, ImportSource, int]:
    """A draft of segment S with a.csv queued to be read by a job: the batch, the source and
    its reading job's id."""
    from bot.imports.job_kinds import SLACK_FILE_JOB

    await ensure_workspace(db, TEAM)
    segment = await import_target(db, TEAM, "S", create=True)
    batch = await create_batch(db, TEAM, segment.id or 0, "U1")
    first = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, "a.csv", ref="F1",
                             read_by=SLACK_FILE_JOB)  # fmt: skip
    async with db.begin() as conn:
        job = (await conn.execute(text("SELECT id FROM job WHERE dedupe_key = :k"),
                                  {"k": f"stage:{first.id}"})).scalar_one()  # fmt: skip
    return batch, first, int(job)


async def test_a_file_whose_reading_is_cancelled_leaves_no_rows_that_hide_another_files(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`referral-bot jobs cancel` of the job reading a file, while its rows were being staged:
    the file failed but its rows stayed, so its addresses were duplicates in every other file
    of the review (the same file added again included) and were imported from none."""
    from bot.imports import batches
    from bot.imports.batches import stage_csv
    from bot.imports.cancel import cancel_job

    batch, first, job = await _a_file_to_read(db)
    staged_then = batches.refresh_statistics

    async def cancelled_meanwhile(db_: Database, rows: int) -> None:
        await cancel_job(db_, TEAM, job, "U1")  # its rows are written, not yet counted
        await staged_then(db_, rows)

    monkeypatch.setattr(batches, "refresh_statistics", cancelled_meanwhile)
    assert (await stage_csv(db, TEAM, first.id or 0,
                            io.BytesIO(b"email\nx@example.com\n"))).status == "failed"
    monkeypatch.setattr(batches, "refresh_statistics", staged_then)
    second = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, "b.csv")
    again = await stage_csv(db, TEAM, second.id or 0,
                            io.BytesIO(b"email\nx@example.com\ny@example.com\n"))  # fmt: skip
    await queue_batch(db, TEAM, batch.id or 0, "U2")
    await apply_batch(db, TEAM, batch.id or 0)

    assert (again.valid, again.duplicates) == (2, 0)
    assert set(await _contacts(db)) == {"x@example.com", "y@example.com"}


async def test_a_file_read_while_anothers_reading_is_cancelled_keeps_no_duplicates_of_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other file read in the moment between the cancelled file's rows being written and
    its counting: its repeats of that file's addresses were staged as duplicates, and stayed
    so once that file failed and its rows went, so the review said "1 duplicate" of an
    address that no file would import, and it was imported from none."""
    from bot.imports import batches
    from bot.imports.batches import count_rows, stage_csv
    from bot.imports.cancel import cancel_job
    from bot.imports.job_kinds import SLACK_FILE_JOB

    batch, first, job = await _a_file_to_read(db)
    second = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, "b.csv", ref="F2",
                              read_by=SLACK_FILE_JOB)  # fmt: skip
    staged_then = batches.refresh_statistics

    async def another_read_then_cancelled(db_: Database, rows: int) -> None:
        monkeypatch.setattr(batches, "refresh_statistics", staged_then)
        await stage_csv(db_, TEAM, second.id or 0,
                        io.BytesIO(b"email\nx@example.com\ny@example.com\n"))  # fmt: skip
        await cancel_job(db_, TEAM, job, "U1")  # a.csv's rows are written, not yet counted
        await staged_then(db_, rows)

    monkeypatch.setattr(batches, "refresh_statistics", another_read_then_cancelled)
    assert (await stage_csv(db, TEAM, first.id or 0,
                            io.BytesIO(b"email\nx@example.com\n"))).status == "failed"
    async with db.begin() as conn:
        counts = await count_rows(conn, TEAM, batch.id or 0)
    await queue_batch(db, TEAM, batch.id or 0, "U2")
    await apply_batch(db, TEAM, batch.id or 0)

    assert (counts[second.id or 0].valid, counts[second.id or 0].duplicates) == (2, 0)
    assert first.id not in counts
    assert set(await _contacts(db)) == {"x@example.com", "y@example.com"}


async def test_a_file_given_up_with_rows_an_earlier_attempt_left_keeps_no_duplicates_of_them(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its reading killed after its rows were written and before they were counted, the file
    is given up later (out of attempts: unreadable since): another file's repeats of those
    rows stayed duplicates of rows that count nowhere."""
    from bot.imports import batches
    from bot.imports.batches import count_rows, fail_source, stage_csv

    await ensure_workspace(db, TEAM)
    segment = await import_target(db, TEAM, "S", create=True)
    batch = await create_batch(db, TEAM, segment.id or 0, "U1")
    first = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, "a.csv")
    second = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, "b.csv")

    async def killed(db_: Database, rows: int) -> None:
        raise SystemExit("killed")  # its rows are written, not yet counted

    monkeypatch.setattr(batches, "refresh_statistics", killed)
    with pytest.raises(SystemExit):
        await stage_csv(db, TEAM, first.id or 0, io.BytesIO(b"email\nx@example.com\n"))
    monkeypatch.undo()
    await stage_csv(db, TEAM, second.id or 0,
                    io.BytesIO(b"email\nx@example.com\ny@example.com\n"))  # fmt: skip
    await fail_source(db, TEAM, first.id or 0, "The file is gone.", only_pending=True)
    async with db.begin() as conn:
        counts = await count_rows(conn, TEAM, batch.id or 0)

    assert (counts[second.id or 0].valid, counts[second.id or 0].duplicates) == (2, 0)


async def test_a_background_import_names_the_failed_file_of_two_of_one_name_told_apart(
    db: Database, tmp_path: Path
) -> None:
    """`import --background a/customers.csv b/customers.csv`, b's changed to a file without
    an email column before a worker read it: the job failed with "customers.csv: No email
    column", which could be either. It names it as the review message does."""
    from bot.imports.background import enqueue_file_import, import_handler
    from bot.imports.job_kinds import IMPORT_JOB
    from bot.jobs import queue
    from bot.jobs.worker import Worker, WorkerConfig

    await ensure_workspace(db, TEAM)
    paths = [tmp_path / folder / "customers.csv" for folder in ("a", "b")]
    for path in paths:
        path.parent.mkdir()
        path.write_bytes(b"email\nann@example.com\n")
    job = await enqueue_file_import(db, TEAM, paths, segment="Background", create_segment=True)
    paths[1].write_bytes(b"name\nBo\n")
    config = WorkerConfig(lease_seconds=5, poll_seconds=0.05, retry_base_seconds=0)
    await Worker(db, {IMPORT_JOB: import_handler(2)}, config).run_until_idle()
    failed = await queue.get_job(db, TEAM, job.id or 0)
    assert failed is not None and failed.state == "failed", failed
    assert (failed.last_error or "").startswith("customers (2).csv: No email column"), (
        failed.last_error)
    # and the import failed with it, on this first attempt: it stayed a draft nobody could
    # review, with no error, though its job had failed for good
    async with db.begin() as conn:
        status, error = (await conn.execute(text(
            "SELECT status, error FROM import_batch"))).one()  # fmt: skip
    assert status == "failed" and (error or "").startswith("customers (2).csv: No email"), (
        status, error)


async def test_two_files_of_one_name_without_an_extension_are_numbered_at_its_end(
    db: Database,
) -> None:
    """The number went before the last dot of the whole path: the second of two files
    called `exports.v2/customers` was "exports (2).v2/customers", a folder that doesn't
    exist. (The shell reads a file given twice once now, so this is the importer's own.)"""
    await ensure_workspace(db, TEAM)
    rejects = io.StringIO()
    name = "exports.v2/customers"
    with pytest.raises(ImportFailed):  # nothing valid: its rejects say why
        await import_files(db, TEAM, [(name, io.BytesIO(b"email\nbad@@x\n")),
                                      (name, io.BytesIO(b"email\nbad@@y\n"))],
                           segment="S", create_segment=True, rejects=rejects)  # fmt: skip
    rows = list(csv.reader(io.StringIO(rejects.getvalue())))
    assert [row[0] for row in rows[1:]] == [name, f"{name} (2)"], rows


async def test_a_file_ending_on_an_opening_quote_is_read_with_that_row_skipped(
    db: Database,
) -> None:
    """An export cut off right after a cell's opening quote: an IndexError escaped staging,
    the Slack job retried it and then failed the file "list index out of range"."""
    data = b'email,first_name,notes\na@x.com,Ann,ok\nb@x.com,Bob,"'
    _, source = await _draft(db, "customers.csv", ref="F0001")
    (staged,) = await stage_file(db, TEAM, source.id or 0, io.BytesIO(data),
                                 name="customers.csv")  # fmt: skip
    assert (staged.status, staged.rows, staged.valid, staged.rejected) == ("parsed", 2, 1, 1)
    assert (await _staged(db, source.id or 0))[0][:2] == ("a@x.com", "valid")


def _workbook_part_damaged() -> bytes:
    """A workbook whose xl/workbook.xml has one broken byte at the start of its compressed
    data (a reserved deflate block type), as a damaged download or disk gives."""
    import struct

    data = bytearray(workbook(("S", [["email"], ["a@example.com"]])))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("xl/workbook.xml")
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:
                                                    info.header_offset + 30])  # fmt: skip
    data[info.header_offset + 30 + name_len + extra_len] = 0x07  # BFINAL=1, BTYPE=11
    return bytes(data)


def _zip_directory_offset_damaged() -> bytes:
    """Mailchimp's export whose end-of-central-directory record gives a wrong (too large)
    offset for the central directory: zipfile lists the entries, then seeks before the
    file's start to open one."""
    import struct

    data = bytearray(exports.zip_bytes({"subscribed_members_export_1a.csv":
                                        b"Email Address\na@example.com\n"}))  # fmt: skip
    end = data.rfind(b"PK\x05\x06")
    (offset,) = struct.unpack("<I", data[end + 16 : end + 20])
    data[end + 16 : end + 20] = struct.pack("<I", offset + 1_000_000)
    return bytes(data)


def _zip_version_damaged() -> bytes:
    """Mailchimp's export whose central directory says the entry needs ZIP version 9.9 to
    extract (a flipped byte): zipfile raises NotImplementedError opening the archive."""
    import struct

    data = bytearray(exports.zip_bytes({"subscribed_members_export_1a.csv":
                                        b"Email Address\na@example.com\n"}))  # fmt: skip
    central = data.find(b"PK\x01\x02")
    data[central + 6 : central + 8] = struct.pack("<H", 99)
    return bytes(data)


async def test_a_workbook_with_a_damaged_part_fails_its_source_with_a_sentence(
    db: Database,
) -> None:
    """zlib.error escaped staging: the Slack job retried it ("Reading…") and then said
    "Could not read the file: Error -3 while decompressing data: invalid block type"; the
    shell raised the raw exception."""
    data = _workbook_part_damaged()
    _, source = await _draft(db, "customers.xlsx", ref="F0001")
    (staged,) = await stage_file(db, TEAM, source.id or 0, io.BytesIO(data),
                                 name="customers.xlsx")  # fmt: skip
    assert staged.status == "failed" and "damaged" in (staged.error or ""), staged.error
    assert await _staged(db, source.id or 0) == []
    with pytest.raises(ImportFailed, match=r"customers\.xlsx: This Excel file is damaged"):
        await _import(db, "customers.xlsx", data)


@pytest.mark.parametrize("damage", [_zip_directory_offset_damaged, _zip_version_damaged],
                         ids=["directory-offset", "version-needed"])  # fmt: skip
async def test_a_zip_with_a_damaged_directory_fails_its_source_with_a_sentence(
    db: Database, damage: object,
) -> None:
    """ValueError "negative seek value" out of an entry's opening, or NotImplementedError
    "zip file version 9.9" out of the workbook check: raw words after the job's retries."""
    data = damage()  # type: ignore[operator]
    _, origin = await _draft(db, "export.zip", ref="F0002")
    staged = await stage_file(db, TEAM, origin.id or 0, io.BytesIO(data), name="export.zip")
    assert [s.status for s in staged] == ["failed"]
    assert "damaged" in (staged[0].error or ""), staged[0].error
    with pytest.raises(ImportFailed, match=r"export\.zip: .*damaged"):
        await _import(db, "export.zip", data)
