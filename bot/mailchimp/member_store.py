"""An audience's members, once each by address, kept on disk while they are read and staged.

A page of members as Mailchimp's client parses it costs about 1.2 KB a member in Python
objects, and the reads that follow a list changing under them merge by address, so holding a
million-member audience in memory took over a gigabyte. Here each page is written, as plain
tuples of the fields the import reads, to a temporary file as it arrives (marshal: the
fastest way to spill tuples of strings), and only each address's hash with its first and last
sightings stays in memory (about 100 bytes a member). Reading back yields every address once,
in the order of first sightings, with the fields of its last (the latest Mailchimp gave for
it): the audience's order as one read gives it, however many reads there were. Ordered by
last sightings, a list read again came out with the members only the first read saw (deleted
meanwhile) ahead of all the others, and the import's line numbers moved.

Where the file goes (bot.temp_files.spill_dir): on disk, never in memory, or the spill would
be for nothing.
"""

from __future__ import annotations

import marshal
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any

from bot.temp_files import disk_temporary_file

Record = tuple[str | None, ...]  # email, status, FNAME, LNAME, full_name, language

# A sighting is a member's number across every read of the store; an address's first and
# last are packed into one int (first << SHIFT | last): one dict value of 32 bytes where two
# dicts of them would double what a member costs in memory.
SHIFT = 32  # sightings below 2**32: four thousand million, over a thousand reads of a million
LAST = (1 << SHIFT) - 1
# Pages held while reading back. A later read comes in the audience's order too, so the last
# sightings looked up for one page of the first read lie in a page or two of the later one.
CACHED_PAGES = 8

def _text(value: object) -> str | None:
    """A field as the import reads it (`str(x or "")` there): text, or None when empty."""
    return str(value) if value else None


def _key(email: str | None) -> int:
    """Addresses differing only in case are one member (hash(): as the classifier dedupes)."""
    return hash((email or "").lower())


def _member(record: Record) -> dict[str, Any]:
    """A record in the shape Mailchimp gives (only the fields asked for)."""
    email, status, fname, lname, full_name, language = record
    return {"email_address": email, "status": status,
            "merge_fields": {"FNAME": fname, "LNAME": lname},
            "full_name": full_name, "language": language}  # fmt: skip


class MemberStore:
    """The members of one or more reads of an audience; `len` is the number of distinct
    addresses; iterating yields each in the shape Mailchimp gives (only the fields asked for),
    in the order of their first sightings, with the fields of their last."""

    def __init__(self) -> None:
        # closed by close(); nameless, so nothing is left behind even if this process dies
        self._file = disk_temporary_file(prefix="mailchimp-members-")
        self._sightings: dict[int, int] = {}  # address key -> first << SHIFT | last
        self._seen = 0  # sightings so far, over every read
        self._read_starts: dict[int, int] = {}  # read -> number of its first sighting
        # per page written, in order: the number of its first sighting (apart, for bisect),
        # then where it is in the file, its length there, and whether it holds any
        # address's first sighting (a later read's pages mostly don't: not read through)
        self._starts: list[int] = []
        self._pages: list[tuple[int, int, bool]] = []
        self._end = 0

    def add(self, members: Iterable[dict[str, Any]], read_no: int) -> None:
        """One page of read `read_no`, in its order."""
        self._read_starts.setdefault(read_no, self._seen)
        page = []
        sightings, get, start = self._sightings, self._sightings.get, self._seen
        news = False  # whether the page holds an address's first sighting
        for at, member in enumerate(members, start):
            merge = member.get("merge_fields")
            if not isinstance(merge, dict):
                merge = {}
            email = _text(member.get("email_address"))
            page.append((email, _text(member.get("status")), _text(merge.get("FNAME")),
                         _text(merge.get("LNAME")), _text(member.get("full_name")),
                         _text(member.get("language"))))  # fmt: skip
            key = _key(email)
            both = get(key)
            if both is None:
                news = True
                sightings[key] = at << SHIFT | at
            else:  # its first sighting kept, this one its last
                sightings[key] = both >> SHIFT << SHIFT | at
        if not page:
            return
        self._seen = start + len(page)
        data = marshal.dumps(page)
        self._file.seek(self._end)
        self._file.write(data)
        self._starts.append(start)
        self._pages.append((self._end, len(data), news))
        self._end += len(data)

    def found_in(self, read_no: int) -> int:
        """How many distinct addresses read `read_no` found (asked before the next read)."""
        start = self._read_starts.get(read_no, self._seen)
        return sum(1 for both in self._sightings.values() if both & LAST >= start)

    def __len__(self) -> int:
        return len(self._sightings)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        page_of: Callable[[int], list[Record]] = lru_cache(maxsize=CACHED_PAGES)(self._load)
        sightings = self._sightings
        for number, (_, _, news) in enumerate(self._pages):
            if not news:  # a later read's page of addresses met before: they came out then
                continue
            for at, record in enumerate(page_of(number), self._starts[number]):
                both = sightings[_key(record[0])]
                if both >> SHIFT != at:
                    continue  # met before: it came out at its first sighting
                last = both & LAST
                yield _member(record if last == at else self._sighting(last, page_of))

    def _sighting(self, at: int, page_of: Callable[[int], list[Record]]) -> Record:
        number = bisect_right(self._starts, at) - 1
        return page_of(number)[at - self._starts[number]]

    def _load(self, number: int) -> list[Record]:
        offset, length, _ = self._pages[number]
        self._file.seek(offset)
        page: list[Record] = marshal.loads(self._file.read(length))
        return page

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MemberStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
