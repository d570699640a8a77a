"""`referral-bot segments` (list, rename, delete) and `export`: segments from a shell.

Shell users are trusted admins: what Slack keeps for team leads (rename, delete, export) is
open here, recorded in the audit log as "cli".
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, BinaryIO, TextIO, cast

from bot.audit import CLI
from bot.cli_common import CliError
from bot.segments import delete_segment, record_export, rename_segment, write_export
from bot.settings import Settings
from bot.words import plural
from bot.workspaces import WorkspaceError, find_segment, segment_sizes
from models import Database, Segment
from models.contacts import ALL_CUSTOMERS

COMMANDS = ("segments", "export")


def add_parsers(sub: Any) -> None:
    seg = sub.add_parser("segments", help="list segments and their sizes; rename or delete one")
    seg.add_argument("--team")
    seg.add_argument("--json", action="store_true")
    actions = seg.add_subparsers(dest="segments_command", metavar="ACTION")
    # SUPPRESS: an option given before the action (`segments --team T rename ...`) stays set
    rename = actions.add_parser("rename", help="rename a static segment")
    rename.add_argument("old", metavar="OLD")
    rename.add_argument("new", metavar="NEW")
    delete = actions.add_parser("delete", help="delete a static segment (its contacts stay "
                                               f"in {ALL_CUSTOMERS})")  # fmt: skip
    delete.add_argument("name", metavar="NAME")
    for action in (rename, delete):
        action.add_argument("--team", default=argparse.SUPPRESS)
        action.add_argument("--json", action="store_true", default=argparse.SUPPRESS)

    exp = sub.add_parser("export", help="write a segment's contacts as CSV to stdout")
    exp.add_argument("--segment", required=True)
    exp.add_argument("--team")


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


async def _named(db: Database, team: str, name: str) -> Segment:
    segment = await find_segment(db, team, name)
    if segment is None or segment.id is None:
        raise CliError(f"No segment named {name!r}.")
    return segment


async def _segments(db: Database, team: str, args: argparse.Namespace) -> int:
    sizes = await segment_sizes(db, team)
    if args.json:
        print(json.dumps([{"name": s.name, "kind": s.kind, "contacts": n} for s, n in sizes]))
    else:
        width = max(len(s.name) for s, _ in sizes)
        for segment, count in sizes:
            print(f"{segment.name:<{width}}  {count:>10,}")
    return 0


async def _rename(db: Database, team: str, args: argparse.Namespace) -> int:
    segment = await _named(db, team, args.old)
    renamed = await rename_segment(db, team, segment.id or 0, args.new, actor=CLI)
    if args.json:
        print(json.dumps({"renamed": renamed.old, "to": renamed.new}))
    else:
        print(f"Renamed segment {renamed.old!r} to {renamed.new!r}.")
    return 0


async def _delete(db: Database, team: str, args: argparse.Namespace) -> int:
    segment = await _named(db, team, args.name)
    deleted = await delete_segment(db, team, segment.id or 0, actor=CLI)
    if args.json:
        print(json.dumps({"deleted": deleted.name, "contacts_taken_out": deleted.members,
                          "campaigns": [{"name": c.name, "role": c.role}
                                        for c in deleted.campaigns]}))  # fmt: skip
        return 0
    print(f"Deleted segment {deleted.name!r}: {plural(deleted.members, 'contact')} taken out of it "
          f"(they stay in {ALL_CUSTOMERS}).")  # fmt: skip
    for campaign in deleted.campaigns:
        print(f"  {campaign.consequence()}")
    return 0


class _Utf8Bytes:
    """Text written as UTF-8 bytes to a binary stream: what csv.writer needs of a file."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def write(self, text: str) -> int:
        return self._out.write(text.encode("utf-8"))


def _utf8_stdout() -> TextIO:
    """Where export writes its CSV: stdout's bytes, as UTF-8 whatever the locale (under
    LANG=C the locale's ASCII failed on the first accent, and escapes would make a CSV that
    no longer imports); stdout itself when it has no bytes underneath (a test's StringIO)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        return sys.stdout
    sys.stdout.flush()  # anything printed before goes first
    return cast(TextIO, _Utf8Bytes(buffer))


async def _export(db: Database, team: str, args: argparse.Namespace) -> int:
    segment = await _named(db, team, args.segment)
    rows = await write_export(db, team, segment.id or 0, _utf8_stdout())
    sys.stdout.flush()
    await record_export(db, team, CLI, segment.name, rows)
    return 0
