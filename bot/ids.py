"""Ids as people and Slack hand them back to us: a button's value, a form's field, a CLI
argument. One check for all of them, so none trusts `str.isdigit()` alone."""

from __future__ import annotations

import re

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")  # a Slack user id, as stored and mentioned
MAX_ID_DIGITS = 18  # every id and count of ours fits in a 64-bit integer


def digits(value: object) -> int | None:
    """A number as our buttons write it (ASCII digits, at most MAX_ID_DIGITS); None for
    anything else: "²" passes str.isdigit() but not int(), 20 digits pass int() but not the
    database."""
    text = "" if value is None else str(value)
    if text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS:
        return int(text)
    return None
