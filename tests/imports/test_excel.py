"""XlsxReader: cells as text, sheets, blank rows, Excel's own XML, and workbooks we can't read."""

from __future__ import annotations

import datetime as dt
import io
import re
import struct
import time
import tracemalloc
import warnings
import zipfile
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

import openpyxl
import pytest

from bot.imports.archives import is_xlsx
from bot.imports.excel import (
    NO_DATA,
    NOT_XLSX,
    OLD_EXCEL,
    PASSWORD_PROTECTED,
    SharedStrings,
    XlsxReader,
    cell_text,
)
from bot.imports.mapping import ColumnMapper, complete, headers_key, lenient_columns
from bot.imports.reading import Columns, ColumnsError, CsvFileError
from bot.imports.rows import VALID, Classifier
from tests.imports import csv_samples as samples

Sheet = list[list[object]]


def workbook(*sheets: tuple[str, Sheet], hidden: tuple[str, ...] = ()) -> bytes:
    """An .xlsx written by openpyxl; None cells stay empty, so rows of None are blank rows."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    sheet.cell(r, c, value)
        if title in hidden:
            sheet.sheet_state = "hidden"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def with_parts(xlsx: bytes, parts: dict[str, bytes | str]) -> bytes:
    """`xlsx` with some parts replaced or added, as another tool (or Excel) would write them."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename not in parts:
                dst.writestr(info, src.read(info.filename))
        for name, data in parts.items():
            dst.writestr(name, data)
    return out.getvalue()


def excel_written(sheet_data: str, strings: Sequence[str] = (), dimension: str = "A1") -> bytes:
    """A workbook whose sheet XML is `sheet_data` (`<row>`s) as Excel writes it: shared
    strings (`t="s"`), formulas with their cached `<v>`, and a `<dimension>` we choose."""
    base = workbook(("Sheet1", [["x"]]))
    with zipfile.ZipFile(io.BytesIO(base)) as src:
        sheet = src.read("xl/worksheets/sheet1.xml").decode()
        types = src.read("[Content_Types].xml").decode()
        rels = src.read("xl/_rels/workbook.xml.rels").decode()
    sheet = re.sub(r"<sheetData>.*</sheetData>", f"<sheetData>{sheet_data}</sheetData>", sheet)
    sheet = re.sub(r'<dimension ref="[^"]*" />', f'<dimension ref="{dimension}"/>', sheet)
    parts: dict[str, bytes | str] = {"xl/worksheets/sheet1.xml": sheet}
    if strings:
        ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
        items = "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
        parts["xl/sharedStrings.xml"] = (
            f'<sst xmlns="{ns}" count="{len(strings)}" uniqueCount="{len(strings)}">{items}</sst>'
        )
        kind = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
        parts["[Content_Types].xml"] = types.replace(
            "</Types>", f'<Override PartName="/xl/sharedStrings.xml" ContentType="{kind}"/></Types>'
        )
        rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"
        parts["xl/_rels/workbook.xml.rels"] = rels.replace(
            "</Relationships>",
            f'<Relationship Id="rIdS" Type="{rel}" Target="sharedStrings.xml"/></Relationships>',
        )
    return with_parts(base, parts)


def read(data: bytes) -> tuple[XlsxReader, list[tuple[int, list[str] | str]]]:
    with XlsxReader(io.BytesIO(data)) as reader:
        return reader, list(reader.records())


def mapped(mapper: ColumnMapper) -> dict[str, Any]:
    """XlsxReader's options for reading with `mapper`, as the import passes them."""
    return {"columns_of": mapper, "fits_chosen": mapper.fits_chosen}


def ole_file(*names: str) -> bytes:
    """An OLE compound file header and first directory sector listing `names` (CFB layout)."""
    header = bytearray(512)
    header[:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHH", header, 26, 3, 0xFFFE, 9)  # version 3, little-endian, 512 B
    struct.pack_into("<I", header, 48, 0)  # the directory starts at sector 0
    directory = bytearray(512)
    for i, name in enumerate(names[:4]):
        encoded = (name + "\0").encode("utf-16-le")
        directory[i * 128 : i * 128 + len(encoded)] = encoded
        struct.pack_into("<H", directory, i * 128 + 64, len(encoded))
    return bytes(header + directory + bytes(4096))


# --- cells as text -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("  Ada ", "  Ada "),
        (42, "42"),
        (42.0, "42"),
        (-0.0, "0"),
        (4155550123.0, "4155550123"),  # a phone number typed as a number
        (1.2e9, "1200000000"),
        (1e20, "100000000000000000000"),
        (0.1, "0.1"),
        (2.5, "2.5"),
        (1.5e-7, "0.00000015"),
        (True, "TRUE"),
        (False, "FALSE"),
        (dt.datetime(2024, 3, 1), "2024-03-01"),
        (dt.datetime(2024, 3, 1, 14, 30), "2024-03-01 14:30"),
        (dt.datetime(2024, 3, 1, 14, 30, 15), "2024-03-01 14:30:15"),
        (dt.datetime(2024, 3, 1, 14, 29, 59, 999_700), "2024-03-01 14:30"),  # float noise
        (dt.date(2024, 3, 1), "2024-03-01"),
        (dt.time(9, 5), "09:05"),
        (dt.timedelta(hours=26), "1 day, 2:00:00"),
    ],
)
def test_cell_text(value: object, text: str) -> None:
    assert cell_text(value) == text


def test_cells_read_back_as_a_person_sees_them() -> None:
    data = workbook(("People", [
        ["Email", "First Name", "Last Name", "Joined", "Last seen", "Phone", "Score", "VIP"],
        ["ada@example.com", "Ada", "Lovelace", dt.date(2024, 3, 1),
         dt.datetime(2024, 3, 1, 14, 30), 4155550123, 2.5, True],
        ["grace@example.com", "Grace", 1906, dt.datetime(2024, 12, 9), None, 4155550123.0, 0.1,
         False],
    ]))  # fmt: skip
    reader, records = read(data)
    assert reader.columns == Columns(email=0, first_name=1, last_name=2, locale=None)
    assert records == [
        (2, ["ada@example.com", "Ada", "Lovelace", "2024-03-01", "2024-03-01 14:30",
             "4155550123", "2.5", "TRUE"]),
        (3, ["grace@example.com", "Grace", "1906", "2024-12-09", "", "4155550123", "0.1",
             "FALSE"]),
    ]  # fmt: skip


def test_excel_xml_shared_strings_cached_formulas_and_e_notation() -> None:
    """The XML Excel writes, which openpyxl never does: shared strings and cached values."""
    strings = ["email", "first_name", "full", "zoe@example.ie", "Zoë", "subscribed"]
    rows = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c>'
        '<c r="C1" t="s"><v>2</v></c><c r="D1" t="s"><v>5</v></c><c r="E1"><v>7</v></c></row>'
        '<row r="2"><c r="A2" t="s"><v>3</v></c><c r="B2" t="s"><v>4</v></c>'
        '<c r="C2" t="str"><f>B2&amp;" "&amp;"O’Brien"</f><v>Zoë O’Brien</v></c>'
        '<c r="D2" t="b"><f>TRUE()</f><v>1</v></c><c r="E2"><f>E1*6</f><v>42</v></c>'
        '<c r="F2"><v>1.2E+9</v></c><c r="G2" t="e"><f>1/0</f><v>#DIV/0!</v></c>'
        '<c r="H2"><f>NOW()</f></c></row>'
    )
    reader, records = read(excel_written(rows, strings))
    assert reader.header == ["email", "first_name", "full", "subscribed", "7"]
    assert reader.columns.subscribed == 3
    assert records == [
        (2, ["zoe@example.ie", "Zoë", "Zoë O’Brien", "TRUE", "42", "1200000000", "#DIV/0!", ""]),
    ]
    staged = list(Classifier().records(records, reader.columns))
    assert staged[0][1] == "zoe@example.ie" and staged[0][6] == VALID and staged[0][8] is True


def test_rich_text_phonetic_runs_and_cells_without_references() -> None:
    """Rich text is joined, Japanese phonetic guides dropped; rows and cells without `r` are
    numbered by position, as Excel does."""
    strings = ["email", "name"]
    rows = (
        '<row><c t="s"><v>0</v></c><c t="s"><v>1</v></c></row>'
        '<row><c t="inlineStr"><is><t>yuki@example.jp</t></is></c>'
        '<c t="inlineStr"><is><r><t>田</t></r><r><rPr><b/></rPr><t>中</t></r>'
        '<rPh sb="0" eb="1"><t>タ</t></rPh></is></c><extLst/></row>'
        '<row r="5"><c r="C5" t="inlineStr"><is><t>late@example.jp</t></is></c>'
        '<c r="A5" t="inlineStr"><is><t>first column</t></is></c></row>'
    )
    reader, records = read(excel_written(rows, strings))
    assert reader.header == ["email", "name"]
    assert records == [(2, ["yuki@example.jp", "田中"]),
                       (5, ["first column", "", "late@example.jp"])]  # fmt: skip


def test_shared_strings_table() -> None:
    table = SharedStrings()
    for text in ("", "ada@example.com", "Zoë", "雪"):
        table.append(text)
    assert len(table) == 4
    assert [table[i] for i in range(4)] == ["", "ada@example.com", "Zoë", "雪"]
    with pytest.raises(IndexError):
        table[4]
    with pytest.raises(IndexError):
        table[-1]  # an index from a file is never counted from the end


def test_excel_escapes_in_strings_are_decoded() -> None:
    """Excel writes a cell's carriage return as `_x000D_`: it was kept as text, so "Ann" was
    stored as "Ann_x000D_" and the address was invalid. `_x005F_` escapes the underscore."""
    strings = ["Email", "Notes", "ann@example.com_x000D_\n", "one_x000D_\ntwo_x0009_tab",
               "_x005F_x000D_ as typed", "A_x0000_B _xD800_ _x41_"]  # fmt: skip
    sheet = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
        '<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c></row>'
        '<row r="3"><c r="A3" t="inlineStr"><is><t>bob@example.com_x000D_</t></is></c>'
        '<c r="B3" t="s"><v>4</v></c></row>'
        '<row r="4"><c r="A4" t="str"><f>A3</f><v>cat@example.com_x000A_</v></c>'
        '<c r="B4" t="s"><v>5</v></c></row>'
    )
    _, records = read(excel_written(sheet, strings))
    assert records == [
        (2, ["ann@example.com\r\n", "one\r\ntwo\ttab"]),
        (3, ["bob@example.com\r", "_x000D_ as typed"]),
        (4, ["cat@example.com\n", "AB _xD800_ _x41_"]),
    ]


def test_formulas_openpyxl_wrote_have_no_cached_value() -> None:
    """openpyxl saves formulas without a result; data_only then reads "" (Excel would fill
    them in on its next save)."""
    _, records = read(workbook(("S", [["email", "n", "double"], ["a@example.com", 21, "=B2*2"]])))
    assert records == [(2, ["a@example.com", "21", ""])]


def test_only_formulas_of_the_sheet_read_are_said_saved_without_a_result() -> None:
    """A summary tab's =COUNTA() was said as a formula of the import, and the formulas of a
    sheet read after its header was mapped were counted at every reading (3 times): 2 said 6."""
    summary = workbook(("Summary", [["Customers", "=COUNTA(Customers!A:A)-1"]]),
                       ("Customers", [["Email", "Name"], ["ann@example.com", "Ann"]]))
    reader, records = read(summary)
    assert records == [(2, ["ann@example.com", "Ann"])]
    assert reader.late_note() is None, reader.late_note()

    mapped = workbook(("Sheet", [["Contact", "Greeting"], ["ann@example.com", '=UPPER("hi")'],
                                 ["bob@example.com", '=UPPER("yo")']]))
    with XlsxReader(io.BytesIO(mapped),
                    columns_of=lambda header: Columns(0, None, None, None)) as reader:
        assert len(list(reader.records())) == 2
        assert (reader.late_note() or "").startswith("2 cells are formulas"), reader.late_note()


# --- rows and sheets -----------------------------------------------------------------------


def test_blank_rows_are_skipped_and_rows_are_numbered_as_excel_shows_them() -> None:
    data = workbook(("Contacts", [
        [None], [None, None, "   "],  # blank lead-in, one cell of spaces
        [None, "email", "first_name"],
        [None, "ada@example.com", "Ada"],
        [],
        [None, None, None],
        [None, "grace@example.com", "Grace"],
        [None, "  ", None, "x@example.com"],  # not blank: a cell beyond the header
    ]))  # fmt: skip
    reader, records = read(data)
    assert reader.header_row == 3 and reader.header == ["", "email", "first_name"]
    assert [line for line, _ in records] == [4, 7, 8]
    assert records[1] == (7, ["", "grace@example.com", "Grace"])


def test_a_value_merged_down_a_column_is_read_on_every_row_beside_it() -> None:
    """Excel shows a merged cell's value beside every row it spans but keeps it in the top
    cell only: a "No" merged down the consent column read as empty, so subscribed, on every
    row under its top. Past the header search too; a merge across columns stays in its own
    column, and blank rows inside a merge stay blank."""
    rows: Sheet = [["Email", "Name", "Subscribed", "Note", "Phone"]]
    rows += [[f"u{i}@example.com", f"N{i}", "No" if i == 2 else None] for i in range(2, 15)]
    rows[1] += ["VIP"]
    rows += [["last@example.com", "Last", "Yes"], [None], [None]]
    book = openpyxl.load_workbook(io.BytesIO(workbook(("S", rows))))
    for merged in ("C2:C14", "D2:E2", "C15:C17"):
        book.active.merge_cells(merged)
    out = io.BytesIO()
    book.save(out)

    _, records = read(out.getvalue())

    assert [(line, fields[2:3]) for line, fields in records] == [
        *((line, ["No"]) for line in range(2, 15)), (15, ["Yes"])]
    assert records[0] == (2, ["u2@example.com", "N2", "No", "VIP"])  # not VIP in Phone


def test_a_wrong_dimension_does_not_cut_rows_off() -> None:
    """Some tools write <dimension ref="A1"/>; read-only openpyxl would stop at row 1."""
    rows = "".join(
        f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{t}</t></is></c></row>'
        for r, t in enumerate(["email", "a@example.com", "b@example.com", "c@example.com"], 1)
    )
    _, records = read(excel_written(rows, dimension="A1"))
    assert [fields for _, fields in records] == [["a@example.com"], ["b@example.com"],
                                                 ["c@example.com"]]  # fmt: skip


def test_the_first_non_empty_sheet_is_read_and_the_others_are_named() -> None:
    data = workbook(
        ("Cover", []),
        ("Lookup", [["locale"], ["en"]]),
        ("Contacts", [[None], ["Email Address", "First Name"], ["ada@example.com", "Ada"]]),
        ("Notes", [["call Ada on Monday"]]),
        ("Blank", [[None, "  "]]),
        hidden=("Lookup",),
    )
    reader, records = read(data)
    assert reader.sheet == "Contacts"
    assert reader.other_sheets == ["Lookup", "Notes"]
    assert records == [(3, ["ada@example.com", "Ada"])]


def test_a_title_above_the_header_is_skipped() -> None:
    """A report's title row made it the header: "No email column found"."""
    data = workbook(("Report", [["Customer export 2024-05-01"], [None], ["Generated by Acme"],
                                ["Email", "First Name"], ["ada@example.com", "Ada"]]))
    reader, records = read(data)
    assert (reader.header, reader.header_row) == (["Email", "First Name"], 4)
    assert records == [(5, ["ada@example.com", "Ada"])]


def test_a_title_row_naming_its_senders_address_doesnt_stop_the_header_search() -> None:
    data = workbook(("Report", [["Contacts export"], ["Owner: jane@shop.com"], [None],
                                ["Email", "First Name"], ["ada@example.com", "Ada"]]))
    reader, records = read(data)
    assert (reader.header, reader.header_row) == (["Email", "First Name"], 4)
    assert records[-1] == (5, ["ada@example.com", "Ada"])


def test_a_data_row_holding_the_word_email_is_not_taken_for_the_header() -> None:
    rows: Sheet = [["Contact", "Name", "Channel"], ["ann@example.com", "Ann", "email"],
                   ["bob@example.com", "Bob", "sms"]]  # fmt: skip
    with XlsxReader(io.BytesIO(workbook(("S", rows))), columns_of=lambda h: Columns(0, 1, None,
                                                                                   None)) as reader:
        assert reader.header == ["Contact", "Name", "Channel"]  # a mapping's, not Ann's row
        assert [line for line, _ in reader.records()] == [2, 3]


def test_a_sheet_without_a_recognised_header_starts_at_its_first_row_as_before() -> None:
    rows: Sheet = [["Work Mail", "Name"], *([f"p{i}@example.com", "P"] for i in range(12))]
    with XlsxReader(io.BytesIO(workbook(("S", rows))), columns_of=lambda h: Columns(0, 1, None,
                                                                                   None)) as reader:
        assert reader.header == ["Work Mail", "Name"]
        assert [line for line, _ in reader.records()] == list(range(2, 14))


def test_a_title_above_a_header_of_names_not_recognised_is_skipped() -> None:
    """The title was the header: a mapping could never name "Work Mail"."""
    rows: Sheet = [["Customer export 2024-05-01"], [None], ["Work Mail", "Name"],
                   ["ann@example.com", "Ann"], ["bob@example.com", "Bob"]]  # fmt: skip
    with pytest.raises(ColumnsError, match=r"Columns found: 'Work Mail', 'Name'\."):
        XlsxReader(io.BytesIO(workbook(("S", rows))))
    with XlsxReader(io.BytesIO(workbook(("S", rows))), columns_of=lambda h: Columns(
            h.index("Work Mail"), 1, None, None)) as reader:  # fmt: skip
        assert (reader.header, reader.header_row) == (["Work Mail", "Name"], 3)
        assert [line for line, _ in reader.records()] == [4, 5]


def test_the_first_sheet_with_an_email_column_is_read() -> None:
    """A summary tab first refused the workbook: "No email column found. Columns found:
    'Total', '1'", though the next sheet held the customers."""
    data = workbook(("Summary", [["Total", 1]]), ("Instructions", [["Fill in the next tab"]]),
                    ("Contacts", [["Email", "First Name"], ["ann@example.com", "Ann"]]))
    reader, records = read(data)
    assert (reader.sheet, reader.header) == ("Contacts", ["Email", "First Name"])
    assert reader.other_sheets == ["Summary", "Instructions"]
    assert records == [(2, ["ann@example.com", "Ann"])]


def test_a_mapped_header_on_a_later_sheet_is_read() -> None:
    data = workbook(("Summary", [["Total", 1]]), ("People", [["Work Mail"], ["a@example.com"]]))

    def mapped(header: list[str]) -> Columns:
        if header != ["Work Mail"]:
            raise ColumnsError("not this one")
        return Columns(0, None, None, None)

    with XlsxReader(io.BytesIO(data), columns_of=mapped) as reader:
        assert reader.sheet == "People"
        assert list(reader.records()) == [(2, ["a@example.com"])]


# A staff list first (its "Email" is recognised), the customers next under "Work Mail".
STAFF_THEN_CUSTOMERS = (("Staff", [["Name", "Email"], ["Me", "me@shop.example"]]),
                        ("Customers", [["Work Mail", "Name"], ["w1@example.com", "W One"],
                                       ["w2@example.com", "W Two"]]))  # fmt: skip


def test_a_given_mapping_reads_the_sheet_it_fits_before_one_recognised_by_name() -> None:
    """`--map email="Work Mail"` failed "The column 'Work Mail' chosen for Email isn't in this
    file. Columns found: 'Name', 'Email'": the staff list was read, the customers never."""
    data = workbook(*STAFF_THEN_CUSTOMERS)
    with XlsxReader(io.BytesIO(data),
                    **mapped(ColumnMapper(given={"email": "Work Mail"}))) as reader:
        assert (reader.sheet, reader.other_sheets) == ("Customers", ["Staff"])
        assert [f[0] for _, f in reader.records() if isinstance(f, list)] == [
            "w1@example.com", "w2@example.com"]  # fmt: skip
    # without a mapping, the staff list's recognised "Email" is read, as before
    assert read(data)[0].sheet == "Staff"
    with XlsxReader(io.BytesIO(data), **mapped(ColumnMapper())) as reader:
        assert reader.sheet == "Staff"


def test_a_remembered_mapping_reads_the_sheet_it_fits() -> None:
    """What *Map columns* remembered for the customers' headers (a Slack upload, or its
    reading again with the mapping submitted) reads the customers, not the staff list."""
    header = ["Work Mail", "Name"]
    mapper = ColumnMapper({headers_key(header): complete(header, {"email": "Work Mail"})})
    with XlsxReader(io.BytesIO(workbook(*STAFF_THEN_CUSTOMERS)), **mapped(mapper)) as reader:
        assert reader.sheet == "Customers"
        assert reader.header == header


def test_a_given_column_in_no_sheet_names_every_sheets_columns() -> None:
    data = workbook(*STAFF_THEN_CUSTOMERS, ("Notes", [["call Ada"]]))
    with pytest.raises(ColumnsError) as failure:
        XlsxReader(io.BytesIO(data), **mapped(ColumnMapper(given={"email": "Mail"})))
    assert str(failure.value) == (
        "The column 'Mail' chosen for Email isn't in any sheet of this workbook. Columns "
        "found in “Staff”: 'Name', 'Email'; in “Customers”: 'Work Mail', 'Name'; in “Notes”: "
        "'call Ada'.")  # fmt: skip
    # no sheet recognised by name either: the same
    data = workbook(STAFF_THEN_CUSTOMERS[1], ("Notes", [["call Ada"]]))
    with pytest.raises(ColumnsError) as failure:
        XlsxReader(io.BytesIO(data), **mapped(ColumnMapper(given={"email": "Mail"})))
    assert "Columns found in “Customers”: 'Work Mail', 'Name'; in “Notes”: 'call Ada'." in str(
        failure.value)


def test_a_sheet_named_is_read_whatever_the_others_hold() -> None:
    """*Map columns* shows the sheet a person chose in it."""
    data = workbook(*STAFF_THEN_CUSTOMERS, ("Empty", []))
    with XlsxReader(io.BytesIO(data), sheet="Customers", columns_of=lenient_columns) as reader:
        assert (reader.sheet, reader.header, reader.other_sheets) == (
            "Customers", ["Work Mail", "Name"], ["Staff"])  # fmt: skip
    with pytest.raises(CsvFileError, match=r"The sheet “Gone” is no longer in this workbook\."):
        XlsxReader(io.BytesIO(data), sheet="Gone")
    with pytest.raises(CsvFileError, match=r"The sheet “Empty” has no data\."):
        XlsxReader(io.BytesIO(data), sheet="Empty")


def test_a_sheet_is_read_by_its_position_or_by_the_name_an_older_release_kept() -> None:
    """*Map columns* keeps the sheet it shows by its position among the workbook's sheets: by
    name, a sheet named over 150 characters was looked up by the name its *Sheet* option cut,
    and never found. A name kept before (a modal left open, a reading queued) is found still,
    whole or cut at 150 characters as that option held it, unless two sheets start so."""
    long, near = "Customers " + "C" * 190, "Customers " + "C" * 139 + "D" * 51
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl: a title over 31 characters
        data = workbook(STAFF_THEN_CUSTOMERS[0], (long, STAFF_THEN_CUSTOMERS[1][1]),
                        ("Empty", []), (near, [["Email"], ["x@example.com"]]))
        twins = workbook((long + "A", [["Email"], ["a@example.com"]]),
                         (long + "B", [["Email"], ["b@example.com"]]))
    for chosen in (1, long, long[:150]):
        with XlsxReader(io.BytesIO(data), sheet=chosen, columns_of=lenient_columns) as reader:
            assert (reader.sheet_position, reader.header) == (1, ["Work Mail", "Name"]), chosen
            assert reader.sheet == long[:99] + "…"  # as every message shows it
            assert (reader.other_sheets, reader.other_positions) == (
                ["Staff", near[:99] + "…"], [0, 3])  # fmt: skip
    with XlsxReader(io.BytesIO(data), sheet=3, columns_of=lenient_columns) as reader:
        assert (reader.sheet_position, reader.header) == (3, ["Email"])
    # two names alike in their first 150 characters (and as shown): told apart by position
    for position in (0, 1):
        with XlsxReader(io.BytesIO(twins), sheet=position) as reader:
            assert next(reader.records())[1] == ["ab"[position] + "@example.com"]
            assert reader.sheet == reader.other_sheets[0]
            assert reader.other_positions == [1 - position]
    with pytest.raises(CsvFileError, match=r"The sheet “Customers C+…” is no longer in"):
        XlsxReader(io.BytesIO(twins), sheet=long[:150])  # which one, an old modal can't say
    with pytest.raises(CsvFileError, match=r"The sheet chosen is no longer in this workbook\."):
        XlsxReader(io.BytesIO(data), sheet=4)
    with pytest.raises(CsvFileError, match=r"The sheet “Empty” has no data\."):
        XlsxReader(io.BytesIO(data), sheet=2)
    with pytest.raises(CsvFileError, match=r"The sheet “Customers C+…” is no longer in"):
        XlsxReader(io.BytesIO(data), sheet=long[:149] + "x")


def test_a_sheets_name_is_shown_with_anything_unprintable_as_a_question_mark() -> None:
    """workbook.xml may hold a CR (&#13;), a newline, a C1 control (U+009B starts a terminal's
    escape sequence) or a right-to-left override in a sheet's name, and any length: a refusal
    naming the sheets, printed on the shell's stderr, was overwritten or driven by them."""
    forged = "Staff\rAll rows imported. \u009b2J\u202eok"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = workbook((forged, [["name", "phone"], ["Ann", "1"]]),
                        ("Totals\nFORGED", [["total"], ["2"]]), ("P" * 3000, [["n"], ["3"]]))
    with pytest.raises(ColumnsError) as failure:
        XlsxReader(io.BytesIO(data))
    assert str(failure.value).endswith(
        "That is the sheet “Staff?All rows imported. ?2J?ok”; the other sheets (“Totals?FORGED”, "
        f"“{'P' * 99}…”) have no email column either.")  # fmt: skip
    # found by the name it has in the file (kept by a release before positions)
    with XlsxReader(io.BytesIO(data), sheet="Totals\nFORGED", columns_of=lenient_columns) as read:
        assert (read.sheet, read.sheet_position, read.header) == ("Totals?FORGED", 1, ["total"])


def test_no_sheet_with_an_email_column_names_the_other_sheets() -> None:
    data = workbook(("Summary", [["Total", 1]]), ("Notes", [["call Ada"]]), ("Empty", []))
    with pytest.raises(ColumnsError) as failure:
        XlsxReader(io.BytesIO(data))
    assert str(failure.value).startswith("No email column found. Columns found: 'Total', '1'.")
    assert str(failure.value).endswith("That is the sheet “Summary”; the other sheets (“Notes”) "
                                       "have no email column either.")  # fmt: skip


def test_a_hidden_sheet_is_read_when_it_is_the_only_one_with_data() -> None:
    data = workbook(("Visible", []), ("Data", [["email"], ["a@example.com"]]), hidden=("Data",))
    reader, records = read(data)
    assert reader.sheet == "Data" and reader.other_sheets == []
    assert records == [(2, ["a@example.com"])]


def test_records_go_through_the_classifier() -> None:
    rows: Sheet = [list(row) for row in samples.seed_rows()]
    rows[3][3] = None  # an empty cell rather than ""
    reader, records = read(workbook(("Seed", rows)))
    staged = list(Classifier().records(records, reader.columns))
    by_email = {row[1]: row for row in staged}
    assert len(staged) == len(rows) - 1
    assert by_email["jose.munoz@example.com"][5] == "es-ES"
    assert by_email["no.name@example.com"][3] == "no.name"  # default first name
    assert by_email["grace@example.com"][6] == "duplicate"
    assert by_email["bad@@example.com"][6] == "rejected"
    assert [row[0] for row in staged] == list(range(2, len(rows) + 1))


def _peak_reading(out: io.BytesIO, rows: int, *, classified: bool) -> int:
    """Peak traced memory of reading the workbook in `out` (and classifying its rows), which
    must hold `rows` rows."""
    out.seek(0)
    tracemalloc.start()
    try:
        with XlsxReader(out) as reader:
            records = reader.records()
            if classified:
                records = Classifier().records(records, reader.columns)  # type: ignore[assignment]
            count = sum(1 for _ in records)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert count == rows


def test_reading_streams_in_bounded_memory() -> None:
    """Ten times the rows take hardly more memory: no list of rows, and no tree of parsed rows
    (openpyxl's read-only loop keeps one, and parses a sheet without <dimension> whole at load,
    which these write-only files lack)."""

    def peak(rows: int) -> int:
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("S")
        sheet.append(["email", "first_name", "last_name", "locale"])
        for i in range(rows):
            sheet.append([f"user{i}@example.com", f"First{i}", f"Last{i}", "en"])
        out = io.BytesIO()
        book.save(out)
        return _peak_reading(out, rows, classified=True)

    small, big = peak(1_000), peak(10_000)
    assert big < small + 1024 * 1024, (small, big)  # the Classifier's set grows a little


def test_addresses_excel_made_links_of_are_read_in_bounded_memory() -> None:
    """Excel makes each address typed in a mailto: link, one <hyperlink> a row after the
    <sheetData>: they were kept in the parsed tree, about 560 bytes a row."""

    def peak(rows: int) -> int:
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(["email", "first_name"])
        for i in range(rows):
            sheet.append([f"user{i}@example.com", f"F{i}"])
            sheet.cell(i + 2, 1).hyperlink = f"mailto:user{i}@example.com"
        out = io.BytesIO()
        book.save(out)
        return _peak_reading(out, rows, classified=False)  # the Classifier's set grows

    small, big = peak(1_000), peak(10_000)
    assert big < small + 256 * 1024, (small, big)


def test_close_leaves_the_stream_open_and_is_idempotent() -> None:
    stream = io.BytesIO(workbook(("S", [["email"], ["a@example.com"], ["b@example.com"]])))
    reader = XlsxReader(stream)
    assert next(reader.records()) == (2, ["a@example.com"])
    reader.close()
    reader.close()
    assert not stream.closed and list(reader.records()) == []


# --- recognising a workbook ----------------------------------------------------------------


def test_is_xlsx_and_leaves_the_position() -> None:
    data = workbook(("S", [["email"]]))
    stream = io.BytesIO(data)
    assert is_xlsx(stream) and stream.tell() == 0
    stream.seek(5)
    assert is_xlsx(stream) is False and stream.tell() == 5  # not at a ZIP's start
    for other in (samples.seed_csv(), b"", b"PK\x03\x04junk", samples.legacy_xls()):
        assert not is_xlsx(io.BytesIO(other))
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("contacts.csv", samples.seed_csv())
    assert not is_xlsx(plain_zip)


# --- workbooks we can't read ---------------------------------------------------------------


def test_an_encrypted_workbook_says_password() -> None:
    data = ole_file("Root Entry", "\x06DataSpaces", "EncryptionInfo", "EncryptedPackage")
    with pytest.raises(CsvFileError) as caught:
        XlsxReader(io.BytesIO(data))
    assert str(caught.value) == PASSWORD_PROTECTED


@pytest.mark.parametrize(
    "data", [samples.legacy_xls(), ole_file("Root Entry", "Workbook", "\x05SummaryInformation")]
)
def test_an_old_xls_says_save_as_xlsx(data: bytes) -> None:
    with pytest.raises(CsvFileError) as caught:
        XlsxReader(io.BytesIO(data))
    assert str(caught.value) == OLD_EXCEL


@pytest.mark.parametrize("keep", [0.3, 0.7, 0.98])
def test_a_truncated_workbook_is_damaged(keep: float) -> None:
    data = workbook(("S", [["email"], *[[f"u{i}@example.com"] for i in range(200)]]))
    with pytest.raises(CsvFileError, match="damaged or incomplete"):
        XlsxReader(io.BytesIO(data[: int(len(data) * keep)]))


def test_a_sheet_broken_part_way_fails_with_a_sentence_while_reading() -> None:
    good = "".join(
        f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{t}</t></is></c></row>'
        for r, t in enumerate(["email", "a@example.com", "b@example.com"], 1)
    )
    data = excel_written(good + '<row r="4"><c r="A4" t="inlineStr"><is><t>c@ex')
    with XlsxReader(io.BytesIO(data)) as reader:
        records = reader.records()
        assert next(records) == (2, ["a@example.com"])
        with pytest.raises(CsvFileError, match="damaged or incomplete"):
            list(records)


def test_a_workbook_missing_its_parts_is_damaged() -> None:
    data = workbook(("S", [["email"]]))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != "xl/_rels/workbook.xml.rels":
                dst.writestr(info, src.read(info.filename))
    with pytest.raises(CsvFileError, match="damaged or incomplete"):
        XlsxReader(io.BytesIO(out.getvalue()))


@pytest.mark.parametrize("data", [samples.seed_csv(), samples.pdf_document()])
def test_something_else_is_not_a_workbook(data: bytes) -> None:
    with pytest.raises(CsvFileError) as caught:
        XlsxReader(io.BytesIO(data))
    assert str(caught.value) == NOT_XLSX


def test_an_empty_workbook_has_no_data() -> None:
    with pytest.raises(CsvFileError) as caught:
        XlsxReader(io.BytesIO(workbook(("A", []), ("B", [[None, " "]]))))
    assert str(caught.value) == NO_DATA


def test_no_email_column_gives_map_headers_message() -> None:
    data = workbook(("S", [["name", "phone"], ["Ada", 4155550123]]))
    with pytest.raises(CsvFileError, match=r"No email column found. Columns found: 'name'"):
        XlsxReader(io.BytesIO(data))


def test_a_workbook_unzipping_past_the_cap_is_refused() -> None:
    data = workbook(("S", [["email"], *[[f"user{i}@example.com"] for i in range(2000)]]))
    with XlsxReader(io.BytesIO(data), max_unzipped_bytes=10 * 1024 * 1024):
        pass
    with pytest.raises(CsvFileError, match="more than the 49 KB limit"):
        XlsxReader(io.BytesIO(data), max_unzipped_bytes=50_000)


def test_a_sheet_of_millions_of_empty_cells_is_refused_unread() -> None:
    row = '<row r="2">' + "<c/>" * 2_000_000 + "</row>"  # 8 MB of XML, deflated to ~10 KB
    stored = excel_written('<row r="1"><c r="A1" t="s"><v>0</v></c></row>' + row, ["email"])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(stored)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), zipfile.ZIP_DEFLATED)
    data = out.getvalue()
    assert len(data) < 100_000
    with pytest.raises(CsvFileError, match=r"sheet1\.xml is compressed [\d,]+ times"):
        XlsxReader(io.BytesIO(data))


def test_a_strict_open_xml_workbook_is_told_what_it_is() -> None:
    """Excel's "Strict Open XML Spreadsheet" names every part's namespace otherwise: it read as
    "The workbook has no data: every sheet is empty" though its sheet has rows."""
    plain = workbook(("S", [["Email", "Name"], ["a@example.com", "Ada"]]))
    swaps = {"http://schemas.openxmlformats.org/spreadsheetml/2006/main":
             "http://purl.oclc.org/ooxml/spreadsheetml/main",
             "http://schemas.openxmlformats.org/officeDocument/2006/relationships":
             "http://purl.oclc.org/ooxml/officeDocument/relationships"}  # fmt: skip
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain)) as source, zipfile.ZipFile(out, "w") as strict:
        for info in source.infolist():
            data = source.read(info).decode()
            if info.filename.startswith("xl/") or info.filename.endswith(".rels"):
                for transitional, strict_ns in swaps.items():
                    data = data.replace(transitional, strict_ns)
            strict.writestr(info.filename, data)
    with pytest.raises(CsvFileError, match="saved as Strict Open XML"):
        XlsxReader(io.BytesIO(out.getvalue()))


def test_a_workbook_declaring_xml_entities_is_refused_not_expanded() -> None:
    """A 1 MB sharedStrings.xml declaring nested entities expanded to a 100-million-character
    cell while read (~100x: Python's own XML parser allows that much), past the unzipped and
    compression limits, and a small upload could take a worker's memory. openpyxl reads
    through defusedxml, which refuses the declarations: the file is said to be damaged."""
    entities = ['<!ENTITY e0 "' + "A" * 1000 + '">'] + [
        f'<!ENTITY e{i} "' + f"&e{i - 1};" * 10 + '">' for i in range(1, 4)]  # fmt: skip
    namespace = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    strings = (f'<?xml version="1.0"?><!DOCTYPE sst [{"".join(entities)}]>'
               f'<sst xmlns="{namespace}"><si><t>email</t></si><si><t>&e3;</t></si></sst>')
    base = excel_written('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
                         '<row r="2"><c r="A2" t="s"><v>1</v></c></row>', strings=["x", "y"])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, strings if info.filename == "xl/sharedStrings.xml"
                         else src.read(info.filename))  # fmt: skip
    with (pytest.raises(CsvFileError, match="damaged or incomplete"),
          XlsxReader(io.BytesIO(out.getvalue()), max_unzipped_bytes=10 * 2**20) as reader):
        list(reader.records())


def _with_merges_after(xml: str) -> bytes:
    """A sheet of a header and three rows, the third's name merged down (B3:B4), with `xml`
    (a comment) after <sheetData> and before <mergeCells>."""
    rows = [(2, ""), (3, '<c r="B3" t="inlineStr"><is><t>Bo</t></is></c>'), (4, "")]
    book = excel_written(
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
        + "".join(f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>u{r}@example.com</t></is>'
                  f"</c>{name}</row>" for r, name in rows), ["email", "name"])  # fmt: skip
    with zipfile.ZipFile(io.BytesIO(book)) as src:
        sheet = src.read("xl/worksheets/sheet1.xml").decode()
    merges = '<mergeCells count="1"><mergeCell ref="B3:B4"/></mergeCells>'
    sheet = sheet.replace("</sheetData>", f"</sheetData>{xml}{merges}", 1)
    return with_parts(book, {"xl/worksheets/sheet1.xml": sheet})


def test_a_comment_of_merge_lookalikes_costs_no_more_than_its_length() -> None:
    """The merged ranges are found by a search of the sheet's bytes, which went on past a
    "<": in a comment holding "<mergeCell " over and over each was searched to the comment's
    end (165 KB: 12 s), and a tag or comment longer than the 64 KB read at a time was
    searched again from its start with every one read (6 MB: 8 s). Bounded far above what one pass
    costs, so only the square fails it."""
    lookalikes = "<mergeCell " * 15_000 + "<mergeCell " + "a" * 6_000_000
    data = _with_merges_after(f"<!-- {lookalikes} -->")
    started = time.process_time()

    _, records = read(data)

    assert time.process_time() - started < 4
    assert records == [(2, ["u2@example.com"]), (3, ["u3@example.com", "Bo"]),
                       (4, ["u4@example.com", "Bo"])]  # fmt: skip
    _, records = read(_with_merges_after(""))  # as Excel writes it
    assert records[2] == (4, ["u4@example.com", "Bo"])
