"""`referral-bot undo IMPORT_ID`: take out what a finished import added, at once.

The shell is a trusted admin, so this is the whole undo in one go: the same request as the
Slack button (one transaction, the audit entry, the undo job) and then the job's work in
this process, like `import` without --background. A Slack import's thread is told by the
next worker that can talk to Slack.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bot.audit import CLI
from bot.cli_common import TEAM_HELP, CliError, plain_mentions, positive
from bot.imports.undo import (
    UndoError,
    handed_on_words,
    kept_unsubscribed_in,
    other_advocates,
    undo_now,
    unsubscribed_again_words,
    unsubscribed_words,
)
from bot.settings import Settings
from bot.words import plural, quoted
from models import Database, Segment

COMMANDS: tuple[str, ...] = ("undo",)


def add_parsers(sub: Any) -> None:
    undo = sub.add_parser("undo", help="undo a finished import (within UNDO_WINDOW_DAYS)")
    undo.add_argument("import_id", type=positive, metavar="IMPORT_ID",
                      help="the import's number: N of the `import #N` that `import` and "
                           "`audit` print")  # fmt: skip
    undo.add_argument("--advocates", action="store_true",
                      help="also remove the advocates its own enrollment made (their links "
                           "stop working); those `campaign target` or `live` made of its "
                           "contacts stay, and the advocates of the contacts it deletes "
                           "always go with them")  # fmt: skip
    undo.add_argument("--team", help=TEAM_HELP)
    undo.add_argument("--json", action="store_true", help="print one JSON object")


async def run(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    try:
        batch = await undo_now(db, team, args.import_id, CLI, remove_advocates=args.advocates,
                               window_days=settings.undo_window_days,
                               chunk_size=settings.import_chunk_rows,
                               max_attempts=settings.job_max_attempts,
                               lease_seconds=settings.job_lease_seconds)  # fmt: skip
    except UndoError as exc:
        raise CliError(plain_mentions(str(exc))) from None
    async with db.session() as session:
        segment = await session.get(Segment, batch.segment_id)
    async with db.begin() as conn:  # no confirmation told the shell they stay, so this does
        # the contacts it created that stay because they unsubscribed or were emailed (the
        # line's "N kept: they unsubscribed or were emailed"); the JSON key says both, as an
        # emailed one is still subscribed
        kept = await kept_unsubscribed_in(conn, team, args.import_id)
    name = segment.name if segment is not None else ""
    result = {"import": batch.id, "segment": name, "status": batch.status,
              "removed": batch.undo_removed, "kept_in_segment": batch.undo_handed_on,
              "deleted": batch.undo_deleted, "kept_unsubscribed_or_emailed": kept,
              "invites_cancelled": batch.undo_invites_cancelled,
              "advocates_removed": batch.undo_advocates_removed,
              "unsubscribed_again": batch.undo_unsubscribed}  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        also = unsubscribed_words(kept)
        listed = handed_on_words(batch.undo_handed_on)
        print(f"Undid import #{batch.id}: {plural(batch.undo_removed, 'contact')} removed from "
              f"{quoted(name)}{listed}, {batch.undo_deleted:,} deleted{also}, "
              f"{plural(batch.undo_invites_cancelled, 'invite')} cancelled, "
              f"{plural(batch.undo_advocates_removed, 'advocate')} removed"
              f"{unsubscribed_again_words(batch.undo_unsubscribed)}.")  # fmt: skip
        if args.advocates and batch.undo_removed > batch.undo_deleted and await other_advocates(
                db, team, batch.id or 0):  # contacts that stay, and advocates not its own
            # "0 advocates removed" alone read as --advocates ignored
            print("--advocates takes only the advocates this import's own enrollment made; "
                  "those `campaign target` or `live` made of the contacts it keeps stay.")
    return 0

