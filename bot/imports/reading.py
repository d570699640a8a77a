"""CSV bytes -> (line number, fields) records, streaming: encoding, delimiter and header detection.

Real exports arrive with a BOM, in UTF-16 from Excel, in cp1252 from older tools, with `;` or
tab delimiters and extra columns. This module only decodes and splits; deciding what a row
means is `rows.py`'s job.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from bot.imports.addresses import InvalidEmail, normalize_email, plain_email
from bot.imports.code_pages import EVIDENCE_BYTES, UnknownCodePage, legacy_encoding
from bot.words import quoted

SAMPLE_BYTES = 64 * 1024
READ_BLOCK = 1024 * 1024  # the encoding decision reads the whole file in blocks this big
DELIMITERS = (",", ";", "\t", "|")
MAX_HEADER_SEARCH = 10  # non-blank lines searched for the header (a title may come first)
_SEP_HINT = re.compile(r'"?sep=([^"\r\n])"?\Z', re.IGNORECASE)  # Excel's delimiter line
MAX_NAMED_COLUMNS = 30  # columns a "no email column" message lists
MAX_LINES_NAMED = 10  # lines repeating the header a note names
MAX_SLOW_ADDRESS_CELLS = 20  # cells of a header checked the slow way (holds_an_address_cell)
FIELD_LIMIT = 64 * 1024  # a runaway quoted field fails one record, not the whole file
MAX_LINE_CHARS = 1024 * 1024  # no real row is this long (see CsvReader.__init__)
# A record spanning more lines than this whose last field ends with a line break is a quote
# that never closed (csv ends it at the end of the file without a word).
MAX_RECORD_LINES = 50
RUNAWAY_LOOKAHEAD = 5_000  # lines searched for the end of a quoted field past FIELD_LIMIT

# Column names as spelled by our seed, Shopify, Mailchimp, HubSpot, Klaviyo, WooCommerce and
# spreadsheets in English, French, German, Spanish, Japanese, Chinese and Korean (and a few
# more: the languages invites are written in, Swedish, Danish, Norwegian and Russian among
# them), normalised by squash: spaces, `_`, `-` and `.` removed, case folded; accents stay, so
# both spellings are listed where people type them without ("Prenom").
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("email", "emailaddress", "mail", "emailid", "customeremail",
              "workemail", "workemailaddress", "businessemail", "primaryemail",
              "courriel", "adressecourriel", "adresseemail", "adressemail", "adresseélectronique",
              "emailadresse", "mailadresse",  # E-Mail-Adresse
              "correo", "correoelectrónico", "correoelectronico",
              "emailadres", "indirizzoemail", "endereçodeemail", "enderecodeemail",
              "billingemail",  # WooCommerce's order export
              "メールアドレス", "メール", "eメール", "電子メール", "邮箱", "电子邮件", "电子邮箱",
              "電子郵件", "電子郵箱", "이메일", "이메일주소",
              # Swedish, Danish and Norwegian (E-post, E-postadress), Russian (Эл. почта)
              "epost", "epostadress", "epostadresse", "электроннаяпочта", "элпочта"),
    "first_name": ("firstname", "fname", "givenname", "forename", "billingfirstname",
                   "prénom", "prenom", "vorname", "nombre", "voornaam", "nome",
                   "名", "名前", "名字", "이름", "förnamn", "fornamn", "fornavn", "имя"),
    "last_name": ("lastname", "lname", "surname", "familyname", "billinglastname",
                  "nom", "nomdefamille", "nachname", "familienname", "apellido", "apellidos",
                  "achternaam", "cognome", "sobrenome", "姓", "苗字", "姓氏", "성",
                  "efternamn", "efternavn", "etternavn", "фамилия"),
    "locale": ("locale", "language", "lang", "languagecode", "preferredlanguage",
               "preferredlocale", "languagepreference",
               "langue", "languepréférée", "languepreferee", "sprache", "bevorzugtesprache",
               "idioma", "idiomapreferido", "lingua", "taal", "言語", "语言", "語言", "언어",
               "språk", "sprak", "sprog", "язык"),
    # one column for the whole name (Stripe's "Name", a Shopify order's "Billing Name"): split
    # into first and last name (rows.split_full_name) when there is no column for either
    "full_name": ("name", "fullname", "customername", "contactname", "billingname",
                  "nomcomplet", "vollständigername", "nombrecompleto", "nomecompleto",
                  "氏名", "お名前", "姓名", "namn", "navn", "fulltnavn", "fuldenavn"),
    # consent to marketing email: Shopify's, Mailchimp's, HubSpot's and Klaviyo's exports, and
    # plain spellings; rows.CONSENT says which values they hold
    "subscribed": ("acceptsmarketing", "acceptsemailmarketing", "subscribed",
                   "emailsubscribed", "emailmarketingconsent", "marketingconsent",
                   "emailmarketingstatus", "marketingcontactstatus", "emailconsent",
                   "emailoptin", "optin", "optinstatus", "subscriptionstatus",
                   "emailsubscriptionstatus", "marketingemailconsent"),
}
_ALIAS_TO_FIELD = {alias: field for field, names in HEADER_ALIASES.items() for alias in names}
# The same consent the other way round: true = do not email (Salesforce's and Zoho's "Email
# Opt Out", HubSpot's "Unsubscribed from all email", "Do Not Email"). Read as well as a
# consent column: either saying no keeps the person from being emailed.
OPT_OUT_ALIASES = frozenset({
    "emailoptout", "optout", "optedout", "emailoptedout", "hasoptedoutofemail", "donotemail",
    "donotmail", "dontemail", "unsubscribed", "emailunsubscribed", "unsubscribedfromallemail",
    "unsubscribefromallemail", "unsubscribedfromemail", "globalunsubscribe", "emailbounced",
})  # fmt: skip
_SQUASH = re.compile(r"[\s_\-.]+")

_MAGIC = {
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx workbook?)",
    b"\xd0\xcf\x11\xe0": "an old Excel/Word document",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
}


NOT_TEXT = ("This file is not text (it contains binary data): import a CSV file, or an Excel "
            "workbook (.xlsx).")  # words for Slack and the shell alike: "Upload" fit only one
ABOVE_HEADER = ("Above the header row (line {header}), so not read as a contact: if it is "
                "one, move it below the header")
HEADER_QUOTE = ("The header row has a quote (\") that never closes, so it runs into the rows "
                "below it. Fix the header row and try again.")
HEADER_TOO_LONG = (f"A line at the top of the file, the header row or one above it, has a cell "
                   f"longer than {FIELD_LIMIT:,} characters, so the header can't be read. Is "
                   "this the export you meant? It needs one row of column names at the top.")


class CsvFileError(ValueError):
    """The file as a whole can't be imported; the message tells the user what to do."""


class ColumnsError(CsvFileError):
    """The file's columns don't say where the addresses are: choosing them can fix it."""


class ChosenColumnMissing(ColumnsError):
    """A column a mapping chose (`chosen`, as a message names it) for `field` (its label)
    isn't in the header: a workbook names its every sheet's columns instead (excel.py)."""

    def __init__(self, chosen: str, field: str, header: list[str]) -> None:
        self.chosen, self.field = chosen, field
        super().__init__(f"The column {chosen} chosen for {field} isn't in this file. Columns "
                         f"found: {shown_columns(header)}.")  # fmt: skip


def shown_columns(header: list[str]) -> str:
    """"'Name', 'Email'": a header's non-blank names as a message shows them, so many at most."""
    named = [quoted(h.strip()[:60]) for h in header if h.strip()]
    names = ", ".join(named[:MAX_NAMED_COLUMNS]) or "none"
    if len(named) > MAX_NAMED_COLUMNS:  # a header of a million cells is no message
        names += f" and {len(named) - MAX_NAMED_COLUMNS:,} more"
    return names


@dataclass(frozen=True, slots=True)
class Columns:
    """Where each field we know sits in a row; None when the file has no such column."""

    email: int
    first_name: int | None
    last_name: int | None
    locale: int | None
    subscribed: int | None = None  # a consent column (yes/no, subscribed, opted in...)
    full_name: int | None = None  # "Name": read only without a first and a last name column
    opt_out: int | None = None  # an opt-out column (OPT_OUT_ALIASES: true = do not email)
    # cells in the header (0: not known), so a rejected row can say it has fewer or more;
    # not compared: the same columns are the same whatever the reader knew of the width
    width: int = field(default=0, compare=False)
    # where the header these columns were read from is: (delimiter, lines above it), as
    # CsvReader found it. The parser child (parallel.py) reads a big file with its parent's
    # columns but without the mapping, whose columns may have found the header below a title
    # the search by name takes for it: the child reads its header from here.
    header_at: tuple[str, int] | None = field(default=None, compare=False)


class Malformed(str):
    """A record csv couldn't read as a row: the message saying why, and what could be read
    of it (`cells`, from where it starts, shaped as a row of the header) so the skipped-rows
    CSV shows its address and names beside the reason."""

    cells: list[str]

    def __new__(cls, message: str, cells: list[str]) -> Malformed:
        made = super().__new__(cls, message)
        made.cells = cells
        return made


def opt_out_column(header: list[str]) -> int | None:
    """The first column named as an opt-out (OPT_OUT_ALIASES), if any."""
    return next((i for i, h in enumerate(header) if squash(h) in OPT_OUT_ALIASES), None)


def squash(name: str) -> str:
    """A header as the aliases spell it; NFC first, since macOS writes "é" as e + accent."""
    return _SQUASH.sub("", unicodedata.normalize("NFC", name.strip().lstrip("\ufeff"))).casefold()


def full_name_column(header: list[str]) -> int | None:
    """The column holding whole names: a specific one ("Full Name", "Billing Name") before a
    plain "Name", which a Shopify order export gives the order's number."""
    names = [i for i, h in enumerate(header) if _ALIAS_TO_FIELD.get(squash(h)) == "full_name"]
    return next((i for i in names if squash(header[i]) != "name"), names[0] if names else None)


def map_header(header: list[str]) -> Columns:
    """Columns recognised by their names (HEADER_ALIASES); CsvFileError without an email, or
    for a row of data (holds_an_address_cell): a file without a header row, whose first row
    held a word naming a column beside the customer's address ("Anna,anna@x.se,E-post", how
    she signed up), was read by that word as its email column and that customer lost."""
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        field = _ALIAS_TO_FIELD.get(squash(name))
        if field is not None and field not in found and field != "full_name":
            found[field] = index
    if (full := full_name_column(header)) is not None:
        found["full_name"] = full
    if "email" not in found or holds_an_address_cell(header):
        names = shown_columns(header)
        hint = ""
        if any("@" in h for h in header):
            hint = " The first row looks like data: add a header row (email, first_name, ...)."
        raise ColumnsError(
            f"No email column found. Columns found: {names}. Expected a column named "
            f"email, Email or Email Address.{hint}"
        )
    return Columns(
        found["email"], found.get("first_name"), found.get("last_name"), found.get("locale"),
        found.get("subscribed"), found.get("full_name"), opt_out_column(header),
    )  # fmt: skip


def _utf8_then_cp1252(err: UnicodeError) -> tuple[str, int]:
    """A stray cp1252 byte in a UTF-8 file (mixed exports) decodes as cp1252, not as U+FFFD."""
    assert isinstance(err, UnicodeDecodeError)
    bad = err.object[err.start : err.end]
    return bad.decode("cp1252", errors="_referral_latin1"), err.end


def _latin1(err: UnicodeError) -> tuple[str, int]:
    """cp1252 leaves five bytes undefined; read them as Latin-1 rather than failing."""
    assert isinstance(err, UnicodeDecodeError)
    return err.object[err.start : err.end].decode("latin-1"), err.end


codecs.register_error("_referral_cp1252", _utf8_then_cp1252)
codecs.register_error("_referral_latin1", _latin1)


class _Evidence:
    """The lines of a file that hold non-ASCII bytes, from the first on, up to EVIDENCE_BYTES:
    fed the file's blocks in order; an ASCII block only keeps its unfinished last line."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.size = 0
        self._partial = b""

    @property
    def full(self) -> bool:
        return self.size >= EVIDENCE_BYTES

    def skip(self, block: bytes) -> None:
        """An ASCII block: only its last, unfinished line may matter to the next block."""
        if not self._partial.isascii():
            self.add(block)  # it finishes a line holding non-ASCII bytes
            return
        end = block.rfind(b"\n")
        self._partial = (self._partial + block if end < 0 else block[end + 1 :])[-EVIDENCE_BYTES:]

    def add(self, block: bytes) -> None:
        if self.full:
            return
        *lines, self._partial = (self._partial + block).split(b"\n")
        for line in lines:
            if not line.isascii() and not self.full:
                self.lines.append(line)
                self.size += len(line) + 1

    def bytes(self, *, at_end: bool = False) -> bytes:
        """The lines kept; `at_end`: the file has ended, so its unfinished last line counts."""
        tail = [self._partial] if at_end and not self._partial.isascii() else []
        return b"\n".join([*self.lines, *tail])


def _utf8_evidence(blocks: Iterable[bytes]) -> tuple[bool, bool, _Evidence]:
    """(some byte is not ASCII, some bytes are a real non-ASCII UTF-8 character, the lines
    holding non-ASCII bytes so far) in `blocks`.

    Streams one block at a time and stops at the first UTF-8 character, the only question left
    once one is found. ASCII blocks are skipped without decoding (bytes.isascii() is a C loop);
    the others are decoded dropping whatever isn't UTF-8 (in C, unlike a Python error handler),
    which leaves ASCII unless there is a real character. The incremental decoder judges a
    character split between two blocks whole.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
    evidence = _Evidence()
    non_ascii = False
    for block in blocks:
        if block.isascii() and not decoder.getstate()[0]:
            evidence.skip(block)
            continue
        non_ascii = True
        evidence.add(block)
        if not decoder.decode(block).isascii():
            return True, True, evidence
    return non_ascii, False, evidence


def _mostly_utf8(evidence: bytes) -> bool:
    """Whether UTF-8 characters outnumber the bytes that aren't UTF-8: a UTF-8 file with a
    row pasted from an older tool, not GBK or Shift-JIS whose bytes now and then happen to
    make a UTF-8 character (GBK's 伟 is UTF-8's ΰ)."""
    text = evidence.decode("utf-8", errors="surrogateescape")
    stray = sum(1 for c in text if "\udc80" <= c <= "\udcff")
    return stray <= sum(1 for c in text if not c.isascii()) - stray


_ERRORS = {"utf-8": "_referral_cp1252", "cp1252": "_referral_latin1"}


def detect_encoding(sample: bytes, rest: Iterable[bytes] = ()) -> tuple[str, str]:
    """(codec, error handler) for a file starting with `sample`; CsvFileError if not text.

    `rest` is the remainder of the file in blocks: a BOM, UTF-16 or binary data shows in the
    sample, but whether 8-bit text is UTF-8 is decided on every byte, since the first
    accented name may come a million rows in; which code page a file that isn't UTF-8 is in,
    on its first lines holding such bytes (legacy_encoding). CsvFileError when that can't be
    told.
    """
    if sample.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # before UTF-16's BOM
        raise CsvFileError(
            "This file is UTF-32 encoded; save it as UTF-8 (CSV UTF-8 in Excel) and try again."
        )
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", "_referral_cp1252"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "replace"
    for magic, what in _MAGIC.items():
        if sample.startswith(magic):
            raise CsvFileError(f"This is {what}, not a CSV file. Export or save it as CSV first.")
    if b"\x00" in sample:
        # UTF-16 without a BOM: ASCII text puts a zero in every other byte. A few zeros on the
        # other side are characters such as U+4E00 (bytes 00 4E), not binary data.
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if odd > len(sample) // 6 and even <= odd // 8:
            return "utf-16-le", "replace"
        if even > len(sample) // 6 and odd <= even // 8:
            return "utf-16-be", "replace"
        if even + odd > max(8, len(sample) // 1000):  # a stray NUL or two is dropped (_NoNul)
            raise CsvFileError(NOT_TEXT)
    non_ascii, utf8_character, evidence = _utf8_evidence(itertools.chain((sample,), rest))
    lines = evidence.bytes(at_end=True)
    if not non_ascii or (utf8_character and _mostly_utf8(lines)):
        # ASCII, UTF-8, or UTF-8 with a stray cp1252 byte (a row pasted from an older tool),
        # which the error handler decodes as cp1252.
        return "utf-8", "_referral_cp1252"
    if _looks_binary(lines.decode("latin-1")):
        raise CsvFileError(NOT_TEXT)
    try:
        encoding = legacy_encoding(lines, utf8_too=utf8_character)
    except UnknownCodePage as exc:
        raise CsvFileError(str(exc)) from None
    return encoding, _ERRORS.get(encoding, "replace")


def _looks_binary(text: str) -> bool:
    controls = sum(1 for ch in text if ch < " " and ch not in "\t\r\n\f")
    return controls > max(8, len(text) // 100)


def sniff_delimiter(sample_text: str) -> str:
    """The delimiter the header line uses most outside its quoted cells; `,` for a
    one-column file. Quoted text is a heading's words: `E-Mail;"Nachname, Vorname"` has as
    many commas as semicolons, and the comma won the tie (the file refused as having no
    email column)."""
    header = next((line for line in sample_text.splitlines() if line.strip()), "")
    header = _QUOTED_CELL.sub("", header)
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


# A quoted cell: from the line's start or a delimiter to the quote that closes it before the
# next delimiter or the line's end (`""` inside is a quote). A stray quote inside an unquoted
# cell (O"Brien) starts none.
_QUOTED_CELL = re.compile(r'(?:^|(?<=[,;\t|]))[ ]*"(?:[^"]|"")*"[ ]*(?=[,;\t|]|$)')


def is_header(fields: list[str]) -> bool:
    """Whether `fields` are a header whose email column is recognised by name."""
    try:
        map_header(fields)
    except CsvFileError:
        return False
    return True


# Whether a row holds the columns of a mapping given (`--map`) or remembered for its headers
# (mapping.ColumnMapper.fits_chosen): a header of names none of HEADER_ALIASES knows ("Work
# Mail, Given, Family") is one only by the mapping, and a title line as wide as it above it
# was taken for the header, so the mapping never found its columns.
HeaderTest = Callable[[list[str]], bool]


def header_test(fits_chosen: HeaderTest | None) -> HeaderTest:
    """How the header search tells a header: by name (is_header), or, when a mapping is given
    or remembered, also as holding its columns. Asked of the first few rows only, once a
    file: the rows below the header pay nothing."""
    if fits_chosen is None:
        return is_header
    return lambda fields: is_header(fields) or fits_chosen(fields)


def chosen_header_test(columns_of: ColumnsOf) -> HeaderTest | None:
    """The header test of a mapping (`columns_of` a mapping.ColumnMapper: its `fits_chosen`,
    None when it has no mapping given or remembered); None for columns told by name alone.
    Asked by attribute: mapping.py builds on this module, not the other way round. A reader
    given its `fits_chosen` explicitly (CsvReader) asks this only when it isn't."""
    test = getattr(columns_of, "fits_chosen", None)
    return test if callable(test) else None


def _blank(fields: list[str]) -> bool:
    return not any(f.strip() for f in fields)


def holds_an_address(fields: list[str]) -> bool:
    """A row mentioning an address: one above the header is counted (row_above_header)."""
    return any("@" in field for field in fields)


def holds_an_address_cell(fields: list[str]) -> bool:
    """Whether a cell of `fields` is a valid address ("ada@x.com", "Ada <ada@x.com>"): a row
    of data, never a header, whatever its other cells name. Stricter than is_data_row, so
    an @ in a column's name ("Backup(name@domain)", "mail@work") leaves a header a header.
    Asked of the header and the rows searched for it, once a file: no row below pays. The
    slow check (email-validator, ~15 us a cell refused) only of the first few cells the fast
    one refuses: a line naming an email column beside 100,000 cells "x@y" took 1.5 s of CPU
    more; a row of data has its one or two addresses among the first few."""
    slow = MAX_SLOW_ADDRESS_CELLS
    for cell in fields:
        if "@" not in cell:
            continue
        cell = cell.strip()
        if plain_email(cell) is not None:
            return True
        if slow:
            slow -= 1
            try:
                normalize_email(cell)
            except InvalidEmail:
                continue
            return True
    return False


def is_data_row(fields: list[str]) -> bool:
    """A row of data, not a title or a header: a cell that is an address, not one that
    mentions one among words ("Exported by jane@shop.com"). The header search stops at the
    first: a second title line naming its sender stopped it above the header, and the file
    offered only its title as columns. "Ada <ada@x.com>" is an address cell too."""
    return any("@" in field and (not any(c.isspace() for c in field.strip())
                                 or _ANGLED.search(field) is not None)
               for field in fields)  # fmt: skip


_ANGLED = re.compile(r"<[^<>\s@]+@[^<>\s@]+>\s*\Z")


def header_above_data(rows: list[list[str]]) -> int:
    """Which of `rows` (the non-blank rows searched, the last the first row of data) is the
    header when none has an email column recognised by name: the row just above the data
    when every row above it holds fewer fields (a report's title and date), else the first.

    A title above a header of unrecognised names ("Work Contact") was taken for the header,
    so *Map columns* offered the title as the one column and the file could never import."""
    if len(rows) < 3:
        return 0
    width = sum(1 for f in rows[-2] if f.strip())
    titles = rows[:-2]
    return len(rows) - 2 if all(sum(1 for f in t if f.strip()) < width for t in titles) else 0


def header_past_labels(rows: list[list[str]], is_header_row: HeaderTest = is_header
                       ) -> int | None:  # fmt: skip
    """Which of `rows` (non-blank rows from the first one holding an address down) is a
    header recognised by name (or `is_header_row`, see header_test), when the rows above it
    are a report's label lines beside an address ("Exported by | ops@shop.com", as a
    spreadsheet writes it: an address cell of its own, so it read as data and stopped the
    search above the header). None when no row holds no address and is such a header, or a
    row above it is wider (a headerless file's data)."""
    for index, fields in enumerate(rows[1:], 1):
        if is_header_row(fields) and not holds_an_address(fields):
            width = _filled(fields)
            return index if all(_filled(row) <= width for row in rows[:index]) else None
    return None


def _filled(fields: list[str]) -> int:
    return sum(1 for f in fields if f.strip())


def find_header(sample_text: str, fits_chosen: HeaderTest | None = None) -> tuple[str, int]:
    """(delimiter, lines above the header) for a file starting with `sample_text`.

    Usually the header is the first line. Excel may write a `sep=;` line above it (the
    delimiter to use), and a report a title and a blank line ("Customer export 2024-05-01"):
    the header is the first of the first MAX_HEADER_SEARCH non-blank lines in which an email
    column is recognised (or that holds the columns of a mapping given or remembered:
    `fits_chosen`, see header_test), each read with the delimiter it uses most, stopping at
    the first row holding an address; when none is, the line above that row below a title
    (header_above_data), else the first line, as before (a chosen mapping, or the "no email
    column" message, then goes by it).
    """
    is_header_row = header_test(fits_chosen)
    lines = io.StringIO(sample_text, newline="").readlines()
    hint = _SEP_HINT.match(lines[0].lstrip("\ufeff").strip()) if lines else None
    start = 1 if hint else 0
    searched: list[tuple[int, str, list[str]]] = []  # (line index, delimiter, fields)
    for index, delimiter, fields in _nonblank_rows(lines, start, hint):
        if searched and is_data_row(fields):
            # a row of data: past any title (a row whose Channel says "email" is no header)
            if below := _header_below(lines, index, hint, MAX_HEADER_SEARCH - len(searched),
                                      is_header_row):  # fmt: skip
                return below
            above = header_above_data([found for *_, found in searched] + [fields])
            if above:
                return searched[above][1], searched[above][0]
            break
        if is_header_row(fields):
            return delimiter, index
        searched.append((index, delimiter, fields))
        if len(searched) >= MAX_HEADER_SEARCH:
            break
    return (hint[1] if hint else sniff_delimiter("".join(lines[start:]))), start


def _nonblank_rows(lines: list[str], start: int, hint: re.Match[str] | None
                   ) -> Iterator[tuple[int, str, list[str]]]:  # fmt: skip
    """(line index, delimiter, fields) of each non-blank line from `lines[start]`, each read
    with the delimiter it uses most (or the `sep=` hint's); up to the first malformed one.

    csv reads each line's record from the lines handed out one by one from it (a quoted field
    may span lines): a copy of the lines below every blank one (`lines[index:]`) cost the
    square of their number, 3 s for the 64 KB sample's 65,536 empty lines."""
    for index in range(start, len(lines)):
        delimiter = hint[1] if hint else sniff_delimiter(lines[index])
        below = map(lines.__getitem__, range(index, len(lines)))
        try:
            fields = next(csv.reader(below, delimiter=delimiter, strict=False), [])
        except csv.Error:
            return
        if not _blank(fields):
            yield index, delimiter, fields


def _header_below(lines: list[str], start: int, hint: re.Match[str] | None, rows: int,
                  is_header_row: HeaderTest) -> tuple[str, int] | None:  # fmt: skip
    """(delimiter, line index) of a header under label lines from `lines[start]` on, within
    `rows` non-blank lines (header_past_labels)."""
    found = list(itertools.islice(_nonblank_rows(lines, start, hint), rows))
    below = header_past_labels([fields for *_, fields in found], is_header_row)
    return None if below is None else (found[below][1], found[below][0])


class _CleanDecoder(codecs.IncrementalDecoder):
    """`encoding`'s incremental decoder, its text without U+FEFF, and in UTF-16 without U+0000
    (where a zero byte is half of many characters, so NUL goes from the text: see _NoNul).

    A byte order mark starts the first row of a second export saved with one and joined
    below the first (`cat`): it stayed in that row's first cell, so "\ufeffb@x.com" was
    rejected as an invalid address and "\ufeffBob" stored as a name. One C-speed test per
    block decoded, a replace only in a block holding one: a file without pays nothing."""

    def __init__(self, encoding: str, errors: str = "strict") -> None:
        super().__init__(errors)
        self._decoder = codecs.getincrementaldecoder(encoding)(errors)
        self._nul = encoding.startswith("utf-16")

    def decode(self, input: bytes, final: bool = False) -> str:
        text = self._decoder.decode(input, final)
        if "\ufeff" in text:
            text = text.replace("\ufeff", "")
        if self._nul and "\0" in text:
            text = text.replace("\0", "")
        return text

    def reset(self) -> None:
        self._decoder.reset()

    def getstate(self) -> tuple[bytes, int]:
        return self._decoder.getstate()

    def setstate(self, state: tuple[bytes, int]) -> None:
        self._decoder.setstate(state)


# A codec: the encoding named after it, cleaned (_CleanDecoder). As the search function
# sees it: codecs.lookup passes names lowercased, `-` and leading `_` as `_` or gone.
_CLEAN = "referral_clean_"


def _clean_codec(name: str) -> codecs.CodecInfo | None:
    """The codec `_CLEAN + encoding` ("referral_clean_utf_8"), which TextIOWrapper takes by
    name only."""
    if not name.startswith(_CLEAN):
        return None
    info = codecs.lookup(name[len(_CLEAN) :])  # its name as the reader spells it: "utf-16"
    return codecs.CodecInfo(
        info.encode, info.decode, incrementalencoder=info.incrementalencoder,
        incrementaldecoder=functools.partial(_CleanDecoder, info.name), name=name,
    )  # fmt: skip


codecs.register(_clean_codec)


def _text_of(raw: BinaryIO, encoding: str, errors: str) -> io.TextIOWrapper:
    """`raw` read as text in `encoding`, without NUL or U+FEFF (_NoNul, _CleanDecoder)."""
    text_bytes = raw if encoding.startswith("utf-16") else _NoNul(raw)
    return io.TextIOWrapper(text_bytes, encoding=_CLEAN + encoding, errors=errors, newline="")


class _NoNul(io.BufferedIOBase):
    """The file's bytes without its NUL bytes, read through as they are asked for.

    A NUL is no character anyone typed (a damaged export, a field padded by an old tool), and
    PostgreSQL refuses it in text: staging a name holding one failed the whole import there.
    Only for encodings where a zero byte is only ever NUL (not UTF-16). A C-speed replace per
    block read; never an empty block before the end, which would read as the end."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._clean(self._raw.read, size)

    def read1(self, size: int = -1) -> bytes:
        read1 = getattr(self._raw, "read1", None)
        return self._clean(read1 or self._raw.read, size)

    @staticmethod
    def _clean(read: Callable[[int], bytes], size: int | None) -> bytes:
        while data := read(-1 if size is None else size):
            if cleaned := data.replace(b"\0", b""):
                return cleaned
        return b""


class _View(io.BufferedIOBase):
    """The bytes of a seekable stream from `position` on, read without moving it: each read
    seeks there and back. For _Rereader, which reads a file a second time alongside the
    reader, on the rare records that need it."""

    def __init__(self, stream: BinaryIO, position: int) -> None:
        super().__init__()
        self._stream = stream
        self._position = position

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        stream = self._stream
        back = stream.tell()
        try:
            stream.seek(self._position)
            data = stream.read(-1 if size is None else size)
        finally:
            stream.seek(back)
        self._position += len(data)
        return data

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)


def _ends_line(piece: str) -> bool:
    return piece.endswith(("\n", "\r"))


class _Rereader:
    """The file's physical lines read again, forward only, from a second view of its stream.

    csv keeps a record's text to itself, and gives none when it gives up on a record (a
    field over FIELD_LIMIT): its line is read again here, for its address and names and to
    tell a line over MAX_LINE_CHARS (read in pieces) from one that isn't. Made on the first
    such record only, so a well-formed file never reads anything twice."""

    def __init__(self, stream: BinaryIO, start: int, encoding: str, errors: str) -> None:
        # a stream that can open itself again (a ZIP entry, see archives.SizeCapped.reopen)
        # is read so; another, through a view of it that seeks there and back
        reopen = getattr(stream, "reopen", None)
        self._own: BinaryIO | None = reopen() if reopen is not None else None
        view: BinaryIO = self._own if self._own is not None else _View(stream, start)
        if self._own is not None:
            self._own.seek(start)
        self._text = _text_of(view, encoding, errors)
        self._text._CHUNK_SIZE = READ_BLOCK  # few seeks there and back
        self._pieces = iter(functools.partial(self._text.readline, MAX_LINE_CHARS), "")
        self._line = 0  # physical lines read whole

    def line(self, number: int) -> tuple[str, int]:
        """(the first MAX_LINE_CHARS characters of line `number`, the pieces it is read in);
        ("", 0) past the end, or for a line read already."""
        while self._line < number - 1:
            if not self._skip_line():
                return "", 0
        first = next(self._pieces, "") if self._line == number - 1 else ""
        if not first:
            return "", 0
        if _ends_line(first):
            self._line += 1
            return first, 1
        rest = self._skip_line()
        self._line += not rest  # the file's last line, without a line break
        return first, 1 + rest

    def _skip_line(self) -> int:
        """Read the rest of a line: the pieces read, 0 at the end of the file."""
        count = 0
        for piece in self._pieces:
            count += 1
            if _ends_line(piece):
                break
        self._line += count > 0
        return count

    def close(self) -> None:
        self._text.detach()
        if self._own is not None:
            self._own.close()


NARROW = 3  # columns: a file this narrow counts a swallowed line only when it is whole


def _row_shaped(line: str, delimiter: str, width: int, email: int) -> bool:
    """Whether `line` reads as a row of a file `width` columns wide: its fields (the last
    may be cut off), and a valid address in the email column."""
    if "@" not in line:
        return False
    # read as csv reads a row: Shopify quotes a Tags cell holding commas ("vip, retail"), and
    # a swallowed line is cut where a quote in it closed the runaway field: all its fields but
    # the last, and an address in the email column
    fields = next(csv.reader([line], delimiter=delimiter, strict=False), [])
    # ... all but the last field, in a file wide enough that a line of a note doesn't have
    # that many by chance: in one of two or three columns, a note line "bea@acme.com, mornings
    # only" did, and a well-formed note was rejected as a quote that never closed
    need = width if width <= NARROW else width - 1
    return len(fields) >= need and _address_in(fields, email)


def _address_in(fields: list[str], email: int) -> bool:
    """Whether the email column of `fields` holds a valid address."""
    if len(fields) <= email:
        return False
    try:
        normalize_email(fields[email].strip())
    except InvalidEmail:
        return False
    return True


def row_above_header(line: int, fields: list[str], columns: Columns, header_line: int,
                     header: list[str]) -> tuple[int, list[str] | str]:  # fmt: skip
    """A record above the header holding an address, as the import counts it: a row of data
    when its email column holds a valid address (a headerless file's first row), else
    rejected saying where it stands (a title: "Export, sent by ops@example.com").

    Above a header recognised by name it is a report's label line whatever column its
    address falls in: "Exported by | ops@shop.com" over "Language | Email | ..." was imported,
    the shop's own address a customer to invite."""
    if not is_header(header) and _address_in(fields, columns.email):
        return line, fields
    return line, ABOVE_HEADER.format(header=header_line)


def header_is_data(header: list[str], columns: Columns) -> bool:
    """The row taken for the header is a row of data: its email column holds an address. A
    file without a header, mapped with *Map columns*, offers its first row's values as the
    column names; that row was then counted nowhere, not even as skipped."""
    return _address_in(header, columns.email)


def _lines_note(lines: list[int], one: str, many: str) -> str:
    """`one` or `many` (as many lines as there are) with the lines named in its `{}`: the
    first MAX_LINES_NAMED, then how many more; "" for no line."""
    shown = ", ".join(str(n) for n in lines[:MAX_LINES_NAMED])
    if len(lines) > MAX_LINES_NAMED:
        shown += f" and {len(lines) - MAX_LINES_NAMED:,} more"
    return "" if not lines else (one if len(lines) == 1 else many).format(shown)


def _names(cells: list[str]) -> list[str]:
    """The names of a header's cells as map_header reads them, in order; blank ones left out."""
    return sorted(squash(cell) for cell in cells if cell.strip())


def column_order(header: list[str], again: list[str]) -> list[int | None]:
    """For each column of `header`, where `again` (the same names in another order) has it:
    a row under `again` reads as a row under `header` as [row[i] for i in the result]. Two
    columns of one name keep their order; blank names pair off in order too.

    Each name's places are kept last first and taken from the end: taken from the front
    (`pop(0)`), a header of many blank cells, repeated (a line of commas is 1 MB at most),
    cost the square of their number (160,000 took 2.6 s)."""
    places: dict[str, list[int]] = {}
    for index in range(len(again) - 1, -1, -1):
        places.setdefault(squash(again[index]), []).append(index)
    return [places[name].pop() if places.get(name) else None
            for name in (squash(cell) for cell in header)]  # fmt: skip


class _Reordered:
    """A csv reader's rows put in the first header's column order, after a line repeating
    the header in another order (`cat` of two exports): each row is read by its own header.
    `raw`: the last row as the file has it."""

    def __init__(self, reader: Any, order: list[int | None], width: int) -> None:
        self._reader = reader
        self._order = order
        self._width = width  # the repeated header's cells: any past them are extra ones
        self.raw: list[str] = []

    @property
    def line_num(self) -> int:
        return int(self._reader.line_num)

    def __iter__(self) -> _Reordered:
        return self

    def __next__(self) -> list[str]:
        raw = self.raw = next(self._reader)
        return in_column_order(raw, self._order, self._width)


def in_column_order(cells: list[str], order: list[int | None], width: int) -> list[str]:
    """`cells` of a row below a header repeated in another order, in the first header's order
    (column_order), then any past the repeated header's `width`."""
    n = len(cells)
    return [cells[i] if i is not None and i < n else "" for i in order] + cells[width:]


class HeaderRepeats:
    """Lines (a CSV's) or rows (a sheet's) below the header that repeat it, in any order, or
    start another export's header: two exports joined into one file with `cat`, or pasted
    one below the other in a sheet. Neither is a row; the rows below each are read by it,
    put in the first header's column order (`order`, see in_column_order)."""

    def __init__(self, header: list[str], email: int, *, repeatable: bool = True) -> None:
        """`repeatable`: False when the header is a row of data (header_is_data): there is
        no header to repeat."""
        self.header, self.email, self.repeatable = header, email, repeatable
        self._names = _names(header)  # what a line repeating it holds
        self._name_set = frozenset(self._names)
        self._not_names: set[str] = set()  # cells squashed to no header name (_names_a_column)
        self.repeated: list[int] = []  # lines repeating the header
        self.restarted: list[int] = []  # lines of another header (_another_header)
        # the rows' order after a header repeated in another order, else None
        self.order: tuple[list[int | None], int] | None = None

    def found(self, line: int, fields: list[str], raw: list[str]) -> bool:
        """Whether `line` repeats the header or starts another (its cells `raw` as the file
        has them, `fields` in the first header's order): its order is then the rows' below
        it (`order`), and the line is named in `note`. Ask only of rows without an address
        in the email column, which a header line has (it holds the column's name there): a
        row of data then costs one `"@" in` test, no more. IndexError: `fields` doesn't
        reach the email column."""
        if not self.repeatable:
            return False
        # one cell first: a repeated header holds one of the header's names there, a row
        # without an address (blank, "n/a", a name) rarely; every cell only then. Below a
        # header of other columns the email column's place may be past the line's cells.
        if not self._names_a_column(fields[self.email]) and not (
                raw is not fields and any(self._names_a_column(cell) for cell in raw)):
            return False
        if _names(raw) == self._names:
            self.repeated.append(line)
        elif self._another_header(raw):
            self.restarted.append(line)
        else:
            return False
        order = column_order(self.header, raw)
        in_place = order == list(range(len(self.header))) and len(raw) == len(self.header)
        self.order = None if in_place else (order, len(raw))
        return True

    def in_order(self, cells: list[str]) -> list[str]:
        """`cells` as the file has them, in the first header's column order."""
        return cells if self.order is None else in_column_order(cells, *self.order)

    def _names_a_column(self, cell: str) -> bool:
        """Whether `cell` is one of the header's names (`found`'s first test)."""
        if not cell.strip() or cell in self._not_names:
            return False
        if squash(cell) not in self._name_set:
            if len(self._not_names) < 1024:  # "n/a", "none", "-": a few values, many rows
                self._not_names.add(cell)
            return False
        return True

    def _another_header(self, raw: list[str]) -> bool:
        """Whether `raw`, not the header's names, is another export's header: it names the
        email column and another of the header's columns, and holds no address (a row that
        only starts with names is still a row)."""
        names = {squash(cell) for cell in raw if cell.strip()}
        return (squash(self.header[self.email]) in names and len(names & self._name_set) >= 2
                and not any("@" in cell for cell in raw))

    def note(self, unit: str, how: str) -> str | None:
        """What the review must say of the lines found, which are not rows, and by which the
        rows below them are read: `unit` is what the reader counts ("Line", a sheet's
        "Row"), `how` the guess at how it came about ("(files joined into one?)")."""
        units = unit + "s"
        notes = [_lines_note(self.repeated, f"{unit} {{}} repeats the header {how}: not "
                             "counted as a row; the rows below it are read in its column order.",
                             f"{units} {{}} repeat the header {how}: not counted as rows; the "
                             "rows below each are read in its column order."),
                 _lines_note(self.restarted, f"{unit} {{}} starts another export's header "
                             f"{how}: not counted as a row; the rows below it are read by its "
                             "column names, and columns the first header hasn't are left out.",
                             f"{units} {{}} start another export's header {how}: not counted "
                             "as rows; the rows below each are read by its column names, and "
                             "columns the first header hasn't are left out.")]  # fmt: skip
        return " ".join(note for note in notes if note) or None


# Header -> columns: map_header's guess, or a mapping someone chose (bot.imports.mapping).
# Called once per file, so a chosen mapping costs the CSV hot path nothing.
ColumnsOf = Callable[[list[str]], Columns]


class CsvReader:
    """Streams records from a seekable binary file; never holds more than a buffer of it.

    `columns_of` tells the columns from the header (default: recognise them by name); it
    raises CsvFileError when it can't, and the reader is not opened. `fits_chosen`: whether
    a mapping given or remembered fits a row, so the header search takes such a row for the
    header (see header_test); None: `columns_of`'s own (chosen_header_test), for a
    mapping.ColumnMapper. *Map columns* reads with lenient columns and the mapper's test.
    """

    def __init__(self, stream: BinaryIO, *, columns_of: ColumnsOf = map_header,
                 fits_chosen: HeaderTest | None = None) -> None:  # fmt: skip
        self._raw = stream
        start = stream.tell()
        sample = stream.read(SAMPLE_BYTES)
        try:
            if not sample.strip():
                raise CsvFileError("The file is empty.")
            self.encoding, errors = detect_encoding(
                sample, iter(functools.partial(stream.read, READ_BLOCK), b"")
            )
        finally:
            stream.seek(start)
        sample_text = sample.decode(self.encoding, errors="ignore")
        self._quoted_sample = '"' in sample_text  # what a header past the field limit tells
        if _looks_binary(sample_text):
            raise CsvFileError(NOT_TEXT)
        if fits_chosen is None:
            fits_chosen = chosen_header_test(columns_of)
        self.delimiter, above = find_header(sample_text, fits_chosen)
        self._start, self._errors = start, errors
        self._text: io.TextIOWrapper | None = None
        self._again: _Rereader | None = None  # made for the first record csv gives up on
        skipped = self._seat(above)
        limit = csv.field_size_limit(FIELD_LIMIT)
        try:
            self._read_header()
            columns = columns_of(self.header)
            if columns.header_at not in (None, (self.delimiter, above)):
                # the parser child, with its parent's columns (see Columns.header_at)
                self.delimiter, above = columns.header_at
                skipped = self._seat(above)
                self._read_header()
            self.columns = replace(columns, width=columns.width or len(self.header),
                                   header_at=(self.delimiter, above))  # fmt: skip
            self._before = self._rows_above(skipped)
            data = header_is_data(self.header, self.columns)  # no header to repeat then
            # lines repeating the header, or another's; the rows' order after them (_Reordered)
            self._repeats = HeaderRepeats(self.header, self.columns.email, repeatable=not data)
            if data:
                self._before.append((self._header_line, list(self.header)))
        except csv.Error as exc:
            self.close()
            # a cell past the field limit is no quote's doing (a 70 KB title line was said to
            # be a header quote that never closes, in a file without a quote)
            long = "field limit" in str(exc) and not self._quoted_sample
            raise CsvFileError(HEADER_TOO_LONG if long else HEADER_QUOTE) from None
        except BaseException:
            self.close()
            raise
        finally:
            csv.field_size_limit(limit)

    def _seat(self, above: int) -> list[str]:
        """Read the file's text from its start, past the `above` lines above the header (a
        title, `sep=;`), which it returns; the csv reader then starts at the header."""
        if self._text is not None:  # seated before (see Columns.header_at): start again
            self._text.detach()
            self._raw.seek(self._start)
        self._text = _text_of(self._raw, self.encoding, self._errors)
        # Lines of at most MAX_LINE_CHARS: iterating the text builds each line whole before csv
        # sees it, so one 250 MB line (a ZIP entry may hold one) took 1.25 GB. A longer line
        # reaches csv in pieces, each a malformed or rejected row; later line numbers then
        # count its pieces. readline from a C callable iterator: no slower than iteration.
        # Then one empty line past the end (_end_of_lines).
        self._ended = False
        self._lines: Iterator[str] = itertools.chain(
            iter(functools.partial(self._text.readline, MAX_LINE_CHARS), ""),
            self._end_of_lines(),
        )
        skipped = list(itertools.islice(self._lines, above))
        self._above = len(skipped)
        self._reader = csv.reader(self._lines, delimiter=self.delimiter, strict=False)
        return skipped

    def _read_header(self) -> None:
        """The first non-blank record from where the reader is seated (_seat): the header."""
        self.header: list[str] = []
        self._header_line = 0
        for fields in self._reader:
            if any(f.strip() for f in fields):
                self.header = fields
                self._header_line = self._above + self._reader.line_num
                break
        if not self.header:
            raise CsvFileError("The file has no header row and no data.")
        if any("\n" in f and "@" in f and self.delimiter in f for f in self.header):
            # a quote opened in the header and closed rows later: it swallowed those rows
            # (a header cell with a line break in it, as Excel allows, is fine)
            raise CsvFileError(HEADER_QUOTE)

    def close(self) -> None:
        """Let go of the stream without closing it (the caller owns it)."""
        if self._text is not None:
            self._text.detach()
            self._text = None
        if getattr(self, "_again", None) is not None:
            self._again.close()
            self._again = None

    def __enter__(self) -> CsvReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows_above(self, lines: list[str]) -> list[tuple[int, list[str] | str]]:
        """The records among `lines` (those above the header) that hold an address: each
        must show in the counts. A title and a date are no data, but a headerless file's
        first row was dropped unseen when the header was chosen below it (a row of more
        fields and no address: header_above_data). See row_above_header."""
        found: list[tuple[int, list[str] | str]] = []
        reader = self._new_reader(iter(lines))
        line = 1
        for fields in reader:
            if holds_an_address(fields):
                found.append(row_above_header(line, fields, self.columns, self._header_line,
                                              self.header))  # fmt: skip
            line = reader.line_num + 1
        return found

    def _end_of_lines(self) -> Iterator[str]:
        """One empty line past the file's last, then the end, marked (`_ended`) when read
        past: a blank line to a record it starts, no text to a quoted field still open.

        csv ends a record whose quote never closes at the end of the file without a word, so
        a quote left open on the last line imported the row ("Bob,B" a first name). Through
        this line such a record spans lines, checked as such (_unclosed) at no cost to the
        others, and csv reads past it only when the record ran to the end in quotes."""
        yield ""
        self._ended = True

    def _unclosed(self, fields: list[str], lines: int) -> bool:
        """Whether a record spanning `lines` lines is a quote that never closed: it swallowed
        rows, ran long to the end of the file, or ran to its end at all (_end_of_lines). A
        long note that closes is a note."""
        if self._ended:
            return True
        if lines > MAX_RECORD_LINES and fields and fields[-1].endswith(("\n", "\r")):
            return True
        return self._swallowed_rows(fields)

    def _email_at(self) -> int:
        """Where the file's lines have their address now (a repeated header may move it)."""
        email = self.columns.email
        order = self._repeats.order
        moved = order[0][email] if order is not None else email
        return email if moved is None else moved

    def _row_shaped(self, line: str) -> bool:
        return _row_shaped(line, self.delimiter, len(self.header), self._email_at())

    def _swallowed_rows(self, fields: list[str]) -> bool:
        """A quote that never closed joined rows into one: a line inside a field spanning
        lines reads as a whole row of this file. A note that mentions an address on a line
        of its own ("Billing: accounts@acme.com, ext 204"), or runs long, is no such line."""
        width, email, delimiter = len(self.header), self._email_at(), self.delimiter
        return any(
            _row_shaped(line, delimiter, width, email)
            for field in fields
            if "\n" in field
            for line in field.splitlines()[1:]
        )

    def _past_runaway_field(self, read: int, *, maybe: bool = False) -> tuple[Any, int, int]:
        """After a quoted field outgrew FIELD_LIMIT: (a reader to go on with, the lines read
        before it, the last line of the malformed record).

        csv goes on at the next line as if the field had ended, so the rest of a long quoted
        note became rows (an address in it imported). If its closing quote comes within
        RUNAWAY_LOOKAHEAD lines (the first line holding an odd number of quotes), those lines
        are the record's too; if not, the quote never closes and the lines read ahead are
        rows after all: they go to the next reader first.

        `maybe`: the field outgrew the limit on the record's first line, whose text csv keeps
        to itself, so its quote may have closed there (one 70 KB cell). The lines up to the
        next odd quote are then the note's only if none of them reads as a row of this file;
        otherwise the field had ended and they are rows."""
        ahead: list[str] = []
        size = 0
        for piece in self._lines:
            ahead.append(piece)
            if not piece:  # the empty line past the end: only csv reads past it (_end_of_lines)
                break
            size += len(piece)
            if maybe and not piece.endswith(("\n", "\r")) and len(piece) >= MAX_LINE_CHARS:
                break  # a piece of a line too long to read whole: no note's line
            if piece.count('"') % 2:
                if maybe and any(self._row_shaped(line) for line in ahead):
                    break
                return self._new_reader(self._lines), read + len(ahead), read + len(ahead)
            if len(ahead) >= RUNAWAY_LOOKAHEAD or size > MAX_LINE_CHARS * 4:
                break
        # the lines read ahead go first, to this reader and to any later look-ahead (through an
        # iterator of them: a chain holding the list itself kept every line read for good)
        self._lines = itertools.chain(iter(ahead), self._lines)
        return self._new_reader(self._lines), read, read

    def _new_reader(self, lines: Iterator[str]) -> Any:
        return csv.reader(lines, delimiter=self.delimiter, strict=False)

    def bytes_read(self) -> int:
        return self._raw.tell()

    def records(self) -> Iterator[tuple[int, list[str] | str]]:
        """(first line, fields) per non-blank record; (line, message) for a malformed one.

        A line repeating the header is no record: the rows after it are read by it
        (_header_again)."""
        yield from self._before  # rows above the header holding an address (_rows_above)
        reader = self._reader
        base = self._above  # lines read before this reader (see _past_runaway_field)
        previous = self._header_line
        email = self.columns.email  # where rows have their address (_Reordered keeps it)
        limit = csv.field_size_limit()
        csv.field_size_limit(FIELD_LIMIT)
        try:
            while True:
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    line = previous + 1
                    previous = base + reader.line_num
                    text, pieces = self._line_again(line)  # csv keeps the record's text
                    cells = self._cells_of(text)
                    if 1 < pieces >= previous - line + 1:  # read in pieces: none is a row
                        reader = self._past_long_line(pieces - (previous - line + 1))
                        base = previous = line
                        yield line, Malformed(f"Malformed CSV (line {line}): longer than "
                                              f"{MAX_LINE_CHARS:,} characters", cells)  # fmt: skip
                        continue
                    if previous > line:  # a quoted field spanning lines: it goes on
                        reader, base, previous = self._past_runaway_field(previous)
                        reader = self._reordered(reader)
                    elif "field limit" in str(exc):  # past the limit on its first line
                        reader, base, previous = self._past_runaway_field(previous, maybe=True)
                        reader = self._reordered(reader)
                    yield line, Malformed(f"Malformed CSV (lines {line}-{previous}): {exc}",
                                          cells)  # fmt: skip
                    continue
                line = previous + 1
                previous = base + reader.line_num
                if previous > line and self._unclosed(fields, previous - line + 1):
                    raw = reader.raw if isinstance(reader, _Reordered) else fields
                    previous -= self._ended  # the empty line past the end is none of the file's
                    yield line, self._joined(raw, line, previous)
                # blank or not as the file has it: put in the first header's order, a row
                # whose cells are all in columns that header hasn't looked blank, and was lost
                elif (fields and (fields[0].strip() or any(f.strip() for f in fields))) or (
                        isinstance(reader, _Reordered) and any(f.strip() for f in reader.raw)):
                    try:  # a header again? Only a row without an address can be one
                        if "@" not in fields[email] and self._header_again(line, reader, fields):
                            reader = self._reordered(reader)
                            continue
                    except IndexError:  # a row too short to reach the email column
                        pass
                    yield line, fields
        finally:
            csv.field_size_limit(limit)

    def _line_again(self, number: int) -> tuple[str, int]:
        """Line `number` read again (see _Rereader)."""
        if self._again is None:
            self._again = _Rereader(self._raw, self._start, self.encoding, self._errors)
        return self._again.line(number)

    def _cells_of(self, text: str) -> list[str]:
        """The cells of one line read on its own; a quote that doesn't close on it ends with
        it. A cell over FIELD_LIMIT is the fault, not a value: left empty."""
        if not text:
            return []
        limit = csv.field_size_limit(MAX_LINE_CHARS + 1)
        try:
            cells = next(self._new_reader(iter([text])), [])
        except csv.Error:
            return []
        finally:
            csv.field_size_limit(limit)
        return self._in_order([cell if len(cell) <= FIELD_LIMIT else "" for cell in cells])

    def _in_order(self, cells: list[str]) -> list[str]:
        """A line's `cells` as the file has them, in the first header's column order (as
        _Reordered puts the rows below a header repeated in another order): a malformed row
        there was listed in the skipped-rows CSV with its address under Last name."""
        return self._repeats.in_order(cells)

    def _past_long_line(self, left: int) -> Any:
        """A reader past a line over MAX_LINE_CHARS, whose pieces csv read but `left`: one
        record, not one per piece, and the lines after it keep their numbers."""
        for _ in range(left):
            next(self._lines, None)
        return self._reordered(self._new_reader(self._lines))

    def _joined(self, fields: list[str], line: int, last: int) -> Malformed:
        """A record a quote that never closes ran on from `line` to `last` (or to the end of
        the file: `_ended`), with what can be read of its first line: the cells before the
        one the quote opened, and that one's first line split as cells (the quote was a stray
        one in the text). `fields`: as the file has them; the cells are put in the first
        header's order (_in_order)."""
        # at the end of the file the last cell is the one opened, line break or not
        unopened = len(fields) - 1 if self._ended else len(fields)
        opened = next((i for i, f in enumerate(fields) if "\n" in f or "\r" in f), unopened)
        # "" when the file ends on the opening quote itself ("".splitlines() is [])
        lines = fields[opened].splitlines() if 0 <= opened < len(fields) else []
        first_line = lines[0] if lines else ""
        rest = next(self._new_reader(iter([first_line])), []) if first_line else []
        what = ("runs to the end of the file" if self._ended and last == line
                else f"joined {last - line + 1} lines into one row")  # fmt: skip
        message = f"Malformed CSV (lines {line}-{last}): a quote that never closes {what}"
        return Malformed(message, self._in_order([*fields[:opened], *rest]))

    def _header_again(self, line: int, reader: Any, fields: list[str]) -> bool:
        """Whether the line repeats the header or starts another export's (HeaderRepeats):
        then it is no row, and the rows after it are read by it (_reordered)."""
        raw = reader.raw if isinstance(reader, _Reordered) else fields
        return self._repeats.found(line, fields, raw)

    def _reordered(self, reader: Any) -> Any:
        """`reader` reading rows in the column order of the last header (see _Reordered)."""
        if isinstance(reader, _Reordered):
            reader = reader._reader
        order = self._repeats.order
        return reader if order is None else _Reordered(reader, *order)

    def late_note(self) -> str | None:
        """What reading the rows found that the review must say: lines repeating the header,
        or starting another export's (two exports joined with `cat`)."""
        return self._repeats.note("Line", "(files joined into one?)")
