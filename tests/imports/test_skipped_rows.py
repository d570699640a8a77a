"""Every row of a CSV import accounted for, with a true reason and what can be read of it.

Through `referral-bot import --rejects` (the skipped-rows CSV a merchant downloads) and
`referral-bot export` (what was imported), against the test's database.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import random
import zipfile
from pathlib import Path

import pytest

from bot.imports import parallel
from models import Database
from tests.shell import run

# (line, email, first_name, last_name, outcome, reason) of each row in the rejects file
Listed = tuple[str, str, str, str, str, str]


def imported(db_env: dict[str, str], path: Path) -> tuple[dict, list[Listed]]:
    """The import's JSON summary and the rows of its rejects file."""
    rejects = path.with_name("rejects.csv")
    result = run(db_env, "import", str(path), "--segment", "S", "--create-segment", "--json",
                 "--rejects", str(rejects))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    with rejects.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    listed = [(r["line"], r["email"], r["first_name"], r["last_name"], r["outcome"], r["reason"])
              for r in rows]  # fmt: skip
    assert summary["rows"] == summary["valid"] + summary["duplicates"] + summary["rejected"]
    assert summary["rejected"] + summary["duplicates"] == len(listed)
    return summary, listed


def exported(db_env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """email -> (first name, last name) of everyone in the segment."""
    out = run(db_env, "export", "--segment", "S")
    assert out.returncode == 0, out.stderr
    return {r["email"]: (r["first_name"], r["last_name"])
            for r in csv.DictReader(io.StringIO(out.stdout))}  # fmt: skip


def notes(summary: dict) -> str:
    return "\n".join(n["note"] for n in summary["notes"])


# --- two exports joined with `cat` ---------------------------------------------------------

FIRST_EXPORT = ("email,first_name,last_name\n"
                "ada@example.com,Ada,Lovelace\nbob@example.com,Bob,Builder\n")
# Excel's "CSV UTF-8" keeps its byte order mark: `cat` leaves it in the middle of the file
SECOND_EXPORT = (codecs.BOM_UTF8.decode() + "last_name,email,first_name\n"
                 "Young,cy@example.com,Cy\nDent,dee@example.com,Dee\n")  # fmt: skip


async def test_a_second_export_joined_on_is_read_by_its_own_header(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """`cat a.csv b.csv` where b.csv has its columns in another order: its rows were read by
    a.csv's header (Cy imported as "Young Cy" with address... none: "Invalid email: Young"),
    and its header line was a rejected row of its own."""
    path = tmp_path / "joined.csv"
    path.write_text(FIRST_EXPORT + SECOND_EXPORT + FIRST_EXPORT.splitlines(True)[0]
                    + "eve@example.com,Eve,Evans\n", encoding="utf-8")  # fmt: skip

    summary, listed = imported(db_env, path)

    assert (summary["rows"], summary["valid"], summary["rejected"]) == (5, 5, 0), listed
    assert listed == []
    assert "Lines 4, 7 repeat the header" in notes(summary)
    assert exported(db_env) == {
        "ada@example.com": ("Ada", "Lovelace"), "bob@example.com": ("Bob", "Builder"),
        "cy@example.com": ("Cy", "Young"), "dee@example.com": ("Dee", "Dent"),
        "eve@example.com": ("Eve", "Evans"),
    }  # fmt: skip


async def test_a_second_export_with_other_columns_joined_on_is_read_by_its_own_header(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """`cat` of two exports whose columns differ (the second adds Phone and puts Email in
    the middle): its header was a rejected row and every row below it was rejected, its
    last names taken for addresses."""
    path = tmp_path / "joined.csv"
    path.write_text(FIRST_EXPORT + "Last_Name,Phone,Email,First_Name\n"
                    "Young,555-0100,cy@example.com,Cy\nDent,,dee@example.com,Dee\n",
                    encoding="utf-8")  # fmt: skip

    summary, listed = imported(db_env, path)

    assert (summary["rows"], summary["valid"], summary["rejected"]) == (4, 4, 0), listed
    assert "Line 4 starts another export's header" in notes(summary)
    assert exported(db_env)["cy@example.com"] == ("Cy", "Young")


async def test_a_big_joined_file_read_by_the_parser_child_says_so_too(
    db: Database, db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file big enough for the parser child: its rows are read by each header alike, and
    the note the child's reader wrote reaches the summary."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 64 * 1024)
    first = "".join(f"a{n}@example.com,A{n},Lovelace\n" for n in range(2000))
    second = "".join(f"Young,c{n}@example.com,C{n}\n" for n in range(2000))
    path = tmp_path / "big.csv"
    path.write_text("email,first_name,last_name\n" + first + "last_name,email,first_name\n"
                    + second, encoding="utf-8")  # fmt: skip
    assert path.stat().st_size >= parallel.PARALLEL_MIN_BYTES

    summary, listed = imported(db_env, path)

    assert (summary["rows"], summary["valid"], listed) == (4000, 4000, [])
    assert "Line 2002 repeats the header" in notes(summary)
    people = exported(db_env)
    assert people["c7@example.com"] == ("C7", "Young")
    assert people["a7@example.com"] == ("A7", "Lovelace")


async def test_a_consent_column_of_formulas_saved_without_results_subscribes_nobody(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """A workbook a program wrote (openpyxl saves formulas without their results) whose
    consent or opt-out column is formulas: each cell read as empty, which says nothing of
    consent, so every new contact was imported subscribed and invited, the file's opt-outs
    too. Such a cell is a value we can't read: not subscribed, and the review says so."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Email", "First Name", "Accepts Marketing", "Orders"])
    sheet.append(["ada@example.com", "Ada", '=IF(D2>0,"yes","no")', 3])
    sheet.append(["bob@example.com", "Bob", "yes", 0])
    sheet.append(["cy@example.com", "Cy", None, 1])  # an empty cell still says nothing
    path = tmp_path / "formulas.xlsx"
    book.save(path)
    opted = openpyxl.Workbook()
    opted.active.append(["Email", "Email Opt Out"])
    opted.active.append(["dee@example.com", '=IF(TRUE,"true","false")'])
    opted_path = tmp_path / "opt-out.xlsx"
    opted.save(opted_path)

    summary, listed = imported(db_env, path)
    other, _ = imported(db_env, opted_path)

    out = run(db_env, "export", "--segment", "S")
    subscribed = {r["email"]: r["subscribed"] for r in csv.DictReader(io.StringIO(out.stdout))}
    assert subscribed == {"ada@example.com": "no", "bob@example.com": "yes",
                          "cy@example.com": "yes", "dee@example.com": "no"}, subscribed
    said = notes(summary)
    assert "1 row has a consent value we don't recognise" in said, said
    assert "“(formula without its result)” (1)" in said, said
    assert "(formula without its result)" in notes(other)
    assert (summary["valid"], summary["rejected"], listed) == (3, 0, [])


async def test_exports_pasted_one_below_another_in_a_sheet_are_read_by_their_own_headers(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """The same in a workbook, where people paste one export below another: the header
    pasted again was a rejected row ("Invalid email: Email"), and a second export with its
    columns in another order (or other columns) had every row rejected, its first names taken
    for addresses. The review names the rows by the numbers Excel shows."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in (["Email", "First Name", "Last Name"], ["ada@example.com", "Ada", "Lovelace"],
                ["Email", "First Name", "Last Name"], ["bob@example.com", "Bob", "Builder"],
                [], ["Last Name", "Email", "First Name"], ["Young", "cy@example.com", "Cy"],
                ["First Name", "Phone", "Email"], ["Dee", "555-0100", "dee@example.com"],
                ["Eve", None, "eve@example.com"]):  # fmt: skip
        sheet.append(row)
    path = tmp_path / "pasted.xlsx"
    book.save(path)

    summary, listed = imported(db_env, path)

    assert (summary["rows"], summary["valid"], summary["rejected"]) == (5, 5, 0), listed
    said = notes(summary)
    assert "Rows 3, 6 repeat the header" in said, said
    assert "Row 8 starts another export's header" in said, said
    assert "Line" not in said and "(exports pasted into one sheet?)" in said, said
    assert exported(db_env) == {
        "ada@example.com": ("Ada", "Lovelace"), "bob@example.com": ("Bob", "Builder"),
        "cy@example.com": ("Cy", "Young"), "dee@example.com": ("Dee", ""),
        "eve@example.com": ("Eve", ""),
    }  # fmt: skip


# --- line numbers after a line too long to read whole ---------------------------------------


async def test_rows_after_a_line_over_1_mb_keep_their_line_numbers(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """A line over 1 MB is read in pieces: each was counted as a line (and a rejected row),
    so every later line number in the skipped-rows CSV was off by one."""
    path = tmp_path / "long.csv"
    path.write_text("email,first_name,last_name,notes\n"
                    "ada@example.com,Ada,Lovelace,\n"
                    "bob@example.com,Bob,Builder," + "x" * 1_500_000 + "\n"  # line 3
                    "cy@example.com,Cy,Young,\n"
                    "bad@@example.com,Dee,Dent,\n", encoding="utf-8")  # line 5 fmt: skip

    summary, listed = imported(db_env, path)

    assert (summary["rows"], summary["valid"], summary["rejected"]) == (4, 2, 2)
    assert [(line, email) for line, email, *_ in listed] == [
        ("3", "bob@example.com"), ("5", "bad@@example.com")]  # fmt: skip
    assert "longer than 1,048,576 characters" in listed[0][5]


# --- what can be read of a malformed row ----------------------------------------------------


async def test_a_malformed_row_is_listed_with_its_address_and_names(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """A field over the size limit, or a quote that never closes: the row was listed with
    its reason only, no address and no names, though they stood readable before the fault."""
    path = tmp_path / "malformed.csv"
    path.write_text("email,first_name,last_name,notes\n"
                    'ann@example.com,Ann,Lee,"' + "x" * 70_000 + '"\n'  # 2: a 70 KB cell
                    'bob@example.com,Bob,"Builder\n'  # 3-5: a quote past the size limit
                    + "y" * 70_000 + "\n"
                    'end of it"\n'
                    "cy@example.com,Cy,Young,ok\n"  # 6
                    'dee@example.com,"Dee,Dent,a note\n'  # 7-8: a stray quote swallows 8
                    "eve@example.com,Eve,Evans,fine\n", encoding="utf-8")  # fmt: skip

    summary, listed = imported(db_env, path)

    assert (summary["rows"], summary["valid"], summary["rejected"]) == (4, 1, 3)
    assert [row[:5] for row in listed] == [
        ("2", "ann@example.com", "Ann", "Lee", "rejected"),
        ("3", "bob@example.com", "Bob", "Builder", "rejected"),
        ("7", "dee@example.com", "Dee", "Dent", "rejected"),
    ]
    assert [reason[:30] for *_, reason in listed] == [
        "Malformed CSV (lines 2-2): fie", "Malformed CSV (lines 3-5): fie",
        "Malformed CSV (lines 7-8): a q"]  # fmt: skip
    assert set(exported(db_env)) == {"cy@example.com"}


# --- a row a cell short -----------------------------------------------------------------------


async def test_a_row_a_cell_short_says_so_and_shows_its_address(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """A cell left out in the middle puts the address in another column: the row was
    rejected for what sat in the email column ("Invalid email" for its locale, "fr"), the
    address listed as its last name, though the row's fault was a cell too few."""
    path = tmp_path / "short.csv"
    path.write_text("first_name,last_name,email,locale\n"
                    "Ada,Lovelace,ada@example.com,en\n"
                    "Bob,bob@example.com,fr\n"  # the last name left out
                    "Cy,Young\n", encoding="utf-8")  # no address anywhere fmt: skip

    summary, listed = imported(db_env, path)

    assert (summary["valid"], summary["rejected"]) == (1, 2)
    assert listed == [
        ("3", "bob@example.com", "Bob", "", "rejected",
         "3 cells where the header has 4: a cell missing or one too many, so the address is "
         "not in the email column"),
        ("4", "", "Cy", "Young", "rejected", "Missing email"),
    ]  # fmt: skip
    assert set(exported(db_env)) == {"ada@example.com"}


async def test_in_a_zip_too_rows_after_a_long_line_keep_their_numbers_and_show_their_address(
    db: Database, db_env: dict[str, str], tmp_path: Path
) -> None:
    """A CSV inside a ZIP is read again from the archive (not by seeking back, which
    decompresses from the start): the same line numbers and the same readable cells."""
    noise = random.Random(7).randbytes(750_000).hex()  # no ZIP bomb: it hardly compresses
    body = ("email,first_name,last_name,notes\n"
            "bob@example.com,Bob,Builder," + noise + "\n"  # line 2: 1.5 M characters
            'ann@example.com,Ann,Lee,"' + noise[:70_000] + '"\n'  # line 3
            "cy@example.com,Cy,Young,\n"
            "bad@@example.com,Dee,Dent,\n")  # line 5 fmt: skip
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("people.csv", body)

    summary, listed = imported(db_env, path)

    assert (summary["rows"], summary["valid"], summary["rejected"]) == (4, 1, 3)
    assert [row[:4] for row in listed] == [
        ("2", "bob@example.com", "Bob", "Builder"), ("3", "ann@example.com", "Ann", "Lee"),
        ("5", "bad@@example.com", "Dee", "Dent")]  # fmt: skip
