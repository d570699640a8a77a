""".xlsx workbooks as records shaped like CsvReader's: (row number, fields as text).

People keep contact lists in Excel and shouldn't have to export a CSV first. Cells become the
text a person sees, so `rows.Classifier` treats them like CSV fields: 42, not 42.0;
2024-03-01, not a datetime; a phone number as digits, not 1.2E+9.

openpyxl reads the package, the workbook, the styles (which cells are dates) and every cell
that isn't a plain string. Its read-only mode is not enough for an import on its own, though:
it keeps each parsed row as an empty element of the tree (~80 bytes a row), parses a whole
sheet at load to size it when the sheet has no <dimension> (openpyxl's own write-only files),
and holds the shared-strings table as a list of str built by the same leaky loop. So the two
loops that grow with the file are ours: rows are dropped once read, and shared strings are
kept as UTF-8 in one buffer (about 40% of the memory of a list of str).
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import lzma
import re
import zipfile
import zlib
from array import array
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, BinaryIO

from openpyxl.cell.text import Text
from openpyxl.reader.excel import ExcelReader
from openpyxl.styles.stylesheet import apply_stylesheet
from openpyxl.utils.cell import column_index_from_string
from openpyxl.worksheet._reader import WorkSheetParser
from openpyxl.xml.constants import SHARED_STRINGS, SHEET_MAIN_NS
from openpyxl.xml.functions import iterparse

from bot.imports.archives import OLE_MAGIC, human_size, printable, too_compressed
from bot.imports.reading import (
    MAX_HEADER_SEARCH,
    ChosenColumnMissing,
    Columns,
    ColumnsError,
    ColumnsOf,
    CsvFileError,
    HeaderRepeats,
    HeaderTest,
    header_above_data,
    header_is_data,
    header_past_labels,
    header_test,
    holds_an_address,
    is_data_row,
    is_header,
    map_header,
    row_above_header,
    shown_columns,
)

# An encrypted .xlsx is an OLE file whose directory holds this stream (MS-OFFCRYPTO).
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_HALF_SECOND = dt.timedelta(microseconds=500_000)
_SHEET_DATA = f"{{{SHEET_MAIN_NS}}}sheetData"
_ROW = f"{{{SHEET_MAIN_NS}}}row"
_CELL = f"{{{SHEET_MAIN_NS}}}c"
_VALUE = f"{{{SHEET_MAIN_NS}}}v"
_INLINE = f"{{{SHEET_MAIN_NS}}}is"
_FORMULA = f"{{{SHEET_MAIN_NS}}}f"
_TEXT = f"{{{SHEET_MAIN_NS}}}t"
_STRING_ITEM = f"{{{SHEET_MAIN_NS}}}si"
_STRING_TABLE = f"{{{SHEET_MAIN_NS}}}sst"
_DIGITS = "0123456789"
# A <mergeCell ref="C2:C4"/> (any namespace prefix), in the bytes of a sheet part: "<" can't
# appear raw in a cell's text nor in a tag, so this matches elements only. Not past a "<":
# a comment holding "<mergeCell " over and over had each one searched to the comment's end,
# the square of its length (64 KB took 4 s, and the scan goes on a chunk at a time).
_MERGE_CELL = re.compile(
    rb"<(?:[A-Za-z_][\w.-]*:)?mergeCell\s[^<>]*?\bref\s*=\s*[\"']"
    rb"([A-Za-z]{1,3})([0-9]{1,7}):([A-Za-z]{1,3})([0-9]{1,7})[\"']"
)
_MERGE_CELLS_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?mergeCells\s*>")
_SCAN_CHUNK = 1 << 16
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")

PASSWORD_PROTECTED = (
    "This Excel file is password-protected: save it without a password or export it as CSV."
)
OLD_EXCEL = (
    "This is an old Excel .xls file (or another old Office document): open it in Excel and "
    "save it as .xlsx or CSV, then import that."
)
NOT_XLSX = "This file is not an Excel .xlsx workbook: save it from Excel as .xlsx or as CSV."
DAMAGED = (
    "This Excel file is damaged or incomplete: open it in Excel, save it again and import it, "
    "or export it as CSV."
)
NO_DATA = "The workbook has no data: every sheet is empty."
STRICT = ("This workbook was saved as Strict Open XML, which can't be read here: save it as an "
          "Excel Workbook (.xlsx) or as CSV (File › Save As) and import that.")
_STRICT_NAMESPACE = b"purl.oclc.org/ooxml/spreadsheetml"

Rows = Generator[tuple[int, list[str]], None, None]

# A workbook part (a sheet, its shared strings) inflating more than this (from over a MB) is
# refused unread: openpyxl-style parsing of a 44 KB sheet of ten million
# empty cells held 2 GB, and 2 million empty shared strings from 55 KB took 17 s.
MAX_PART_RATIO = 100.0
MAX_NAMED_SHEETS = 5  # sheets a "no email column" message names
# A sheet's name as messages show it (_shown_title) is cut at this: Excel's own are at most
# 31 characters, but a workbook.xml written by hand holds any, and one of 3,000 was named in
# full, up to five times, in a refusal.
MAX_SHOWN_TITLE = 100
# Excel's last column is XFD: a row holds at most this many cells. A row of more, or a cell
# beyond it, is refused (cells without a reference were counted on and on: one row of
# millions of 4-byte empty cells, compressed 50 times, took 1.2 GB and 39 s).
MAX_COLUMNS = 16_384
# Elements that may start inside one <row> (its cells and what is in them: a value, a
# formula, an inline string's runs) or one shared string (<si>: a run per change of format,
# about 9 elements each), before the file is refused (see _completed): a full row with
# rich text in every cell fits, and the tree stays a few MB.
MAX_ROW_ELEMENTS = 8 * MAX_COLUMNS
MAX_STRING_ELEMENTS = 16_384
# Columns a value merged down fills besides those the import reads, once it knows them
# (_MergedDown): A to IV, the 256 of an old .xls, past the 99 *Map columns* offers.
MAX_MERGED_SHOWN = 256
_SHOWN_COLUMNS = frozenset(range(1, MAX_MERGED_SHOWN + 1))
# Ranges merged down several rows a sheet may list before it is refused (_too_many_merged):
# two columns merged in pairs down every row Excel has, past anything a person merges by
# hand (Excel itself crawls long before). Each is held as one 8-byte int (_merged_down): 8
# MB for a sheet at the cap, 17 MB while it is sorted. Held as tuples, a million took 140
# MB, and a sheet near the unzip limit (~15 million in 500 MB of XML) would have taken 2 GB.
# The sheets' ranges kept at once, to be read again without a new scan, stay under it too.
MAX_MERGED_RANGES = 1_000_000
_MERGE_SORT_CHUNK = 1 << 16  # ranges sorted at a time, then merged (_by_top)
# A range packed in one int, in the order of its top row: top row and bottom row (7 digits,
# under 2**24 each), first column (at most XFD, 16,384, under 2**15).
_TOP_SHIFT = 39
_BOTTOM_SHIFT = 15
_ROW_MASK = (1 << 24) - 1
_COLUMN_MASK = (1 << 15) - 1
_TIDY_EVERY = 4096  # elements between two tidyings of a part's tree (_completed)
TEXT_TOO_LONG = (
    "This Excel file is damaged: one of its texts is cut into more pieces of formatting than "
    "Excel writes. Open it in Excel, save it again and import it, or export it as CSV."
)


def _shown_title(name: str) -> str:
    """A sheet's name as every message shows it (on the shell's stderr, in Slack, in the log):
    anything unprintable as "?" (archives.printable, as a ZIP entry's name), and cut at
    MAX_SHOWN_TITLE. workbook.xml may hold a CR, a newline, a C1 control (U+009B starts a
    terminal's escape sequence) or a right-to-left override (U+202E) in a name: a refusal
    naming the sheets was overwritten on the terminal, or driven by them."""
    shown = printable(name)
    return shown if len(shown) <= MAX_SHOWN_TITLE else shown[: MAX_SHOWN_TITLE - 1] + "…"


def _too_many_merged(sheet: str) -> str:
    """A sheet listing more ranges merged down than MAX_MERGED_RANGES: what, where, and
    what to do."""
    return (f"The sheet “{sheet}” has more than {MAX_MERGED_RANGES:,} ranges of cells merged "
            "down several rows, more than an import reads: unmerge them in Excel (select the "
            "whole sheet, then Home › Merge & Center › Unmerge Cells) and import it again, or "
            "save the sheet as CSV and import that.")


def cell_text(value: Any) -> str:
    """A cell's value as a person sees it in Excel (roughly: number formats are not applied)."""
    if value is None:
        return ""
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        # shortest digits that round-trip, never in E notation: 0.1, 0.00000015
        return format(Decimal(repr(value)).normalize(), "f")
    if isinstance(value, dt.datetime):
        value = (value + _HALF_SECOND).replace(microsecond=0)  # 14:29:59.9997 is 14:30
        if value.time() == dt.time():
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="minutes" if not value.second else "seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        rounded = dt.datetime.combine(dt.date.min, value) + _HALF_SECOND
        value = rounded.time().replace(microsecond=0)
        return value.isoformat(timespec="minutes" if not value.second else "seconds")
    return str(value)


def _ole_encrypted(stream: BinaryIO, start: int) -> bool:
    """Whether an OLE file's first directory sector names an EncryptedPackage stream.

    The header gives the sector size (offset 30, a power of two) and the directory's first
    sector (offset 48); the root, EncryptionInfo and EncryptedPackage entries come first.
    """
    stream.seek(start)
    header = stream.read(512)
    shift = int.from_bytes(header[30:32], "little")
    first = int.from_bytes(header[48:52], "little")
    if len(header) < 512 or shift not in (9, 12) or first >= 0xFFFFFFFA:
        return False
    sector = 1 << shift
    stream.seek(start + (first + 1) * sector)
    return _ENCRYPTED_STREAM in stream.read(sector)


def _check_kind(stream: BinaryIO, max_unzipped_bytes: int | None) -> None:
    """Refuse what openpyxl can't read, with the sentence that says what to do instead."""
    start = stream.tell()
    try:
        head = stream.read(8)
        if head.startswith(OLE_MAGIC[:4]):
            raise CsvFileError(PASSWORD_PROTECTED if _ole_encrypted(stream, start) else OLD_EXCEL)
        if not head.startswith(b"PK"):
            raise CsvFileError(NOT_XLSX)
        stream.seek(start)
        try:
            with zipfile.ZipFile(stream) as archive:
                infos = archive.infolist()
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
            raise CsvFileError(DAMAGED) from exc
        if not any(info.filename == "xl/workbook.xml" for info in infos):
            raise CsvFileError(NOT_XLSX)
        total = sum(info.file_size for info in infos)
        if max_unzipped_bytes is not None and total > max_unzipped_bytes:
            # zipfile stops each part at its declared size, so the declared total is a bound
            raise CsvFileError(
                f"This workbook unzips to {human_size(total)}, more than the "
                f"{human_size(max_unzipped_bytes)} limit: split it or export it as CSV."
            )
        for info in infos:  # a real sheet compresses about 8x; a bomb of empty cells 1,000x
            if (ratio := too_compressed(info, MAX_PART_RATIO)) is not None:
                raise CsvFileError(
                    f"This workbook's {info.filename} is compressed {ratio:,.0f} times, far "
                    "more than a real workbook, which is how a ZIP bomb looks: export the "
                    "sheet as CSV and import that."
                )
        stream.seek(start)
        if _strict(stream):  # its every sheet read as empty: "The workbook has no data"
            raise CsvFileError(STRICT)
    finally:
        stream.seek(start)


def _strict(stream: BinaryIO) -> bool:
    """Whether the workbook is Excel's "Strict Open XML" (another namespace for every part)."""
    try:
        with zipfile.ZipFile(stream) as archive, archive.open("xl/workbook.xml") as part:
            return _STRICT_NAMESPACE in part.read(4096)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, RuntimeError,
            NotImplementedError, zlib.error, lzma.LZMAError):  # fmt: skip
        return False  # damaged or encrypted: the workbook's reading says so


class SharedStrings:
    """The workbook's shared strings as UTF-8 in one buffer, looked up by index like a list."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("Q")

    def append(self, text: str) -> None:
        self._data += text.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._data))

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, index: int) -> str:
        if index < 0:
            raise IndexError(index)  # not from the end, as a list would: a damaged file
        start = self._ends[index - 1] if index else 0
        return self._data[start : self._ends[index]].decode("utf-8", "surrogatepass")


def unescape(text: str) -> str:
    """`text` with OOXML's `_xHHHH_` escapes decoded (ECMA-376 ST_Xstring): Excel writes a
    cell's carriage return as `_x000D_`, and a literal `_x000D_` as `_x005F_x000D_` (`_x005F_`
    is the underscore). One pass left to right, so an escaped underscore never starts another
    escape. NUL is dropped (PostgreSQL refuses it in text), a lone surrogate kept as written."""
    if "_x" not in text:
        return text
    return _ESCAPE.sub(_unescaped, text)


def _unescaped(match: re.Match[str]) -> str:
    code = int(match[1], 16)
    if 0xD800 <= code <= 0xDFFF:
        return match[0]
    return chr(code) if code else ""


def _string_content(node: Any) -> str:
    """The text of an <si> or <is>: one <t> (the usual case, fast) or openpyxl's rich text."""
    if len(node) == 1 and node[0].tag == _TEXT:
        return unescape(node[0].text or "")
    return unescape(Text.from_tree(node).content)


def _completed(source: Any, tag: str, parent_tag: str, most: int,
               too_big: Callable[[Any], Exception]) -> Iterator[Any]:  # fmt: skip
    """Each `tag` element under `parent_tag` once parsed whole, then dropped from the tree.

    Only "start" events are asked for, half as many as "start" and "end" (iterating them costs
    more than parsing): an element is complete when the next one starts, or when the document ends.
    Dropping it keeps the tree to a few elements, whatever the size of the part. Parsing
    stops when an element starts beside `parent_tag` (a parent below the root: <sheetData>):
    what follows it is not read, and Excel's <hyperlinks>, one per mailto: address, grew the
    tree by a row's worth each.

    Every _TIDY_EVERY elements the tree is tidied: elements beside the `tag` ones (none in a
    file Excel wrote; 2 million empty ones under <sheetData> held 200 MB) are dropped too,
    and an element in which `most` elements started raises `too_big(element)`: a row of
    millions of cells, 4 bytes each and compressing well, held 1.2 GB while it was read.
    """
    root = parent = current = other = None  # `other`: the newest other element, last tidied
    siblings = 0  # the root's children up to `parent`, itself included
    started = other_at = 0  # the count when `current` started, when `other` was first seen
    check_at = _TIDY_EVERY
    for count, (_event, element) in enumerate(iterparse(source, events=("start",))):
        if element.tag == tag and parent is not None:
            if current is not None:
                yield current
            del parent[:-1]  # `current`, and any other element beside it
            current, started = element, count
            continue
        if root is None:
            root = element
            if element.tag == parent_tag:
                parent = element
        elif element.tag == parent_tag:
            parent, siblings = element, _children_to(root, element)
        elif siblings and len(root) > siblings and element is root[siblings]:
            break  # the element after `parent` (the tree can be parsed a little ahead)
        if count < check_at:
            continue
        check_at = count + _TIDY_EVERY
        holder = root if parent is None else parent
        newest = holder[-1] if len(holder) else None
        if newest is current:  # still being read (or nothing to tidy: both None)
            if current is not None and count - started >= most:
                raise too_big(current)
            continue
        if current is not None:
            yield current  # whole: `newest` started after it
            current = None
        if newest is not other:
            other, other_at = newest, count
        elif count - other_at >= most:
            raise too_big(other)
        del holder[:-1]
    if current is not None:
        yield current


def _children_to(root: Any, element: Any) -> int:
    """The children of `root` up to `element`, itself included. Not len(root): the parser
    reads 16 KB ahead of the events, so the tree can hold what follows a small <sheetData>
    already, and the element after it was never seen starting: the <mergeCells> after a
    few rows were parsed too, and 131,072 of them refused the sheet as one row too long."""
    for index in range(len(root) - 1, -1, -1):
        if root[index] is element:
            return index + 1
    return len(root)


def _read_shared_strings(archive: zipfile.ZipFile, path: str) -> SharedStrings:
    """The table, escapes decoded, in bounded memory besides itself (openpyxl only drops
    `x005F_`, keeping `_x000D_` as text)."""
    table = SharedStrings()
    with archive.open(path) as source:
        for item in _completed(source, _STRING_ITEM, _STRING_TABLE, MAX_STRING_ELEMENTS,
                               lambda _element: CsvFileError(TEXT_TOO_LONG)):  # fmt: skip
            table.append(_string_content(item))
    return table


def _row_too_long(sheet: str, number: int) -> str:
    """A row holding more than a row can in Excel: what is wrong with the file, where."""
    return (f"This Excel file is damaged: row {number:,} of the sheet “{sheet}” is longer than "
            f"a row can be in Excel ({MAX_COLUMNS:,} cells, up to column XFD). Open it in "
            "Excel, save it again and import it, or export it as CSV.")


class _RowTooLong(Exception):
    """A row of more than MAX_COLUMNS cells, or with a cell beyond column XFD (_fields)."""


class _TooManyMerged(Exception):
    """A sheet lists more than MAX_MERGED_RANGES ranges merged down (_merged_down)."""


class _SheetRefused(CsvFileError):
    """A sheet too many ranges are merged down in (_too_many_merged): the workbook is refused
    only if it is the sheet read (XlsxReader._use), not for one looked at while choosing."""


def _merged_down(source: BinaryIO) -> array[int]:
    """The merged ranges of a sheet part spanning several rows, packed (_packed) and sorted,
    so by top row; _TooManyMerged past MAX_MERGED_RANGES of them.

    Excel keeps a merged range's value in its top-left cell only, and lists the ranges in
    <mergeCells>, after <sheetData>: a "No" merged down a consent column (C2:C4) read as "No"
    for row 2 and as empty, so subscribed, for rows 3 and 4. The part's bytes are scanned
    rather than parsed as XML a second time, which would double the reading of a big sheet:
    up to the first "mergeCell" only a fast search runs. Only the ranges that can fill a
    cell are kept: over several rows, from row 1 on, in a column a row can have.
    """
    chunks: list[array[int]] = []  # sorted, _MERGE_SORT_CHUNK ranges each
    scanned: list[int] = []  # packed, not yet sorted
    pending = b""  # the end of what was read that may hold the start of a cut element
    seen = False
    while chunk := source.read(_SCAN_CHUNK):
        data = pending + chunk
        if not seen:
            at = data.find(b"mergeCell")
            if at < 0:
                pending = data[-256:]
                continue
            seen = True
            data = data[max(data.rfind(b"<", 0, at), 0) :]
        end = 0
        for match in _MERGE_CELL.finditer(data):
            end = match.end()
            if (merge := _packed(*match.groups())) is not None:
                scanned.append(merge)
                if len(scanned) == _MERGE_SORT_CHUNK:
                    chunks.append(_sorted_chunk(scanned, chunks))
                    scanned = []
        if _MERGE_CELLS_END.search(data, end):
            break
        # an element cut between two chunks, no longer than a chunk: carried on whole, a tag or
        # comment that never ends was searched again from its start with every chunk
        cut = data.rfind(b"<", end)
        pending = data[cut:] if cut >= 0 and len(data) - cut <= _SCAN_CHUNK else b""
    if scanned:
        chunks.append(_sorted_chunk(scanned, chunks))
    return _by_top(chunks)


def _packed(first: bytes, top: bytes, last: bytes, bottom: bytes) -> int | None:
    """The range "first top:last bottom" (C2:C4) as one int ordered by its top row (see
    _TOP_SHIFT); None for one that can fill no cell: of one row, above row 1, or past XFD."""
    top_row, bottom_row = int(top), int(bottom)
    if top_row > bottom_row:
        top_row, bottom_row = bottom_row, top_row
    if bottom_row == top_row or top_row < 1:
        return None
    try:
        column = column_index_from_string(first.decode().upper())
        if last != first:
            column = min(column, column_index_from_string(last.decode().upper()))
    except ValueError:
        return None  # past column ZZZ
    if column > MAX_COLUMNS:
        return None  # a row holds no cell there (_fields)
    return top_row << _TOP_SHIFT | bottom_row << _BOTTOM_SHIFT | column


def _unpacked(merge: int) -> tuple[int, int, int]:
    """(first column, top row, bottom row) of a range _packed."""
    return merge & _COLUMN_MASK, merge >> _TOP_SHIFT, merge >> _BOTTOM_SHIFT & _ROW_MASK


def _sorted_chunk(scanned: list[int], chunks: list[array[int]]) -> array[int]:
    """`scanned` sorted and packed; _TooManyMerged if it and `chunks` hold more than
    MAX_MERGED_RANGES ranges (so no more than that is ever held)."""
    if len(scanned) + sum(map(len, chunks)) > MAX_MERGED_RANGES:
        raise _TooManyMerged
    return array("Q", sorted(scanned))


def _by_top(chunks: list[array[int]]) -> array[int]:
    """The ranges of `chunks`, each sorted, in one array sorted: sorting them all in a list
    held an int object and a pointer for each, 40 MB more for a million."""
    if len(chunks) == 1:
        return chunks[0]
    return array("Q", heapq.merge(*chunks))


class _MergedDown:
    """Gives the rows under the top of a range merged down a column the value of its top-left
    cell, as Excel shows it beside them (see _merged_down). Rows come in order; only the ranges
    reaching the current row are held. The other columns of a range merged across are left
    empty: the value belongs to the column it is in, not to the ones beside it.

    Every column is filled until the reader knows the columns it reads (`fill_only`), over
    the few rows of the header search. Then only those columns and the sheet's first
    MAX_MERGED_SHOWN are: the import reads a handful of columns, and every range filled
    into every row cost rows x ranges (2,000 ranges down 50,000 rows of an address each:
    16 s, now 0.9 s). What a row is given is worked out again only when a range opens or
    ends, and ranges are dropped as they end by a heap of their bottom rows, not by a pass
    over the open ones at every row, blank or not (16,384 ranges over 100,000 empty rows,
    3 MB: 32 s, now 0.5 s). Two ranges over one cell, which Excel never saves, read as the
    one starting lower (of two starting on one row, the longer), then as neither once it
    ends."""

    def __init__(self, merges: Sequence[int] = ()) -> None:
        self._merges = merges  # _packed, by top row (_merged_down)
        self._next = 0
        self._open: dict[int, tuple[int, str]] = {}  # column -> bottom row, value
        self._ends: list[tuple[int, int]] = []  # heap: bottom row, column
        self._columns: frozenset[int] | None = None  # filled (as the ranges': A is 1); None: all
        self._over: list[tuple[int, str]] | None = None  # (index, value) filled, by index

    def fill_only(self, read: Iterable[int]) -> None:
        """Fill from the next row on only the columns `read` (A is 0, as in Columns) and the
        first MAX_MERGED_SHOWN (what *Map columns* shows, what a repeated header is told by)."""
        self._columns = _SHOWN_COLUMNS.union(column + 1 for column in read)
        self._over = None

    def see(self, number: int, fields: list[str]) -> None:
        """Note the values of the ranges starting at row `number` (read, blank or not)."""
        merges, ends, live = self._merges, self._ends, self._open
        below = (number + 1) << _TOP_SHIFT  # ranges _packed under it start at `number` or above
        while self._next < len(merges) and merges[self._next] < below:
            column, top, bottom = _unpacked(merges[self._next])
            self._next += 1
            value = fields[column - 1] if top == number and column <= len(fields) else ""
            if value:
                live[column] = (bottom, value)
                heapq.heappush(ends, (bottom, column))
                self._over = None
        while ends and ends[0][0] < number:
            _bottom, column = heapq.heappop(ends)
            held = live.get(column)
            if held is not None and held[0] < number:  # not a range starting lower in it
                del live[column]
                self._over = None

    def fill(self, fields: list[str]) -> list[str]:
        """`fields` of the row last seen, with the values of the ranges over it."""
        over = self._over
        if over is None:
            over = self._over = self._filled()
        if not over:
            return fields
        if over[-1][0] >= len(fields):
            fields.extend([""] * (over[-1][0] + 1 - len(fields)))
        for index, value in over:
            fields[index] = value
        return fields

    def _filled(self) -> list[tuple[int, str]]:
        """(index in a row, value) of the open ranges in the columns filled, by index: made
        again only when a range opens or ends, not for every row."""
        live, columns = self._open, self._columns
        if columns is None:
            chosen = list(live.items())
        elif len(live) <= len(columns):
            chosen = [(column, held) for column, held in live.items() if column in columns]
        else:
            chosen = [(column, live[column]) for column in columns if column in live]
        return sorted((column - 1, value) for column, (_bottom, value) in chosen)


def _read_columns(columns: Columns) -> list[int]:
    """The columns of a row the import reads (A is 0): those `columns` places a field in."""
    return [column for column in (columns.email, columns.first_name, columns.last_name,
                                  columns.locale, columns.subscribed, columns.full_name,
                                  columns.opt_out) if column is not None]  # fmt: skip


@dataclass(slots=True)
class _Reading:
    """What one reading of a sheet's rows keeps beside them (XlsxReader._header_of)."""

    merges: _MergedDown  # fills merged values in, told the columns read by XlsxReader._use
    uncalculated: list[int] = field(default_factory=lambda: [0])  # formulas without results
    refused: _SheetRefused | None = None  # raised if this sheet is the one read


@dataclass(frozen=True, slots=True)
class _Sheet:
    title: str  # its name as messages show it (_shown_title)
    visible: bool
    path: str  # of its XML part in the archive
    position: int  # among the workbook's worksheets (_Book.sheets): what *Map columns* keeps
    name: str  # as workbook.xml has it: what a release before positions kept (_named)


class _Book:
    """What the rows need of a workbook: the archive, sheets, shared strings, date styles.

    openpyxl's ExcelReader.read() minus what an import doesn't need (properties, theme,
    defined names) and minus the sheet loading and string table it does its own way.
    """

    def __init__(self, stream: BinaryIO) -> None:
        reader = ExcelReader(stream, read_only=True, data_only=True)
        self.archive: zipfile.ZipFile = reader.archive
        try:
            reader.read_manifest()
            reader.read_workbook()
            apply_stylesheet(reader.archive, reader.wb)
            part = reader.package.find(SHARED_STRINGS)
            self.strings = (
                _read_shared_strings(self.archive, part.PartName[1:]) if part else SharedStrings()
            )
            self.workbook = reader.wb
            self._merges: dict[str, array[int]] = {}  # by sheet part (merged_down)
            self._refused: dict[str, _SheetRefused] = {}  # sheets over the cap, by part
            found = [(sheet, rel) for sheet, rel in reader.parser.find_sheets()
                     if rel.target in reader.valid_files and "chartsheet" not in rel.Type]
            self.sheets = [
                _Sheet(_shown_title(sheet.name or ""), sheet.state in (None, "visible"),
                       rel.target, position, sheet.name or "")
                for position, (sheet, rel) in enumerate(found)
            ]  # fmt: skip
        except BaseException:
            self.archive.close()
            raise

    def rows(self, sheet: _Sheet, *, merged: _MergedDown | None = None,
             uncalculated: list[int] | None = None) -> Rows:  # fmt: skip
        """(Excel's row number, fields) of each non-blank row of `sheet`, streamed; `merged`
        (of `merged_down(sheet)`): with the values of merged ranges over the rows below their
        top. `uncalculated` counts the formulas saved without a result in the rows read.

        The loop runs over the cells, not the <dimension> some tools get wrong. Strings are
        read here; numbers, dates, booleans and errors by openpyxl's WorkSheetParser.
        """
        book = self.workbook
        strings = self.strings
        merges = _MergedDown() if merged is None else merged
        uncalculated = [0] if uncalculated is None else uncalculated
        with self.archive.open(sheet.path) as source:
            parser = WorkSheetParser(
                source, strings, data_only=True, epoch=book.epoch,
                date_formats=book._date_formats, timedelta_formats=book._timedelta_formats,
            )  # fmt: skip
            number = 0

            def too_long(element: Any) -> CsvFileError:
                if element.tag != _ROW:  # something else under <sheetData>, too big
                    return CsvFileError(DAMAGED)
                return CsvFileError(_row_too_long(sheet.title,
                                                  _row_number(element.get("r"), number)))

            for row in _completed(source, _ROW, _SHEET_DATA, MAX_ROW_ELEMENTS, too_long):
                number = _row_number(row.get("r"), number)
                try:
                    fields = _fields(row, parser, strings, uncalculated)
                except _RowTooLong:
                    raise too_long(row) from None
                merges.see(number, fields)
                if fields and any(f.strip() for f in fields if f):
                    yield number, merges.fill(fields)

    def merged_down(self, sheet: _Sheet) -> _MergedDown:
        """What fills the values of the ranges merged down in `sheet` into one reading of
        its rows. The ranges are scanned once per sheet, and kept while all those kept stay
        under MAX_MERGED_RANGES (the oldest let go first, scanned again if read again): a
        workbook of many sheets at the cap held each. CsvFileError for a sheet of more, or
        whose part is damaged (this runs before its rows are read, as DAMAGED says)."""
        kept = self._merges
        if (refused := self._refused.get(sheet.path)) is not None:
            raise refused  # scanned once: a sheet is looked at up to four times
        if (merges := kept.get(sheet.path)) is None:
            try:
                merges = self._scanned(sheet)
            except _SheetRefused as exc:
                self._refused[sheet.path] = exc
                raise
            while kept and sum(map(len, kept.values())) + len(merges) > MAX_MERGED_RANGES:
                del kept[next(iter(kept))]
            kept[sheet.path] = merges
        return _MergedDown(merges)

    def _scanned(self, sheet: _Sheet) -> array[int]:
        """The ranges merged down in `sheet` (_merged_down), its refusals as CsvFileError."""
        try:
            with self.archive.open(sheet.path) as source:
                return _merged_down(source)
        except _TooManyMerged:
            raise _SheetRefused(_too_many_merged(sheet.title)) from None
        except Exception as exc:  # a part cut short, or failing its CRC
            raise CsvFileError(DAMAGED) from exc

    def close(self) -> None:
        self.archive.close()


def _row_number(r: str | None, previous: int) -> int:
    """A <row>'s `r` (Excel's 1-based row number), or the next one when it has none."""
    if not r:
        return previous + 1
    number = float(r)
    if not number.is_integer() or number < 1:
        raise ValueError(f"{r!r} is not a row number")
    return int(number)


class _Uncalculated(str):
    """A formula's cell saved without its result: "" to every field but consent (records)."""


UNCALCULATED = _Uncalculated()
# What a consent or opt-out cell of such a formula reads as: a value we can't read, so not
# subscribed and said (rows.Classifier), as nobody is emailed on a guess. Read as empty, it
# said nothing of consent, and a column of formulas subscribed everyone, opt-outs included.
UNCALCULATED_CONSENT = "(formula without its result)"


def _fields(row: Any, parser: WorkSheetParser, strings: SharedStrings,
            uncalculated: list[int]) -> list[str]:  # fmt: skip
    """A <row>'s cells as text, each at its column (A is 0); "" where a row has no cell.
    Counts in `uncalculated` the formulas saved without a result (read as UNCALCULATED).
    _RowTooLong for more cells than MAX_COLUMNS, or one beyond it."""
    placed: list[tuple[int, str]] = []
    column = 0
    for cell in row:
        if cell.tag != _CELL:
            continue  # an <extLst>
        ref = cell.get("r")
        column = column_index_from_string(ref.rstrip(_DIGITS)) if ref else column + 1
        if column > MAX_COLUMNS:
            raise _RowTooLong
        kind = cell.get("t")
        if kind == "s":
            index = cell.findtext(_VALUE)
            text = strings[int(index)] if index else ""
        elif kind == "inlineStr":
            inline = cell.find(_INLINE)
            text = _string_content(inline) if inline is not None else ""
        elif kind == "str":  # a formula's text result
            text = unescape(cell_text(parser.parse_cell(cell)["value"]))
        else:
            text = cell_text(parser.parse_cell(cell)["value"])
        if not text and kind != "str" and cell.find(_FORMULA) is not None:  # "str": a result
            uncalculated[0] += 1
            text = UNCALCULATED
        placed.append((column, text))
    if not placed:
        return []
    if len(placed) > MAX_COLUMNS:  # some of them at the same column
        raise _RowTooLong
    fields = [""] * max(c for c, _ in placed)
    for c, text in placed:
        fields[c - 1] = text
    return fields


def _consent_unread(fields: list[str], columns: list[int]) -> list[str]:
    """`fields` with its consent or opt-out `columns` that are formulas saved without a
    result read as UNCALCULATED_CONSENT."""
    if any(c < len(fields) and fields[c] is UNCALCULATED for c in columns):
        fields = [UNCALCULATED_CONSENT if c in columns and f is UNCALCULATED else f
                  for c, f in enumerate(fields)]  # fmt: skip
    return fields


def _header_and_rows(rows: Rows, fits_chosen: HeaderTest | None = None
                     ) -> tuple[tuple[int, list[str]] | None, Rows]:  # fmt: skip
    """A sheet's header row and the rows below it; None for a sheet without rows.

    The header is the first of the first MAX_HEADER_SEARCH rows in which an email column is
    recognised (a report puts a title and a date above it), or that holds the columns of a
    mapping given or remembered (`fits_chosen`, see reading.header_test), else the row above
    the first row of data below a title (reading.header_above_data), else the first row, as
    before.
    """
    is_header_row = header_test(fits_chosen)
    head: list[tuple[int, list[str]]] = []
    for row in itertools.islice(rows, MAX_HEADER_SEARCH):  # read no further than the header
        if head and is_data_row(row[1]):
            # a row of data: past any title (see reading.find_header), unless label lines
            # beside an address lead to a header below (reading.header_past_labels)
            ahead = [row, *itertools.islice(rows, MAX_HEADER_SEARCH - len(head) - 1)]
            below = header_past_labels([fields for _, fields in ahead], is_header_row)
            if below is not None:
                return ahead[below], _rows_from(
                    _addressed([*head, *ahead[:below]]) + ahead[below + 1 :], rows)
            head.append(row)
            above = header_above_data([fields for _, fields in head])
            rows = _rows_from(ahead[1:], rows)
            return head[above], _rows_from([*_addressed(head[:above]), *head[above + 1 :]], rows)
        if is_header_row(row[1]):
            return row, _rows_from(_addressed(head), rows)
        head.append(row)
    return (head[0] if head else None), _rows_from(head[1:], rows)


def _in_file_order(read: list[int], repeats: HeaderRepeats) -> list[int]:
    """The columns `read` (of the first header) where the rows below a header repeated in
    another order have them (reading.in_column_order)."""
    if repeats.order is None:
        return read
    order = repeats.order[0]
    return [c for c in (order[column] for column in read) if c is not None]


def _addressed(above: list[tuple[int, list[str]]]) -> list[tuple[int, list[str]]]:
    """The rows above the header holding an address: counted, not dropped unseen (see
    XlsxReader.records)."""
    return [row for row in above if holds_an_address(row[1])]


def _rows_from(head: list[tuple[int, list[str]]], rows: Rows) -> Rows:
    """`head`, then the rest of `rows`; closing it closes `rows` (and the sheet's part), or,
    before it started, dropping it does."""
    try:
        yield from head
        yield from rows
    finally:
        rows.close()


def _named(sheets: list[_Sheet], name: str) -> _Sheet | None:
    """The sheet called `name`, as a release before positions kept it (a modal left open, a
    reading queued, a source's kept header: see mapping.kept_header). Such a modal's *Sheet*
    option held the name cut to 150 characters: a longer one is found by that start."""
    found = next((s for s in sheets if s.name == name), None)
    if found is None and len(name) == 150:
        starting = [s for s in sheets if s.name.startswith(name)]
        found = starting[0] if len(starting) == 1 else None
    return found


def _sheet_names(names: list[str]) -> str:
    shown = ", ".join(f"“{name}”" for name in names[:MAX_NAMED_SHEETS])
    more = len(names) - MAX_NAMED_SHEETS
    return shown + (f" and {more} more" if more > 0 else "")


class XlsxReader:
    """Streams the rows of a workbook's first sheet with an email column (else its first
    sheet with data); `.records()` as CsvReader's.

    A visible sheet is preferred to a hidden one (a hidden sheet is usually a lookup list).
    Formulas give the value Excel saved with the file, or "" if it saved none (openpyxl saves
    none). Memory is one row plus the shared strings, whatever the number of rows.
    """

    def __init__(self, stream: BinaryIO, *, max_unzipped_bytes: int | None = None,
                 columns_of: ColumnsOf = map_header, sheet: int | str | None = None,
                 fits_chosen: Callable[[list[str]], bool] | None = None) -> None:  # fmt: skip
        """`sheet`: the sheet to read, whatever the others hold (*Map columns* shows the sheet
        a person chose), by its position among the workbook's sheets (what *Map columns*
        keeps), or by its name (what a release before positions kept: see _named); None: the
        one _open_first_sheet chooses, the first whose header `fits_chosen` (a mapping given
        or remembered fits it, see mapping.ColumnMapper) if given, else the first recognised
        by name.

        The sheet read is `sheet` (its title as messages show it: _shown_title), at
        `sheet_position`; the others with data are `other_sheets`, at `other_positions`."""
        _check_kind(stream, max_unzipped_bytes)
        self._columns_of, self._fits_chosen = columns_of, fits_chosen
        self._rows: Rows | None = None
        # formula cells saved without a result in the rows of the sheet read: those of other
        # sheets, and of rows read again to choose it, are not the import's
        self._uncalculated = [0]
        self._repeats: HeaderRepeats | None = None  # rows repeating the header (records)
        self._merges = _MergedDown()  # the sheet read's (_use)
        try:
            self._book = _Book(stream)
        except CsvFileError:  # ours, saying what is wrong (TEXT_TOO_LONG)
            raise
        except Exception as exc:  # openpyxl raises whatever the broken XML or ZIP causes
            raise CsvFileError(DAMAGED) from exc
        try:
            if sheet is None:
                self._open_first_sheet()
            else:
                self._open_sheet(sheet)
        except BaseException:
            self.close()
            raise

    def _open_first_sheet(self) -> None:
        """Open the sheet to read: the first (visible first) whose header a mapping given or
        remembered fits (`fits_chosen`, see mapping.ColumnMapper), else the first
        whose header has an email column recognised by name, else the first whose header
        `columns_of` maps, else fail naming the sheets. A summary or instructions tab before
        the customers refused the workbook, naming only its own columns; a staff list's
        "Email" on the first sheet hid the customers' "Work Mail" chosen on the next."""
        sheets = self._book.sheets
        self._rows = None
        chosen = self._fits_chosen
        unrecognised: list[tuple[_Sheet, list[str]]] = []
        headers: list[tuple[_Sheet, list[str]]] = []  # of the sheets with rows
        named: _Sheet | None = None  # the first whose email column is recognised by name
        for sheet in sorted(sheets, key=lambda s: not s.visible):  # stable: visible first
            header, rows, reading = self._header_of(sheet)
            if header is not None and (
                (chosen is not None and chosen(header[1]))
                or (chosen is None and is_header(header[1]))
            ):
                self._use(sheet, header, rows, reading)
                break
            rows.close()
            if header is None:
                continue
            headers.append((sheet, header[1]))
            if not is_header(header[1]):
                unrecognised.append((sheet, header[1]))
            elif named is None:
                named = sheet
        if self._rows is None and named is not None:
            try:
                self._use(named, *self._header_of(named))
            except ChosenColumnMissing as exc:
                raise self._missing_everywhere(exc, headers) from None
        if self._rows is None:
            self._open_mapped_sheet(unrecognised, headers)
        self._note_others()

    def _open_sheet(self, chosen: int | str) -> None:
        """Open the sheet `chosen` (its position, or its name); CsvFileError if it is gone or
        has no rows."""
        self._rows = None
        sheets = self._book.sheets
        if isinstance(chosen, str):
            sheet = _named(sheets, chosen)
            gone = f"The sheet “{_shown_title(chosen)}” is no longer in this workbook."
        else:
            sheet = sheets[chosen] if 0 <= chosen < len(sheets) else None
            gone = "The sheet chosen is no longer in this workbook."
        if sheet is None:
            raise CsvFileError(gone)
        header, rows, reading = self._header_of(sheet)
        if header is None:
            rows.close()
            raise CsvFileError(f"The sheet “{sheet.title}” has no data.")
        self._use(sheet, header, rows, reading)
        self._note_others()

    def _note_others(self) -> None:
        """The workbook's other sheets with data, beside the one read (_use): by position, as
        two sheets may show the same title (_shown_title)."""
        others = [s for s in self._book.sheets
                  if s.position != self.sheet_position and self._used(s)]  # fmt: skip
        self.other_sheets = [s.title for s in others]
        self.other_positions = [s.position for s in others]

    @staticmethod
    def _missing_everywhere(exc: ChosenColumnMissing,
                            headers: list[tuple[_Sheet, list[str]]]) -> ColumnsError:  # fmt: skip
        """A chosen column in no sheet: the failure names each sheet and its columns (it
        named the first sheet's only, as if the column weren't in the workbook at all)."""
        if len(headers) < 2:
            return exc
        found = "; ".join(f"in “{sheet.title}”: {shown_columns(header)}"
                          for sheet, header in headers[:MAX_NAMED_SHEETS])  # fmt: skip
        more = len(headers) - MAX_NAMED_SHEETS
        found += f"; and {more} more sheets" if more > 0 else ""
        return ColumnsError(f"The column {exc.chosen} chosen for {exc.field} isn't in any sheet "
                            f"of this workbook. Columns found {found}.")  # fmt: skip

    def _header_of(
        self, sheet: _Sheet
    ) -> tuple[tuple[int, list[str]] | None, Rows, _Reading]:
        """The header and rows of `sheet`, and what reading them keeps beside them. A sheet
        with too many ranges merged down is looked at without them: a notes sheet of them
        before the contacts refused the whole workbook; it refuses it only if it is read."""
        try:
            reading = _Reading(self._book.merged_down(sheet))
        except _SheetRefused as refused:
            reading = _Reading(_MergedDown(), refused=refused)
        rows = self._book.rows(sheet, merged=reading.merges, uncalculated=reading.uncalculated)
        header, rows = _header_and_rows(self._guarded(rows), self._fits_chosen)
        return header, rows, reading

    def _use(self, sheet: _Sheet, header: tuple[int, list[str]] | None, rows: Rows,
             reading: _Reading) -> None:  # fmt: skip
        """Read `sheet`: its header found, its columns mapped, its merged values filled into
        the columns read from the rows below (_MergedDown.fill_only)."""
        assert header is not None
        if reading.refused is not None:
            rows.close()
            raise reading.refused
        self.sheet, self._rows, self._uncalculated = sheet.title, rows, reading.uncalculated
        self.sheet_position = sheet.position
        self.header_row, self.header = header
        self.columns: Columns = self._columns_of(self.header)
        self._merges = reading.merges
        self._merges.fill_only(_read_columns(self.columns))

    def _open_mapped_sheet(self, unrecognised: list[tuple[_Sheet, list[str]]],
                           headers: list[tuple[_Sheet, list[str]]]) -> None:  # fmt: skip
        """No sheet's email column is recognised by name: the first one `columns_of` maps (a
        mapping someone chose), else the first sheet's failure, naming the other sheets.

        Sheets whose first rows hold an address come first: *Map columns* shows the sheet
        this opens (any header maps there), and a summary tab before the customers showed
        its own columns ('Total', '2'), so the customers' could never be chosen."""
        if not unrecognised:
            raise CsvFileError(NO_DATA)
        unrecognised = sorted(unrecognised, key=lambda found: not self._holds_addresses(found[0]))
        failures: list[CsvFileError] = []
        for sheet, header in unrecognised:
            try:
                self._columns_of(header)
            except CsvFileError as exc:
                failures.append(exc)
                continue
            self._use(sheet, *self._header_of(sheet))
            return
        if isinstance(failures[0], ChosenColumnMissing):
            raise self._missing_everywhere(failures[0], headers)
        first, *others = (sheet.title for sheet, _ in unrecognised)
        if not others:
            raise failures[0]
        raise type(failures[0])(
            f"{failures[0]} That is the sheet “{first}”; the other sheets ({_sheet_names(others)})"
            " have no email column either."
        )

    def _holds_addresses(self, sheet: _Sheet) -> bool:
        """Whether a row of `sheet` below its header, among the first few, holds an address."""
        _header, rows, _reading = self._header_of(sheet)
        try:
            return any(holds_an_address(fields) for _, fields in
                       itertools.islice(rows, MAX_HEADER_SEARCH))  # fmt: skip
        except CsvFileError:
            return False  # damaged further down: its failure comes when it is read
        finally:
            rows.close()

    def _used(self, sheet: _Sheet) -> bool:
        """Whether a sheet has a non-blank row: read until the first one."""
        rows = self._book.rows(sheet)  # merged values fill no blank row
        try:
            return next(rows, None) is not None
        except Exception:  # a damaged sheet we won't read anyway: don't mention it
            return False
        finally:
            rows.close()

    def _guarded(self, rows: Rows) -> Rows:
        """`rows`, with a failure part-way through (a damaged sheet) as a CsvFileError."""
        try:
            yield from rows
        except CsvFileError:
            raise
        except Exception as exc:
            raise CsvFileError(DAMAGED) from exc

    def records(self) -> Iterator[tuple[int, list[str] | str]]:
        """(row number as Excel shows it, fields) per non-blank row after the header, and
        before them those above it holding an address (reading.row_above_header). A row
        repeating the header, or another export's header (exports pasted one below the
        other), is no row: the rows below it are read by it (reading.HeaderRepeats)."""
        if self._rows is None:
            return
        header_row, columns, email = self.header_row, self.columns, self.columns.email
        consent = [c for c in (columns.subscribed, columns.opt_out) if c is not None]
        data = header_is_data(self.header, columns)
        first = [(header_row, list(self.header))] if data else []
        repeats = self._repeats = HeaderRepeats(self.header, email, repeatable=not data)
        for number, raw in self._rows:
            if number < header_row:
                yield row_above_header(number, raw, columns, header_row, self.header)
                continue
            yield from first  # the header is a row of data (reading.header_is_data)
            first = []
            fields = repeats.in_order(raw)
            try:  # only a row without an address can be a header
                if "@" not in fields[email] and repeats.found(number, fields, raw):
                    self._merges.fill_only(_in_file_order(_read_columns(columns), repeats))
                    continue
            except IndexError:  # a row too short to reach the email column
                pass
            if consent and self._uncalculated[0]:
                fields = _consent_unread(fields, consent)
            yield number, fields
        yield from first

    def late_note(self) -> str | None:
        """What reading the rows found that the review must say: formulas saved without
        their results (a workbook a program wrote, never saved in Excel) read as empty, so an
        email column of them was a column of "Missing email" with no hint why."""
        repeated = (self._repeats.note("Row", "(exports pasted into one sheet?)")
                    if self._repeats is not None else None)  # fmt: skip
        count = self._uncalculated[0]
        if not count:
            return repeated
        cells = f"{count:,} cell" + ("s are formulas" if count > 1 else " is a formula")
        uncalculated = (f"{cells} saved without a result (the file was made by a program, not "
                        "saved in Excel), read as empty: open the file in Excel, save it, and "
                        "add it again.")  # fmt: skip
        return uncalculated if repeated is None else f"{uncalculated} {repeated}"

    def close(self) -> None:
        """Let go of the workbook; the stream stays open (the caller owns it)."""
        if self._rows is not None:
            self._rows.close()
            self._rows = None
        self._book.close()

    def __enter__(self) -> XlsxReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
