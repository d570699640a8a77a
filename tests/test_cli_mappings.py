"""`referral-bot mappings` and `mappings forget ID` as a shell user runs them (tests/shell.py,
against this test's database): the workspace's remembered column mappings with their headers,
columns, who chose them and when, as text and JSON; forgetting one, after which its files are
read by their column names again; another workspace's mappings neither listed nor forgotten.
And `import --map` of a report whose title line is as wide as its header."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from bot.cli_mappings import short_ids
from bot.imports.batches import add_source, create_batch
from bot.imports.files import stage_file
from bot.imports.mapping import ColumnMap, column_name, headers_key, recall, remember, reread_source
from bot.workspaces import ensure_workspace, import_target
from models import ColumnMapping, Database, SourceKind
from tests.shell import run

TEAM = "T0001"
OTHER = "T0002"
CRM = (b"Full Name,Work Contact,Given,Preferred tongue\n"
       b"Ada Lovelace,ada@example.com,Ada,en\n")  # fmt: skip
CRM_HEADER = ["Full Name", "Work Contact", "Given", "Preferred tongue"]


async def _mapped_in_slack(db: Database, header: list[str], data: bytes,
                           mapping: ColumnMap, user: str) -> None:  # fmt: skip
    """What *Map columns* does with a file uploaded in Slack that failed on its columns:
    the submission remembers the choice and keeps the file's header (reread_source)."""
    segment = await import_target(db, TEAM, "Work", create=True)
    batch = await create_batch(db, TEAM, segment.id or 0, user)
    source = await add_source(db, TEAM, batch.id or 0, SourceKind.CSV, "crm.csv", ref="F1")
    await stage_file(db, TEAM, source.id or 0, io.BytesIO(data), name="crm.csv")
    await reread_source(db, TEAM, batch.id or 0, source.id or 0, header, mapping, user)


async def _at(db: Database, header: list[str], when: datetime) -> None:
    """Date the mapping of `header` (what --map remembers is dated now)."""
    async with db.begin() as conn:
        await conn.execute(text("UPDATE column_mapping SET updated_at = :at WHERE "
                                "headers_key = :k"), {"at": when, "k": headers_key(header)})


def _json(env: dict[str, str], *args: str) -> Any:
    done = run(env, *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


async def test_mappings_lists_the_workspaces_own_latest_first(
    db: Database, db_env: dict[str, str]
) -> None:
    for team in (TEAM, OTHER):
        await ensure_workspace(db, team)
    await _mapped_in_slack(db, CRM_HEADER, CRM, ColumnMap("Work Contact", "Given", None,
                                                          "Preferred tongue"), "U0001")
    await _at(db, CRM_HEADER, datetime(2025, 3, 1, 9, 30, tzinfo=UTC))
    await remember(db, TEAM, ["Email", "Name", "Email"], ColumnMap(column_name(
        ["Email", "Name", "Email"], 2)), "cli")  # the second "Email", chosen with --map
    await _at(db, ["Email", "Name", "Email"], datetime(2025, 4, 2, 17, 5, tzinfo=UTC))
    await remember(db, OTHER, ["Mail", "Who"], ColumnMap("Mail", "Who"), "U0009")

    listed = run(db_env, "mappings", "--team", TEAM)
    assert listed.returncode == 0, listed.stderr
    first, second = short_ids([headers_key(["Email", "Name"]), headers_key(CRM_HEADER)]).values()
    assert listed.stdout == (
        f"{first}  (headers not kept, as for a mapping given with import --map)\n"
        f"{' ' * 8}  email -> 'Email' (no. 2 of the columns so named)\n"
        f"{' ' * 8}  chosen from the command line on 2025-04-02 17:05 UTC\n"
        f"{second}  'Full Name', 'Work Contact', 'Given', 'Preferred tongue'\n"
        f"{' ' * 8}  email -> 'Work Contact', first_name -> 'Given', locale -> 'Preferred "
        "tongue'\n"
        f"{' ' * 8}  chosen by U0001 on 2025-03-01 09:30 UTC\n")  # fmt: skip
    rows = _json(db_env, "mappings", "--team", TEAM)
    assert [r["id"] for r in rows] == [first, second] and len(first) == 8
    assert rows[0] == {"id": first, "headers": None,
                       "columns": [{"field": "email", "column": "Email", "nth": 2}],
                       "chosen_by": "cli", "chosen_at": "2025-04-02T17:05:00+00:00"}  # fmt: skip
    assert rows[1]["headers"] == CRM_HEADER and rows[1]["chosen_by"] == "U0001"
    assert [(c["field"], c["column"]) for c in rows[1]["columns"]] == [
        ("email", "Work Contact"), ("first_name", "Given"), ("locale", "Preferred tongue")]
    theirs = _json(db_env, "mappings", "--team", OTHER)
    assert [r["columns"][0]["column"] for r in theirs] == ["Mail"]


async def test_an_empty_list_says_so(db: Database, db_env: dict[str, str]) -> None:
    await ensure_workspace(db, TEAM)
    listed = run(db_env, "mappings")
    assert (listed.returncode, listed.stdout) == (
        0, "No column mappings are remembered in this workspace.\n")
    assert _json(db_env, "mappings") == []


async def test_a_wide_export_s_headers_are_shortened(db: Database, db_env: dict[str, str]) -> None:
    """A CRM export of 40 columns, one named with a sentence: the listing shows the first
    names, each cut, and how many more; --json gives them whole."""
    await ensure_workspace(db, TEAM)
    header = ["Work Contact", "Notes about this customer from the last call", *(
        f"Field {n}" for n in range(38))]  # fmt: skip
    data = (",".join(header) + "\n" + ",".join(["ada@example.com", *[""] * 39]) + "\n").encode()
    await _mapped_in_slack(db, header, data, ColumnMap("Work Contact"), "U0001")
    listed = run(db_env, "mappings").stdout.splitlines()
    assert listed[0].endswith("  'Work Contact', 'Notes about this customer fro…', 'Field 0', "
                              "'Field 1', 'Field 2', 'Field 3', 'Field 4', 'Field 5' and 32 "
                              "more"), listed[0]  # fmt: skip
    assert _json(db_env, "mappings")[0]["headers"] == header


async def test_forget_lets_files_with_its_headers_be_read_by_their_names_again(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    for team in (TEAM, OTHER):
        await ensure_workspace(db, team)
    crm = tmp_path / "crm.csv"
    crm.write_bytes(CRM)
    imported = run(db_env, "import", str(crm), "--segment", "Work", "--create-segment",
                   "--team", TEAM, "--map", "email=Work Contact")  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    await remember(db, OTHER, CRM_HEADER, ColumnMap("Work Contact"), "U0009")
    (mapping,) = _json(db_env, "mappings", "--team", TEAM)

    # another workspace's id: not found, and its mapping stays
    theirs = run(db_env, "mappings", "forget", mapping["id"], "--team", OTHER[:-1] + "3")
    assert theirs.returncode == 1 and "T0003" in theirs.stderr  # no such workspace
    await ensure_workspace(db, "T0003")
    theirs = run(db_env, "mappings", "--team", "T0003", "forget", mapping["id"])
    assert theirs.returncode == 1
    assert theirs.stderr == f"referral-bot: No mapping {mapping['id']} in this workspace.\n"
    assert json.loads(run(db_env, "mappings", "forget", mapping["id"], "--team", "T0003",
                          "--json").stdout) == {
        "error": f"No mapping {mapping['id']} in this workspace."}  # fmt: skip

    # its first digits, in capitals: still this one
    forgot = run(db_env, "mappings", "forget", mapping["id"][:5].upper(), "--team", TEAM)
    assert forgot.returncode == 0, forgot.stderr
    assert forgot.stdout == (f"Forgot mapping {mapping['id']} (email -> 'Work Contact'). Files "
                             "with those headers are read by their column names again; choose "
                             "their columns with Map columns in Slack or import --map.\n")
    assert await recall(db, TEAM, CRM_HEADER) is None
    assert await recall(db, OTHER, CRM_HEADER) == ColumnMap("Work Contact")
    again = run(db_env, "import", str(crm), "--segment", "Work", "--team", TEAM)
    assert again.returncode == 1 and "No email column found" in again.stderr, again.stderr
    gone = run(db_env, "mappings", "forget", mapping["id"], "--team", TEAM)
    assert (gone.returncode, gone.stderr) == (
        1, f"referral-bot: No mapping {mapping['id']} in this workspace.\n")


async def _seeded(db: Database, key: str) -> None:
    async with db.begin() as conn:
        await conn.execute(insert(ColumnMapping).values(
            team_id=TEAM, headers_key=key, email="Mail", updated_by="U0001",
            updated_at=datetime(2025, 1, 1, tzinfo=UTC)))  # fmt: skip


async def test_ids_sharing_their_first_digits_are_longer_and_a_shared_prefix_is_refused(
    db: Database, db_env: dict[str, str]
) -> None:
    """Two mappings whose keys share their first eight digits (a one in a billion chance):
    each listed with as many as tell them apart, and a prefix both share forgets neither."""
    await ensure_workspace(db, TEAM)
    one, two = "0123abcd5" + "0" * 55, "0123abcd7" + "0" * 55
    for key in (one, two):
        await _seeded(db, key)
    assert sorted(r["id"] for r in _json(db_env, "mappings")) == ["0123abcd5", "0123abcd7"]
    shared = run(db_env, "mappings", "forget", "0123abcd")
    assert shared.returncode == 1
    assert shared.stderr == ("referral-bot: The id 0123abcd fits 2 mappings (0123abcd5, "
                             "0123abcd7): give the whole id `referral-bot mappings` lists.\n")
    done = _json(db_env, "mappings", "forget", "0123abcd7")
    assert done["forgotten"]["id"] == "0123abcd7"
    assert [r["id"] for r in _json(db_env, "mappings")] == ["0123abcd"]  # alone: 8 again


async def test_an_id_that_is_no_id_is_a_usage_error(db: Database, db_env: dict[str, str]) -> None:
    await ensure_workspace(db, TEAM)
    for bad in ("12", "xyz123", ""):
        done = run(db_env, "mappings", "forget", bad)
        assert done.returncode == 2, (bad, done.stderr)
        assert "isn't a mapping id" in done.stderr


async def test_import_map_under_a_title_as_wide_as_the_header_imports_and_is_listed(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """`import report.csv --map email="Work Mail"` of a report whose title line is as wide
    as its header failed "The column 'Work Mail' chosen for Email isn't in this file.
    Columns found: 'Customer export', 'December', '2026'"; next month's report, remembered,
    failed "No email column found"."""
    await ensure_workspace(db, TEAM)
    report = tmp_path / "report.csv"
    report.write_text("Customer export,December,2026\nWork Mail,Given,Family\n"
                      "ada@example.com,Ada,Lovelace\n")  # fmt: skip
    done = run(db_env, "import", str(report), "--segment", "Work", "--create-segment", "--json",
               "--map", "email=Work Mail", "--map", "first_name=Given")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (json.loads(done.stdout)["valid"], json.loads(done.stdout)["rejected"]) == (1, 0)
    (listed,) = _json(db_env, "mappings")
    assert [(c["field"], c["column"]) for c in listed["columns"]] == [
        ("email", "Work Mail"), ("first_name", "Given")]
    report.write_text("Customer export,January,2027\nWork Mail,Given,Family\n"
                      "bob@example.org,Bob,Stone\n")  # fmt: skip
    again = run(db_env, "import", str(report), "--segment", "Work", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["new_contacts"] == 1


async def test_a_mapping_keeps_its_headers_after_its_import_is_purged(
        db: Database, db_env: dict[str, str]) -> None:  # fmt: skip
    """The purge forgets a headerless file's first row kept on its source (a customer's
    address): it forgot every source's header, and `mappings` then said of every mapping
    chosen in Slack "headers not kept", its headers being where they are listed from."""
    from datetime import timedelta

    from sqlalchemy import bindparam
    from sqlmodel.sql.sqltypes import UTCDateTime

    from bot.imports.retention import purge_staged
    from models.clock import utcnow

    await ensure_workspace(db, TEAM)
    await _mapped_in_slack(db, CRM_HEADER, CRM, ColumnMap("Work Contact", "Given"), "U0001")
    assert _json(db_env, "mappings")[0]["headers"] == CRM_HEADER
    async with db.begin() as conn:  # the import ended (cancelled) 31 days ago
        await conn.execute(text("UPDATE import_batch SET status = 'cancelled', finished_at = :d")
                           .bindparams(bindparam("d", type_=UTCDateTime())),
                           {"d": utcnow() - timedelta(days=31)})  # fmt: skip
    await purge_staged(db, TEAM, 30, 7)
    assert _json(db_env, "mappings")[0]["headers"] == CRM_HEADER


async def test_a_real_header_mentioning_an_address_keeps_its_headers_after_the_purge(
        db: Database, db_env: dict[str, str]) -> None:  # fmt: skip
    """A real header with a cell mentioning an address among words (a form's question) is
    no row of data: the purge forgot it as one."""
    from datetime import timedelta

    from sqlalchemy import bindparam
    from sqlmodel.sql.sqltypes import UTCDateTime

    from bot.imports.retention import purge_staged
    from models.clock import utcnow

    header = ["Full Name", "Work Contact", "Given", "Questions? (ask help@shop.example)"]
    data = (b"Full Name,Work Contact,Given,Questions? (ask help@shop.example)\n"
            b"Ada Lovelace,ada@example.com,Ada,none\n")  # fmt: skip
    await ensure_workspace(db, TEAM)
    await _mapped_in_slack(db, header, data, ColumnMap("Work Contact", "Given"), "U0001")
    async with db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET status = 'cancelled', finished_at = :d")
                           .bindparams(bindparam("d", type_=UTCDateTime())),
                           {"d": utcnow() - timedelta(days=31)})  # fmt: skip
    await purge_staged(db, TEAM, 30, 7)
    assert _json(db_env, "mappings")[0]["headers"] == header
