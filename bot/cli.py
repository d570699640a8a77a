"""The `referral-bot` command: imports, segments, export and database upkeep from a shell.

Shell users are trusted admins, so `import` runs the whole pipeline at once (Slack adds the
review and approval steps).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bot.contacts import EXPORT_COLUMNS, segment_contacts
from bot.imports.batches import neutralise
from bot.imports.importer import ImportFailed, import_files
from bot.progress import ProgressBar
from bot.settings import Settings, SettingsError, load_settings
from bot.workspaces import WorkspaceError, find_segment, resolve_team, segment_sizes
from models import Database
from models.migrate import ensure_schema, upgrade

SUMMARY_KEYS = ("rows", "valid", "duplicates", "rejected", "new_contacts", "existing_contacts",
                "added_to_segment", "already_in_segment", "warnings", "segment")  # fmt: skip


class CliError(Exception):
    """A failure to report on stderr (and as {"error": ...} with --json), exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="referral-bot", description="Import referral-program contacts into segments."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('referral-bot')}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    imp = sub.add_parser("import", help="import CSV files into a static segment")
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    imp.add_argument("--segment", required=True, help="name of the static segment")
    imp.add_argument("--create-segment", action="store_true", help="create it if missing")
    imp.add_argument("--team", help="Slack team id (default: the only workspace)")
    imp.add_argument("--rejects", type=Path, metavar="OUT.csv",
                     help="write rejected and duplicate rows with their reasons")  # fmt: skip
    imp.add_argument("--update-existing", action="store_true",
                     help="overwrite names and locale of contacts that already exist")  # fmt: skip
    imp.add_argument("--json", action="store_true", help="print one JSON object")

    seg = sub.add_parser("segments", help="list segments and their sizes")
    seg.add_argument("--team")
    seg.add_argument("--json", action="store_true")

    exp = sub.add_parser("export", help="write a segment's contacts as CSV to stdout")
    exp.add_argument("--segment", required=True)
    exp.add_argument("--team")

    db = sub.add_parser("db", help="database upkeep")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_sub.add_parser("upgrade", help="apply schema migrations")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    as_json = getattr(args, "json", False)
    try:
        settings = load_settings()
        return asyncio.run(_run(args, settings))
    except (CliError, SettingsError, WorkspaceError, ImportFailed) as exc:
        if as_json:
            print(json.dumps({"error": str(exc)}))
        print(f"referral-bot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("referral-bot: interrupted", file=sys.stderr)
        return 130


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        if args.command == "db":
            await upgrade(db)
            print("Database schema is up to date.")
            return 0
        await ensure_schema(db)
        team = await resolve_team(db, args.team, default_locale=settings.default_locale)
        handler = {"import": _import, "segments": _segments, "export": _export}[args.command]
        return await handler(db, team, args)
    finally:
        await db.dispose()


async def _import(db: Database, team: str, args: argparse.Namespace) -> int:
    for path in args.files:
        if not path.is_file():
            raise CliError(f"{path}: no such file")
    with ExitStack() as stack:
        streams = [(p.name, stack.enter_context(p.open("rb"))) for p in args.files]
        total = sum(os.fstat(f.fileno()).st_size for _, f in streams)
        bar = ProgressBar(total, enabled=sys.stderr.isatty() and not args.json)
        rejects = stack.enter_context(args.rejects.open("w", newline="")) if args.rejects else None
        result = await import_files(db, team, streams, segment=args.segment,
                                    create_segment=args.create_segment,
                                    update_existing=args.update_existing,
                                    rejects=rejects, progress=bar)  # fmt: skip
    summary: dict[str, Any] = {key: getattr(result.batch, key, None) for key in SUMMARY_KEYS}
    summary["segment"] = result.segment_name
    if args.json:
        print(json.dumps(summary))
    else:
        print(_readable(summary, args.rejects, result.rejected_rows))
    return 0


def _readable(s: dict[str, Any], rejects: Path | None, written: int) -> str:
    lines = [
        f"Imported into segment {s['segment']!r}:",
        f"  {s['rows']:>10,} rows read",
        f"  {s['valid']:>10,} valid ({s['new_contacts']:,} new contacts, "
        f"{s['existing_contacts']:,} already known)",
        f"  {s['added_to_segment']:>10,} added to the segment "
        f"({s['already_in_segment']:,} were already in it)",
        f"  {s['duplicates']:>10,} duplicates skipped",
        f"  {s['rejected']:>10,} rejected",
    ]
    if s["warnings"]:
        lines.append(f"  {s['warnings']:>10,} warnings (unknown locale: workspace default used)")
    if rejects is not None:
        lines.append(f"Wrote {written:,} rejected and duplicate rows to {rejects}")
    elif s["duplicates"] or s["rejected"]:
        lines.append("Use --rejects OUT.csv to see every skipped row and why.")
    return "\n".join(lines)


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


if __name__ == "__main__":
    raise SystemExit(main())
