"""What the shell prints to a terminal: text that can't drive it.

Names and addresses come from files anyone wrote. An escape character in a CSV's name cell
reached the operator's terminal raw through `contacts search`, `segments` or `audit` (colours,
a cleared screen, a title set, or worse on some terminals), and a right-to-left override
turned the rest of a row around. Only a terminal acts on them, so only a terminal gets them
escaped (as `ls` does): a file or a pipe keeps the bytes exactly, and JSON escapes them itself.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

# C0 controls but tab and line feed (a carriage return rewrites the line), DEL, C1 controls,
# and the bidirectional embeddings, overrides and isolates: each shown as its \x or \u escape
_CONTROLS = [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]
ESCAPES = {c: f"\\x{c:02x}" for c in _CONTROLS} | {c: f"\\u{c:04x}" for c in _BIDI}


def shown(text: str) -> str:
    """`text` with every character that would drive a terminal written as its escape."""
    return text.translate(ESCAPES)


def as_shown(text: str) -> str:
    """`text` as stdout will show it: escaped if stdout is a terminal (columns are measured
    on this, or a row holding an escaped name no longer lines up), else as it is."""
    return shown(text) if isinstance(sys.stdout, _Escaping) else text


class _Escaping:
    """A text stream that writes through `shown`; everything else is the stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(shown(text))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def escaping_on_a_terminal(stream: TextIO) -> TextIO:
    """`stream` (one writing to stdout's bytes, as `export` does), escaping if stdout is a
    terminal."""
    isatty = getattr(sys.stdout, "isatty", None)
    return _Escaping(stream) if isatty is not None and isatty() else stream  # type: ignore[return-value]


def escape_stdout_on_a_terminal() -> None:
    """Make stdout escape what would drive a terminal, if it is one. stderr is left as it is:
    the progress bar draws with carriage returns there, and what it says of names is quoted
    (bot.words.quoted escapes them)."""
    isatty = getattr(sys.stdout, "isatty", None)
    if isatty is not None and not isinstance(sys.stdout, _Escaping) and isatty():
        sys.stdout = _Escaping(sys.stdout)  # type: ignore[assignment]
