"""`referral-bot contacts search Q` and `contacts delete EMAIL`: what `/referral contacts` does,
from a shell (its user is a trusted admin: the audit log names the actor "cli")."""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from typing import Any

from bot.audit import CLI
from bot.cli_common import JSON_HELP, TEAM_HELP, CliError, more_with_limit, positive
from bot.contact_admin import (
    ContactError,
    ContactGone,
    delete_contact,
    deleted_detail,
    find_by_email,
    search,
    typed_check,
)
from bot.settings import Settings
from bot.terminal import as_shown
from bot.words import quoted
from models import Database

COMMANDS: tuple[str, ...] = ("contacts",)
SEARCH_KEYS = ("email", "first_name", "last_name", "segments", "subscribed", "unsubscribed")
DEFAULT_LIMIT = 50


def add_parsers(sub: Any) -> None:
    contacts = sub.add_parser("contacts", help="find a contact, or delete one everywhere")
    contacts.add_argument("--team", help=TEAM_HELP)
    contacts.add_argument("--json", action="store_true", help=JSON_HELP)
    actions = contacts.add_subparsers(dest="contacts_command", metavar="ACTION", required=True)

    find = actions.add_parser("search", help="contacts whose email, first or last name starts "
                              "with Q (ignoring case)")  # fmt: skip
    find.add_argument("query", metavar="Q", help="the start of an email address, a first or "
                      'last name, or a full name ("ada love")')  # fmt: skip
    find.add_argument("--limit", type=positive, default=DEFAULT_LIMIT, metavar="N",
                      help=f"at most N contacts (default {DEFAULT_LIMIT})")  # fmt: skip

    delete = actions.add_parser("delete", help="delete a contact from segments and campaigns; "
                                "its referral links stop working")  # fmt: skip
    delete.add_argument("email", metavar="EMAIL", help="the contact's email address (any case)")
    # SUPPRESS: an option given before the action (`contacts --team T search ...`) stays set
    for action in (find, delete):
        action.add_argument("--team", default=argparse.SUPPRESS, help=TEAM_HELP)
        action.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                            help=JSON_HELP)  # fmt: skip


async def run(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.contacts_command == "delete":
            return await _delete(db, team, args)
        return await _search(db, team, args)
    except ContactError as exc:
        raise CliError(str(exc)) from None


async def _search(db: Database, team: str, args: argparse.Namespace) -> int:
    page = await search(db, team, args.query, limit=args.limit)
    if not page.query:  # blank, once spaces and characters that show nothing are left out
        # (contact_admin.searched)
        raise CliError("Name what to search for: the start of an email, a first name or a last "
                       "name (Q is blank).")  # fmt: skip
    rows = [{"email": h.email, "first_name": h.first_name, "last_name": h.last_name,
             "segments": list(h.segments), "subscribed": h.subscribed,
             "unsubscribed": h.unsubscribed}
            for h in page.hits]  # fmt: skip
    if args.json:
        print(json.dumps(rows))  # ASCII: \u escapes read the same on any terminal
        if page.more:  # on stderr: the output stays the list scripts read (as `jobs` does)
            print(_more(args.limit), file=sys.stderr)
        return 0
    if not rows:
        print(f"No contact's email, first name or last name starts with {quoted(args.query)}.")
        return 0
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    lines = [HEADER, *([as_shown(cell) for cell in _line(r)] for r in rows)]
    widths = [max(display_width(line[i], encoding) for line in lines)
              for i in range(len(HEADER) - 1)]  # fmt: skip
    for line in lines:
        padded = [pad(cell, width, encoding)
                  for cell, width in zip(line[:-1], widths, strict=True)]  # fmt: skip
        print("  ".join([*padded, line[-1]]))
    if page.more:
        print(_more(args.limit))
    return 0


# The columns of a search, named on a first line: without it, "not subscribed" and a list of
# segments were left to be guessed at. Each column is as wide as its widest cell in this
# output (the last, segments, runs on).
HEADER = ("Email", "Name", "Subscription", "Segments")


def _line(row: dict[str, Any]) -> tuple[str, str, str, str]:
    """A contact's cells, in HEADER's order."""
    name = " ".join(p for p in (row["first_name"], row["last_name"]) if p)
    consent = ("subscribed" if row["subscribed"] else
               "unsubscribed" if row["unsubscribed"] else "not subscribed")  # fmt: skip
    return row["email"], name, consent, ", ".join(row["segments"]) or "(All Customers only)"


def display_width(text: str, encoding: str = "utf-8") -> int:
    """The columns `text` takes in a terminal: two for a wide or fullwidth character (East
    Asian Width W or F: CJK, kana, hangul), none for a combining mark or an invisible one,
    one for any other. Padded by its length, `悠斗 田中` (5 characters, 9 columns) ran four
    columns into the next one, and every later column of its row with it. A character the
    terminal's `encoding` lacks is printed as its escape (bot.cli: `\\u60a0` under LANG=C),
    and takes that escape's length."""
    return sum(_columns(c, encoding) for c in text)


def _columns(char: str, encoding: str) -> int:
    """The columns one character takes (see display_width)."""
    try:
        char.encode(encoding)
    except UnicodeEncodeError:
        return len(char.encode(encoding, "backslashreplace"))
    if unicodedata.category(char) in ("Mn", "Me", "Cf", "Cc"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def pad(text: str, width: int, encoding: str) -> str:
    """`text` with spaces after it up to `width` columns (display_width)."""
    return text + " " * max(width - display_width(text, encoding), 0)


def _more(limit: int) -> str:
    """Under a search cut at --limit: it said "(more match: use --limit to see more than 50)",
    which left the reader to guess a number."""
    showing = "the first contact" if limit == 1 else f"the first {limit:,} contacts"
    return more_with_limit(showing, "More match", limit)


async def _delete(db: Database, team: str, args: argparse.Namespace) -> int:
    """Delete the contact with the address given: found, then deleted by its id only while
    the id still names that address (contact_admin.typed_check)."""
    contact_id = await find_by_email(db, team, args.email)
    try:
        result = await delete_contact(db, team, contact_id, CLI, check=typed_check(args.email))
    except ContactGone:
        raise CliError(f"No contact with the email {quoted(args.email.strip())} in this workspace "
                       "any more: it was deleted meanwhile. Nothing else was deleted.") from None
    if args.json:
        print(json.dumps({"email": result.email, "segments": result.segments,
                          "campaigns": result.advocates, "invites": result.invites}))  # fmt: skip
    else:
        print(f"Deleted {result.email} {deleted_detail(result)}.")
    return 0
