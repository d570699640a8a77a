"""Any file people export contacts in (CSV, an .xlsx workbook, a ZIP of CSVs) into sources.

Files are told apart by their bytes, not their names: a workbook is a ZIP too, so `is_xlsx`
is asked first, then `is_zip`, and anything else is read as CSV. A ZIP becomes one source per
CSV inside it (Mailchimp's audience export holds three): the first takes over the source the
upload created, renamed "export.zip › subscribed_members_export.csv"; the others are added to
the same batch with the same ref (the Slack file id), so one review per uploaded file still
holds. Staging a file again (a retried job) finds the sources it added by ref and label and
stages only those still pending: each is read exactly once in effect.

Nothing is ever extracted to disk: entries are read as they decompress, within
MAX_UNZIPPED_MB and a compression ratio no real export reaches (archives.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import update
from sqlmodel import col, select

from bot.imports.archives import OLE_MAGIC, Archive, ZipEntry, is_xlsx, is_zip, open_archive
from bot.imports.batches import (
    Reader,
    ReviewError,
    add_source,
    fail_source,
    get_source,
    set_format,
    stage_csv,
    stage_reader,
)
from bot.imports.mapping import ColumnMapper, lenient_columns, mapper_for
from bot.imports.reading import ColumnsOf, CsvFileError, CsvReader, HeaderTest, map_header
from bot.imports.recognise import ignored_note, recognise, sheets_note
from models import Database, FileFormat, ImportSource, SourceKind, SourceStatus

if TYPE_CHECKING:
    from bot.imports.excel import XlsxReader

MIB = 1024 * 1024
DEFAULT_MAX_UNZIPPED_BYTES = 500 * MIB  # MAX_UNZIPPED_MB's default
MAX_RATIO = 100.0  # real CSV exports compress 5-20x; a bomb, thousands of times
ENTRY_SEPARATOR = " › "


NO_ARCHIVE = "\0"  # archive_prefix of a label that is no ZIP's entry: no label starts with it


def archive_prefix(label: str) -> str:
    """"export.zip › " of an entry's label: other entries of the same ZIP start with it."""
    head, separator, _ = label.partition(ENTRY_SEPARATOR)
    return head + separator if separator else NO_ARCHIVE  # no ZIP: no siblings


def _xlsx_reader(stream: BinaryIO, **options: Any) -> XlsxReader:
    """A reader of the workbook in `stream`. excel.py (and with it openpyxl: 13 MB and 50 ms
    of start-up) is loaded on the first workbook, not by every import of CSV files."""
    from bot.imports.excel import XlsxReader

    return XlsxReader(stream, **options)


def _sheet_choice(columns_of: ColumnsOf) -> dict[str, Any]:
    """A workbook's sheet as a column mapping chooses it (see XlsxReader): the sheet it was
    submitted for, and whether a mapping given or remembered fits a header; nothing for
    columns recognised by name alone."""
    if isinstance(columns_of, ColumnMapper):
        return {"sheet": columns_of.sheet, "fits_chosen": columns_of.fits_chosen}
    return {}


def is_workbook(stream: BinaryIO, name: str) -> bool:
    """An .xlsx workbook, or one XlsxReader explains best: a damaged one (a ZIP called
    .xlsx), a password-protected one or an old .xls (both Office's OLE files)."""
    if is_xlsx(stream) or (name.lower().endswith(".xlsx") and is_zip(stream)):
        return True
    start = stream.tell()
    try:
        return stream.read(len(OLE_MAGIC)) == OLE_MAGIC
    finally:
        stream.seek(start)


_HEAD_BYTES = 2048  # a web page's or an XML spreadsheet's start, well within this
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
_WEB_PAGE_STARTS = ("<html", "<!doctype html", "<table")
_SPREADSHEET_XML = "urn:schemas-microsoft-com:office:spreadsheet"


def web_page_kind(stream: BinaryIO, name: str) -> str | None:
    """The sentence for a web page (an HTML table) or an Excel 2003 XML spreadsheet, else None.

    Salesforce, NetSuite and Zoho's "Export to Excel" write an HTML table named .xls; read as
    CSV it failed "No email column found. Columns found: '<html><head>...'". Only the first
    bytes are read (after a BOM and blank space): nothing is added to the reading of a CSV."""
    start = stream.tell()
    try:
        head = stream.read(_HEAD_BYTES)
    finally:
        stream.seek(start)
    encoding = "latin-1"  # any ASCII-compatible encoding reads "<html" alike
    for bom, with_bom in _BOMS:
        if head.startswith(bom):
            head, encoding = head[len(bom) :], with_bom
            break
    text = head.decode(encoding, "ignore").lstrip("\ufeff \t\r\n\f\v").lower()
    saved_as = " saved as .xls" if name.lower().endswith((".xls", ".xlsx")) else ""
    if text.startswith(_WEB_PAGE_STARTS):
        return (f"This is a web page (HTML table){saved_as or ', not a CSV file'}: open it in "
                "Excel and save it as .xlsx or CSV.")  # fmt: skip
    if text.startswith("<?xml") and _SPREADSHEET_XML in text and "workbook" in text:
        return (f"This is an Excel 2003 XML spreadsheet{saved_as or ', not a CSV file'}: open "
                "it in Excel and save it as .xlsx or CSV.")  # fmt: skip
    return None


def _read_as_csv(stream: BinaryIO, name: str, columns_of: ColumnsOf,
                 fits_chosen: HeaderTest | None = None) -> CsvReader:  # fmt: skip
    """A CsvReader of a file that is neither a workbook nor a ZIP; CsvFileError naming a web
    page or an XML spreadsheet for what it is (web_page_kind)."""
    if (kind := web_page_kind(stream, name)) is not None:
        raise CsvFileError(kind)
    return CsvReader(stream, columns_of=columns_of, fits_chosen=fits_chosen)


def check_file(stream: BinaryIO, *, name: str = "",
               max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
               columns_of: ColumnsOf = map_header) -> None:  # fmt: skip
    """Raise CsvFileError if the file (or any CSV in a ZIP) can't be imported; reads only
    what opening a reader reads. The stream's position is left at its start. `columns_of`:
    how columns are told from a header (a mapping, see bot.imports.mapping)."""
    start = stream.tell()
    try:
        if is_workbook(stream, name):
            _xlsx_reader(stream, max_unzipped_bytes=max_unzipped_bytes, columns_of=columns_of,
                         **_sheet_choice(columns_of)).close()  # fmt: skip
        elif is_zip(stream):
            with _open(stream, max_unzipped_bytes) as archive:
                for entry in archive.entries:
                    with entry.open() as data:
                        try:
                            CsvReader(data, columns_of=columns_of).close()
                        except CsvFileError as exc:
                            raise CsvFileError(f"{entry.name} in this ZIP: {exc}") from None
        else:
            _read_as_csv(stream, name, columns_of).close()
    finally:
        stream.seek(start)


def _open(stream: BinaryIO, max_unzipped_bytes: int) -> Archive:
    return open_archive(stream, max_total_bytes=max_unzipped_bytes, max_ratio=MAX_RATIO)


async def stage_file(
    db: Database, team_id: str, source_id: int, stream: BinaryIO, *, name: str,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES, columns_of: ColumnsOf | None = None,
) -> list[ImportSource]:  # fmt: skip
    """Stage the file in `stream` (called `name`) into the source, or a ZIP into several.

    Returns every source the file fills, each parsed or failed with the reason a person
    reads; a file that can't be read never raises. Sources no longer pending are left as
    they are. Columns: `columns_of`, else a mapping the workspace remembered for the file's
    headers, else recognised by name. What the file is (FileFormat) is recorded on the
    sources as its bytes tell it, for the review to say.
    """
    source = await get_source(db, team_id, source_id)
    mapped = columns_of or await mapper_for(db, team_id)
    if is_workbook(stream, name):
        await set_format(db, source, FileFormat.XLSX)
        return [await _stage_workbook(db, team_id, source, stream, name, max_unzipped_bytes,
                                      mapped)]  # fmt: skip
    if is_zip(stream):
        if source.file_format is None:  # not read before: its entries are yet to be found
            await set_format(db, source, FileFormat.ZIP)
        return await _stage_archive(db, team_id, source, stream, name, max_unzipped_bytes,
                                    mapped)  # fmt: skip
    await set_format(db, source, FileFormat.CSV)
    if (kind := web_page_kind(stream, name)) is not None:
        await fail_source(db, team_id, source_id, kind, only_pending=True)
        return [await get_source(db, team_id, source_id)]
    try:
        return [await stage_csv(db, team_id, source_id, stream, name=name, columns_of=mapped)]
    except CsvFileError:
        return [await get_source(db, team_id, source_id)]  # failed, with the reason


async def _stage_workbook(db: Database, team_id: str, source: ImportSource, stream: BinaryIO,
                          name: str, max_unzipped_bytes: int,
                          columns_of: ColumnsOf) -> ImportSource:  # fmt: skip
    source_id = source.id or 0
    if source.status != SourceStatus.PENDING:
        return source
    try:
        reader = _xlsx_reader(stream, max_unzipped_bytes=max_unzipped_bytes,
                              columns_of=columns_of, **_sheet_choice(columns_of))  # fmt: skip
    except CsvFileError as exc:
        await fail_source(db, team_id, source_id, exc)
        return await get_source(db, team_id, source_id)
    note = sheets_note(reader.sheet, reader.other_sheets)
    try:
        return await stage_reader(db, team_id, source, reader, notes=[note],
                                  kind=recognise(name, reader.header))  # fmt: skip
    except CsvFileError:
        return await get_source(db, team_id, source_id)


async def _stage_archive(db: Database, team_id: str, origin: ImportSource, stream: BinaryIO,
                         name: str, max_unzipped_bytes: int,
                         columns_of: ColumnsOf) -> list[ImportSource]:  # fmt: skip
    if origin.removed and not await _read_before(db, team_id, origin):
        return [origin]  # removed from the review before it was read: add nothing for it
    try:
        archive = _open(stream, max_unzipped_bytes)
    except CsvFileError as exc:  # a bomb, a path outside the archive, damage: nothing read
        await fail_source(db, team_id, origin.id or 0, exc, only_pending=True)
        return [await get_source(db, team_id, origin.id or 0)]
    with archive:
        sources = await entry_sources(db, team_id, origin, entry_labels(name, archive.entries))
        staged = []
        # what the ZIP held besides its CSVs: said on the first CSV that parses (a failed
        # one's note is never shown), else on the first one's failure
        unsaid = ignored_note(name, archive.ignored)
        for entry, source in zip(archive.entries, sources, strict=False):
            read = await stage_entry(db, team_id, source, entry, [unsaid], columns_of)
            if read.status == SourceStatus.PARSED and not read.removed:
                unsaid = None
            staged.append(read)
    if unsaid is not None:
        staged = await _said_on_failure(db, team_id, staged, unsaid)
    return staged


async def _said_on_failure(db: Database, team_id: str, staged: list[ImportSource],
                           note: str) -> list[ImportSource]:  # fmt: skip
    """`staged`, the first failed source's error followed by `note` (once, on a retry too),
    unless its error changed meanwhile (the file was mapped and read again)."""
    failed = next((s for s in staged if s.status == SourceStatus.FAILED and s.error), None)
    if failed is None or note in (failed.error or ""):
        return staged
    async with db.begin() as conn:
        await conn.execute(
            update(ImportSource)
            .where(col(ImportSource.id) == failed.id, col(ImportSource.team_id) == team_id,
                   col(ImportSource.status) == SourceStatus.FAILED,
                   col(ImportSource.error) == failed.error)
            .values(error=f"{failed.error} {note}"[:2000])
        )  # fmt: skip
    refreshed = await get_source(db, team_id, failed.id or 0)
    return [refreshed if s is failed else s for s in staged]


async def _read_before(db: Database, team_id: str, origin: ImportSource) -> bool:
    """Whether a reading of this ZIP cut short (a worker killed, the database gone) added its
    other CSVs' sources already: removing the first CSV then must not leave the rest unread
    for good (the review said "Reading..." and no approval could pass)."""
    async with db.session() as session:
        found = (await session.exec(select(ImportSource.id).where(
            ImportSource.team_id == team_id, ImportSource.batch_id == origin.batch_id,
            ImportSource.ref == origin.ref, ImportSource.kind == SourceKind.CSV,
            col(ImportSource.id) > (origin.id or 0)).limit(1))).first()  # fmt: skip
    return origin.ref is not None and found is not None


def entry_labels(archive: str, entries: Sequence[ZipEntry]) -> list[str]:
    """"export.zip › members.csv" per entry; a base name met twice gets " (2)", the same on
    every reading (entries keep the archive's order), so a retry finds the same sources."""
    labels: list[str] = []
    seen: dict[str, int] = {}
    for entry in entries:
        label = f"{archive[:120]}{ENTRY_SEPARATOR}{entry.name}"[:250]
        repeat = seen[entry.name] = seen.get(entry.name, 0) + 1
        labels.append(f"{label} ({repeat})" if repeat > 1 else label)
    return labels


async def entry_sources(db: Database, team_id: str, origin: ImportSource,
                        labels: list[str]) -> list[ImportSource]:  # fmt: skip
    """A source per label: the origin (relabelled) for the first, then the sources an earlier
    reading of this file added (same batch, ref and label, after the origin), or new ones.
    Stops short if the batch left draft meanwhile: nothing can be added to it any more."""
    origin_id = origin.id or 0
    if origin.label != labels[0]:
        async with db.begin() as conn:
            await conn.execute(
                update(ImportSource)
                .where(col(ImportSource.id) == origin_id, col(ImportSource.team_id) == team_id)
                .values(label=labels[0][:255], file_format=FileFormat.ZIP_CSV)
            )
        origin = await get_source(db, team_id, origin_id)
    async with db.session() as session:
        earlier: dict[str, ImportSource] = {}
        if origin.ref is not None:  # CLI files have none: nothing was added for them before
            found = (await session.exec(
                select(ImportSource).where(
                    ImportSource.team_id == team_id, ImportSource.batch_id == origin.batch_id,
                    ImportSource.ref == origin.ref, ImportSource.kind == SourceKind.CSV,
                    col(ImportSource.id) > origin_id,
                ).order_by(col(ImportSource.id))
            )).all()  # fmt: skip
            for source in found:
                earlier.setdefault(source.label, source)
    sources = [origin]
    for label in labels[1:]:
        source = earlier.get(label[:255])
        if source is None:
            try:
                source = await add_source(db, team_id, origin.batch_id, SourceKind.CSV, label,
                                          ref=origin.ref,
                                          file_format=FileFormat.ZIP_CSV)  # fmt: skip
            except ReviewError:
                break  # the batch was closed while the ZIP was read
        sources.append(source)
    return sources


async def stage_entry(db: Database, team_id: str, source: ImportSource, entry: ZipEntry,
                      notes: list[str | None], columns_of: ColumnsOf) -> ImportSource:  # fmt: skip
    """One CSV of a ZIP into its (pending, not removed) source; CsvFileError fails it."""
    source_id = source.id or 0
    if source.status != SourceStatus.PENDING or source.removed:
        return source
    try:
        with entry.open() as data:
            reader = CsvReader(data, columns_of=columns_of)
            await stage_reader(db, team_id, source, reader, notes=notes,
                               kind=recognise(entry.name, reader.header))  # fmt: skip
    except CsvFileError as exc:  # unreadable, or damaged part way (then already recorded)
        await fail_source(db, team_id, source_id, exc, only_pending=True)
    return await get_source(db, team_id, source_id)


@contextmanager
def shown_reader(
    stream: BinaryIO, *, name: str, label: str,
    max_unzipped_bytes: int = DEFAULT_MAX_UNZIPPED_BYTES,
    fits_chosen: Callable[[list[str]], bool] | None = None, sheet: int | str | None = None,
) -> Iterator[Reader]:  # fmt: skip
    """A reader of the file called `name` (or of its ZIP entry the source `label` names) that
    opens even when no email column is recognised: to show its headers and values when
    someone maps its columns. CsvFileError if it can't be read at all. A workbook shows the
    sheet its import reads: the one a remembered mapping fits (`fits_chosen`, see
    mapping.ColumnMapper), else the first recognised by name; or the `sheet` chosen in *Map
    columns* (its position, or its name: mapping.SheetRef). A CSV's header, and each
    sheet's, is found as its import found it: a row holding a remembered mapping's columns
    is one (below a title as wide as it)."""
    if is_workbook(stream, name):
        with _xlsx_reader(stream, max_unzipped_bytes=max_unzipped_bytes,
                          columns_of=lenient_columns, fits_chosen=fits_chosen,
                          sheet=sheet) as workbook:  # fmt: skip
            yield workbook
        return
    # a CSV's header searched as its import searched it: by a remembered mapping's columns too
    # (*Map columns* of a CSV imported through one showed the title above its header)
    if not is_zip(stream):
        with _read_as_csv(stream, name, lenient_columns, fits_chosen) as reader:
            yield reader
        return
    with _open(stream, max_unzipped_bytes) as archive:
        labels = [lab[:255] for lab in entry_labels(name, archive.entries)]
        if label not in labels:
            raise CsvFileError(f"{label} is no longer in {name}.")
        with archive.entries[labels.index(label)].open() as data, CsvReader(
            data, columns_of=lenient_columns, fits_chosen=fits_chosen
        ) as reader:
            yield reader
