"""`referral-bot segments` and `export`: segments with their sizes, a segment as CSV."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from bot.cli_common import CliError
from bot.contacts import EXPORT_COLUMNS, segment_contacts
from bot.imports.batches import neutralise
from bot.settings import Settings
from bot.workspaces import find_segment, segment_sizes
from models import Database

COMMANDS = ("segments", "export")


def add_parsers(sub: Any) -> None:
    seg = sub.add_parser("segments", help="list segments and their sizes")
    seg.add_argument("--team")
    seg.add_argument("--json", action="store_true")

    exp = sub.add_parser("export", help="write a segment's contacts as CSV to stdout")
    exp.add_argument("--segment", required=True)
    exp.add_argument("--team")


async def run(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "export":
        return await _export(db, team, args)
    return await _segments(db, team, args)


async def _segments(db: Database, team: str, args: argparse.Namespace) -> int:
    sizes = await segment_sizes(db, team)
    if args.json:
        print(json.dumps([{"name": s.name, "kind": s.kind, "contacts": n} for s, n in sizes]))
    else:
        width = max(len(s.name) for s, _ in sizes)
        for segment, count in sizes:
            print(f"{segment.name:<{width}}  {count:>10,}")
    return 0


async def _export(db: Database, team: str, args: argparse.Namespace) -> int:
    segment = await find_segment(db, team, args.segment)
    if segment is None or segment.id is None:
        raise CliError(f"No segment named {args.segment!r}.")
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    async for row in segment_contacts(db, team, segment.id):
        writer.writerow(neutralise(list(row)))
    return 0
