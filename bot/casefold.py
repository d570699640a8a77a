"""Case-insensitive matching that means the same on SQLite and PostgreSQL.

PostgreSQL's lower() folds every alphabet. SQLite's lower() and LIKE fold only A-Z, so there
"élo" would miss "Élodie": SQLite is asked for each case the other letters may be stored in.
(Registering a Python casefold() on every SQLite connection would fold exactly, but an index
on it would make the file unwritable to any tool without that function, `sqlite3` included,
and each row's call would cost more than these few extra ranges.)
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import ColumnElement, func, or_

# Each cased letter outside A-Z doubles the spellings looked up; past this many, the rest are
# taken lowercase.
MAX_SPELLINGS = 16


# "İ" (Turkish capital dotted I) lowers to "i" + U+0307 in Python, and SQLite's lower() keeps
# it as it is: "İbrahim" was found by no spelling, not even as typed. A typed "i" isn't looked
# up as "İ" too: every i would double the spellings, and used up the budget before the letters
# that need it ("IVANIŠEVIĆ" was found no more).
_DOTTED_I = "\u0130"
_DOTTED_I_LOWER = _DOTTED_I.lower()


def spellings(word: str, *, fold_all: bool) -> list[str]:
    """The forms to look `word` up by in a `lower(column)` comparison.

    `fold_all` (PostgreSQL, whose lower() folds every alphabet): the word itself, for the SQL
    to lower. SQLite leaves "Élodie" as "Élodie", so "élo" is looked up as "élo" and "Élo"; a
    word with many such letters ("ÉLÉONORE") is found by its first four in any case, the rest
    as typed in lowercase or stored so. Either way each form is also looked up decomposed
    (_with_decomposed), so there are at most twice MAX_SPELLINGS.
    """
    word = unicodedata.normalize("NFC", word)  # typed decomposed: each form is both (below)
    if fold_all:
        return _with_decomposed([word])
    forms = [""]
    for typed in word:
        ch = typed.lower()
        if ch == _DOTTED_I_LOWER:  # typed "İ": stored so, or as "i" ("İBRAHİM" for "İbrahim")
            cases = [_DOTTED_I, "i"]
        elif len(ch) != 1:  # lowers to more than one letter: as typed, as SQLite keeps it
            cases = [typed]
        else:
            cases = [ch]
            if not ch.isascii():
                cases += [c for c in dict.fromkeys((ch.upper(), ch.title()))
                          if len(c) == 1 and c != ch and c.lower() == ch]  # fmt: skip
        if len(forms) * len(cases) > MAX_SPELLINGS:
            cases = cases[:1]  # lowercase, or as typed where that is what SQLite keeps
        forms = [form + case for form in forms for case in cases]
    return _with_decomposed(forms)


def _with_decomposed(forms: list[str]) -> list[str]:
    """`forms`, then each with its accents decomposed where that differs: a macOS export
    writes "é" as "e" + U+0301 and the import stores names as written, so "émile" typed
    anywhere else must look for that spelling too (cheaper here, per search, than composing
    every name of every import)."""
    return [*forms, *(d for f in forms if (d := unicodedata.normalize("NFD", f)) != f)]


def like_pattern(text: str) -> str:
    """`%text%` for LIKE with escape `\\`: the text's own %, _ and \\ match themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def contains(column: Any, text: str, dialect: str) -> ColumnElement[bool]:
    """`column` contains `text`, ignoring case in every alphabet on both databases."""
    fold_all = dialect == "postgresql"
    words = [w.lower() if fold_all else w for w in spellings(text, fold_all=fold_all)]
    return or_(*(func.lower(column).like(like_pattern(word), escape="\\") for word in words))
