"""Column mappings: which header holds the email, names, locale and consent of a file.

Headers are recognised by name (reading.HEADER_ALIASES) and that stays the default. When a
file's email column can't be told, or the guess is wrong, a person chooses (Slack's *Map
columns*, or `import --map email="Work Email"`); the choice is remembered per workspace for
that set of headers, so next week's export from the same tool maps itself. Nothing here
knows Slack.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select

from bot.imports.batches import clear_staged, lock_batch, promote_before_reread
from bot.imports.job_kinds import SLACK_FILE_JOB, rereading_job_key
from bot.imports.reading import (
    OPT_OUT_ALIASES,
    ChosenColumnMissing,
    Columns,
    ColumnsError,
    CsvFileError,
    full_name_column,
    header_is_data,
    holds_an_address_cell,
    map_header,
    opt_out_column,
    squash,
)
from bot.jobs.queue import enqueue_in
from bot.notify import reading_again_in
from bot.words import quoted
from models import ColumnMapping, Database, FileFormat, ImportSource, SourceKind, SourceStatus
from models.clock import utcnow

log = logging.getLogger(__name__)
FIELDS = ("email", "first_name", "last_name", "locale", "subscribed")
BEING_READ = ("This file is being read again already: its new counts show on the review "
              "message when it is done.")
FIELD_LABELS = {"email": "Email", "first_name": "First name", "last_name": "Last name",
                "locale": "Locale", "subscribed": "Subscribed"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """The header name chosen for each field (as the file spells it); None: no such column."""

    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    locale: str | None = None
    subscribed: str | None = None

    def items(self) -> list[tuple[str, str | None]]:
        return [(f, getattr(self, f)) for f in FIELDS]


def headers_key(header: Iterable[str]) -> str:
    """The same for every file with this set of headers, in any order, spacing or case."""
    names = sorted({squash(h) for h in header if squash(h)})
    return hashlib.sha256(json.dumps(names, ensure_ascii=False).encode()).hexdigest()


# Between a header and which of the columns so named is meant ("Email" NTH "2": the second
# "Email"): a header a file repeats, or leaves blank, doesn't name one column by itself. No
# header holds this control character, and PostgreSQL's text keeps it (it refuses only NUL).
NTH = "\x1f"


def column_name(header: list[str], index: int) -> str:
    """How a mapping names the column at `index`: its header, or, when the header names an
    earlier column too or is blank, the header and which of the columns so named it is.

    Options in *Map columns* are positions; naming the second "Email" by its header read the
    first "Email" instead, and a column without a header could not be chosen at all."""
    wanted = squash(header[index])
    same = [i for i, h in enumerate(header) if squash(h) == wanted]
    if wanted and same[0] == index:
        return header[index]
    return f"{header[index].strip()}{NTH}{same.index(index) + 1}"


def position_of(header: list[str], name: str) -> int | None:
    """Where the header `name` sits (compared normalised): the first such column, or the one
    `column_name` names."""
    name, _, nth = name.partition(NTH)
    wanted = squash(name)
    same = [i for i, h in enumerate(header) if squash(h) == wanted]
    which = int(nth) - 1 if nth.isdigit() else 0
    return same[which] if 0 <= which < len(same) else None


def shown_name(name: str) -> str:
    """A mapping's column as a message names it: 'Email', 'Email' (no. 2 of the columns so
    named), or no. 1 of the columns without a name."""
    name, _, nth = name.partition(NTH)
    if not nth:
        return quoted(name)
    if not name.strip():
        return f"no. {nth} of the columns without a name"
    return f"{quoted(name)} (no. {nth} of the columns so named)"


def fits(header: list[str], mapping: ColumnMap) -> bool:
    """Whether every column `mapping` names is in `header`. A remembered mapping is found by
    the set of header names (headers_key), where a repeated name counts once: the second
    "Email" chosen for a file with two isn't in next week's file with one."""
    return bool(mapping.email) and all(name is None or position_of(header, name) is not None
                                       for _, name in mapping.items())  # fmt: skip


def columns_for(header: list[str], mapping: ColumnMap) -> Columns:
    """Where each mapped field sits in `header`; CsvFileError if a chosen header isn't there."""
    if not mapping.email:
        raise ColumnsError("No email column was chosen: map the column that holds the email "
                           "addresses.")  # fmt: skip
    found: dict[str, int | None] = {}
    for name, header_name in mapping.items():
        if header_name is None:
            found[name] = None
            continue
        index = position_of(header, header_name)
        if index is None:
            raise ChosenColumnMissing(shown_name(header_name), FIELD_LABELS[name], header)
        found[name] = index
    email = found["email"]
    assert email is not None
    full = None  # whole names, as recognised by name, when neither part is mapped
    if found["first_name"] is None and found["last_name"] is None:
        full = full_name_column(header)
        if full is not None and full in found.values():
            full = None  # "Contact Name" chosen for Email: that is what it holds
    subscribed, opt_out = found["subscribed"], opt_out_column(header)
    if subscribed is not None and squash(header[subscribed]) in OPT_OUT_ALIASES:
        # "Email Opt Out" chosen as Subscribed: its "true" would have emailed exactly the
        # people who opted out. Read as what its name says, even after another opt-out
        # column ("Email Bounced"): the one chosen is the one meant.
        subscribed, opt_out = None, subscribed
    elif opt_out is not None and opt_out in found.values():
        opt_out = None  # chosen for another field: that is what it holds
    return Columns(email, found["first_name"], found["last_name"], found["locale"],
                   subscribed, full, opt_out)  # fmt: skip


def guess(header: list[str]) -> ColumnMap:
    """What recognising headers by name finds; email is None when it finds none."""
    try:
        columns = map_header(header)
    except CsvFileError:
        return _partial_guess(header)
    return ColumnMap(*(None if i is None else header[i] for i in (
        columns.email, columns.first_name, columns.last_name, columns.locale,
        columns.subscribed)))  # fmt: skip


def _partial_guess(header: list[str]) -> ColumnMap:
    """The other fields when no email column is recognised (a fake email column finds them);
    none for a row of data (a file without a header row): its values name no column."""
    if holds_an_address_cell(header):
        return ColumnMap()
    columns = map_header(["email", *header])
    names = ["email", *header]
    return ColumnMap(None, *(None if i is None else names[i] for i in (
        columns.first_name, columns.last_name, columns.locale, columns.subscribed)))  # fmt: skip


def complete(header: list[str], given: Mapping[str, str | None]) -> ColumnMap:
    """The guess for `header` with the fields someone named (`--map`) put over it."""
    return replace(guess(header), **dict(given))


def lenient_columns(header: list[str]) -> Columns:
    """Columns for reading a file only to show it (the mapping modal): the guess, or the first
    column as email when there is none, so a file without a recognised email still opens."""
    try:
        return map_header(header)
    except CsvFileError:
        return Columns(0, None, None, None)


class Readable(Protocol):
    header: list[str]

    def records(self) -> Iterable[tuple[int, list[str] | str]]: ...


def samples(reader: Readable, n: int = 3, *, max_rows: int = 1000) -> list[list[str]]:
    """The first `n` non-empty values of each column, reading at most `max_rows` rows."""
    found: list[list[str]] = [[] for _ in reader.header]
    for count, (_, fields_) in enumerate(reader.records()):
        if isinstance(fields_, str):
            continue  # a malformed record
        for i, value in enumerate(fields_[: len(found)]):
            if value.strip() and len(found[i]) < n:
                found[i].append(value.strip())
        if count + 1 >= max_rows or all(len(f) >= n for f in found):
            break
    return found


def parse_maps(items: Iterable[str]) -> dict[str, str]:
    """`["email=Work Email", "locale=Preferred language"]` -> {field: header} (`--map`)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, header = item.partition("=")
        name = name.strip().lower().replace("-", "_").replace(" ", "_")
        if not sep:
            raise ValueError(f"--map {quoted(item)} needs a field and a column: --map email=\"Work "
                             f"Email\".")  # fmt: skip
        if name not in FIELDS:
            raise ValueError(f"--map {quoted(item)}: {name or '(nothing)'} is not a field; the "
                             f"fields are {', '.join(FIELDS)}.")  # fmt: skip
        if not header.strip():
            raise ValueError(f"--map {quoted(item)} names no column.")
        if name in out and squash(out[name]) != squash(header):
            # the last one silently won: a field is read from one column
            raise ValueError(f"--map {quoted(item)}: {name} is given twice (also --map "
                             f"{name}={quoted(out[name])}); map each field once.")  # fmt: skip
        out[name] = header.strip()
    return out


def given_columns_collide(header: list[str], given: Mapping[str, str]) -> None:
    """ColumnsError if two fields given (`--map`) name the same column of `header` (compared
    as headers are matched): a column serves one field, as in *Map columns*. `--map
    email=contact --map first_name=Contact` read the address as the first name too, and that
    was remembered for every later file with these headers."""
    used: dict[int, str] = {}
    for name, header_name in given.items():
        position = position_of(header, header_name)
        if position is None:
            continue  # not in this file: columns_for says so
        if position in used:
            raise ColumnsError(
                f"The column {shown_name(column_name(header, position))} is chosen for both "
                f"{FIELD_LABELS[used[position]]} and {FIELD_LABELS[name]}: a column serves "
                f"one field. Map each field to its own column.")  # fmt: skip
        used[position] = name


async def remember(db: Database, team_id: str, header: list[str], mapping: ColumnMap,
                   user: str) -> None:  # fmt: skip
    """Keep `mapping` for files with these headers in this workspace (the latest one wins)."""
    async with db.begin() as conn:
        await remember_in(conn, team_id, header, mapping, user)


async def remember_in(conn: AsyncConnection, team_id: str, header: list[str], mapping: ColumnMap,
                      user: str) -> bool:  # fmt: skip
    """`remember` in the caller's transaction; whether it was remembered. A "header" that is
    a row of data (a file without one, mapped by its first row's values, as its error says
    to) is not (`rememberable`): it kept that customer's address and name as the workspace's
    column names (`mappings` listed them, after `contacts delete` too), and no other file
    has that header."""
    if not mapping.email:
        raise ValueError("a mapping needs an email column")
    if not rememberable(header, mapping):
        return False
    values = {"team_id": team_id, "headers_key": headers_key(header), **dict(mapping.items()),
              "updated_by": user[:64], "updated_at": utcnow()}  # fmt: skip
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(ColumnMapping).values(**values)
    changed = {k: v for k, v in values.items() if k not in ("team_id", "headers_key")}
    await conn.execute(statement.on_conflict_do_update(
        index_elements=["team_id", "headers_key"], set_=changed))  # fmt: skip
    return True


def rememberable(header: list[str], mapping: ColumnMap) -> bool:
    """Whether `mapping` is remembered for files with `header`: not when the "header" is a
    row of data (a file without one, mapped by its first row's values), whose customer's
    address and name would be kept as the workspace's column names, for a header no other
    file has. Such a file's mapping is kept on its source (keep_header) while it is read."""
    return not header_is_data(header, columns_for(header, mapping))


def _from_row(row: ColumnMapping) -> ColumnMap:
    return ColumnMap(row.email, row.first_name, row.last_name, row.locale, row.subscribed)


async def recall(db: Database, team_id: str, header: list[str]) -> ColumnMap | None:
    """The mapping this workspace chose for files with these headers, if any and if it fits
    this header (see `fits`: one that doesn't is not what this file is read with)."""
    async with db.session() as session:
        row = await session.get(ColumnMapping, (team_id, headers_key(header)))
    mapping = _from_row(row) if row is not None else None
    return mapping if mapping is not None and fits(header, mapping) else None


@dataclass(frozen=True, slots=True)
class Remembered:
    """A mapping the workspace remembered, as `referral-bot mappings` lists it."""

    key: str  # headers_key of the headers it is for
    mapping: ColumnMap
    chosen_by: str  # a Slack user id, or "cli"
    chosen_at: datetime
    # the headers as a file spelled them, if a file read with them kept them (keep_header:
    # *Map columns* does); None for one given with --map: the table keeps only their hash
    header: list[str] | None


async def remembered_mappings(db: Database, team_id: str) -> list[Remembered]:
    """The workspace's remembered mappings, the latest chosen first, each with the headers
    of the newest file of its headers that kept them (see Remembered.header)."""
    async with db.session() as session:
        rows = (await session.exec(
            select(ColumnMapping).where(col(ColumnMapping.team_id) == team_id)
            .order_by(col(ColumnMapping.updated_at).desc(), col(ColumnMapping.headers_key))
        )).all()  # fmt: skip
        kept = (await session.exec(
            select(ImportSource.header).where(col(ImportSource.team_id) == team_id,
                                              col(ImportSource.header).is_not(None))
            .order_by(col(ImportSource.id).desc())
        )).all() if rows else []  # fmt: skip
    headers = _headers_by_key(kept, {row.headers_key for row in rows})
    return [Remembered(row.headers_key, _from_row(row), row.updated_by, row.updated_at,
                       headers.get(row.headers_key)) for row in rows]  # fmt: skip


def _headers_by_key(kept: Iterable[str | None], wanted: set[str]) -> dict[str, list[str]]:
    """The first header (of `kept`, newest first) of each headers_key in `wanted`."""
    found: dict[str, list[str]] = {}
    for text in kept:
        header, _sheet = kept_header(text)
        if not header:
            continue
        key = headers_key(header)
        if key in wanted and key not in found:
            found[key] = header
            if len(found) == len(wanted):
                break
    return found


async def forget_mapping(db: Database, team_id: str, key: str) -> bool:
    """Forget the workspace's mapping for the headers `key` (headers_key): files with them
    are read by their names again. False if it wasn't remembered (forgotten meanwhile)."""
    async with db.begin() as conn:
        gone = await conn.execute(delete(ColumnMapping).where(
            col(ColumnMapping.team_id) == team_id,
            col(ColumnMapping.headers_key) == key))  # fmt: skip
    return bool(gone.rowcount)


# A workbook's sheet as *Map columns* keeps it: its position among the workbook's sheets
# (excel.XlsxReader.sheet_position), or, kept by a release before positions, its name. The name
# was cut to 150 characters in the modal's *Sheet* options, and a long one overflowed the
# modal's private_metadata: a sheet named over 150 characters couldn't be chosen, nor a
# workbook with a name of thousands mapped at all.
SheetRef = int | str


@dataclass
class ColumnMapper:
    """A reader's `columns_of`: a mapping given now (over the one remembered for the file's
    header, else over the guess), then one remembered that fits the file's header, then the
    guess (a remembered mapping never fails a file: a person
    chose it for another file, and *Map columns* can choose again for this one).

    Built before a file is opened (the workspace's mappings are few, read at once), since a
    reader tells its columns synchronously. `used` keeps what each file was mapped with, so
    a mapping given on the command line can be remembered afterwards.
    """

    remembered: dict[str, ColumnMap] = field(default_factory=dict)
    given: dict[str, str] = field(default_factory=dict)
    used: dict[str, tuple[list[str], ColumnMap]] = field(default_factory=dict)
    # the workbook's sheet the mapping was submitted for (*Map columns*' *Sheet*): read in
    # place of the first sheet any remembered mapping fits (a staff list's saved once); its
    # position, or its name if a release before positions queued the reading (SheetRef)
    sheet: SheetRef | None = None
    # the headers_key of every header mapped, in order (a reader maps its header once it has
    # read it; a workbook may map a sheet's twice): which file was read with which header
    read: list[str] = field(default_factory=list)
    # the headers a file read with found valid rows in (found_rows): only those are remembered
    found_valid: set[str] = field(default_factory=set)

    def __call__(self, header: list[str]) -> Columns:
        key = headers_key(header)
        if self.given:
            given_columns_collide(header, self.given)
            mapping = self._given_over_remembered(header)
        elif key in self.remembered and fits(header, self.remembered[key]):
            mapping = self.remembered[key]
        else:
            if key in self.remembered:
                log.info("a remembered column mapping doesn't fit the header %r: guessed",
                         header[:50])  # fmt: skip
            columns = map_header(header)
            self.read.append(key)
            return columns
        columns = columns_for(header, mapping)
        self.used[key] = (list(header), mapping)
        self.read.append(key)
        return columns

    def _given_over_remembered(self, header: list[str]) -> ColumnMap:
        """`given` over the mapping remembered for `header`, else over the guess: a `--map`
        of one field (the locale) kept the others a person chose in Slack out, reading the
        guessed email column, and remembering that over the choice."""
        remembered = self.remembered.get(headers_key(header))
        if remembered is not None:
            mapping = replace(remembered, **self.given)
            if fits(header, mapping):
                return mapping
        return complete(header, self.given)

    @property
    def fits_chosen(self) -> Callable[[list[str]], bool] | None:
        """Whether a mapping given or remembered fits a header (see _fits_chosen); None when
        there is none: the header search then goes by names alone, as for any file, and a
        workbook reads its first sheet recognised by name without reading the others'
        headers (and scanning their parts for merged cells). A reader takes it by this name
        (reading.chosen_header_test)."""
        return self._fits_chosen if self.given or self.remembered else None

    def _fits_chosen(self, header: list[str]) -> bool:
        """Whether a mapping given now, else one remembered for `header`, fits it: the
        header search takes such a row for the header (a title line as wide as a header of
        names none recognised, "Work Mail, Given, Family", was taken for it, and the mapping
        never found its columns), and a workbook reads the sheet it fits before one whose
        email column is recognised by name (a staff list's "Email" on the first sheet, the
        customers' "Work Mail" on the next)."""
        if self.given:
            return fits(header, self._given_over_remembered(header))
        remembered = self.remembered.get(headers_key(header))
        return remembered is not None and fits(header, remembered)

    def chosen(self, header: list[str]) -> bool:
        """Whether `header`'s columns came from a mapping, not the guess."""
        return headers_key(header) in self.used

    def found_rows(self, since: int, sources: Sequence[ImportSource]) -> None:
        """Note which headers found valid rows: `sources` are those one file filled, read
        since `read` had `since` headers, in the order they were read (a ZIP's CSVs: one
        header each; a workbook: one source, read with the last header mapped). Sources
        counted when staged (valid > 0)."""
        keys = self.read[since:]
        if not keys or not sources:
            return
        if len(sources) == 1:
            pairs = [(keys[-1], sources[0])]
        elif len(keys) == len(sources):
            pairs = list(zip(keys, sources, strict=True))
        else:  # not told apart (a CSV of the ZIP failed before its header): all or none
            found = all(source.valid > 0 for source in sources)
            self.found_valid.update(keys if found else ())
            return
        self.found_valid.update(key for key, source in pairs if source.valid > 0)

    async def remember_given(self, db: Database, team_id: str, user: str) -> None:
        """Remember a mapping given now (`--map`) for every set of headers it mapped that a
        file found valid rows with (found_rows): a file of the same import whose "Contact"
        holds phone numbers, rejected whole, had `email=Contact` remembered for its headers,
        and every later file with them read with it ("Nothing to import")."""
        if not self.given:
            return
        for key, (header, mapping) in self.used.items():
            if key in self.found_valid:
                await remember(db, team_id, header, mapping, user)


async def mapper_for(db: Database, team_id: str,
                     given: Mapping[str, str] | None = None) -> ColumnMapper:  # fmt: skip
    """The workspace's remembered mappings, with `given` (from `--map`) over them."""
    async with db.session() as session:
        rows = (await session.exec(
            select(ColumnMapping).where(ColumnMapping.team_id == team_id)
        )).all()  # fmt: skip
    return ColumnMapper({row.headers_key: _from_row(row) for row in rows}, dict(given or {}))


async def keep_header(db: Database, team_id: str, source_id: int, header: list[str],
                      sheet: SheetRef | None = None, title: str | None = None) -> None:  # fmt: skip
    """Keep the file's header on its source: a mapping's submission names columns by position.
    A workbook's `sheet` (the one the modal shows, by position; `title`: its name as shown)
    is kept with it: the file is read again from that sheet, not from the first one a
    remembered mapping fits (see kept_header). The sheet read since its last mapping stays
    kept (read_sheet), whatever the modal shows.
    The row is locked while it is read (PostgreSQL): a mapping saved meanwhile (reread_source)
    would otherwise have its sheet written over by the one read before it."""
    where = (col(ImportSource.id) == source_id, col(ImportSource.team_id) == team_id)
    async with db.begin() as conn:
        kept = (await conn.execute(
            select(ImportSource.header).where(*where).with_for_update())).scalar()  # fmt: skip
        await conn.execute(
            update(ImportSource).where(*where)
            .values(header=_kept(header, sheet, read_sheet(kept), title, kept_mapping(kept)))
        )  # fmt: skip


def sheet_ref(value: object) -> SheetRef | None:
    """A sheet kept in JSON (a source's header, a modal's metadata, a job's payload)."""
    if isinstance(value, bool):
        return None
    return value if isinstance(value, int | str) else None


def _kept(header: list[str], sheet: SheetRef | None, read: SheetRef | None,
          title: str | None = None, mapping: ColumnMap | None = None) -> str:  # fmt: skip
    """The JSON kept on a source (see kept_header): the header alone for a CSV; for a
    workbook's sheet, its position and `title` (its name as shown, for a message only); the
    `mapping` of a file without a header row, which isn't remembered (rememberable), so that
    *Map columns* opened again shows what the file is read with."""
    if sheet is None and read is None and mapping is None:
        return json.dumps(header, ensure_ascii=False)
    kept: dict[str, object] = {"columns": header, "sheet": sheet, "read": read}
    if title is not None:
        kept["title"] = title
    if mapping is not None:
        kept["mapping"] = dict(mapping.items())
    return json.dumps(kept, ensure_ascii=False)


def kept_mapping(text: str | None) -> ColumnMap | None:
    """The mapping kept on a source whose file has no header row (_kept), if any."""
    chosen = _loaded(text).get("mapping")
    if not isinstance(chosen, dict) or not isinstance(chosen.get("email"), str):
        return None
    return ColumnMap(**{f: chosen.get(f) if isinstance(chosen.get(f), str) else None
                        for f in FIELDS})  # fmt: skip


def _loaded(text: str | None) -> dict[str, object]:
    kept = json.loads(text or "[]")
    return kept if isinstance(kept, dict) else {"columns": kept}


def kept_header(text: str | None) -> tuple[list[str], SheetRef | None]:
    """The header keep_header kept (a JSON list, or for a workbook's sheet an object with
    the sheet and its columns), and the sheet (SheetRef); ([], None) if none was kept."""
    kept = _loaded(text)
    columns = kept.get("columns")
    return list(columns) if isinstance(columns, list) else [], sheet_ref(kept.get("sheet"))


def kept_title(text: str | None) -> str | None:
    """The name, as shown, of the sheet keep_header kept (kept_header): its title, or the
    sheet itself when a release before positions kept it by name."""
    kept = _loaded(text)
    title, sheet = kept.get("title"), kept.get("sheet")
    return title if isinstance(title, str) else sheet if isinstance(sheet, str) else None


def read_sheet(text: str | None) -> SheetRef | None:
    """The workbook's sheet its last *Map columns* had it read from (None: the one a
    remembered mapping fits), which the modal shows when opened again: the first sheet a
    remembered mapping fits may be another (a staff list's columns saved once)."""
    return sheet_ref(_loaded(text).get("read"))


async def reread_source(db: Database, team_id: str, batch_id: int, source_id: int,
                        header: list[str], mapping: ColumnMap, user: str,
                        sheet: SheetRef | None = None,
                        title: str | None = None) -> list[int]:  # fmt: skip
    """Remember `mapping` and put the source back to be read with it, in one transaction,
    with the import's other files that failed on their columns (_failed_on_columns): the
    modal says files with the same headers are read with these columns.

    Only in a draft. Duplicates of its addresses in other files become valid again (as when
    a file is removed) and its rows are deleted, but for those removed by hand, which its new
    reading removes again; its skipped rows are shared in the thread anew. Returns the other
    sources with rows that became valid: as for review.remove_source, the skipped-rows CSV
    the thread has of each lists rows that will be imported now, so each is shared anew
    once told (notifier.rejects_changed). The reading is
    queued in the same transaction, as the job that reads an uploaded file (its bytes are in
    Slack), with the mapping submitted (mapper_submitted): the job reads this source alone
    ("again"), a CSV in a ZIP as the ZIP's entry of its name, whatever became of the other
    sources of the same Slack file (removed, or the file added again since); a workbook from
    the `sheet` mapped (chosen under *Sheet*; `title`: its name as shown), whatever other
    sheets a remembered mapping fits.
    """
    async with db.begin() as conn:
        await lock_batch(conn, team_id, batch_id)
        source = (await conn.execute(
            select(ImportSource.id).where(col(ImportSource.id) == source_id,
                                          col(ImportSource.team_id) == team_id,
                                          col(ImportSource.batch_id) == batch_id,
                                          col(ImportSource.removed).is_(False))
        )).first()  # fmt: skip
        if source is None:
            raise LookupError("That file is no longer part of this import.")
        # Only a file that was read (or failed) goes back to be read: a second submission
        # while the first reading is queued would queue another, racing it.
        if not await _put_back(conn, team_id, source_id):
            raise LookupError(BEING_READ)
        # kept on the source when it isn't remembered: *Map columns* shows it again
        kept = None if await remember_in(conn, team_id, header, mapping, user) else mapping
        await conn.execute(
            update(ImportSource)
            .where(col(ImportSource.id) == source_id, col(ImportSource.team_id) == team_id)
            .values(header=_kept(header, sheet, sheet, title, kept))
        )  # fmt: skip
        # its duplicates elsewhere become valid (as when a file is removed), and its rows go,
        # but for those removed by hand: reading it again removes them again
        promoted = sorted(await promote_before_reread(conn, team_id, batch_id, source_id))
        await clear_staged(conn, team_id, batch_id, source_id, keep_removed=True)
        for changed in (source_id, *promoted):  # their skipped rows are shared anew
            await reading_again_in(conn, team_id, changed)
        await _read_again_in(conn, team_id, source_id, header, mapping, sheet)
        # the modal says files with the same headers are read with these columns: so are
        # this import's others that failed on theirs (a header not kept yet may be another)
        for other in await _failed_on_columns(conn, team_id, batch_id, source_id, header):
            if await _put_back(conn, team_id, other):
                await reading_again_in(conn, team_id, other)
                await _read_again_in(conn, team_id, other, header, mapping)
    return promoted


async def _put_back(conn: AsyncConnection, team_id: str, source_id: int) -> bool:
    """Put a source that was read (or failed) back to be read; False if it is read already."""
    reset = await conn.execute(
        update(ImportSource)
        .where(col(ImportSource.id) == source_id, col(ImportSource.team_id) == team_id,
               col(ImportSource.status).in_((SourceStatus.PARSED, SourceStatus.FAILED)))
        .values(status=SourceStatus.PENDING, error=None, note=None, warning=None, rows=0,
                valid=0, duplicates=0, rejected=0, warnings=0)
    )  # fmt: skip
    return reset.rowcount == 1


async def _read_again_in(conn: AsyncConnection, team_id: str, source_id: int,
                         header: list[str], mapping: ColumnMap,
                         sheet: SheetRef | None = None) -> None:  # fmt: skip
    """Queue the reading of the source alone from its Slack file (see reread_source), with
    the mapping submitted for `header` (see mapper_submitted), from its `sheet` if a
    workbook's sheet was mapped."""
    payload: dict[str, object] = {"source_id": source_id, "again": True,
                                  "headers_key": headers_key(header),
                                  "mapping": dict(mapping.items())}  # fmt: skip
    if sheet is not None:
        payload["sheet"] = sheet
    await enqueue_in(conn, team_id, SLACK_FILE_JOB, payload,
                     dedupe_key=rereading_job_key(source_id, utcnow().timestamp()))  # fmt: skip


async def mapper_submitted(db: Database, team_id: str,
                           payload: Mapping[str, object]) -> ColumnMapper:  # fmt: skip
    """The workspace's mappings, with the one a reading was queued with (reread_source) over
    the one remembered for its headers: someone mapping a file with the same headers before
    the reading runs changes what is remembered, not what this file was said to be read with."""
    mapper = await mapper_for(db, team_id)
    key, chosen, sheet = payload.get("headers_key"), payload.get("mapping"), payload.get("sheet")
    if isinstance(key, str) and isinstance(chosen, dict):
        mapper.remembered[key] = ColumnMap(**{f: chosen.get(f) for f in FIELDS})
    mapper.sheet = sheet_ref(sheet)
    return mapper


async def _failed_on_columns(conn: AsyncConnection, team_id: str, batch_id: int,
                             source_id: int, header: list[str]) -> list[int]:  # fmt: skip
    """The import's other files from Slack that failed on their columns, but those whose
    header, kept by *Map columns*, is another set of headers than `header`."""
    rows = (await conn.execute(
        select(ImportSource.id, ImportSource.header).where(
            col(ImportSource.team_id) == team_id, col(ImportSource.batch_id) == batch_id,
            col(ImportSource.id) != source_id, col(ImportSource.removed).is_(False),
            col(ImportSource.status) == SourceStatus.FAILED,
            col(ImportSource.failed_on_columns).is_(True),
            col(ImportSource.kind) == SourceKind.CSV, col(ImportSource.ref).is_not(None),
        ).order_by(col(ImportSource.id))
    )).all()  # fmt: skip
    key = headers_key(header)
    return [id_ for id_, kept in rows
            if kept is None or headers_key(kept_header(kept)[0]) == key]  # fmt: skip




def mappable(source: ImportSource) -> bool:
    """A file read from Slack (a CSV, a workbook, a CSV in a ZIP) whose columns can be chosen:
    read, or failed on its columns; not a ZIP refused as a whole, nor a file still read."""
    if source.kind != SourceKind.CSV or not source.ref or source.removed:
        return False
    if source.file_format == FileFormat.ZIP or (
        source.file_format is None and source.label.lower().endswith(".zip")
    ):
        return False  # the ZIP itself: its CSV files have lines of their own
    if source.status == SourceStatus.PARSED:
        return True
    return source.status == SourceStatus.FAILED and source.failed_on_columns
