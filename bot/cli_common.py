"""What every `referral-bot` subcommand module shares (kept apart so they needn't import cli)."""

from __future__ import annotations

import argparse
import errno
import re
import sys
from collections.abc import Callable
from typing import Protocol

from bot.ids import MAX_INT as MAX_INT  # the largest id or count every database takes
from bot.settings import Settings
from bot.terminal import shown
from bot.words import quoted
from models import Database

# The help of the options every workspace command takes (most said nothing at all)
TEAM_HELP = "the Slack workspace's team id (default: the only workspace)"
JSON_HELP = "print JSON instead of text"


def positive(text: str) -> int:
    """An id or a --limit: a whole number from 1 to MAX_INT, else a usage error (exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{quoted(text)} isn't a whole number") from None
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


def ask_first(told: str, question: str, *, unasked: str, add_yes_to: str, declined: str,
              refusal: Callable[[str], Exception] = CliError) -> None:  # fmt: skip
    """Ask before a command does something large or lasting (the caller asks only when there
    is something to ask, and not with --yes): `told` (what it would do, a line or more) on
    stderr, then `question` with "[y/N]"; any answer but y or yes raises `refusal(declined)`.
    Without a terminal to ask on (stdin a pipe, a file, or closed: a cron job, a script) it
    asks nothing and raises `refusal` of `unasked` ("Nothing changed: …", what it would do),
    saying to add --yes to `add_yes_to` ("do it") without being asked."""
    if sys.stdin is None or sys.stdin.closed or not sys.stdin.isatty():
        raise refusal(f"{unasked}. Add --yes to {add_yes_to} without being asked (there is no "
                      "terminal to ask on).")  # fmt: skip
    # through `shown`: `told` names campaigns and segments whole, and this is the one place
    # stderr surely reaches a terminal (an escape character in a name drove it)
    print(shown(told), file=sys.stderr)
    print(f"{shown(question)} [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise refusal(declined)


def larger_limit(limit: int) -> int:
    """The --limit to suggest when `limit` left some out: four times as many, rounded up to 1,
    2 or 5 times a power of ten (50 -> 200, 200 -> 1,000), at most MAX_INT."""
    want = limit * 4
    step = 1
    while True:
        for nice in (step, 2 * step, 5 * step):
            if nice >= want:
                return min(nice, MAX_INT)
        step *= 10


def more_with_limit(showing: str, more: str, limit: int) -> str:
    """The line under a listing cut at --limit `limit`: what it shows, that there is more, and
    the --limit that shows more ("Showing the first 50 contacts. More match: add --limit 200
    to see up to 200."). No total: over a million contacts, counting would cost more than the
    page did."""
    bigger = larger_limit(limit)
    if bigger <= limit:  # at MAX_INT already: no larger --limit to offer
        return f"Showing {showing}. {more}."
    return f"Showing {showing}. {more}: add --limit {bigger} to see up to {bigger:,}."


# What errno means in words, and what mends it, where strerror alone wouldn't say
_IN_WORDS = {
    errno.ENOSPC: ("no space left on the device", "free some space"),
    errno.EDQUOT: ("the disk quota is used up", "free some space"),
}


def os_error_words(exc: OSError) -> str:
    """An OSError as words to put after a colon: "no space left on the device", not
    "[Errno 28] No space left on device"."""
    if exc.errno in _IN_WORDS:
        return _IN_WORDS[exc.errno][0]
    reason = exc.strerror or str(exc) or type(exc).__name__
    return reason[:1].lower() + reason[1:]


def os_error_mend(exc: OSError) -> str:
    """What mends `exc` ("free some space"), or "" when nothing general does."""
    return _IN_WORDS.get(exc.errno or 0, ("", ""))[1]


def write_failed(what: str, exc: OSError, again: str) -> CliError:
    """The failure of writing `what` to stdout (a full disk, a quota), in words: main tells it
    as every CliError, on stderr first (stdout is what failed), exit status 1. `again`: what
    to run once it is mended ("export again")."""
    mend = os_error_mend(exc)
    then = f"{mend}, then {again}" if mend else again
    return CliError(f"Couldn't write {what}: {os_error_words(exc)}. The output is incomplete: "
                    f"{then}.")  # fmt: skip


class Subcommands(Protocol):
    """A module that adds commands to `referral-bot`: its names, parsers and runner."""

    COMMANDS: tuple[str, ...]

    def add_parsers(self, sub: argparse._SubParsersAction) -> None: ...  # type: ignore[type-arg]

    async def run(self, db: Database, team: str, settings: Settings,
                  args: argparse.Namespace) -> int: ...  # fmt: skip
