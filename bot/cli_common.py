"""What every `referral-bot` subcommand module shares (kept apart so they needn't import cli)."""

from __future__ import annotations

import argparse
import re
from typing import Protocol

from bot.settings import Settings
from models import Database

# The largest id (and the largest count) every database takes: ids are INTEGER columns, and
# PostgreSQL refused a bigger one with a raw "value out of int32 range" error
MAX_INT = 2**31 - 1


def positive(text: str) -> int:
    """An id or a --limit: a whole number from 1 to MAX_INT, else a usage error (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} isn't a whole number") from None
    if not 1 <= value <= MAX_INT:
        raise argparse.ArgumentTypeError(f"{text} isn't between 1 and {MAX_INT:,}")
    return value


_MENTION = re.compile(r"<@([A-Z0-9]+)>")


def plain_mentions(message: str) -> str:
    """A message written for Slack as a shell shows it: a mention (<@U123>) as the bare user
    id, as `audit` lists who did what, not Slack's markup."""
    return _MENTION.sub(r"\1", message)


class CliError(Exception):
    """A failure to report on stderr (and as {"error": ...} with --json), exit status 1."""


class Subcommands(Protocol):
    """A module that adds commands to `referral-bot`: its names, parsers and runner."""

    COMMANDS: tuple[str, ...]

    def add_parsers(self, sub: argparse._SubParsersAction) -> None: ...  # type: ignore[type-arg]

    async def run(self, db: Database, team: str, settings: Settings,
                  args: argparse.Namespace) -> int: ...  # fmt: skip
