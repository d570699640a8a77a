"""`referral-bot mappings`: the column mappings a workspace remembered, and forgetting one.

A mapping chosen in Slack's *Map columns* or with `import --map` is remembered for that set
of headers, and every later file with them is read with it: a wrong choice kept importing
the wrong column, and nothing showed what was remembered or let it go. Shell users are
trusted admins: `forget` needs no approval.

A mapping is kept by a hash of its headers (mapping.headers_key), which is also what names it
here: its first hex digits, as many as tell it from the workspace's others (as git shortens
a commit). Rows are the workspace's only: another workspace's id is not found.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from bot.audit import CLI
from bot.cli_common import JSON_HELP, TEAM_HELP, CliError
from bot.imports.mapping import (
    FIELDS,
    NTH,
    Remembered,
    forget_mapping,
    remembered_mappings,
    shown_name,
)
from bot.settings import Settings
from bot.words import quoted
from models import Database
from models.clock import as_utc

COMMANDS: tuple[str, ...] = ("mappings",)
ID_DIGITS = 8  # hex digits of an id, more only where two of a workspace's ids share them
MIN_ID_DIGITS = 4  # fewer digits than this name no mapping with any confidence
SHOWN_HEADERS = 8  # header names a listing shows, then how many more
SHOWN_CHARS = 30  # characters of each name shown
_HEX = re.compile(r"[0-9a-f]+")


def mapping_id(text: str) -> str:
    """An id as `mappings` lists it (hex digits, any case), else a usage error (exit 2)."""
    value = text.strip().lower()
    if not _HEX.fullmatch(value) or len(value) < MIN_ID_DIGITS:
        raise argparse.ArgumentTypeError(
            f"{quoted(text)} isn't a mapping id: give the id `referral-bot mappings` lists (hex "
            f"digits, at least {MIN_ID_DIGITS})")  # fmt: skip
    return value


def add_parsers(sub: Any) -> None:
    maps = sub.add_parser(
        "mappings", help="list the column mappings remembered, or forget one",
        description="Without an ACTION: the column mappings the workspace remembered (chosen "
                    "in Slack's Map columns or with import --map), the latest first.")  # fmt: skip
    maps.add_argument("--team", help=TEAM_HELP)
    maps.add_argument("--json", action="store_true", help=JSON_HELP)
    actions = maps.add_subparsers(dest="mappings_command", metavar="ACTION")
    forget = actions.add_parser(
        "forget", help="forget a remembered mapping: files with its headers are read by "
                       "their column names again")  # fmt: skip
    forget.add_argument("mapping_id", type=mapping_id, metavar="ID",
                        help="the mapping's id, as `referral-bot mappings` lists it")
    # SUPPRESS: `mappings --team T forget ID` keeps T (a subparser's default would overwrite it)
    forget.add_argument("--team", default=argparse.SUPPRESS,
                        help=TEAM_HELP)
    forget.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help=JSON_HELP)


async def run(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    remembered = await remembered_mappings(db, team)
    ids = short_ids([m.key for m in remembered])
    if getattr(args, "mappings_command", None) == "forget":
        return await _forget(db, team, remembered, ids, args)
    if args.json:
        print(json.dumps([_as_json(m, ids[m.key]) for m in remembered]))
        return 0
    if not remembered:
        print("No column mappings are remembered in this workspace.")
    for mapping in remembered:
        print(_lines(mapping, ids[mapping.key]))
    return 0


def short_ids(keys: list[str]) -> dict[str, str]:
    """Each key's id: its first ID_DIGITS hex digits, or as many more as tell it from the
    others' (two of a few mappings sharing eight digits is a one in a billion chance)."""
    digits = ID_DIGITS
    while digits < 64 and len({key[:digits] for key in keys}) < len(set(keys)):
        digits += 1
    return {key: key[:digits] for key in keys}


async def _forget(db: Database, team: str, remembered: list[Remembered], ids: dict[str, str],
                  args: argparse.Namespace) -> int:  # fmt: skip
    """Forget the one mapping of the workspace whose key starts with the id given."""
    wanted: str = args.mapping_id
    found = [m for m in remembered if m.key.startswith(wanted)]
    if not found:
        raise CliError(f"No mapping {wanted} in this workspace.")
    if len(found) > 1:
        listed = ", ".join(ids[m.key] for m in found)
        raise CliError(f"The id {wanted} fits {len(found)} mappings ({listed}): give the whole "
                       "id `referral-bot mappings` lists.")  # fmt: skip
    (mapping,) = found
    if not await forget_mapping(db, team, mapping.key):  # forgotten by another meanwhile
        raise CliError(f"No mapping {wanted} in this workspace.")
    if args.json:
        print(json.dumps({"forgotten": _as_json(mapping, ids[mapping.key])}))
    else:
        print(f"Forgot mapping {ids[mapping.key]} ({_columns_text(mapping)}). Files with "
              "those headers are read by their column names again; choose their columns with "
              "Map columns in Slack or import --map.")  # fmt: skip
    return 0


def _lines(mapping: Remembered, id_: str) -> str:
    """A mapping as `mappings` lists it: its id and headers, its columns, who chose it."""
    headers = (_shortened(mapping.header) if mapping.header is not None
               else "(headers not kept, as for a mapping given with import --map)")  # fmt: skip
    return (f"{id_}  {headers}\n"
            f"{' ' * len(id_)}  {_columns_text(mapping)}\n"
            f"{' ' * len(id_)}  chosen {_by(mapping.chosen_by)} on "
            f"{as_utc(mapping.chosen_at):%Y-%m-%d %H:%M} UTC")  # fmt: skip


def _shortened(header: list[str]) -> str:
    """The header's non-blank names, each cut to SHOWN_CHARS, the first SHOWN_HEADERS of
    them: a wide export's hundred columns, or a long one's cells, are no listing."""
    named = [h.strip() for h in header if h.strip()]
    shown = [quoted(n if len(n) <= SHOWN_CHARS else n[: SHOWN_CHARS - 1] + "…")
             for n in named[:SHOWN_HEADERS]]  # fmt: skip
    if not shown:
        return "(no names)"
    more = len(named) - SHOWN_HEADERS
    return ", ".join(shown) + (f" and {more:,} more" if more > 0 else "")


def _columns_text(mapping: Remembered) -> str:
    """"email -> 'Work Mail', first_name -> 'Given'": the fields it maps, as fields are
    named to --map; a repeated or blank header is named by which column it is (shown_name)."""
    return ", ".join(f"{name} -> {shown_name(column)}"
                     for name, column in mapping.mapping.items() if column is not None)


def _by(actor: str) -> str:
    return "from the command line" if actor == CLI else f"by {actor}"


def _as_json(mapping: Remembered, id_: str) -> dict[str, Any]:
    """A mapping as `--json` gives it: its headers whole (null when not kept), and each
    mapped field's column with which of the columns so named it is (`nth`: 2 for the second
    "Email"; blank names count among the blank ones)."""
    columns = []
    for name in FIELDS:
        column = getattr(mapping.mapping, name)
        if column is not None:
            header, _, nth = column.partition(NTH)
            columns.append({"field": name, "column": header,
                            "nth": int(nth) if nth.isdigit() else 1})  # fmt: skip
    return {"id": id_, "headers": mapping.header, "columns": columns,
            "chosen_by": mapping.chosen_by, "chosen_at": as_utc(mapping.chosen_at).isoformat()}
