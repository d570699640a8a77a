"""`referral-bot mailchimp ...`: connect by API key, see the connection and the audiences."""

from __future__ import annotations

import argparse
import getpass
import json
import shlex
import sys
from datetime import datetime
from typing import Any

from bot.audit import CLI
from bot.cli_common import JSON_HELP, TEAM_HELP
from bot.home_refresh import queue_home_refresh
from bot.mailchimp import accounts, api
from bot.mailchimp.secrets import CredentialsUnreadable, SecretKeyMissing
from bot.settings import Settings
from bot.words import quoted
from models import Database
from models.clock import as_utc


class MailchimpCliError(Exception):
    """Reported like every CLI error: on stderr, or as {"error": ...} with --json."""


def add_parsers(sub: Any) -> None:
    mc = sub.add_parser("mailchimp", help="connect Mailchimp and list its audiences")
    mc.add_argument("--team", help=TEAM_HELP)
    actions = mc.add_subparsers(dest="mailchimp_command", metavar="ACTION", required=True)
    connect = actions.add_parser("connect", help="connect with an API key (checked first)")
    connect.add_argument("--api-key", metavar="KEY",
                         help="e.g. 0123abcd...-us21; without it (or with -) the key is read "
                              "from stdin, or asked for without echo on a terminal, and stays "
                              "out of the shell's history")  # fmt: skip
    for name, text in (("status", "the connection"), ("lists", "the audiences")):
        cmd = actions.add_parser(name, help=text)
        cmd.add_argument("--json", action="store_true", help=JSON_HELP)
    actions.add_parser("disconnect", help="forget the credentials of the account connected "
                                          "now, whoever connected it (it says which)")
    for action in actions.choices.values():
        # SUPPRESS: `mailchimp --team T status` keeps the T given before the action too
        action.add_argument("--team", default=argparse.SUPPRESS, help=TEAM_HELP)


Chosen = tuple[api.Credentials, list[api.Audience]]


async def resolve_audiences(db: Database, team: str, settings: Settings,
                            wanted: list[str]) -> Chosen:  # fmt: skip
    """`--mailchimp-list ID_OR_NAME` values -> the audiences (by id, or by name ignoring case).

    Mailchimp lets audiences share a name: such a name is refused with their ids, not taken
    to mean the first (whose members may be another shop's). One audience named twice (by
    its id, then its name) is imported once: read twice, its members were counted twice."""
    creds, known = await _audiences(db, team, settings)
    chosen = []
    for value in wanted:
        match = [a for a in known if a.id == value] or [
            a for a in known if a.name.casefold() == value.casefold()]  # fmt: skip
        if not match:
            names = ", ".join(f"{quoted(a.name)} ({a.id})" for a in known) or "none"
            raise MailchimpCliError(f"No Mailchimp audience {quoted(value)}. Audiences: {names}.")
        if len(match) > 1:
            ids = ", ".join(f"{quoted(a.name)} ({a.id})" for a in match)
            raise MailchimpCliError(f"{len(match)} audiences are named {quoted(value)}: {ids}. "
                                    "Give the id of the one to import with --mailchimp-list.")
        if match[0] not in chosen:
            chosen.append(match[0])
    return creds, chosen


async def _audiences(db: Database, team: str,
                     settings: Settings) -> tuple[api.Credentials, list[api.Audience]]:  # fmt: skip
    """The saved credentials and the account's audiences; MailchimpCliError, in words, if
    either can't be had (a revoked key or Mailchimp down gave a traceback). A refusal is
    recorded, so App Home says so from now on, as after an import in Slack."""
    try:
        creds, stamp = await accounts.stamped_credentials(db, team, settings.secret_key)
    except (api.MailchimpError, SecretKeyMissing, CredentialsUnreadable) as exc:
        raise MailchimpCliError(str(exc)) from None
    try:
        return creds, await api.audiences(creds)
    except api.ReconnectNeeded as exc:
        await accounts.refused_from_now_on(db, team, stamp)
        raise MailchimpCliError(str(exc)) from None
    except api.MailchimpError as exc:
        raise MailchimpCliError(str(exc)) from None


def _api_key(given: str | None) -> str:
    """The key given with --api-key, else read from stdin (`-` too), asked for without echo on
    a terminal: a key typed on the command line stays in the shell's history and shows in
    the process list."""
    if given is not None and given != "-":
        return given
    if sys.stdin.isatty():
        key = getpass.getpass("Mailchimp API key (not shown): ")
    else:
        key = sys.stdin.readline()
    if not key.strip():
        raise MailchimpCliError("No API key given: pipe it in, type it when asked, or pass "
                                "--api-key KEY.")  # fmt: skip
    return key.strip()


async def run(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    command = args.mailchimp_command
    try:
        if command == "connect":
            try:
                found = await accounts.connect_api_key(
                    db, team, _api_key(args.api_key), user=CLI, secret_key=settings.secret_key,
                    api_url=settings.mailchimp_api_url)  # fmt: skip
            except api.ReconnectNeeded:  # nothing was connected: "reconnect in Slack" misled
                raise MailchimpCliError(f"{accounts.KEY_REFUSED} Nothing was saved.") from None
            print(f"Mailchimp connected (data centre {found.dc}).")
        elif command == "disconnect":
            gone = await accounts.disconnect(db, team)
            print(_disconnected(gone) if gone else "Mailchimp wasn't connected: nothing was "
                                                   "disconnected.")  # fmt: skip
        elif command == "status":
            found = await accounts.connection(db, team)
            # the same keys connected or not: null where there is nothing to say
            out: dict[str, Any] = {"connected": found is not None, "account": None, "dc": None,
                                   "auth": None, "connected_by": None, "connected_at": None,
                                   "health": None, "problem": None}  # fmt: skip
            if found is not None:
                # asked of Mailchimp, as /referral mailchimp does: a revoked token or a
                # deleted key stays saved, and was said "connected"
                checked = await accounts.check_credentials(db, team, settings.secret_key)
                if checked.changed:  # what Home says of it: refreshed by serve's worker
                    await queue_home_refresh(db, team)
                out.update(account=found.account_name or None, dc=found.dc, auth=found.auth,
                           connected_by=found.connected_by,
                           connected_at=found.connected_at.isoformat(),
                           health=str(checked.health),
                           problem=checked.reason or None)  # fmt: skip
            print(json.dumps(out) if args.json else _status_text(out, _team_flag(args)))
        else:
            _, audiences = await _audiences(db, team, settings)
            rows = [{"id": a.id, "name": a.name, "subscribed": a.subscribed} for a in audiences]
            if args.json:
                print(json.dumps(rows))
            for row in [] if args.json else rows:
                print(f"{row['id']}  {row['name']}  ({row['subscribed']:,} subscribed)")
    except (api.MailchimpError, SecretKeyMissing, CredentialsUnreadable) as exc:
        raise MailchimpCliError(str(exc)) from None
    return 0


def _disconnected(gone: accounts.Connection) -> str:
    """What `disconnect` forgot, by name: it acts on whatever is connected when it runs,
    which may be an account another lead connected since the status was last looked at."""
    name = gone.account_name or f"the account in data centre {gone.dc}"
    if gone.login_email:
        name += f" ({gone.login_email})"
    by = _by(gone.connected_by)
    when = (f" on {as_utc(gone.connected_at):%Y-%m-%d %H:%M} UTC"
            if isinstance(gone.connected_at, datetime) else "")  # fmt: skip
    return f"Mailchimp disconnected: {name}, connected {by}{when}."


def _by(connected_by: str) -> str:
    """Who connected it, after "connected": the shell's own actor in words (its id, "cli",
    is no person's)."""
    return "from the command line" if connected_by == CLI else f"by {connected_by}"


def _team_flag(args: argparse.Namespace) -> str:
    """" --team T" when the command was given one: the advice's command must name the same
    workspace (without it, it connects the only workspace, or is refused among several)."""
    team = getattr(args, "team", None)
    return f" --team {shlex.quote(team)}" if team else ""


def _status_text(out: dict[str, Any], team_flag: str = "") -> str:
    connect = f"referral-bot mailchimp connect{team_flag}"
    if not out["connected"]:
        # the command that asks for the key: one typed after --api-key stays in the history
        return f"Mailchimp isn't connected: {connect} (it asks for the key)"
    name = out["account"] or f"data centre {out['dc']}"
    said = (f"Mailchimp connected: {name}, {_by(out['connected_by'])} on {out['connected_at']} "
            f"({'sign-in' if out['auth'] == 'oauth' else 'API key'}).")
    again = f"connect again: {connect} (it asks for the key), or Connect Mailchimp in Slack"
    if out["health"] == accounts.Health.REFUSED:
        return (f"{said} But Mailchimp refuses its credentials (revoked, or the key "
                f"deleted): {again}")
    if out["health"] == accounts.Health.UNREADABLE:
        return (f"{said} But its credentials can't be read with this SECRET_KEY (changed, or "
                f"missing): set the one they were saved with, or {again}")
    if out["health"] == accounts.Health.UNANSWERED:
        return f"{said} Mailchimp couldn't be asked whether it still accepts them: {out['problem']}"
    return said
