"""`referral-bot segments` (list, rename, delete) and `export`: segments from a shell.

Shell users are trusted admins: what Slack keeps for team leads (rename, delete, export) is
open here, recorded in the audit log as "cli".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, TextIO, cast

from bot.audit import CLI
from bot.cli_common import JSON_HELP, TEAM_HELP, CliError, ask_first, write_failed
from bot.cli_contacts import display_width, pad
from bot.segments import (
    CampaignUse,
    SegmentInUse,
    built_in,
    busy_import,
    campaigns_using,
    delete_segment,
    member_count,
    record_export,
    rename_segment,
    uses_key,
    write_export,
)
from bot.settings import Settings
from bot.terminal import as_shown, escaping_on_a_terminal
from bot.words import listed, plural, quoted
from bot.workspaces import WorkspaceError, find_segment, segment_sizes
from models import Database, Segment, SegmentKind, SegmentRole
from models.contacts import ALL_CUSTOMERS

COMMANDS = ("segments", "export")
MAX_CAMPAIGNS_NAMED = 20  # in `segments delete`'s question, as in Slack's


def add_parsers(sub: Any) -> None:
    seg = sub.add_parser("segments", help="list segments and their sizes; rename or delete one",
                         description="Without an ACTION: the segments and how many contacts "
                                     "each holds.")  # fmt: skip
    seg.add_argument("--team", help=TEAM_HELP)
    seg.add_argument("--json", action="store_true", help=JSON_HELP)
    actions = seg.add_subparsers(dest="segments_command", metavar="ACTION")
    # SUPPRESS: an option given before the action (`segments --team T rename ...`) stays set
    rename = actions.add_parser("rename", help="rename a static segment")
    rename.add_argument("old", metavar="OLD", help="its name now (any case)")
    rename.add_argument("new", metavar="NEW", help="the name it gets")
    delete = actions.add_parser("delete", help="delete a static segment (its contacts stay "
                                               f"in {ALL_CUSTOMERS})")  # fmt: skip
    delete.add_argument("name", metavar="NAME", help="the segment's name (any case)")
    delete.add_argument("--yes", "-y", action="store_true",
                        help="don't ask first (needed without a terminal when the segment "
                             "holds contacts or a campaign uses it)")  # fmt: skip
    for action in (rename, delete):
        action.add_argument("--team", default=argparse.SUPPRESS, help=TEAM_HELP)
        action.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                            help=JSON_HELP)  # fmt: skip

    exp = sub.add_parser("export", help="write a segment's contacts as CSV to stdout")
    exp.add_argument("--segment", required=True, metavar="NAME",
                     help="the segment's name (any case)")  # fmt: skip
    exp.add_argument("--team", help=TEAM_HELP)


async def run(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.command == "export":
            return await _export(db, team, args)
        action = getattr(args, "segments_command", None)
        if action == "rename":
            return await _rename(db, team, args)
        if action == "delete":
            return await _delete(db, team, args)
        return await _segments(db, team, args)
    except WorkspaceError as exc:
        raise CliError(str(exc)) from exc


async def _named(db: Database, team: str, name: str, args: argparse.Namespace) -> Segment:
    """The workspace's segment of that name (any case), or a refusal that says where to see
    the names there are: "No segment named 'vip'." left the reader to guess (in another
    workspace, through --team, too)."""
    listing = "`referral-bot segments" + (f" --team {args.team}`" if args.team else "`")
    if not name.strip():
        raise CliError(f"Name a segment: the name given is blank ({listing} lists them).")
    segment = await find_segment(db, team, name)
    if segment is None or segment.id is None:
        raise CliError(f"No segment named {quoted(name)} in this workspace ({listing} lists them).")
    return segment


async def _segments(db: Database, team: str, args: argparse.Namespace) -> int:
    sizes = await segment_sizes(db, team)
    if args.json:
        print(json.dumps([{"name": s.name, "kind": s.kind, "contacts": n} for s, n in sizes]))
    else:
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        names = [as_shown(s.name) for s, _ in sizes]  # as the terminal shows them
        width = max(display_width(name, encoding) for name in names)  # 顧客 takes 4 columns
        for name, (_, count) in zip(names, sizes, strict=True):
            print(f"{pad(name, width, encoding)}  {count:>10,}")
    return 0


async def _rename(db: Database, team: str, args: argparse.Namespace) -> int:
    segment = await _named(db, team, args.old, args)
    renamed = await rename_segment(db, team, segment.id or 0, args.new, actor=CLI)
    if args.json:
        print(json.dumps({"renamed": renamed.old, "to": renamed.new}))
    else:
        print(f"Renamed segment {quoted(renamed.old)} to {quoted(renamed.new)}.")
    return 0


async def _delete(db: Database, team: str, args: argparse.Namespace) -> int:
    segment = await _named(db, team, args.name, args)
    expect = None if args.yes else await _confirmed(db, team, segment, args)
    try:
        deleted = await delete_segment(db, team, segment.id or 0, actor=CLI,
                                       expect_campaigns=expect)  # fmt: skip
    except SegmentInUse as exc:  # its own words say "Click Delete again"
        names = ", ".join(c.name for c in exc.campaigns) or "none"
        raise CliError(f"Nothing was deleted: the campaigns using {quoted(segment.name)} changed "
                       f"while you were asked (now: {names}). Run it again to see what "
                       "deleting it means.") from None  # fmt: skip
    if args.json:
        print(json.dumps({"deleted": deleted.name, "contacts_taken_out": deleted.members,
                          "campaigns": [{"name": c.name, "role": c.role}
                                        for c in deleted.campaigns]}))  # fmt: skip
        return 0
    print(f"Deleted segment {quoted(deleted.name)}{_taken_out(deleted.members)}.")
    for campaign in deleted.campaigns:
        print(f"  {campaign.consequence()}")
    return 0


async def _confirmed(db: Database, team: str, segment: Segment,
                     args: argparse.Namespace) -> str | None:  # fmt: skip
    """Ask before deleting a segment that holds contacts or that campaigns use, as Slack
    does: it was deleted at once, even the segment a live campaign targets. Returns the
    `uses_key` of the campaigns the question named (delete_segment refuses if they changed
    meanwhile), or None when nothing needed asking. A refusal that deletes nothing comes
    first: the question would be for nothing. Without a terminal to ask on, and no --yes,
    nothing is deleted, saying to add --yes."""
    segment_id = segment.id or 0
    if segment.kind != SegmentKind.STATIC:  # All Customers: it "holds no contacts" (no rows
        # of membership) was asked, or to add --yes, before delete_segment refused it
        raise CliError(str(built_in("deleted")))
    if busy := await busy_import(db, team, segment_id):
        raise CliError(busy)
    members = await member_count(db, team, segment_id)
    campaigns = await campaigns_using(db, team, segment_id)
    if not members and not campaigns:
        return None
    stay = "it stays" if members == 1 else "they stay"
    lines = [f"{quoted(segment.name)} holds {plural(members, 'contact')}: {stay} in "
             f"{ALL_CUSTOMERS}; only the segment goes." if members
             else f"{quoted(segment.name)} holds no contacts."]  # fmt: skip
    lines += [f"  {c.consequence()}" for c in campaigns[:MAX_CAMPAIGNS_NAMED]]
    if len(campaigns) > MAX_CAMPAIGNS_NAMED:
        lines.append(f"  …and {plural(len(campaigns) - MAX_CAMPAIGNS_NAMED, 'more campaign')}.")
    ask_first("\n".join(lines), f"Delete segment {quoted(segment.name)}?",
              unasked=f"Nothing was deleted: {_what_it_holds(segment.name, members, campaigns)}",
              add_yes_to="delete it",
              declined=f"Nothing was deleted: {quoted(segment.name)} is kept.")
    return uses_key(campaigns)


def _what_it_holds(name: str, members: int, campaigns: list[CampaignUse]) -> str:
    """What deleting the segment would change, in a clause: "'VIP' holds 2 contacts, and
    Spring targets it", "'VIP' holds no contacts, but Spring targets it and Autumn excludes
    it", "'VIP' holds 1 contact"."""
    holds = f"{quoted(name)} holds {plural(members, 'contact') if members else 'no contacts'}"
    uses = [f"{c.name} {'targets' if c.role == SegmentRole.TARGET else 'excludes'} it"
            for c in campaigns[:MAX_CAMPAIGNS_NAMED]]  # fmt: skip
    if len(campaigns) > MAX_CAMPAIGNS_NAMED:
        uses.append(f"{plural(len(campaigns) - MAX_CAMPAIGNS_NAMED, 'more campaign')} use it")
    if not uses:
        return holds
    return f"{holds}, {'and' if members else 'but'} {listed(uses)}"


def _taken_out(members: int) -> str:
    """What deleting the segment did to its contacts: it said "0 contacts taken out of it
    (they stay in All Customers)" of an empty one, and "they" of one contact."""
    if members == 0:
        return " (it held no contacts)"
    stays = "it stays" if members == 1 else "they stay"
    return f": {plural(members, 'contact')} taken out of it ({stays} in {ALL_CUSTOMERS})"


class _Utf8Bytes:
    """Text written as UTF-8 bytes to a binary stream: what csv.writer needs of a file."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def write(self, text: str) -> int:
        with _told_if_unwritable():
            return self._out.write(text.encode("utf-8"))


@contextmanager
def _told_if_unwritable() -> Iterator[None]:
    """stdout refusing the CSV (a full disk, a quota) as a sentence, not "[Errno 28] No space
    left on device". Only around writes to stdout: a database connection that drops while
    the rows stream is an OSError too, and isn't the output's fault. A reader that closed
    the pipe (`export | head`) stays BrokenPipeError, which main ends quietly."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise write_failed("the export", exc, "export again") from None


def _utf8_stdout() -> TextIO:
    """Where export writes its CSV: stdout's bytes, as UTF-8 whatever the locale (under
    LANG=C the locale's ASCII failed on the first accent, and escapes would make a CSV that
    no longer imports); stdout itself when it has no bytes underneath (a test's StringIO). On a
    terminal what would drive it is escaped (bot.terminal)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        return sys.stdout
    with _told_if_unwritable():
        sys.stdout.flush()  # anything printed before goes first
    return escaping_on_a_terminal(cast(TextIO, _Utf8Bytes(buffer)))


async def _export(db: Database, team: str, args: argparse.Namespace) -> int:
    """The CSV on stdout, then its audit entry: an export stdout refused part way is recorded
    nowhere (nothing of ours changed, and no one has the file)."""
    segment = await _named(db, team, args.segment, args)
    rows = await write_export(db, team, segment.id or 0, _utf8_stdout())
    with _told_if_unwritable():
        sys.stdout.flush()
    await record_export(db, team, CLI, segment.name, rows)
    return 0
