"""The log `serve` and `worker` write: one line per record, whatever the record quotes.

Refusals and failures quote what anyone chose: a Slack file's name (files.upload takes any
`filename`), a workbook's sheet names, a campaign's name. Quoted raw, a line feed in one
wrote a log line of the uploader's making ("2030-01-01 ... WARNING bot.web: ..."), and an
escape character drove the terminal tailing the log. Each record's own line is written
with such characters as their escapes; a traceback below it stays as Python wrote it.
"""

from __future__ import annotations

import logging
from typing import TextIO

from bot.terminal import ESCAPES

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What drives a terminal (bot.terminal.ESCAPES), and what breaks a line: a line feed, and the
# line and paragraph separators
_ESCAPES = ESCAPES | {0x0A: "\\x0a", 0x2028: "\\u2028", 0x2029: "\\u2029"}


class OneLineFormatter(logging.Formatter):
    """A record's line with every character that would break it or drive a terminal
    written as its escape."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record).translate(_ESCAPES)


def log_handler(stream: TextIO | None = None) -> logging.Handler:
    """A handler writing one-line records to `stream` (stderr by default)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter(FORMAT))
    return handler


def configure_logging() -> None:
    """INFO and worse to stderr, one line a record (as logging.basicConfig would, once)."""
    logging.basicConfig(level=logging.INFO, handlers=[log_handler()])
