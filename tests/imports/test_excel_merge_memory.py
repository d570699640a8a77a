"""Ranges merged down a sheet's columns are held in memory that grows little with their
number, and a sheet listing more than an import reads is refused before any row is staged.

A million <mergeCell>s (35 MB of XML, a 4 MB upload) were held as a list of tuples: 140 MB,
where an import has 200 MB in all, and a sheet near the 500 MB unzip limit (~15 million
ranges) would have taken 2 GB. Each sheet's were kept, so a workbook of many such sheets
took as much again for each. Memory is measured in a child process (how far its peak RSS
rose over what it held before reading), as tracemalloc slows a million ranges' scan tenfold."""

from __future__ import annotations

import functools
import io
import json
import struct
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from openpyxl.utils.cell import get_column_letter
from sqlalchemy import text

from bot.imports.excel import DAMAGED, XlsxReader
from bot.imports.importer import ImportFailed, import_files
from bot.imports.reading import CsvFileError
from bot.imports.rows import Classifier
from bot.workspaces import ensure_workspace
from models import Database
from tests.imports.test_excel import workbook

TEAM = "T1"
MAX_MERGED_RANGES = 1_000_000  # the most a sheet may list (README)
ROOT = Path(__file__).resolve().parents[2]
REFUSED = ("The sheet “{sheet}” has more than 1,000,000 ranges of cells merged down several "
           "rows, more than an import reads: unmerge them in Excel (select the whole sheet, "
           "then Home › Merge & Center › Unmerge Cells) and import it again, or save the "
           "sheet as CSV and import that.")  # fmt: skip
CONTACTS = [["email", "Subscribed"], ["a2@example.com", "No"], ["a3@example.com", None],
            ["a4@example.com", "Yes"]]  # fmt: skip

# Reads a workbook in a fresh interpreter: how much its peak RSS grew (MB) while it did, and
# (row, email, subscribed) of what the classifier stages, or the refusal's message. The peak
# is reset to the RSS of the moment first (Linux's clear_refs), as the imports' had been
# higher, and so hid what a reading took (without it: the peak after less the RSS before).
_CHILD = """
import io, json, re, sys
from bot.imports.excel import XlsxReader
from bot.imports.reading import CsvFileError
from bot.imports.rows import Classifier

def read(data):
    try:
        with XlsxReader(io.BytesIO(data)) as reader:
            staged = Classifier().records(reader.records(), reader.columns)
            return [[row[0], row[1], row[8]] for row in staged]
    except CsvFileError as exc:
        return str(exc)

def status(name):
    with open("/proc/self/status") as found:
        return int(re.search(name + r":\\s+(\\d+)", found.read())[1])

small, big = (open(path, "rb").read() for path in sys.argv[1:])
read(small)
try:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
except OSError:
    pass
before = status("VmRSS")
outcome = read(big)
print(json.dumps({"grew_mb": (status("VmHWM") - before) / 1024, "outcome": outcome}))
"""


@functools.cache  # the same million ranges in several tests: made once a process
def _ranges(count: int, first_row: int = 100) -> tuple[str, ...]:
    """`count` ranges of two rows each, down columns C to AZ from `first_row`: below the
    rows, so they fill nothing (their top cells are empty), as many as a hostile file lists."""
    columns = [get_column_letter(c) for c in range(3, 53)]
    return tuple(f"{columns[i % 50]}{first_row + 2 * (i // 50)}:"
                 f"{columns[i % 50]}{first_row + 1 + 2 * (i // 50)}"
                 for i in range(count))  # fmt: skip


def _with_merges(book: bytes, merged: dict[str, Sequence[str]]) -> bytes:
    """`book` (openpyxl's) with the ranges `merged` listed in the sheet parts named, after
    <sheetData> as Excel writes them, every part deflated as in an upload (at zlib's fastest
    level: a tenth of the time of its default for 35 MB of XML, and read the same way)."""
    out = io.BytesIO()
    listings: dict[int, bytes] = {}  # one list of ranges given for several sheets: made once
    with zipfile.ZipFile(io.BytesIO(book)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename in merged:
                refs = merged[info.filename]
                if id(refs) not in listings:
                    listed = "".join(f'<mergeCell ref="{ref}"/>' for ref in refs).encode()
                    listings[id(refs)] = b'<mergeCells count="%d">%s</mergeCells>' % (
                        len(refs), listed)  # fmt: skip
                data = data.replace(b"</sheetData>", b"</sheetData>" + listings[id(refs)], 1)
            dst.writestr(info.filename, data, zipfile.ZIP_DEFLATED, compresslevel=1)
    return out.getvalue()


@functools.cache  # three tests read the one past the cap
def _contacts_merged(count: int) -> bytes:
    """Three contacts, the first's "No" merged down the consent column over the second
    (B2:B3), then `count` - 1 ranges more below them."""
    return _with_merges(workbook(("Contacts", CONTACTS)),
                        {"xl/worksheets/sheet1.xml": ["B2:B3", *_ranges(count - 1)]})  # fmt: skip


def _read_in_child(data: bytes, tmp_path: Path) -> tuple[float, list[list[object]] | str]:
    """How much reading `data` grew a fresh interpreter's peak RSS (MB), and what it gave."""
    small, big = tmp_path / "small.xlsx", tmp_path / "big.xlsx"
    small.write_bytes(_contacts_merged(1))
    big.write_bytes(data)
    done = subprocess.run([sys.executable, "-c", _CHILD, str(small), str(big)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    return found["grew_mb"], found["outcome"]


def test_a_million_ranges_merged_down_are_read_in_bounded_memory(tmp_path: Path) -> None:
    """As many ranges as a sheet may list: 8 bytes each are held, 17 MB at most while they
    are sorted (tuples: 140 MB), and the "No" merged down the consent column still reaches
    the row under it."""
    grew, outcome = _read_in_child(_contacts_merged(MAX_MERGED_RANGES), tmp_path)

    assert grew < 45, grew
    assert outcome == [[2, "a2@example.com", False], [3, "a3@example.com", False],
                       [4, "a4@example.com", True]]  # fmt: skip


def test_a_sheet_of_more_merged_ranges_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """Past the cap the scan stops, having held no more than the cap: the message says
    which sheet and what to do."""
    grew, outcome = _read_in_child(_contacts_merged(MAX_MERGED_RANGES + 1), tmp_path)

    assert grew < 45, grew
    assert outcome == REFUSED.format(sheet="Contacts")


def test_many_sheets_of_merged_ranges_are_not_all_held(tmp_path: Path) -> None:
    """Eleven sheets of notes, 300,000 ranges each, before the contacts: each sheet's ranges
    were kept once scanned (26 MB of them packed, 460 MB as tuples); those kept now stay
    under the cap (of the sheets read first, the oldest let go)."""
    notes = [[f"Note {c}" for c in range(1, 5)], ["a", "b", "c", "d"]]
    sheets = [(f"Notes {n}", notes) for n in range(1, 12)]
    book = workbook(*sheets, ("Contacts", CONTACTS))
    merged = _ranges(300_000)
    data = _with_merges(book, {f"xl/worksheets/sheet{n}.xml": merged for n in range(1, 12)}
                        | {"xl/worksheets/sheet12.xml": ["B2:B3"]})  # fmt: skip

    grew, outcome = _read_in_child(data, tmp_path)

    assert grew < 26, grew  # 20 MB; 34 MB with every sheet's kept, packed
    assert outcome == [[2, "a2@example.com", False], [3, "a3@example.com", False],
                       [4, "a4@example.com", True]]  # fmt: skip


def test_a_sheet_of_too_many_ranges_not_the_one_read_refuses_nothing() -> None:
    """A notes sheet listing more ranges than the cap, before the contacts: it is looked at
    without its ranges while the sheet to read is chosen, and refuses the workbook only if it
    is that sheet (it refused it, naming "Notes", though the contacts were on the next)."""
    notes = [["Note 1", "Note 2"], ["a", "b"]]
    data = _with_merges(workbook(("Notes", notes), ("Contacts", CONTACTS)),
                        {"xl/worksheets/sheet1.xml": _ranges(MAX_MERGED_RANGES + 1),
                         "xl/worksheets/sheet2.xml": ["B2:B3"]})  # fmt: skip
    with XlsxReader(io.BytesIO(data)) as reader:
        assert reader.sheet == "Contacts"
        staged = Classifier().records(reader.records(), reader.columns)
        assert [[row[0], row[1], row[8]] for row in staged] == [
            [2, "a2@example.com", False], [3, "a3@example.com", False],
            [4, "a4@example.com", True]]  # fmt: skip


async def test_the_import_refuses_it_before_staging_a_row(db: Database) -> None:
    """Through the import, as the shell and Slack tell it: nothing is staged or imported."""
    await ensure_workspace(db, TEAM)
    too_many = _contacts_merged(MAX_MERGED_RANGES + 1)

    with pytest.raises(ImportFailed) as caught:
        await import_files(db, TEAM, [("merged.xlsx", io.BytesIO(too_many))],
                           segment="Imported", create_segment=True)  # fmt: skip

    assert str(caught.value) == (f"merged.xlsx: {REFUSED.format(sheet='Contacts')} "
                                 "Nothing was imported.")  # fmt: skip
    async with db.begin() as conn:
        for table in ("import_batch", "staged_row", "contact"):
            count = (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            assert count == 0, table


def test_a_few_rows_before_many_ranges_are_read() -> None:
    """The rows of a sheet end where its <sheetData> does; the parser reads 16 KB ahead, so
    with a few rows the <mergeCells> after them were parsed as if part of it, and 131,072
    ranges refused the sheet as "row 4 is longer than a row can be in Excel"."""
    data = _contacts_merged(150_000)

    with XlsxReader(io.BytesIO(data)) as reader:
        rows = list(reader.records())

    assert rows == [(2, ["a2@example.com", "No"]), (3, ["a3@example.com", "No"]),
                    (4, ["a4@example.com", "Yes"])]  # fmt: skip


def test_a_damaged_sheet_is_refused_as_damaged() -> None:
    """The merge scan runs before a sheet's rows are read: a sheet part cut short failed
    with zlib's or zipfile's own error, which the shell and Slack showed as an unexpected
    failure, not as the damaged file it is."""
    rows = [["email"], *([f"u{n}@example.com"] for n in range(3_000))]
    data = bytearray(_with_merges(workbook(("Sheet1", rows)), {}))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    name, extra = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    middle = info.header_offset + 30 + name + extra + info.compress_size // 2
    data[middle : middle + 8] = bytes(8)

    with pytest.raises(CsvFileError) as caught, XlsxReader(io.BytesIO(bytes(data))):
        pass

    assert str(caught.value) == DAMAGED
