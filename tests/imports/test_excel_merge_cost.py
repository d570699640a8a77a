"""Ranges merged down a sheet's columns: their values fill the rows the import reads, at a
cost that grows with the rows and the columns read, not with rows x ranges. A header, then
thousands of ranges merged down from row 2 and thousands of rows under them (a small
upload) cost minutes of CPU: every open range was looked at on every row, blank or not,
and filled into every row holding a cell."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator

from openpyxl.utils.cell import get_column_letter
from sqlalchemy import text

from bot.imports.excel import XlsxReader
from bot.imports.importer import import_files
from bot.imports.mapping import lenient_columns, samples
from bot.imports.rows import VALID, Classifier
from bot.workspaces import ensure_workspace
from models import Database
from tests.imports.test_excel import excel_written, with_parts

TEAM = "T1"


def _cell(ref: str, value: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'


def _row(number: int, cells: dict[int, str]) -> str:
    """A <row> of `cells` (1-based column -> text)."""
    inner = "".join(_cell(f"{get_column_letter(c)}{number}", v) for c, v in sorted(cells.items()))
    return f'<row r="{number}">{inner}</row>' if inner else f'<row r="{number}"/>'


def _merged_sheet(rows: list[str], merged: list[str]) -> bytes:
    """A workbook of the `rows` (<row> elements), the ranges `merged` ("C2:C4") listed after
    <sheetData> as Excel writes them, each part deflated as in an upload."""
    book = excel_written("".join(rows))
    with zipfile.ZipFile(io.BytesIO(book)) as src:
        sheet = src.read("xl/worksheets/sheet1.xml").decode()
    listed = "".join(f'<mergeCell ref="{ref}"/>' for ref in merged)
    sheet = sheet.replace("</sheetData>", f'</sheetData><mergeCells count="{len(merged)}">'
                          f"{listed}</mergeCells>", 1)  # fmt: skip
    book = with_parts(book, {"xl/worksheets/sheet1.xml": sheet})
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(book)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _hostile(ranges: int, last_row: int, *, addressed: int, header: dict[int, str],
             first: int = 2) -> bytes:  # fmt: skip
    """A header, then `ranges` columns from column `first` on merged down from row 2 to
    `last_row`, each with a value in its top cell; every `addressed`th row below (0: none)
    holds an address in column A, the others are empty <row>s."""
    columns = range(first, first + ranges)
    top = {1: "top@example.com"} | {c: "No" if c == 2 else "v" for c in columns}
    rows = [_row(1, header), _row(2, top)]
    rows += [_row(r, {1: f"u{r}@example.com"} if addressed and r % addressed == 0 else {})
             for r in range(3, last_row + 1)]  # fmt: skip
    return _merged_sheet(rows, [f"{get_column_letter(c)}2:{get_column_letter(c)}{last_row}"
                                for c in columns])  # fmt: skip


def _classified(data: bytes) -> tuple[float, dict[int, list[str]], list[tuple]]:
    """CPU seconds to read and classify `data` as an import does, its records' fields by
    row (the first few and the last: held, the rows of a hostile sheet were megabytes), and
    what the classifier stages."""
    started = time.process_time()
    fields_of: dict[int, list[str]] = {}
    with XlsxReader(io.BytesIO(data)) as reader:

        def kept() -> Iterator[tuple[int, list[str] | str]]:
            last: tuple[int, list[str]] | None = None
            for line, fields in reader.records():
                assert isinstance(fields, list)
                if len(fields_of) < 20:
                    fields_of[line] = list(fields)
                last = line, fields
                yield line, fields
            if last is not None:
                fields_of[last[0]] = list(last[1])

        staged = list(Classifier().records(kept(), reader.columns))
    return time.process_time() - started, fields_of, staged


def test_empty_rows_under_thousands_of_merged_ranges_cost_one_pass() -> None:
    """Each empty row looked at every range still open: 4,000 ranges over 60,000 empty rows
    (a 180 KB upload) took 5 s, 16,384 over a million 5 minutes; the rows without the
    ranges take 0.15 s. Empty rows stay empty: a merged value fills no blank row."""
    data = _hostile(4_000, 60_000, addressed=0, header={1: "email", 2: "Subscribed"})

    seconds, fields_of, staged = _classified(data)

    assert seconds < 2, seconds
    assert list(fields_of) == [2]
    assert [(row[1], row[6], row[8]) for row in staged] == [("top@example.com", VALID, False)]


def test_rows_under_thousands_of_merged_ranges_fill_only_what_is_read() -> None:
    """Each row holding an address was given the values of all 2,000 ranges over it: 20,000
    rows took 6.8 s (16,383 ranges: 58 s, so a million rows 49 minutes); without the ranges
    they take 0.25 s. The consent column's "No" still reaches every row, and the sheet's
    first 256 columns (past the 99 *Map columns* shows) are filled; the ranges past them,
    read by nothing, are not."""
    header = {1: "email", 2: "Subscribed"} | {c: f"Note {c}" for c in range(3, 2_002)}
    data = _hostile(2_000, 20_001, addressed=1, header=header)

    seconds, fields_of, staged = _classified(data)

    assert seconds < 3, seconds
    assert [row[0] for row in staged] == list(range(2, 20_002))
    assert all(row[6] == VALID and row[8] is False for row in staged)  # all read "No"
    assert fields_of[20_001] == ["u20001@example.com", "No", *["v"] * 254]  # up to column IV


def _consent_past_the_shown_columns(*, repeated: bool) -> bytes:
    """A wide export: email in A, its consent column 300th (KN), notes in between; "No"
    merged down the consent column of two rows of three. `repeated`: a second export pasted
    below with the consent column 302nd (KP), and "No" merged down it."""
    notes = {c: f"Note {c}" for c in range(2, 300)}
    rows = [_row(1, {1: "email", **notes, 300: "Subscribed"})]
    rows += [_row(2, {1: "a2@example.com", 300: "No"}), _row(3, {1: "a3@example.com"}),
             _row(4, {1: "a4@example.com", 300: "Yes"})]  # fmt: skip
    merged = ["KN2:KN3"]
    if repeated:  # the same names, two more notes before the consent column
        again = {1: "email", **notes, 300: "Note 300", 301: "Note 301", 302: "Subscribed"}
        rows += [_row(5, again), _row(6, {1: "b6@example.com", 302: "No"}),
                 _row(7, {1: "b7@example.com"}), _row(8, {1: "b8@example.com", 302: "Yes"})]
        merged.append("KP6:KP7")
    return _merged_sheet(rows, merged)


def test_a_consent_column_past_the_shown_columns_still_reads_its_merged_value() -> None:
    """The columns the import reads are filled wherever they are, also after a header
    repeated in another order, whose rows are read by their own header: its consent
    column, 302nd, is where their merged "No" is."""
    _, fields_of, staged = _classified(_consent_past_the_shown_columns(repeated=True))

    assert [(row[0], row[1], row[8]) for row in staged] == [
        (2, "a2@example.com", False), (3, "a3@example.com", False), (4, "a4@example.com", True),
        (6, "b6@example.com", False), (7, "b7@example.com", False), (8, "b8@example.com", True),
    ]  # fmt: skip
    assert fields_of[7][299] == "No"  # in the first header's order: its consent column


def test_map_columns_shows_merged_values_of_columns_it_does_not_read() -> None:
    """*Map columns* shows a few values of every column: a value merged down a column
    nobody maps yet shows on each row it spans, as before."""
    rows = [_row(1, {1: "email", 2: "Opted in?"})]
    rows += [_row(r, {1: f"u{r}@example.com"} | ({2: "No"} if r == 2 else {}))
             for r in range(2, 6)]  # fmt: skip
    data = _merged_sheet(rows, ["B2:B4"])

    with XlsxReader(io.BytesIO(data), columns_of=lenient_columns) as reader:
        shown = samples(reader)

    assert shown == [["u2@example.com", "u3@example.com", "u4@example.com"], ["No", "No", "No"]]


async def test_the_import_of_a_wide_export_reads_its_merged_consent(db: Database) -> None:
    """Through the import into the database: the rows under a "No" merged down a consent
    column past the first 256 are imported unsubscribed, the counts as the file has them."""
    await ensure_workspace(db, TEAM)
    result = await import_files(db, TEAM, [("wide.xlsx", io.BytesIO(
        _consent_past_the_shown_columns(repeated=False)))], segment="Imported",
        create_segment=True)  # fmt: skip

    assert (result.batch.rows, result.batch.valid, result.batch.rejected) == (3, 3, 0)
    async with db.begin() as conn:
        rows = await conn.execute(text("SELECT email, subscribed FROM contact "
                                       "WHERE team_id = :t ORDER BY email"), {"t": TEAM})
        contacts = [(email, bool(subscribed)) for email, subscribed in rows]
    assert contacts == [("a2@example.com", False), ("a3@example.com", False),
                        ("a4@example.com", True)]  # fmt: skip
