"""Counts and lists in words, for what the shell, Slack and the audit log say."""

from __future__ import annotations

from collections.abc import Sequence


def plural(count: int, word: str) -> str:
    """"1 contact", "2,000 contacts" (nouns with a plain -s plural): the shell said "1
    contacts removed"."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def listed(items: Sequence[str], last: str = "and") -> str:
    """"a", "a and b", "a, b and c" (`last`: the word before the last item, "or" for a
    choice): the one way lists of names and reasons are said."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def quoted(name: str) -> str:
    """A name in quotes, as the shell shows it: Python's repr (a control character in it is
    escaped, so a name can't break a line or colour the terminal), but a name holding both
    kinds of quote shows them as typed ('Bob's "Big" Sale'), where repr escaped one
    ('Bob\\'s "Big" Sale')."""
    shown = repr(name)
    return shown.replace("\\'", "'") if "'" in name and '"' in name else shown
