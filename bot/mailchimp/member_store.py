"""An audience's members, once each by address, kept on disk while they are read and staged.

A page of members as Mailchimp's client parses it costs about 1.2 KB a member in Python
objects, and the reads that follow a list changing under them merge by address, so holding a
million-member audience in memory took over a gigabyte. Here each page is written, as plain
tuples of the fields the import reads, to a temporary file as it arrives (marshal: the
fastest way to spill tuples of strings), and only each address's hash and last sighting stay
in memory (about 100 bytes a member). Reading back yields every address once, at its last
sighting: the latest fields Mailchimp gave for it.
"""

from __future__ import annotations

import marshal
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any


def _text(value: object) -> str | None:
    """A field as the import reads it (`str(x or "")` there): text, or None when empty."""
    return str(value) if value else None


def _key(email: str | None) -> int:
    """Addresses differing only in case are one member (hash(): as the classifier dedupes)."""
    return hash((email or "").lower())


class MemberStore:
    """The members of one or more reads of an audience; `len` is the number of distinct
    addresses; iterating yields each in the shape Mailchimp gives (only the fields asked for),
    in the order of their last sightings."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="mailchimp-members-")  # noqa: SIM115 (closed by close())
        self._last: dict[int, int] = {}  # address key -> number of its last sighting
        self._seen = 0  # sightings so far, over every read
        self._read_starts: dict[int, int] = {}  # read -> number of its first sighting

    def add(self, members: Iterable[dict[str, Any]], read_no: int) -> None:
        """One page of read `read_no`, in its order."""
        self._read_starts.setdefault(read_no, self._seen)
        page = []
        last, seen = self._last, self._seen
        for member in members:
            merge = member.get("merge_fields")
            if not isinstance(merge, dict):
                merge = {}
            email = _text(member.get("email_address"))
            page.append((email, _text(member.get("status")), _text(merge.get("FNAME")),
                         _text(merge.get("LNAME")), _text(member.get("full_name")),
                         _text(member.get("language"))))  # fmt: skip
            last[_key(email)] = seen
            seen += 1
        self._seen = seen
        marshal.dump(page, self._file)

    def found_in(self, read_no: int) -> int:
        """How many distinct addresses read `read_no` found (asked before the next read)."""
        start = self._read_starts.get(read_no, self._seen)
        return sum(1 for at in self._last.values() if at >= start)

    def __len__(self) -> int:
        return len(self._last)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._file.seek(0)
        last, at = self._last, 0
        while True:
            try:
                page = marshal.load(self._file)
            except EOFError:
                return
            for email, status, fname, lname, full_name, language in page:
                if last.get(_key(email)) == at:
                    yield {"email_address": email, "status": status,
                           "merge_fields": {"FNAME": fname, "LNAME": lname},
                           "full_name": full_name, "language": language}  # fmt: skip
                at += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MemberStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
