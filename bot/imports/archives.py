"""ZIP archives of CSV files (Mailchimp's audience export and the like), read without unzipping.

Mailchimp exports an audience as one ZIP of CSVs: subscribed, unsubscribed and cleaned members
(and, in some exports, non-subscribed ones). Each CSV entry is opened as a seekable stream that
decompresses as it is read, so CsvReader can sniff it and seek back without the entry touching
the disk or sitting whole in memory.

An upload is untrusted: names may climb out of a directory (`../evil.csv`) and a few kilobytes
may inflate to gigabytes. Both are refused from the central directory before any data is read,
and the sizes it declares are enforced again while reading, since they can lie.
"""

from __future__ import annotations

import contextlib
import io
import lzma
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from bot.imports.reading import CsvFileError
from bot.words import quoted

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an archive with entries; an empty one
# Names of delimited-text tables: the suffixes of CSV and TSV exports, and .txt (Excel's "Text
# (Tab delimited)"), which inside a ZIP counts only when nothing else does (a README beside).
TABLE_SUFFIXES = (".csv", ".tsv")
TEXT_SUFFIX = ".txt"
CSV_SUFFIXES = (*TABLE_SUFFIXES, TEXT_SUFFIX)
MIB = 1024 * 1024
# Below this an entry can't hurt whatever its ratio: a small CSV of one repeated value
# compresses over 100x and is no bomb.
RATIO_FLOOR_BYTES = MIB
# Each CSV in a ZIP becomes a source of the import (a line of the review message): a real
# export holds a few (Mailchimp's, four). Thousands of one-row entries took seconds each.
MAX_CSV_ENTRIES = 50
READABLE_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
# What a damaged entry raises while it is decompressed (bz2 raises a bare OSError).
_DAMAGE = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError)
# What a damaged directory raises as the archive is opened (NotImplementedError: a flipped
# "version needed to extract", "zip file version 9.9").
_DAMAGED_DIRECTORY = (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError)
_DRIVE = re.compile(r"^[A-Za-z]:")
_MAILCHIMP_NAME = re.compile(
    r"^(?P<kind>non[-_]?subscribed|unsubscribed|subscribed|cleaned)_\w*export", re.IGNORECASE
)
# Said in Slack and in a shell alike: "import", never "upload" (a shell uploads nothing)
_REMADE = "download the export again or zip the CSV files again, then import the new ZIP"
# Columns only Mailchimp's audience exports have (a file named like one must have one to be
# taken as one, but for the unsubscribed and non-subscribed names: see mailchimp_kind).
_MAILCHIMP_COLUMNS = frozenset({"MEMBER_RATING", "OPTIN_TIME", "CONFIRM_TIME", "LEID", "EUID",
                                "LAST_CHANGED"})  # fmt: skip


OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old Office files, and encrypted new ones


def is_xlsx(stream: BinaryIO) -> bool:
    """Whether `stream` is a ZIP holding `xl/workbook.xml`; its position is left where it was.

    Here, not in excel.py: telling a workbook apart needs no openpyxl, which excel.py loads
    (13 MB and 50 ms that an import of CSV files never needs)."""
    start = stream.tell()
    try:
        if stream.read(4) != b"PK\x03\x04":
            return False
        stream.seek(start)
        with zipfile.ZipFile(stream) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except _DAMAGED_DIRECTORY:
        return False
    finally:
        stream.seek(start)


def is_zip(stream: BinaryIO) -> bool:
    """Whether `stream` starts like a ZIP archive; its position is left where it was.

    An .xlsx workbook is a ZIP too: ask `is_xlsx` first.
    """
    start = stream.tell()
    try:
        return stream.read(4) in ZIP_MAGIC
    finally:
        stream.seek(start)


class SizeCapped(io.BufferedIOBase):
    """A seekable read-only view of a decompressing stream that refuses to go past `limit` bytes.

    zipfile already stops an entry at the size the central directory declares (and then fails
    its CRC check); counting here again keeps the cap true whatever the stream underneath, and
    turns a damaged entry into a CsvFileError rather than a traceback. It deliberately has no
    `name`: `parallel.file_path` would take an entry's name for a file on disk.
    """

    def __init__(self, raw: BinaryIO, limit: int, label: str,
                 again: Callable[[], SizeCapped] | None = None) -> None:  # fmt: skip
        super().__init__()
        self._raw = raw
        self._again = again
        self._limit = limit
        self._label = label

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def reopen(self) -> BinaryIO | None:
        """The entry opened again, to read alongside this one (CsvReader reads a line a
        second time that way): seeking back would decompress it again from its start."""
        return self._again() if self._again is not None else None

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Seeking back restarts decompression from the entry's start (zipfile does that)."""
        try:
            return self._raw.seek(offset, whence)
        except _DAMAGE as exc:
            raise self._damaged() from exc

    def read(self, size: int | None = -1) -> bytes:
        return self._checked(self._raw.read, size)

    def read1(self, size: int = -1) -> bytes:
        return self._checked(getattr(self._raw, "read1", self._raw.read), size)

    def close(self) -> None:
        self._raw.close()
        super().close()

    def _checked(self, read: Callable[[int], bytes], size: int | None) -> bytes:
        # never ask for more than one byte past the limit: enough to catch a liar
        room = self._limit - self._raw.tell() + 1
        if size is None or size < 0 or size > room:
            size = max(room, 0)
        try:
            data = read(size)
        except _DAMAGE as exc:
            raise self._damaged() from exc
        if self._raw.tell() > self._limit:
            raise CsvFileError(
                f"{self._label} in this ZIP holds more data than the archive declares, which "
                f"is how a ZIP bomb looks: {_REMADE}."
            )
        return data

    def _damaged(self) -> CsvFileError:
        return CsvFileError(f"{self._label} in this ZIP is damaged: {_REMADE}.")


@dataclass(frozen=True, slots=True)
class ZipEntry:
    """One CSV inside the archive: a name safe to show and a way to read it."""

    name: str  # base name, printable, for messages: "subscribed_members_export_1a2b3c.csv"
    size: int  # uncompressed bytes, as declared (and enforced while reading)
    _archive: zipfile.ZipFile = field(repr=False, compare=False)
    _info: zipfile.ZipInfo = field(repr=False, compare=False)

    def open(self) -> SizeCapped:
        """A seekable binary stream of the entry, decompressed as it is read, for CsvReader.

        Entries of one archive may be read one after the other or side by side; the archive's
        stream must stay open meanwhile.
        """
        try:
            raw = self._archive.open(self._info)
        except ValueError as exc:  # a wrong offset in the directory: "negative seek value"
            if "seek" not in str(exc):  # an archive closed under it: our bug, not the file's
                raise
            raise CsvFileError(f"{self.name} in this ZIP is damaged: {_REMADE}.") from exc
        except (*_DAMAGE, NotImplementedError, RuntimeError) as exc:
            raise CsvFileError(f"{self.name} in this ZIP is damaged: {_REMADE}.") from exc
        return SizeCapped(raw, self.size, self.name, self.open)  # type: ignore[arg-type]


@dataclass(slots=True)
class Archive:
    """The CSV entries of a ZIP, and the names of the others (for "ignored: notes.pdf")."""

    entries: list[ZipEntry]
    ignored: list[str]
    _zip: zipfile.ZipFile = field(repr=False)

    def close(self) -> None:
        """Forget the archive; the stream it was read from stays open (the caller owns it)."""
        self._zip.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def display_name(path: str) -> str:
    """The entry's base name with anything unprintable replaced, short enough for a message."""
    return _printable(re.split(r"[/\\]", path.rstrip("/\\"))[-1])


def printable(text: str) -> str:
    """`text` with anything unprintable as "?", for a message (on the shell's stderr, in
    Slack, in the log): a name from a file may hold a CR, a newline, a C1 control (U+009B
    starts a terminal's escape sequence) or a right-to-left override (U+202E)."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _printable(name: str) -> str:
    return printable(name)[:120] or "?"


def entry_name(info: zipfile.ZipInfo, *, whole: bool = False) -> str:
    """The entry's name as display_name shows it (`whole`: its path, as the ZIP has it), read
    as UTF-8 when the ZIP doesn't say.

    Without the UTF-8 flag (0x800) zipfile decodes a name as cp437, but macOS Finder's
    Compress writes UTF-8 names without the flag: "Abonnés.csv" showed as "Abonn├⌐s.csv".
    A name that isn't valid UTF-8 is a real cp437 one (old Windows tools) and stays as it is.
    """
    name = info.filename
    if not info.flag_bits & 0x800:
        with contextlib.suppress(UnicodeError):
            name = name.encode("cp437").decode("utf-8")
    return _printable(name) if whole else display_name(name)


def _parts(path: str) -> list[str]:
    return [p for p in re.split(r"[/\\]", path) if p not in ("", ".")]


def _unsafe(path: str) -> bool:
    """An absolute name or a `..` step: extracted anywhere, it would land outside the folder."""
    return path.startswith(("/", "\\")) or bool(_DRIVE.match(path)) or ".." in _parts(path)


def _skipped(info: zipfile.ZipInfo) -> bool:
    """Folders, macOS resource forks (`__MACOSX/`, `._x.csv`) and hidden files: never listed."""
    parts = _parts(info.filename)
    return info.is_dir() or not parts or any(p == "__MACOSX" or p.startswith(".") for p in parts)


def human_size(size: int) -> str:
    """1,234 MB or 56 KB, for messages."""
    return f"{size / MIB:,.0f} MB" if size >= MIB else f"{size / 1024:,.0f} KB"


def too_compressed(info: zipfile.ZipInfo, max_ratio: float) -> float | None:
    """The entry's compression ratio when it is over `max_ratio` and the entry big enough to
    matter (RATIO_FLOOR_BYTES); None for an entry that can't be a bomb."""
    ratio = info.file_size / max(info.compress_size, 1)
    return ratio if info.file_size > RATIO_FLOOR_BYTES and ratio > max_ratio else None


def _check_sizes(csvs: list[zipfile.ZipInfo], max_total_bytes: int, max_ratio: float) -> None:
    """Refuse a likely ZIP bomb from the central directory alone, before reading any data:
    each entry's ratio, and the whole archive's (many entries each under the floor)."""
    total = sum(info.file_size for info in csvs)
    if total > max_total_bytes:
        raise CsvFileError(
            f"The CSV files in this ZIP add up to {human_size(total)} unzipped, more than the "
            f"{human_size(max_total_bytes)} limit: split the export into smaller files and import "
            "them one at a time."
        )
    for info in csvs:
        if (ratio := too_compressed(info, max_ratio)) is not None:
            raise CsvFileError(
                f"{entry_name(info)} in this ZIP is compressed {ratio:,.0f} times, "
                "far more than a real export, which is how a ZIP bomb looks: import the CSV "
                "file itself instead."
            )
    packed = sum(info.compress_size for info in csvs)
    if total > RATIO_FLOOR_BYTES and total / max(packed, 1) > max_ratio:
        raise CsvFileError(
            f"The CSV files in this ZIP are compressed {total / max(packed, 1):,.0f} times, far "
            "more than a real export, which is how a ZIP bomb looks: import the CSV files "
            "themselves instead."
        )


def open_archive(stream: BinaryIO, *, max_total_bytes: int, max_ratio: float = 100.0) -> Archive:
    """The CSV entries of the ZIP in `stream`, checked; CsvFileError if it can't be imported.

    Only CSV entries count towards `max_total_bytes` and `max_ratio`: the others are never read.
    `stream` must be seekable and stay open while entries are read.
    """
    try:
        archive = zipfile.ZipFile(stream)
        infos = archive.infolist()
    except _DAMAGED_DIRECTORY as exc:
        raise CsvFileError(f"This ZIP file is damaged or incomplete: {_REMADE}.") from exc
    unsafe = [info for info in infos if _unsafe(info.filename)]
    if unsafe:
        archive.close()
        raise CsvFileError(
            # the path as written: its base name alone ("evil.csv") hid what was wrong with it
            f"This ZIP was refused: the entry {quoted(entry_name(unsafe[0], whole=True))} points "
            "outside the archive's folder (a name starting with / or holding ..). Zip the CSV "
            "files again from a folder and import the new ZIP."
        )
    csvs: list[zipfile.ZipInfo] = []
    ignored: list[str] = []
    listed = [info for info in infos if not _skipped(info)]
    # .tsv and .txt exports are read as on their own; a .txt only when nothing else is, so a
    # README beside the CSVs isn't taken for one
    tables = TABLE_SUFFIXES if any(_ends(i, TABLE_SUFFIXES) for i in listed) else (TEXT_SUFFIX,)
    for info in listed:
        if _ends(info, tables):
            csvs.append(info)
        else:
            ignored.append(entry_name(info))
    try:
        _check_entries(archive, csvs, ignored)
        _check_sizes(csvs, max_total_bytes, max_ratio)
    except CsvFileError:
        archive.close()
        raise
    entries = [ZipEntry(entry_name(i), i.file_size, archive, i) for i in csvs]
    return Archive(entries, ignored, archive)


def _ends(info: zipfile.ZipInfo, suffixes: tuple[str, ...]) -> bool:
    return info.filename.lower().endswith(suffixes)


OPENDOCUMENT = (
    "This is an OpenDocument spreadsheet (.ods, from LibreOffice or OpenOffice), which can't be "
    "read here: save it as CSV or as an Excel .xlsx workbook (File › Save As) and import that."
)
NUMBERS = (
    "This is an Apple Numbers file, which can't be read here: export it as CSV or Excel "
    "(File › Export To › CSV… or Excel…) and import that."
)
XLSB = ("This is an Excel binary workbook (.xlsb), which can't be read here: save it as an "
        "Excel Workbook (.xlsx) or as CSV (File › Save As) and import that.")
_OPENDOCUMENT_TYPE = b"application/vnd.oasis.opendocument"


def _spreadsheet_kind(archive: zipfile.ZipFile) -> str | None:
    """The sentence for a spreadsheet that is a ZIP but not a workbook we read (it was told
    "This ZIP holds no CSV file (it holds mimetype, content.xml)"), else None.

    OpenDocument names its type in a first entry called `mimetype`; a Numbers document holds
    its tables as `Index/*.iwa` (or, saved as a package and zipped, `Index.zip`)."""
    names = archive.namelist()
    mimetype = next((i for i in archive.infolist() if i.filename == "mimetype"), None)
    if mimetype is not None and mimetype.file_size < 200:
        try:
            if archive.read(mimetype).startswith(_OPENDOCUMENT_TYPE):
                return OPENDOCUMENT
        except (*_DAMAGE, NotImplementedError, RuntimeError):
            pass  # damaged or encrypted: the general sentence will do
    if any(_numbers_part(name) for name in names):
        return NUMBERS
    if "xl/workbook.bin" in names:
        return XLSB
    return None


def _numbers_part(name: str) -> bool:
    parts = _parts(name)
    return (parts[-1:] == ["Index.zip"]) or (
        len(parts) >= 2 and parts[-2] == "Index" and parts[-1].endswith(".iwa")
    )


def _check_entries(
    archive: zipfile.ZipFile, csvs: list[zipfile.ZipInfo], ignored: list[str]
) -> None:
    if not csvs:
        if "xl/workbook.xml" in archive.namelist():
            raise CsvFileError(
                "This is an Excel workbook, not a ZIP of CSV files: import it as an .xlsx file "
                "or export it as CSV."
            )
        if (kind := _spreadsheet_kind(archive)) is not None:
            raise CsvFileError(kind)
        found = f" (it holds {', '.join(ignored[:5])})" if ignored else ""
        raise CsvFileError(
            f"This ZIP holds no CSV file{found}: put the CSV export in the ZIP or import the "
            "CSV file itself."
        )
    if len(csvs) > MAX_CSV_ENTRIES:
        raise CsvFileError(
            f"This ZIP holds {len(csvs):,} CSV files, more than the {MAX_CSV_ENTRIES} one import "
            "takes: put them together into fewer files, or import them in several ZIPs."
        )
    for info in csvs:
        name = entry_name(info)
        if info.flag_bits & 0x1:
            raise CsvFileError(
                f"{name} in this ZIP is password-protected: zip the CSV files again without a "
                "password, or import them unzipped."
            )
        if info.compress_type not in READABLE_METHODS:
            raise CsvFileError(
                f"{name} in this ZIP is compressed in a way we can't read: zip the CSV files "
                "again with your computer's standard Compress or Send to ZIP, or import them "
                "unzipped."
            )


def mailchimp_kind(name: str, header: list[str]) -> str | None:
    """Which Mailchimp export a CSV is: "subscribed", "unsubscribed", "cleaned", "transactional".

    "transactional" (Mailchimp's API status for non-subscribed contacts, who never opted in)
    comes only from the `nonsubscribed_members_export_*.csv` name: its columns are those of
    the subscribed export. The unsubscribed and cleaned exports are told by their columns
    whatever the file is called; the name decides next, and a renamed file with Mailchimp's
    opt-in columns and neither of those is taken as subscribed. None: not a Mailchimp export.
    """
    columns = {h.strip().lstrip("\ufeff").upper() for h in header}
    if "UNSUB_TIME" in columns:
        return "unsubscribed"
    if "CLEAN_TIME" in columns:
        return "cleaned"
    matched = _MAILCHIMP_NAME.match(display_name(name))
    mailchimps = bool(columns & _MAILCHIMP_COLUMNS)
    if matched:
        kind = matched["kind"].lower()
        if kind.startswith("non"):
            return "transactional"
        # The name alone says only what can't email anyone by mistake: a merchant's tidied
        # `cleaned_customer_export.csv` had every row skipped as bounced, and a
        # `subscribed_..._export.csv` of their own would have said everyone opted in.
        if kind == "unsubscribed" or mailchimps:
            return kind
    if columns & {"OPTIN_TIME", "CONFIRM_TIME"}:
        return "subscribed"
    return None
