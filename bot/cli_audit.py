"""`referral-bot audit` and `referral-bot leads`: the audit log and the team leads, from a shell.

Shell users are trusted admins: `leads add` / `leads remove` need no approval, and are recorded
in the audit log as done by "cli". User ids are taken as given (there is no Slack client here
to ask who they are), so only their shape is checked.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from bot.audit import CLI, Entry, recent, sentence
from bot.cli_common import JSON_HELP, MAX_INT, TEAM_HELP, CliError, more_with_limit, positive
from bot.leads import LeadsError, add_lead, is_user_id, leads, remove_lead
from bot.settings import Settings
from bot.words import quoted
from models import Database
from models.clock import as_utc

COMMANDS = ("audit", "leads")
DEFAULT_LIMIT = 50  # without --since
SINCE_LIMIT = 100_000  # with --since: everything since then, within reason
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)>$")
# a mention pasted from Slack, <@U123> or <@U123|name>, as TEAM_LEADS takes it
_PASTED = re.compile(r"^<@([^|>]*)(?:\|[^>]*)?>$")


def add_parsers(sub: Any) -> None:
    audit = sub.add_parser("audit", help="who did what and when (newest first)")
    audit.add_argument("--since", metavar="DATE",
                       help="only entries from then on: YYYY-MM-DD or an ISO datetime (UTC)")
    audit.add_argument("--limit", type=positive, metavar="N",
                       help=f"at most N entries (default {DEFAULT_LIMIT}, or "
                            f"{SINCE_LIMIT:,} with --since)")  # fmt: skip
    audit.add_argument("--team", help=TEAM_HELP)
    audit.add_argument("--json", action="store_true",
                       help='a JSON list of {"at", "actor", "action", "subject", "detail"}')

    lds = sub.add_parser("leads", help="list, add or remove team leads",
                         description="Without an ACTION: the workspace's team leads (its admins "
                                     "and owners count as leads too).")  # fmt: skip
    lds.add_argument("--team", help=TEAM_HELP)
    lds.add_argument("--json", action="store_true", help=JSON_HELP)
    actions = lds.add_subparsers(dest="leads_command", metavar="ACTION")
    for name, text in (("add", "make a Slack user a team lead"),
                       ("remove", "take a Slack user off the team leads")):  # fmt: skip
        cmd = actions.add_parser(name, help=text)
        cmd.add_argument("user_id", metavar="USER_ID", help="a Slack user id, e.g. U012AB3CD")
        # SUPPRESS: `leads --team T add U1` keeps T (a subparser's default would overwrite it)
        cmd.add_argument("--team", default=argparse.SUPPRESS, help=TEAM_HELP)
        cmd.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help=JSON_HELP)  # fmt: skip


async def run(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "audit":
        return await _audit(db, team, args)
    try:
        return await _leads(db, team, settings, args)
    except LeadsError as exc:
        raise CliError(str(exc)) from None


def parse_since(value: str) -> datetime:
    """YYYY-MM-DD (midnight UTC) or an ISO datetime (UTC unless it says otherwise)."""
    try:
        if len(value.strip()) == 10:
            day = date.fromisoformat(value.strip())
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CliError(f"--since {quoted(value)}: use YYYY-MM-DD or an ISO datetime like "
                       "2025-03-01T09:30") from None  # fmt: skip
    return as_utc(when)


def _iso(when: datetime) -> str:
    return as_utc(when).isoformat()


def _who(actor: str) -> str:
    return "command line" if actor == CLI else actor


def _line(entry: Entry) -> str:
    at = as_utc(entry.at)
    plain = replace(entry, subject=_MENTION.sub(r"\1", entry.subject))  # <@U1> -> U1
    return f"{at:%Y-%m-%d %H:%M} UTC  {_who(entry.actor):<12}  {sentence(plain)}"


async def _audit(db: Database, team: str, args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else None
    limit = args.limit if args.limit is not None else (SINCE_LIMIT if since else DEFAULT_LIMIT)
    # one more than shown: whether older entries were left out, without counting them all
    entries = await recent(db, team, limit=min(limit + 1, MAX_INT), since=since)
    more = len(entries) > limit
    entries = entries[:limit]
    if args.json:
        rows = [{"at": _iso(e.at), "actor": e.actor, "action": e.action, "subject": e.subject,
                 "detail": e.detail} for e in entries]  # fmt: skip
        print(json.dumps(rows))
        if more:  # on stderr: the output stays the list scripts read (as `jobs` does)
            print(_older(limit), file=sys.stderr)
        return 0
    if not entries:
        print("No audit entries" + (" since then." if since else " yet."))
    for entry in entries:
        print(_line(entry))
    if more:
        print(_older(limit))
    return 0


def _older(limit: int) -> str:
    """Under a log cut at --limit: it stopped at the 50th entry without a word."""
    showing = "the newest entry" if limit == 1 else f"the newest {limit:,} entries"
    return more_with_limit(showing, "There are older ones", limit)


def _user(value: str) -> str:
    user_id = value.strip()
    if pasted := _PASTED.match(user_id):
        user_id = pasted.group(1).strip()
    user_id = user_id.upper()
    if not is_user_id(user_id):
        raise CliError(f"{quoted(value)} isn't a Slack user id (like U012AB3CD: in Slack, a "
                       "profile's ⋮ menu › Copy member ID).")  # fmt: skip
    return user_id


async def _leads(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    seed = settings.team_leads
    action = getattr(args, "leads_command", None)
    if action is None:
        listed = await leads(db, team, seed)
        if args.json:
            print(json.dumps([{"user_id": lead.user_id, "added_by": lead.added_by,
                               "added_at": _iso(lead.added_at)} for lead in listed]))  # fmt: skip
        elif not listed:
            print("No team leads are listed (workspace admins and owners count as leads).")
        for lead in [] if args.json else listed:
            print(f"{lead.user_id}  added by {_who(lead.added_by)} on {lead.added_at:%Y-%m-%d}")
        return 0
    user_id = _user(args.user_id)
    if action == "add":
        changed = await add_lead(db, team, user_id, by=CLI, seed=seed)
        message = (f"{user_id} is now a team lead. Slack is asked whether they are a member "
                   "of this workspace the first time they act: a guest, or someone of another "
                   "organisation, leaves the list then.") if changed else (
            f"{user_id} was a team lead already.")  # fmt: skip
    else:
        changed = await remove_lead(db, team, user_id, by=CLI, seed=seed)
        if not changed:
            raise CliError(f"{user_id} isn't a team lead.")
        message = f"{user_id} is no longer a team lead."
    if args.json:
        print(json.dumps({"user_id": user_id, "changed": changed}))
    else:
        print(message)
    return 0
