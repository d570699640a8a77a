"""The name a source of an import is shown by, told apart from the import's other sources of
the same name ("customers (2).csv").

In the imports package, not in handlers/, because the review (bot/imports/review.py) names a
source too, in the audit entry of its removal and on the *Review contacts* rows: the bot's
core imports nothing from the Slack handlers (the message builders and the notifier take it
from here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["Named", "NamedOrRemoved", "names_by_id", "names_of_all", "told_apart"]


class Named(Protocol):
    """An ImportSource, or a row of its id and label."""

    @property
    def id(self) -> int | None: ...

    @property
    def label(self) -> str: ...


def names_by_id(sources: Sequence[Named]) -> dict[int, str]:
    """Each source's name by its id (see told_apart), all at once: a page of contacts names
    each row's source without a query, or a pass over the sources, per row."""
    seen: dict[str, int] = {}
    names: dict[int, str] = {}
    for source in sources:
        seen[source.label] = number = seen.get(source.label, 0) + 1
        names[source.id or 0] = _numbered(source.label, number)
    return names


class NamedOrRemoved(Named, Protocol):
    """An ImportSource, or a row of its id, label and whether it was removed."""

    @property
    def removed(self) -> bool: ...


def names_of_all(sources: Sequence[NamedOrRemoved]) -> dict[int, str]:
    """Each source's name by its id, removed ones too (by their label): for the rejects CSV,
    which lists rows of every source and whose file column said "customers.csv" for the rows
    of two files. Numbered among the sources not removed, as the review message numbers them."""
    names = names_by_id([source for source in sources if not source.removed])
    return {source.id or 0: names.get(source.id or 0, source.label) for source in sources}


def told_apart(source: Named, sources: Sequence[Named]) -> str:
    """The source's name, numbered after the first of the import's files of that name
    ("customers (2).csv"): two files called customers.csv got skipped-rows CSVs of one name,
    title and comment, and the review message showed one name twice, so nobody could tell
    which export a row, a count or a *Remove* was about. A source not among `sources` keeps
    its label."""
    return names_by_id(sources).get(source.id or 0, source.label)


def _numbered(label: str, number: int) -> str:
    """The `number`th file called `label`: the first keeps its name, the next ones are
    numbered before the extension, as a desktop names a second download."""
    if number == 1:
        return label
    # the extension of the name's last part only: a shell path "/tmp/a.b/export" or a ZIP's
    # file "export.zip › README" has none ("/tmp/a (2).b/export" read as another folder)
    start = max(label.rfind(sep) + len(sep) if sep in label else 0
                for sep in ("/", "\\", " › "))  # fmt: skip
    dot = label.rfind(".")
    if dot > start:  # an extension, after a name ("customers.csv"; not ".env")
        return f"{label[:dot]} ({number}){label[dot:]}"
    return f"{label} ({number})"
