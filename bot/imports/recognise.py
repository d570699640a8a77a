"""What a file is, told from its name and header, and the notes the review message shows.

Mailchimp exports an audience as one CSV per status, and people upload them zipped or one at
a time. The status decides everyone's consent: subscribed members are imported as usual,
unsubscribed and non-subscribed (transactional) ones are imported but never emailed, and
cleaned ones (addresses that bounced) are skipped. The review message says what was
recognised, so nobody has to wonder why a file's people won't get an invite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.imports.archives import mailchimp_kind
from bot.imports.rows import CONSENT_UNREAD, Classifier, Tally
from bot.words import listed

CLEANED_REASON = "cleaned by Mailchimp (address bounced)"
MAX_NOTE = 500  # import_source.note
MAX_NAMES = 5  # sheets or files named in a note


@dataclass(frozen=True, slots=True)
class FileKind:
    """How a recognised file's rows are classified, and the sentence that says so."""

    note: str | None = None
    subscribed: bool | None = None  # everyone's consent, whatever a consent column says
    skip_reason: str | None = None  # every row is skipped with this reason

    @property
    def plain(self) -> bool:
        """Rows are classified as in any CSV (so the parallel CSV parser may read the file:
        it knows nothing of kinds)."""
        return self.subscribed is None and self.skip_reason is None

    def classifier(self, seen: set[int]) -> Classifier:
        return Classifier(seen=seen, subscribed=self.subscribed, skip_reason=self.skip_reason)


PLAIN = FileKind()

MAILCHIMP_KINDS = {
    "subscribed": FileKind("Recognised as Mailchimp's subscribed members export."),
    "unsubscribed": FileKind(
        "Recognised as Mailchimp's unsubscribed members export: these people are imported as "
        "unsubscribed (enrolled in campaigns, never emailed).",
        subscribed=False,
    ),
    "transactional": FileKind(
        "Recognised as Mailchimp's non-subscribed contacts export: they never opted in, so they "
        "are imported as not subscribed (enrolled in campaigns, never emailed).",
        subscribed=False,
    ),
    "cleaned": FileKind(
        "Recognised as Mailchimp's cleaned members export: these addresses bounced, so nobody "
        "in it is imported.",
        skip_reason=CLEANED_REASON,
    ),
}


def recognise(name: str, header: list[str]) -> FileKind:
    """The kind of the file called `name` whose header is `header` (PLAIN if nothing special)."""
    kind = mailchimp_kind(name, header)
    return MAILCHIMP_KINDS.get(kind or "", PLAIN)


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(f"“{name}”" for name in names[:MAX_NAMES])
    return shown + (f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else "")


def consent_note(tally: Tally) -> str | None:
    """Rows whose consent value we couldn't read, with the values: never guessed silently."""
    if not tally.consent_unread:
        return None
    values = sorted(tally.consent_values.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"“{value}” ({count:,})" for value, count in values[:MAX_NAMES])
    if rest := tally.consent_unread - sum(count for _, count in values[:MAX_NAMES]):
        # values past the first few, or past those remembered: said, not dropped unseen
        shown += (f" and {rest:,} more rows with other values" if rest > 1 else
                  " and 1 more row with another value")  # fmt: skip
    rows = f"{tally.consent_unread:,} row" + ("s have" if tally.consent_unread > 1 else " has")
    they = "They are" if tally.consent_unread > 1 else "It is"
    return (f"{rows} a {CONSENT_UNREAD}: {shown}. {they} imported as not subscribed (never "
            "emailed); use yes/no, subscribed/unsubscribed or opted in/opted out.")  # fmt: skip


def overlong_note(tally: Tally) -> str | None:
    """Rows with something in cells past the header's last column, which nothing imports: the
    row was imported from its other cells with not a word (a name split in two by a comma
    shifts what follows it). A CSV's rows only: a workbook's reader gives no header width."""
    if not tally.overlong:
        return None
    lines = [f"{line:,}" for line in tally.overlong_lines]
    if more := tally.overlong - len(lines):
        lines.append(f"{more:,} more")
    where = f"{'line' if tally.overlong == 1 else 'lines'} {listed(lines)}"
    rows = "1 row has" if tally.overlong == 1 else f"{tally.overlong:,} rows have"
    return (f"{rows} more cells than the header has columns ({where}): nothing past its last "
            "column is imported. A comma in a cell that isn't quoted splits it in two; check "
            "the columns line up.")


def sheets_note(sheet: str, others: Sequence[str]) -> str | None:
    """Only the first sheet with data is read: name the others, so nothing is lost unseen."""
    if not others:
        return None
    return (f"Only the sheet “{sheet}” was read; not read: {_names(others)}. Move their rows "
            "into one sheet, or save each sheet as a file of its own.")  # fmt: skip


def ignored_note(archive: str, ignored: Sequence[str]) -> str | None:
    """What a ZIP held besides CSV files (never read). The review shows it on the ZIP's first
    CSV (the ZIP has no source of its own); archive_note tells it apart again."""
    if not ignored:
        return None
    return f"{_IGNORED_START}{archive}{_IGNORED_MIDDLE}{_names(ignored)}."


_IGNORED_START, _IGNORED_MIDDLE = "Not read from ", " (only its CSV files are): "


def archive_note(line: str) -> tuple[str, str] | None:
    """(the ZIP, what it says of it) for a line of a note that ignored_note wrote, else None:
    the shell printed "Note on export.zip › members.csv: Not read from export.zip ...", a
    note about the archive named as one of its CSVs'."""
    if not line.startswith(_IGNORED_START) or _IGNORED_MIDDLE not in line:
        return None
    archive, _, names = line[len(_IGNORED_START):].rpartition(_IGNORED_MIDDLE)
    if not archive:
        return None
    return archive, f"Only its CSV files were read; not read: {names}"


def join_notes(notes: Iterable[str | None]) -> str | None:
    """One note a line, within the column's size; None when there is nothing to say. A note
    that doesn't fit whole is cut with "…" where the cut shows (it was cut off mid-sentence
    without a sign, "(lines 20,000, 20,001,"), or left out when less than a line's worth of
    room is left."""
    kept: list[str] = []
    room = MAX_NOTE
    for note in (n for n in notes if n):
        room -= 1 if kept else 0  # its line break
        if len(note) <= room:
            kept.append(note)
            room -= len(note)
            continue
        if room >= _SHORTEST_CUT:
            kept.append(note[: room - 1].rstrip() + "…")
        break
    return "\n".join(kept) or None


_SHORTEST_CUT = 60  # characters of a note worth showing cut
