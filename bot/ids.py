"""Ids as people and Slack hand them back to us: a button's value, a form's field, a CLI
argument. One check for all of them, so none trusts `str.isdigit()` alone."""

from __future__ import annotations

import re

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")  # a Slack user id, as stored and mentioned
# The largest id (and the largest count) every database takes: ids are INTEGER columns, and
# PostgreSQL refused a bigger one with a raw "value out of int32 range" error
MAX_INT = 2**31 - 1
# ids bound in one statement at most: PostgreSQL takes 32,767 parameters a statement, SQLite
# 32,766 by default
IDS_PER_QUERY = 10_000
MAX_ID_DIGITS = 18  # digits read at all (leading zeros too): a longer value is none of ours


def digits(value: object) -> int | None:
    """A number as our buttons write it (ASCII digits, at most MAX_INT); None for anything
    else: "²" passes str.isdigit() but not int(), and 99999999999 passes int() but not an
    INTEGER column (on PostgreSQL a forged button's id failed with "Something went wrong"
    and a traceback, where an old or forged button is told it is one)."""
    text = "" if value is None else str(value)
    if text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS:
        found = int(text)
        return found if found <= MAX_INT else None
    return None
