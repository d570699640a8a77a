"""Workbooks built to take a worker's memory or time, small enough to pass the compression
check: a row longer than Excel allows, elements piled beside the rows, a shared string of
endless runs. Each is refused as damaged (or its extra elements dropped) in bounded memory."""

from __future__ import annotations

import io
import random
import tracemalloc
import zipfile

import pytest

from bot.imports.excel import DAMAGED, XlsxReader
from bot.imports.reading import CsvFileError
from tests.imports.test_excel import excel_written, with_parts

MAX_COLUMNS = 16_384  # Excel's: its last column is XFD

HEADER = '<row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row>'
TOO_LONG = ("This Excel file is damaged: row 2 of the sheet “Sheet1” is longer than a row can be "
            "in Excel (16,384 cells, up to column XFD). Open it in Excel, save it again and "
            "import it, or export it as CSV.")  # fmt: skip
TEXT_TOO_LONG = ("This Excel file is damaged: one of its texts is cut into more pieces of "
                 "formatting than Excel writes. Open it in Excel, save it again and import it, "
                 "or export it as CSV.")  # fmt: skip


def _row(number: int, email: str) -> str:
    return (f'<row r="{number}"><c r="A{number}" t="inlineStr"><is><t>{email}</t></is></c>'
            "</row>")  # fmt: skip


def _deflated(data: bytes) -> bytes:
    """`data` with every part deflated, as Excel saves a workbook."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _read(sheet_data: str) -> list[tuple[int, list[str] | str]]:
    with XlsxReader(io.BytesIO(_deflated(excel_written(sheet_data)))) as reader:
        return list(reader.records())


def _peak(sheet_data: str) -> tuple[int, str | int]:
    """Peak traced memory of reading the sheet, and its failure's message or its records."""
    data = _deflated(excel_written(sheet_data))
    tracemalloc.start()
    try:
        with XlsxReader(io.BytesIO(data)) as reader:
            outcome: str | int = sum(1 for _ in reader.records())
    except CsvFileError as exc:
        outcome = str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, outcome


@pytest.mark.parametrize("cell", ["<c/>", '<c r="B2"/>'], ids=["unnamed", "one column"])
def test_a_row_of_more_cells_than_excel_allows_is_refused_as_damaged(cell: str) -> None:
    """Cells without a reference were counted on and on: one row held as many fields as it
    had empty cells (millions, from a 500 KB upload)."""
    with pytest.raises(CsvFileError) as caught:
        _read(HEADER + '<row r="2">' + cell * (MAX_COLUMNS + 1) + "</row>")
    assert str(caught.value) == TOO_LONG


def test_a_cell_beyond_column_xfd_is_refused_as_damaged() -> None:
    with pytest.raises(CsvFileError) as caught:
        _read(HEADER + '<row r="2"><c r="XFE2" t="inlineStr"><is><t>x</t></is></c></row>')
    assert str(caught.value) == TOO_LONG


def test_a_row_as_long_as_excel_allows_is_read() -> None:
    full = ('<row r="2"><c r="A2" t="inlineStr"><is><t>a@example.com</t></is></c>'
            + "<c/>" * (MAX_COLUMNS - 2)
            + '<c r="XFD2" t="inlineStr"><is><t>last</t></is></c></row>')  # fmt: skip
    ((number, fields),) = _read(HEADER + full)
    assert number == 2 and len(fields) == MAX_COLUMNS
    assert (fields[0], fields[-1]) == ("a@example.com", "last")


def test_a_huge_row_is_refused_before_it_is_held_whole() -> None:
    """A short random comment every 48 cells keeps the sheet compressing about 50 times, so
    it passes the compression check: the whole row was held (1.2 GB for 6 million cells);
    now reading stops once the row holds more than a full row of Excel's could."""
    rng = random.Random(7)
    cells = 400_000
    row = "".join("<c/>" * 48 + f"<!--{rng.getrandbits(32):08x}-->"
                  for _ in range(cells // 48))  # fmt: skip
    peak, outcome = _peak(HEADER + f'<row r="2">{row}</row>')
    assert outcome == TOO_LONG
    assert peak < 30 * 2**20, peak  # 74 MB before, for this 400,000-cell row


def test_elements_beside_the_rows_are_dropped_as_they_come() -> None:
    """<sheetData> holds only rows in a file Excel wrote; anything else there stayed in the
    tree: 2 million empty elements held 200 MB."""
    rows = HEADER + _row(2, "a@example.com")
    junk = "<x/>" * 100_000
    plain, read = _peak(rows + _row(3, "b@example.com"))
    piled, read_too = _peak(rows + junk + _row(3, "b@example.com") + junk)
    assert read == read_too == 2
    assert piled < plain + 2 * 2**20, (plain, piled)  # 16 MB more before


def test_one_element_beside_the_rows_holding_too_much_is_refused_as_damaged() -> None:
    with pytest.raises(CsvFileError) as caught:
        _read(HEADER + _row(2, "a@example.com") + "<x>" + "<y/>" * 200_000 + "</x>")
    assert str(caught.value) == DAMAGED


def test_a_shared_string_of_endless_runs_is_refused_as_damaged() -> None:
    """A rich-text string is a run per change of format: one of 20,000 runs was built whole
    (and a shared-strings table is read before any sheet)."""
    namespace = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    runs = "<r><rPr><b/></rPr><t>a</t></r>" * 20_000
    strings = (f'<sst xmlns="{namespace}"><si><t>email</t></si><si>{runs}</si>'
               "<si><r><t>rich </t></r><r><rPr><b/></rPr><t>text</t></r></si></sst>")
    sheet = ('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
             '<row r="2"><c r="A2" t="s"><v>2</v></c></row>')  # fmt: skip
    base = excel_written(sheet, strings=["x", "y", "z"])
    with pytest.raises(CsvFileError) as caught:
        XlsxReader(io.BytesIO(_deflated(with_parts(base, {"xl/sharedStrings.xml": strings}))))
    assert str(caught.value) == TEXT_TOO_LONG
    fine = strings.replace(f"<si>{runs}</si>", "<si><t>plain</t></si>")
    with XlsxReader(io.BytesIO(with_parts(base, {"xl/sharedStrings.xml": fine}))) as reader:
        assert list(reader.records()) == [(2, ["rich text"])]
