"""What each record means: valid, duplicate or rejected with a reason, ready to stage.

This is the hot loop of an import (a million rows in about a second), so it works on tuples
and local names rather than objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from bot.imports.addresses import InvalidEmail, email_key, normalize_email, plain_email
from bot.imports.locales import normalize_locale
from bot.imports.reading import Columns, Malformed
from bot.words import quoted

MAX_NAME = 200
# reasons a row is skipped for its address (batches.skipped_by_status counts them by these)
MISSING_EMAIL = "Missing email"
INVALID_EMAIL = "Invalid email"
MAX_EMAIL = 320

# (line, email, email_key, first_name, last_name, locale, outcome, reason, subscribed)
Staged = tuple[int, str, str, str, str, str | None, str, str | None, bool | None]

# Consent values as exports write them, in words: yes/no and true/false, Mailchimp's and
# Klaviyo's statuses (SUBSCRIBED, NEVER_SUBSCRIBED, cleaned), Shopify's marketing states
# (NOT_SUBSCRIBED, PENDING, INVALID), HubSpot's marketing contact status, opt-in spellings.
# Only a clear yes subscribes: pending (not confirmed yet) is not a yes.
_CONSENT_WORDS: dict[bool, tuple[str, ...]] = {
    True: ("yes", "y", "true", "1", "subscribed", "opted in", "opt in", "confirmed opt in",
           "single opt in", "double opt in", "marketing contact", "consented", "granted"),
    False: ("no", "n", "false", "0", "unsubscribed", "not subscribed", "never subscribed",
            "non subscribed", "opted out", "opt out", "pending", "cleaned", "bounced",
            "transactional", "suppressed", "archived", "invalid", "redacted",
            "non marketing contact", "denied", "revoked", "withdrawn"),
}
_SEPARATORS = ("", " ", "_", "-")
_CONSENT_SPACES = re.compile(r"[\s_\-]+")


def _spellings(phrase: str) -> set[str]:
    """"opt in" as people write it: "opt in", "opt_in", "opt-in", "optin" (and mixed)."""
    words = phrase.split(" ")
    forms = {words[0]}
    for word in words[1:]:
        forms = {form + sep + word for form in forms for sep in _SEPARATORS}
    return forms


# Casefolded value -> subscribed; every spelling is a key, so the hot loop needs one lookup.
CONSENT: dict[str, bool] = {form: value for value, phrases in _CONSENT_WORDS.items()
                            for phrase in phrases for form in _spellings(phrase)}  # fmt: skip
# An opt-out column's values (reading.OPT_OUT_ALIASES) -> subscribed: a yes there is a no to
# email; a no leaves the person as a file without consent leaves them (a consent column, if
# any, decides). Status words keep their meaning ("unsubscribed" is a no either way).
_OPT_OUT_YES = ("yes", "y", "true", "1", "x", "checked", "opted out", "opt out", "unsubscribed",
                "do not email", "bounced")
_OPT_OUT_NO = ("no", "n", "false", "0", "unchecked", "not opted out", "subscribed",
               "opted in", "opt in")
OPT_OUT: dict[str, bool] = {form: subscribed for subscribed, phrases in (
    (False, _OPT_OUT_YES), (True, _OPT_OUT_NO)) for phrase in phrases
    for form in _spellings(phrase)}  # fmt: skip


def opt_out_of(raw: str) -> bool | None:
    """What an opt-out cell says of consent (False: opted out; None: we can't tell)."""
    folded = raw.strip().casefold()
    found = OPT_OUT.get(folded)
    return OPT_OUT.get(_CONSENT_SPACES.sub(" ", folded)) if found is None else found


# Unrecognised consent values are listed on the review message: this many distinct ones.
MAX_CONSENT_VALUES = 10
MAX_LINES_NAMED = 5  # lines of rows with cells past the header, named in its note
CONSENT_UNREAD = "consent value we don't recognise"  # how the review message spots the note


def consent_of(raw: str) -> bool | None:
    """What a consent cell says (None: we can't tell), whatever its case and separators."""
    folded = raw.strip().casefold()
    found = CONSENT.get(folded)
    if found is None:
        found = CONSENT.get(_CONSENT_SPACES.sub(" ", folded))
    return found


# models.Outcome's values, spelled out so the parser process needn't load the ORM.
VALID, DUPLICATE, REJECTED = "valid", "duplicate", "rejected"

# What `referral-bot export` prefixes with `'` so a spreadsheet won't run it as a formula
# (batches.neutralise; spelled out here so the parser process needn't load the ORM).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def unquote(cell: str) -> str:
    """`cell` without the `'` export put before a formula-like start; any other cell as is."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in FORMULA_START else cell


def _name(cell: str) -> str:
    """A name cell that starts with `'` (after spaces): unquoted, trimmed and capped; its
    words one plain space apart (tidy_name)."""
    return tidy_name(unquote(cell.strip()).strip())[:MAX_NAME]


def tidy_name(name: str) -> str:
    """`name`'s words one plain space apart ("Mary  Ann" typed with two, "van der\u00a0Berg"
    pasted from a web page): the search takes a query's words so, and found neither by its
    full name (migration 0027 did this to older contacts). Two C-speed checks before the
    rare rewrite: this runs for every row's names."""
    if "  " in name or not name.isprintable():  # a run of spaces, or another space
        return " ".join(name.split())
    return name


def split_full_name(name: str, *, given_first: bool = False) -> tuple[str, str]:
    """(first, last) of a whole name: "Ada Lovelace" and "Lovelace, Ada" alike, "田中 太郎"
    family name first (_family_name_first) unless `given_first` (a name made of a first and
    a last name, as Mailchimp's full_name is); a name of one word is a first name. A value
    with a digit or a leading # is no name (a Shopify order's "Name" is its number,
    "#1001"): ("", ""), so the address gives the first name."""
    name = " ".join(name.split())
    if not name or name[0] == "#" or any(c.isdigit() for c in name):
        return "", ""
    parts = [part.strip() for part in name.split(",")]
    while len(parts) > 1 and parts[-1].replace(".", "").casefold() in _NAME_SUFFIXES:
        parts.pop()  # "Ada Lovelace, PhD" is no "Lovelace, Ada": invites said "Hi PhD"
    if len(parts) > 1:
        return ", ".join(parts[1:])[:MAX_NAME], parts[0][:MAX_NAME]
    first, _, last = parts[0].partition(" ")
    if last and not given_first and _family_name_first(name):  # "田中 太郎": Tanaka's family
        first, last = last, first
    return first[:MAX_NAME], last[:MAX_NAME]


# Han, kana (with 々 and halfwidth katakana) and Hangul: scripts whose names are written
# family name first. A letter outside them ("Ada 田中") keeps a name "first last".
_CJK = ("\u1100-\u11ff\u3005-\u3007\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
        "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f")
_CJK_LETTER = re.compile(f"[{_CJK}]")
_OTHER_LETTER = re.compile(f"[^\\W\\d_{_CJK}]")


def _family_name_first(name: str) -> bool:
    """Whether `name` is written in CJK letters only: Chinese, Japanese and Korean put the
    family name first, and a whole-name column (氏名, 姓名) holds it so: "田中　太郎" was
    stored as first name 田中, and invites greeted people by their family name."""
    return (not name.isascii() and _CJK_LETTER.search(name) is not None
            and _OTHER_LETTER.search(name) is None)


# What follows a comma after a whole name without being a first name (dots dropped, any case)
_NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "dds", "dmd", "do",
                            "dvm", "esq", "mba", "jd", "rn", "cpa", "pe", "obe", "mbe"})


def _with_split_names(records: Iterable[tuple[int, list[str] | str]], columns: Columns
                      ) -> tuple[Iterator[tuple[int, list[str] | str]], Columns]:  # fmt: skip
    """`records` with the full name's first and last name put in front of each row's fields,
    and `columns` pointing at them (every other column two places on)."""
    full = columns.full_name
    assert full is not None

    def split(rows: Iterable[tuple[int, list[str] | str]]
              ) -> Iterator[tuple[int, list[str] | str]]:  # fmt: skip
        for line, fields in rows:
            if type(fields) is not list:  # malformed: what could be read of it, split too
                cells = _cells(fields)
                yield line, Malformed(fields, [*split_cells(cells), *cells]) if cells else fields
                continue
            yield line, [*split_cells(fields), *fields]

    def split_cells(fields: list[str]) -> tuple[str, str]:
        return split_full_name(fields[full]) if full < len(fields) else ("", "")

    def on(index: int | None) -> int | None:
        return None if index is None else index + 2

    moved = Columns(columns.email + 2, 0, 1, on(columns.locale), on(columns.subscribed),
                    opt_out=on(columns.opt_out),
                    width=columns.width + 2 if columns.width else 0)  # fmt: skip
    return split(records), moved


def _cells(record: str) -> list[str]:
    """What could be read of a malformed record (reading.Malformed), else nothing."""
    return getattr(record, "cells", None) or []


def _address_among(fields: list[str]) -> str | None:
    """The first cell holding nothing but a valid address, as written (trimmed)."""
    for cell in fields:
        if "@" in cell:
            found = unquote(cell.strip())
            try:
                normalize_email(found)
            except InvalidEmail:
                continue
            return found[:MAX_EMAIL]
    return None


def first_name_of(email: str) -> str:
    """A missing first name: the address's part before `@`, without a `+tag` ("jane" for
    jane+shop@example.com, which invites greeted as "Hi jane+shop,")."""
    local = email.rpartition("@")[0]
    return (local.partition("+")[0] or local)[:MAX_NAME]


def _kept(locale: str) -> str | None:
    """The locale of a row not imported (duplicate, rejected), kept for when it is (the
    earlier row leaves the review) or comes back fixed from the skipped-rows CSV."""
    return normalize_locale(locale) if locale.strip() else None


@dataclass(slots=True)
class Tally:
    """Running counts of one source; rows == valid + duplicates + rejected."""

    rows: int = 0
    valid: int = 0
    duplicates: int = 0
    rejected: int = 0
    warnings: int = 0
    # valid rows whose consent value we couldn't read (imported as not subscribed), and those
    # values with their counts (the first MAX_CONSENT_VALUES distinct ones): the review says so
    consent_unread: int = 0
    consent_values: dict[str, int] = field(default_factory=dict)
    # rows with something in cells past the header's last column (never imported: a comma in
    # an unquoted name, or a column with no name), and the lines of the first MAX_LINES_NAMED
    overlong: int = 0
    overlong_lines: list[int] = field(default_factory=list)

    def _overlong(self, line: int, fields: list[str], width: int) -> None:
        """Count the row if a cell past the header's `width` holds something (blank ones,
        "a,b,,", are how many exports end their rows)."""
        if any(cell.strip() for cell in fields[width:]):
            self.overlong += 1
            if len(self.overlong_lines) < MAX_LINES_NAMED:
                self.overlong_lines.append(line)

    def _unread(self, value: str, count: int = 1) -> None:
        values = self.consent_values
        if value in values or len(values) < MAX_CONSENT_VALUES:
            values[value] = values.get(value, 0) + count


@dataclass(slots=True)
class Classifier:
    """Turns raw fields into staged tuples, remembering the batch's emails to spot duplicates."""

    # hash() of each valid email key, in a third of the memory of the keys themselves. Two
    # addresses of a million-row file share a 64-bit hash about once in 37 million such
    # imports; that row would be listed as a duplicate in the rejects file, not lost silently.
    seen: set[int] = field(default_factory=set)
    default_first_name: bool = True
    tally: Tally = field(default_factory=Tally)
    # The file decides everyone's consent (Mailchimp's unsubscribed export: False), whatever
    # a consent column says; None: each row's consent column, if there is one.
    subscribed: bool | None = None
    # Every row is skipped with this reason (Mailchimp's cleaned export: addresses that bounced).
    skip_reason: str | None = None
    # raw spelling -> known locale (None: a cell of spaces)
    _locales: dict[str, str | None] = field(default_factory=dict)

    def contact(
        self, line: int, email: str, first: str = "", last: str = "", locale: str = "",
        consent: str | None = None, opt_out: str | None = None,
    ) -> Staged:
        """Classify one contact given field by field (typed in, or from Mailchimp).

        `consent` is the raw value of a consent column, `opt_out` of an opt-out column (None:
        there is none). A value we can't read is taken as *not* subscribed, and said: nobody
        is emailed on a guess.
        """
        tally = self.tally
        subscribed = self.subscribed
        consent_note = unread = None
        if subscribed is None and consent is not None and consent.strip():
            subscribed = consent_of(consent)
            if subscribed is None:
                subscribed = False
                unread = consent.strip()[:30]
                consent_note = (f"Unrecognised consent value {quoted(unread)}: treated as not "
                                "subscribed")
        if self.subscribed is None and opt_out is not None and opt_out.strip():
            said = opt_out_of(opt_out)
            if said is None and unread is None:
                unread = opt_out.strip()[:30]
                consent_note = (f"Unrecognised opt-out value {quoted(unread)}: treated as not "
                                "subscribed")
            if not said:
                subscribed = False
        tally.rows += 1
        email = email.strip()
        first = first.strip()[:MAX_NAME]
        last = last.strip()[:MAX_NAME]
        if not email:  # kept with its locale: fixed in the skipped-rows CSV, it comes back
            tally.rejected += 1
            return (line, "", "", first, last, _kept(locale), REJECTED, MISSING_EMAIL,
                    subscribed)  # fmt: skip
        try:
            normalized = normalize_email(email)
        except InvalidEmail as exc:
            tally.rejected += 1
            return (
                line,
                email[:MAX_EMAIL],
                "",
                first,
                last,
                _kept(locale),
                REJECTED,
                f"{INVALID_EMAIL}: {exc}"[:500],
                subscribed,
            )
        key = email_key(normalized)
        if hash(key) in self.seen:
            # kept whole (locale, default first name): if the earlier row leaves the review,
            # this one is imported instead
            tally.duplicates += 1
            loc = _kept(locale)
            if not first and self.default_first_name:
                first = first_name_of(normalized)
            return (line, normalized, key, first, last, loc, DUPLICATE,
                    "Duplicate of an earlier row in this import", subscribed)  # fmt: skip
        self.seen.add(hash(key))
        reason = None
        loc: str | None = None
        if locale:
            # a cell of spaces is an empty one, remembered so its next rows stay on the fast path
            loc = normalize_locale(locale) if locale.strip() else None
            if loc is not None or not locale.strip():
                self._locales[locale] = loc
            else:
                tally.warnings += 1
                # repr, not quoted(): locale_notes reads the value back with literal_eval
                reason = f"Unknown locale {locale.strip()[:35]!r}: the workspace default is used"
        if not first and self.default_first_name:
            first = first_name_of(normalized)
        if unread is not None:
            tally.warnings += reason is None
            reason = f"{reason}; {consent_note}" if reason else consent_note
            tally.consent_unread += 1
            tally._unread(unread)
        tally.valid += 1
        return (line, normalized, key, first, last, loc, VALID, reason, subscribed)

    def records(
        self, records: Iterable[tuple[int, list[str] | str]], columns: Columns
    ) -> Iterator[Staged]:
        """Classify CSV records: plain rows inline (the hot path), the rest through contact()."""
        if (columns.full_name is not None and columns.first_name is None
                and columns.last_name is None):
            records, columns = _with_split_names(records, columns)
        if self.skip_reason is not None:
            yield from self._skip_all(records, columns, self.skip_reason)
            return
        e, f, la, lo = columns.email, columns.first_name, columns.last_name, columns.locale
        sub, consent_values, fixed = columns.subscribed, CONSENT, self.subscribed
        oo, opt_outs, width = columns.opt_out, OPT_OUT, columns.width
        if fixed is not None:
            sub = oo = None  # the file's kind decides, not the columns
        seen, plain, locales = self.seen, plain_email, self._locales
        default_first = self.default_first_name
        valid = 0
        try:
            for line, fields in records:
                if type(fields) is not list:
                    yield self._malformed(line, fields, columns)
                    continue
                n = len(fields)
                if n > width and width:  # cells past the header's: said, not dropped unseen
                    self.tally._overlong(line, fields, width)
                raw_email = fields[e] if e < n else ""
                first = fields[f].strip()[:MAX_NAME] if f is not None and f < n else ""
                last = fields[la].strip()[:MAX_NAME] if la is not None and la < n else ""
                # export writes =SUM(A1) as '=SUM(A1). `in` is the cheapest test: 17 ns.
                # Else tidy_name's test inline (a call a name cost more than the test: the
                # parser paces the import); _name tidies a quoted one itself
                if "'" in first and first[0] == "'" and f is not None:
                    first = _name(fields[f])
                elif "  " in first or not first.isprintable():
                    first = " ".join(first.split())
                if "'" in last and last[0] == "'" and la is not None:
                    last = _name(fields[la])
                elif "  " in last or not last.isprintable():
                    last = " ".join(last.split())
                raw_locale = fields[lo] if lo is not None and lo < n else ""
                consent = (fields[sub] if sub < n else "") if sub is not None else None
                subscribed = fixed
                if consent:
                    subscribed = consent_values.get(consent.strip().casefold())
                    if subscribed is None:
                        raw_email, raw_locale = unquote(raw_email.strip()), unquote(raw_locale)
                        yield self._lined_up(self.contact(
                            line, raw_email, first, last, raw_locale, consent,
                            fields[oo] if oo is not None and oo < n else None), fields, width)
                        continue
                opt_out = (fields[oo] if oo < n else "") if oo is not None else None
                if opt_out:
                    said = opt_outs.get(opt_out.strip().casefold())
                    if said is None:
                        raw_email, raw_locale = unquote(raw_email.strip()), unquote(raw_locale)
                        yield self._lined_up(self.contact(line, raw_email, first, last,
                                                          raw_locale, consent, opt_out),
                                             fields, width)  # fmt: skip
                        continue
                    if not said:
                        subscribed = False
                email = plain(raw_email)  # None for '-dash@example.com: the slow path unquotes
                if email is not None and (raw_locale in locales or not raw_locale):
                    key = email.lower()  # plain addresses are ASCII: lower() == casefold()
                    digest = hash(key)
                    if digest not in seen:
                        seen.add(digest)
                        if not first and default_first:
                            first = first_name_of(email)
                        valid += 1
                        yield (line, email, key, first, last, locales.get(raw_locale), VALID, None,
                               subscribed)  # fmt: skip
                        continue
                raw_email, raw_locale = unquote(raw_email.strip()), unquote(raw_locale)
                yield self._lined_up(
                    self.contact(line, raw_email, first, last, raw_locale, consent, opt_out),
                    fields, width)  # fmt: skip
        finally:
            self.tally.rows += valid
            self.tally.valid += valid

    def _malformed(self, line: int, record: str, columns: Columns) -> Staged:
        """A record csv couldn't read, rejected with its message, and with what could be
        read of it (reading.Malformed: its address and names) for the skipped-rows CSV."""
        self.tally.rows += 1
        self.tally.rejected += 1
        cells = _cells(record)
        n, e, f, la = len(cells), columns.email, columns.first_name, columns.last_name
        email = unquote(cells[e].strip())[:MAX_EMAIL] if e < n else ""
        first = _name(cells[f]) if f is not None and f < n else ""
        last = _name(cells[la]) if la is not None and la < n else ""
        return (line, email, "", first, last, None, REJECTED, str(record)[:500], None)

    @staticmethod
    def _lined_up(staged: Staged, fields: list[str], width: int) -> Staged:
        """A row rejected for its address (missing, invalid) whose cells are more or fewer
        than the header's, with an address in another cell: a cell left out or one too many
        put it in another column. Said so, with that address for the skipped-rows CSV;
        which cell is missing is not guessed, so it isn't imported. Only rejected rows come
        past the first test."""
        if staged[6] != REJECTED or not width or len(fields) == width:
            return staged
        found = _address_among(fields)
        if found is None:
            return staged
        line, _, _, first, last, locale, outcome, _, subscribed = staged
        first, last = ("" if n == found else n for n in (first, last))
        reason = (f"{len(fields)} cells where the header has {width}: a cell missing or one "
                  "too many, so the address is not in the email column")
        return (line, found, "", first, last, locale, outcome, reason, subscribed)

    def _skip_all(
        self, records: Iterable[tuple[int, list[str] | str]], columns: Columns, reason: str
    ) -> Iterator[Staged]:
        """Every record skipped with `reason`, kept with its address and names for the
        skipped-rows CSV (never valid, so it makes no later row a duplicate). Its address key
        is kept, subscribed False: an address Mailchimp cleaned (it bounced) is heeded as an
        unsubscribe (engine.OPTED_OUT), so the same person from another file of the import
        isn't imported subscribed and invited, to bounce again."""
        tally = self.tally
        e, f, la = columns.email, columns.first_name, columns.last_name
        for line, fields in records:
            tally.rows += 1
            tally.rejected += 1
            reason_here, subscribed = reason, False
            if type(fields) is not list:  # malformed: with what could be read of it
                fields, reason_here, subscribed = _cells(fields), str(fields), None
            n = len(fields)
            email = unquote(fields[e].strip())[:MAX_EMAIL] if e < n else ""
            first = _name(fields[f]) if f is not None and f < n else ""
            last = _name(fields[la]) if la is not None and la < n else ""
            key = _skipped_key(email) if subscribed is False else ""
            yield (line, email, key, first, last, None, REJECTED, reason_here[:500], subscribed)


def _skipped_key(email: str) -> str:
    """A skipped address's key, to heed it as a no ("": not an address)."""
    try:
        return email_key(normalize_email(email))
    except InvalidEmail:
        return ""
