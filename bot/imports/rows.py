"""What each record means: valid, duplicate or rejected with a reason, ready to stage.

This is the hot loop of an import (a million rows in about a second), so it works on tuples
and local names rather than objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from bot.imports.addresses import InvalidEmail, email_key, normalize_email, plain_email
from bot.imports.locales import normalize_locale
from bot.imports.reading import Columns

MAX_NAME = 200
MAX_EMAIL = 320

# (line, email, email_key, first_name, last_name, locale, outcome, reason, subscribed)
Staged = tuple[int, str, str, str, str, str | None, str, str | None, bool | None]

# Consent values as exports write them; None: the file doesn't say (contacts are subscribed).
CONSENT = {"yes": True, "y": True, "true": True, "1": True, "subscribed": True,
           "no": False, "n": False, "false": False, "0": False, "unsubscribed": False}  # fmt: skip

# models.Outcome's values, spelled out so the parser process needn't load the ORM.
VALID, DUPLICATE, REJECTED = "valid", "duplicate", "rejected"

# What `referral-bot export` prefixes with `'` so a spreadsheet won't run it as a formula
# (batches.neutralise; spelled out here so the parser process needn't load the ORM).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def unquote(cell: str) -> str:
    """`cell` without the `'` export put before a formula-like start; any other cell as is."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in FORMULA_START else cell


def _name(cell: str) -> str:
    """A name cell that starts with `'` (after spaces): unquoted, trimmed and capped."""
    return unquote(cell.strip()).strip()[:MAX_NAME]


@dataclass(slots=True)
class Tally:
    """Running counts of one source; rows == valid + duplicates + rejected."""

    rows: int = 0
    valid: int = 0
    duplicates: int = 0
    rejected: int = 0
    warnings: int = 0

    def add(self, other: Tally) -> None:
        self.rows += other.rows
        self.valid += other.valid
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.warnings += other.warnings


@dataclass(slots=True)
class Classifier:
    """Turns raw fields into staged tuples, remembering the batch's emails to spot duplicates."""

    # hash() of each valid email key, in a third of the memory of the keys themselves. Two
    # addresses of a million-row file share a 64-bit hash about once in 37 million such
    # imports; that row would be listed as a duplicate in the rejects file, not lost silently.
    seen: set[int] = field(default_factory=set)
    default_first_name: bool = True
    tally: Tally = field(default_factory=Tally)
    _locales: dict[str, str] = field(default_factory=dict)  # raw spelling -> known locale

    def contact(
        self, line: int, email: str, first: str = "", last: str = "", locale: str = "",
        consent: str | None = None,
    ) -> Staged:
        """Classify one contact given field by field (typed in, or from Mailchimp).

        `consent` is the raw value of a consent column (None: there is none). A value we can't
        read is taken as *not* subscribed, and said: nobody is emailed on a guess.
        """
        tally = self.tally
        subscribed: bool | None = None
        consent_note = None
        if consent is not None and consent.strip():
            subscribed = CONSENT.get(consent.strip().casefold())
            if subscribed is None:
                subscribed = False
                consent_note = (f"Unrecognised consent value {consent.strip()[:30]!r}: "
                                "treated as not subscribed")  # fmt: skip
        tally.rows += 1
        email = email.strip()
        first = first.strip()[:MAX_NAME]
        last = last.strip()[:MAX_NAME]
        if not email:
            tally.rejected += 1
            return (line, "", "", first, last, None, REJECTED, "Missing email", subscribed)
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
                None,
                REJECTED,
                f"Invalid email: {exc}"[:500],
                subscribed,
            )
        key = email_key(normalized)
        if hash(key) in self.seen:
            # kept whole (locale, default first name): if the earlier row leaves the review,
            # this one is imported instead
            tally.duplicates += 1
            loc = normalize_locale(locale) if locale else None
            if not first and self.default_first_name:
                first = normalized.rpartition("@")[0][:MAX_NAME]
            return (line, normalized, key, first, last, loc, DUPLICATE,
                    "Duplicate of an earlier row in this import", subscribed)  # fmt: skip
        self.seen.add(hash(key))
        reason = None
        loc: str | None = None
        if locale:
            loc = normalize_locale(locale)
            if loc is not None:
                self._locales[locale] = loc
            else:
                tally.warnings += 1
                reason = f"Unknown locale {locale.strip()[:35]!r}: the workspace default is used"
        if not first and self.default_first_name:
            first = normalized.rpartition("@")[0][:MAX_NAME]
        if consent_note is not None:
            tally.warnings += reason is None
            reason = f"{reason}; {consent_note}" if reason else consent_note
        tally.valid += 1
        return (line, normalized, key, first, last, loc, VALID, reason, subscribed)

    def records(
        self, records: Iterable[tuple[int, list[str] | str]], columns: Columns
    ) -> Iterator[Staged]:
        """Classify CSV records: plain rows inline (the hot path), the rest through contact()."""
        e, f, la, lo = columns.email, columns.first_name, columns.last_name, columns.locale
        sub, consent_values = columns.subscribed, CONSENT
        seen, plain, locales = self.seen, plain_email, self._locales
        default_first = self.default_first_name
        valid = 0
        try:
            for line, fields in records:
                if type(fields) is str:
                    self.tally.rows += 1
                    self.tally.rejected += 1
                    yield (line, "", "", "", "", None, REJECTED, fields[:500], None)
                    continue
                n = len(fields)
                raw_email = fields[e] if e < n else ""
                first = fields[f].strip()[:MAX_NAME] if f is not None and f < n else ""
                last = fields[la].strip()[:MAX_NAME] if la is not None and la < n else ""
                # export writes =SUM(A1) as '=SUM(A1). `in` is the cheapest test: 17 ns.
                if "'" in first and first[0] == "'" and f is not None:
                    first = _name(fields[f])
                if "'" in last and last[0] == "'" and la is not None:
                    last = _name(fields[la])
                raw_locale = fields[lo] if lo is not None and lo < n else ""
                consent = (fields[sub] if sub < n else "") if sub is not None else None
                subscribed = None
                if consent:
                    subscribed = consent_values.get(consent.strip().casefold())
                    if subscribed is None:
                        raw_email, raw_locale = unquote(raw_email.strip()), unquote(raw_locale)
                        yield self.contact(line, raw_email, first, last, raw_locale, consent)
                        continue
                email = plain(raw_email)  # None for '-dash@example.com: the slow path unquotes
                if email is not None and (raw_locale in locales or not raw_locale):
                    key = email.lower()  # plain addresses are ASCII: lower() == casefold()
                    digest = hash(key)
                    if digest not in seen:
                        seen.add(digest)
                        if not first and default_first:
                            first = email.partition("@")[0]
                        valid += 1
                        yield (line, email, key, first, last, locales.get(raw_locale), VALID, None,
                               subscribed)  # fmt: skip
                        continue
                raw_email, raw_locale = unquote(raw_email.strip()), unquote(raw_locale)
                yield self.contact(line, raw_email, first, last, raw_locale, consent)
        finally:
            self.tally.rows += valid
            self.tally.valid += valid
