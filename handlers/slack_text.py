"""Cutting mrkdwn to Slack's limits without breaking what Slack parses in it.

Text that reaches mrkdwn is escaped (`&` became `&amp;`, `<` `&lt;`, `>` `&gt;`) and holds
tokens we built: mentions (`<@U123>`, `<#C123>`), dates (`<!date^…|…>`) and links
(`<https://…|label>`). A plain `text[:3000]` could end in "&am" or "<@U12", which Slack shows
as broken text (or swallows the rest of the line); `cut_mrkdwn` cuts before such an entity or
token instead, and says it cut with an ellipsis.

Plain text (`plain_text` objects, an option's text) isn't parsed: `messages.clip` cuts it.
"""

from __future__ import annotations

import re

SECTION_TEXT = 3000  # a section's text, a context element's text, a message's `text` we send
ELLIPSIS = "…"
# An HTML entity as Slack reads it in mrkdwn: esc() makes only &amp; &lt; &gt;, but text of our
# own may hold others (&#8203;...).
_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9A-Fa-f]+);")


def cut_mrkdwn(text: str, limit: int = SECTION_TEXT) -> str:
    """`text` within `limit` characters: as it is when it fits, else cut before the entity or
    `<…>` token the cut would split, with "…" at the end (the ellipsis counts in `limit`)."""
    if len(text) <= limit:
        return text
    end = _whole_end(text, max(0, limit - len(ELLIPSIS)))
    return text[:end].rstrip() + ELLIPSIS


def _whole_end(text: str, end: int) -> int:
    """`end`, or the start of the `<…>` token or the entity that `text[:end]` would split.

    Escaped text has no `<` of its own: one after the last `>` opens a token still open at
    `end`. A token may hold entities (a link's escaped label), so tokens are checked first."""
    opened = text.rfind("<", 0, end)
    if opened > text.rfind(">", 0, end):
        end = opened
    amp = text.rfind("&", 0, end)
    if amp != -1:
        entity = _ENTITY.match(text, amp)
        if entity is not None and entity.end() > end:
            end = amp
    return end
