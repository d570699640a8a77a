"""The name a source of an import is shown by, told apart from the import's other sources of
the same name ("customers (2).csv").

Its own module so that the message builders (handlers/messages.py) and the notifier
(handlers/notify.py, which imports the builders) can both use it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Sequence

from models import ImportSource


def told_apart(source: ImportSource, sources: Sequence[ImportSource]) -> str:
    """The source's name, numbered after the first of the import's files of that name
    ("customers (2).csv"): two files called customers.csv got skipped-rows CSVs of one name,
    title and comment, and the review message showed one name twice, so nobody could tell
    which export a row, a count or a *Remove* was about."""
    same = [s.id for s in sources if s.label == source.label]
    if len(same) < 2 or same.index(source.id) == 0:
        return source.label
    stem, dot, suffix = source.label.rpartition(".")
    number = same.index(source.id) + 1
    return f"{stem} ({number}).{suffix}" if dot and stem else f"{source.label} ({number})"
