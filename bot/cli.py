"""The `referral-bot` command: imports, segments, export and database upkeep from a shell.

Shell users are trusted admins, so `import` runs the whole pipeline at once (Slack adds the
review and approval steps).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import shutil
import signal
import sqlite3
import stat
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from asyncpg import PostgresError
from sqlalchemy import bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from bot import (
    cli_audit,
    cli_campaigns,
    cli_contacts,
    cli_mailchimp,
    cli_mappings,
    cli_segments,
    cli_undo,
)
from bot.campaigns.preview import CampaignPreview
from bot.cli_common import (
    JSON_HELP,
    TEAM_HELP,
    CliError,
    os_error_mend,
    os_error_words,
    plain_mentions,
    positive,
)
from bot.home_refresh import HOME_REFRESH_JOB, queue_home_refresh
from bot.ids import IDS_PER_QUERY
from bot.imports.background import enqueue_file_import, joined
from bot.imports.batches import ReviewError, get_batch
from bot.imports.cancel import try_cancel_job
from bot.imports.engine import BatchStateError
from bot.imports.importer import ImportFailed, import_files, preview_files
from bot.imports.job_kinds import IMPORT_JOB, SLACK_FILE_JOB
from bot.imports.locale_notes import unknown_locale_notes
from bot.imports.mapping import parse_maps
from bot.imports.upload_offers import UPLOAD_OFFER_JOB
from bot.jobs.queue import (
    JOBS_SHOWN,
    SETTLED,
    count_settled,
    database_now,
    get_job,
    list_jobs,
    runnable_kinds,
    use_max_attempts,
)
from bot.log_lines import configure_logging
from bot.notify import REPORT_JOB
from bot.progress import ProgressBar
from bot.segments import segment_withdrawn
from bot.settings import Settings, SettingsError, load_settings
from bot.temp_files import disk_temporary_file
from bot.terminal import escape_stdout_on_a_terminal, shown
from bot.words import plural, quoted
from bot.workspaces import WorkspaceError, apply_default_locale, resolve_team
from models import BatchStatus, Database, Job, JobState
from models.db import exception_chain
from models.migrate import (
    MigrationFailed,
    SchemaTooNew,
    SchemaUnusable,
    ensure_schema,
    upgrade,
)

if TYPE_CHECKING:
    from aiohttp import ClientSession

SUMMARY_KEYS = ("rows", "valid", "duplicates", "rejected", "new_contacts", "existing_contacts",
                "added_to_segment", "already_in_segment", "warnings", "segment")  # fmt: skip


log = logging.getLogger(__name__)
# Failures a command reports in words (one line on stderr, exit status 1)
TOLD = (CliError, SettingsError, WorkspaceError, ImportFailed, SchemaTooNew, SchemaUnusable,
        BatchStateError, cli_campaigns.CampaignCliError,
        cli_mailchimp.MailchimpCliError)  # fmt: skip

# Modules that each add commands (see bot.cli_common.Subcommands)
SUBCOMMANDS = (cli_segments, cli_contacts, cli_undo, cli_audit, cli_mappings)
__all__ = ["CliError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="referral-bot", description="Import referral-program contacts into segments."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {version('referral-bot')}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    imp = sub.add_parser("import", help="import CSV, .xlsx or ZIP files into a static segment")
    imp.add_argument("files", nargs="*", type=Path, metavar="FILE")
    imp.add_argument("--mailchimp-list", action="append", default=[], metavar="ID_OR_NAME",
                     help="also import a Mailchimp audience (repeatable)")  # fmt: skip
    imp.add_argument("--segment", required=True, help="name of the static segment")
    imp.add_argument("--create-segment", action="store_true", help="create it if missing")
    imp.add_argument("--team", help=TEAM_HELP)
    imp.add_argument("--rejects", type=Path, metavar="OUT.csv",
                     help="write rejected and duplicate rows with their reasons")  # fmt: skip
    imp.add_argument("--update-existing", action="store_true",
                     help="replace what the files say of contacts that already exist: "
                          "names, locale and consent (a yes re-subscribes one, never one who "
                          "unsubscribed through a link or whom a lead unsubscribed); blank "
                          "cells keep theirs")  # fmt: skip
    imp.add_argument("--background", action="store_true",
                     help="check the files, queue the import as a job, print its id")  # fmt: skip
    imp.add_argument("--dry-run", action="store_true",
                     help="report every count (and whom live campaigns would invite) and "
                          "write nothing")  # fmt: skip
    imp.add_argument("--map", action="append", default=[], metavar='FIELD="Column"',
                     help="the column that holds a field (email, first_name, last_name, locale, "
                          "subscribed) in every FILE, e.g. --map email=\"Work Email\"; "
                          "repeatable, and remembered for files with the same headers")  # fmt: skip
    imp.add_argument("--json", action="store_true", help="print one JSON object")

    for module in SUBCOMMANDS:
        module.add_parsers(sub)

    srv = sub.add_parser("serve", help="run the Slack app (HTTP, or Socket Mode) and a worker")
    srv.add_argument("--no-worker", action="store_true", help="leave jobs to `referral-bot worker`")

    work = sub.add_parser("worker", help="run background jobs until SIGTERM or Ctrl-C")
    work.add_argument("--concurrency", type=positive, default=1,
                      help="jobs at once (PostgreSQL)")  # 0 or -3 ran one, without a word
    # serve's children: stop (as on SIGTERM) when stdin closes, i.e. when serve is gone, even
    # killed with no chance to stop them (else two workers share a SQLite file after a restart)
    work.add_argument("--stop-with-stdin", action="store_true", help=argparse.SUPPRESS)

    jobs = sub.add_parser("jobs", help="list background jobs, or cancel one")
    jobs.add_argument("--team", help=TEAM_HELP)
    jobs.add_argument("--json", action="store_true", help=JSON_HELP)
    jobs.add_argument("--all", action="store_true",
                      help=f"every job, not only the newest {JOBS_SHOWN} done or cancelled ones")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    cancel = jobs_sub.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id", type=positive, metavar="ID",
                        help="the job's id, as `jobs` lists it")  # fmt: skip
    # SUPPRESS: `jobs --team T cancel 5` keeps the T given before the action
    cancel.add_argument("--team", default=argparse.SUPPRESS, help=TEAM_HELP)
    cancel.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help=JSON_HELP)  # fmt: skip

    cli_campaigns.add_parsers(sub)
    cli_mailchimp.add_parsers(sub)

    db = sub.add_parser("db", help="database upkeep")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_sub.add_parser("upgrade", help="apply schema migrations")
    return parser


def run_in_loop(work: Coroutine[Any, Any, int]) -> int:
    """`asyncio.run`, on uvloop's event loop where it is installed (not on Windows).

    Why: serve's one event loop acks every Slack request, and uvloop's transports and
    scheduling (libuv, in C) took about a fifth off its CPU per request on loopback
    (bench/ack_latency.py: p50 6.3 -> 5.1 ms at 20 in flight); aiosqlite's hand-offs from its
    thread get cheaper too. The loop is passed to this run only, so no global policy changes
    under a caller (the tests run this in a thread of their own process).
    """
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(work)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # Windows, or installed without it: asyncio's own loop
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    _standard_fds_open()
    _tolerant_output()
    escape_stdout_on_a_terminal()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a usage error, as argparse's own (scripts see it failed)
        parser.print_help(sys.stderr)
        return 2
    as_json = getattr(args, "json", False)
    if (bad := _not_utf8(args)) is not None:
        return _failed(f"{bad} isn't valid UTF-8 text (cut in the middle of a character?)",
                       as_json)  # fmt: skip
    try:
        settings = load_settings()
        return run_in_loop(_run(args, settings))
    except DatabaseUnreachable as exc:
        code = _failed(str(exc), as_json)
        # serve starts its worker again until it can reach the database (bot.jobs.child)
        return os.EX_TEMPFAIL if args.command == "worker" else code
    except TOLD as exc:
        return _failed(str(exc), as_json)
    except KeyboardInterrupt:
        print("referral-bot: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `referral-bot export ... | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OverflowError:  # a number too big for the database
        return _failed("a number given is too big", as_json)
    except (OSError, DBAPIError) as exc:  # the database can't be reached, a path can't be used
        return _failed(_first_line(exc), as_json)


def _first_line(exc: OSError | DBAPIError) -> str:
    """What went wrong, in one line. A full disk or quota in words, with what mends it: it
    printed "[Errno 28] No space left on device" (`jobs > /dev/full`)."""
    if isinstance(exc, OSError) and (mend := os_error_mend(exc)):
        where = f" (writing {exc.filename})" if exc.filename else ""
        words = os_error_words(exc)
        return f"{words[:1].upper()}{words[1:]}{where}: {mend}, then run it again."
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _standard_fds_open() -> None:
    """Open /dev/null on fd 0, 1 or 2 where it is closed (`referral-bot ... <&-`): uvloop's loop
    took the free fd for itself and aborted the process (exit 134) on closing it, after the
    command had done its work."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free fd: this one


def _tolerant_output() -> None:
    """Print what the terminal's encoding can't show (a name under LANG=C, which is ASCII) as
    \\x escapes: a strict stdout failed the command with a traceback part way, even after an
    import was saved. A stream replaced by one without `reconfigure` (a test's) is left as is."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


async def _apply_default_locale(db: Database, settings: Settings) -> None:
    """DEFAULT_LOCALE, when this process was given it (environment or .env): a command run
    from a shell without the deployment's settings must not switch every workspace to the
    default "en"."""
    if "default_locale" in settings.model_fields_set:
        await apply_default_locale(db, settings.default_locale)


def _not_utf8(args: argparse.Namespace) -> str | None:
    """The first text argument holding bytes that aren't UTF-8 (argv keeps them as lone
    surrogates, which no database takes), quoted with them shown as \\x escapes; None if all
    are text. File names are paths, not text: any bytes go.

    Under a locale that isn't UTF-8 (LANG=C: ASCII), argv holds UTF-8 text typed in a UTF-8
    terminal ("Café") as surrogates too: such an argument is taken as the UTF-8 it is."""
    for key, value in vars(args).items():
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if not isinstance(item, str) or item.isascii():
                continue
            try:
                item.encode("utf-8")
                continue
            except UnicodeEncodeError:
                raw = os.fsencode(item)
            try:
                items[i] = raw.decode("utf-8")
            except UnicodeDecodeError:
                return f"'{raw.decode('ascii', 'backslashreplace')}'"
        if not isinstance(value, list):
            setattr(args, key, items[0])
    return None


def _failed(message: str, as_json: bool, *, said: str | None = None,
            extra: dict[str, Any] | None = None) -> int:  # fmt: skip
    """Say why the command failed, once (and as JSON on stdout with --json); exit status 1.
    `said`: stderr's words, when more than the JSON's "error"; `extra`: more JSON keys.

    stderr first: the failure may be stdout's own (a full disk), which the JSON can't reach.
    Written through `shown`: a failure quoting a name (a campaign's, a sheet's) whole drove
    the terminal with the escape characters in it."""
    print(f"referral-bot: {shown(said or message)}", file=sys.stderr)
    if as_json:
        try:
            print(json.dumps({"error": message, **(extra or {})}), flush=True)
        except OSError:
            _drop_stdout()
    return 1


def _drop_stdout() -> None:
    """Point stdout at /dev/null: what it holds unwritten failed again as the process exited
    ("Exception ignored ... OSError"). A stream with no fd of its own (a test's) is left."""
    with suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    before = use_max_attempts(settings.job_max_attempts)
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        if args.command == "db":
            await _reach(db, settings, upgrade(db))
            print("Database schema is up to date.")
            return 0
        if args.command == "serve":
            return await _serve(db, settings, args)
        await _reach(db, settings, ensure_schema(db))
        await _apply_default_locale(db, settings)
        if args.command == "worker":
            return await _worker(db, settings, args)
        team = await resolve_team(db, args.team, default_locale=settings.default_locale)
        if _changes_home(args):
            return await _then_refresh_home(db, team, _command(db, team, settings, args))
        return await _command(db, team, settings, args)
    finally:
        use_max_attempts(before)
        await db.dispose()


async def _command(db: Database, team: str, settings: Settings, args: argparse.Namespace
                   ) -> int:  # fmt: skip
    """Run a command of the workspace `team`."""
    if args.command == "import":
        args.column_map = _column_map(args.map)
        if args.dry_run:
            return await _dry_run(db, team, settings, args)
        if args.background:
            return await _import_background(db, team, settings, args)
        return await _import(db, team, settings, args)
    if args.command == "mailchimp":
        return await cli_mailchimp.run(db, team, settings, args)
    if args.command in ("campaign", "advocates"):
        return await cli_campaigns.run(db, team, settings, args)
    for module in SUBCOMMANDS:
        if args.command in module.COMMANDS:
            return await module.run(db, team, settings, args)
    return await _jobs(db, team, args)


# Commands that change what the App Home tab shows (segments, campaigns, imports, Mailchimp)
_HOME_CHANGES: dict[str, Callable[[argparse.Namespace], bool]] = {
    "import": lambda a: not a.dry_run,
    "undo": lambda a: True,
    "segments": lambda a: getattr(a, "segments_command", None) in ("rename", "delete"),
    "campaign": lambda a: a.campaign_command != "list",
    "contacts": lambda a: a.contacts_command == "delete",
    "mailchimp": lambda a: a.mailchimp_command in ("connect", "disconnect"),
    "jobs": lambda a: getattr(a, "jobs_command", None) == "cancel",  # an import's job
    "leads": lambda a: getattr(a, "leads_command", None) in ("add", "remove"),  # the buttons
}


def _changes_home(args: argparse.Namespace) -> bool:
    return _HOME_CHANGES.get(args.command, lambda _: False)(args)


async def _then_refresh_home(db: Database, team: str, command: Coroutine[Any, Any, int]) -> int:
    """Run a command that changes what Home shows, then queue the refresh of the Home tabs
    open in Slack (bot.home_refresh: the shell has no Slack connection, serve's worker
    does). Also after a refusal or a failure told in words, which may have written some (an
    import that failed part way is listed, cancelled); not after the database itself failed."""
    ran = False
    try:
        code = await command
        ran = True
        return code
    except TOLD:
        ran = True
        raise
    finally:
        if ran:
            await _refresh_home_later(db, team)


async def _refresh_home_later(db: Database, team: str) -> None:
    """Never fails the command: its change is made, only Slack's view of it lags."""
    try:
        await queue_home_refresh(db, team)
    except Exception:
        log.warning("Home tabs open in Slack show this change only once reopened: queuing "
                    "their refresh failed", exc_info=True)  # fmt: skip


class DatabaseUnreachable(CliError):
    """The database couldn't be reached (or used) as the command started, for a reason that
    may pass (refused, starting up, too many connections): a `worker` exits with
    os.EX_TEMPFAIL then, which serve's supervisor takes as "try again", not as a crash."""


# What no wait mends, by PostgreSQL's SQLSTATE class: the URL's user or password (28), its
# database (3D) or schema (3F) that don't exist, no permission (42). A worker that exited "try
# again" for these was started again for ever and serve never said "failed". (SQLite's
# "unable to open database file" may pass: its folder on a volume not mounted yet.)
_LASTING_SQLSTATE_CLASSES = frozenset({"28", "3D", "3F", "42"})


def _lasting(exc: BaseException) -> bool:
    """Whether the database refused for a reason only a change of settings mends."""
    for one in exception_chain(exc):
        state = getattr(one, "sqlstate", None)
        if isinstance(state, str) and state:
            return state[:2] in _LASTING_SQLSTATE_CLASSES
    return False


async def _reach(db: Database, settings: Settings, first: Coroutine[Any, Any, None]) -> None:
    """Run a command's first use of the database (its migration check); failing to reach it
    says which database, without its password: a bare "[Errno 111] Connection refused", or a
    traceback for a wrong database name, user or password, named neither."""
    try:
        await first
    except MigrationFailed as exc:  # reached, but a migration's statement failed: not the URL
        raise CliError(str(exc)) from None
    except (OSError, sqlite3.Error, DBAPIError, PostgresError) as exc:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        if settings.database_schema and not db.is_sqlite:
            where += f" (schema {settings.database_schema})"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if db.is_sqlite and (folder := settings.database_folder_problem()):
            reason = folder  # SQLite said only "unable to open database file"
        said = f"can't use the database {where} (DATABASE_URL): {reason}"
        raise (CliError if _lasting(exc) else DatabaseUnreachable)(said) from None


def _column_map(items: list[str]) -> dict[str, str] | None:
    """`--map email="Work Email"` ... as {field: column}; None without any."""
    try:
        return parse_maps(items) or None
    except ValueError as exc:
        raise CliError(str(exc)) from None


async def _import(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    mailchimp = await _sources(db, team, settings, args)
    _check_rejects(args.rejects, args.files)
    rejects_file = _Rejects(args.rejects) if args.rejects else None
    with ExitStack() as stack:
        streams = [(label, stack.enter_context(p.open("rb")))
                   for label, p in zip(_labels(args.files), args.files, strict=True)]
        total = sum(os.fstat(f.fileno()).st_size for _, f in streams)
        bar = ProgressBar(total, enabled=sys.stderr.isatty() and not args.json)
        rejects = rejects_file.open() if rejects_file else None
        try:
            result = await import_files(db, team, streams, segment=args.segment,
                                        create_segment=args.create_segment,
                                        update_existing=args.update_existing,
                                        rejects=rejects, progress=bar, mailchimp=mailchimp,
                                        chunk_size=settings.import_chunk_rows,
                                        max_unzipped_bytes=settings.max_unzipped_bytes,
                                        column_map=args.column_map,
                                        undo_window_days=settings.undo_window_days,
                                        lease_seconds=settings.job_lease_seconds)  # fmt: skip
        except ImportFailed as exc:  # nothing valid: its rejects say why, if it wrote them
            said = str(exc)
            if rejects_file is not None and (unwritten := rejects_file.keep(if_written=True)):
                said = f"{exc} {unwritten[:1].upper()}{unwritten[1:]}."
            if exc.segment_removed is not None:
                return _segment_removed(said, exc.segment_removed, args.json)
            if said != str(exc):
                raise ImportFailed(said) from None
            raise
        except BaseException:
            if rejects_file is not None:
                rejects_file.discard()
            raise
    if rejects_file is not None and (unwritten := rejects_file.keep()):
        raise CliError(f"Import #{result.batch.id} is done, but {unwritten}.")
    summary: dict[str, Any] = {key: getattr(result.batch, key, None) for key in SUMMARY_KEYS}
    summary["import_id"] = result.batch.id
    summary["segment"] = result.segment_name
    summary["enrolled"] = result.enrolled
    summary["invites_queued"] = result.invites_queued
    summary["not_emailed"] = result.not_emailed
    notes = [*result.notes, *await unknown_locale_notes(db, team, result.batch.id or 0)]
    summary["notes"] = [{"file": label, "note": text} for label, text in notes]
    if args.mailchimp_list:
        summary["skipped_by_status"] = result.skipped_by_status
    if args.json:
        print(json.dumps(summary))
    else:
        print(_readable(summary, args.rejects, result.rejected_rows))
    return 0


def _segment_removed(message: str, segment: str, as_json: bool) -> int:
    """An import that imported nothing, whose segment `--create-segment` made was removed
    again: its failure, then that (in import --background's words, segment_withdrawn), as
    `_failed` says a failure; with --json, "error" is the failure alone (as ever) and
    "segment_removed" names the segment. It was said only in the audit log."""
    return _failed(message, as_json, said=joined(message, segment_withdrawn(segment)),
                   extra={"segment_removed": segment})  # fmt: skip


def _check_files(paths: Sequence[Path]) -> list[Path]:
    """The files to import, each once: refused if one isn't a file; one given twice (the same
    path, or another path to it: a link, `./x.csv` beside `x.csv`) is said and read once, as
    Slack leaves out a file already in the import. `import x.csv x.csv` counted every row
    twice, the second time as duplicates."""
    once: list[Path] = []
    seen: dict[tuple[int, int], Path] = {}
    for path in paths:
        if path.is_dir():
            raise CliError(f"{_shown(path)}: is a folder, not a file")
        if not path.is_file():
            raise CliError(f"{_shown(path)}: no such file")
        found = path.stat()
        first = seen.setdefault((found.st_dev, found.st_ino), path)
        if first is path:
            once.append(path)
        elif _shown(first) == _shown(path):
            print(f"{_shown(path)} is given twice: imported once.", file=sys.stderr)
        else:
            print(f"{_shown(first)} and {_shown(path)} are the same file: imported once.",
                  file=sys.stderr)  # fmt: skip
    return once


def _label(path: Path) -> str:
    """A file's name as text, whatever bytes it has on disk (a Latin-1 é shows as �)."""
    return path.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _shown(path: Path) -> str:
    """A path as it was typed, as text for a message (bytes that aren't UTF-8 show as �): its
    name alone said ": is a folder" for `.`, and told apart no two files of the same name."""
    return os.fsdecode(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _labels(paths: Sequence[Path]) -> list[str]:
    """What the import calls each file (its errors, notes, the rejects file's source column
    and its sources' names): the path as typed, as the shell's other messages name it.
    `../files/noemail.csv` was "noemail.csv: No email column found" but "../files/x.csv: no
    such file", and a file's name alone only where no other file shared it."""
    return [_shown(path) for path in paths]


def _check_rejects(rejects: Path | None, inputs: Sequence[Path]) -> None:
    """Refuse a --rejects that would overwrite an input file, or can't be written at all,
    before anything is read or written."""
    if rejects is None:
        return
    if rejects.is_dir():
        raise CliError(f"--rejects {_shown(rejects)}: is a folder; name a file to write")
    if not rejects.parent.is_dir():
        raise CliError(f"--rejects {_shown(rejects)}: its folder doesn't exist")
    if any(rejects.resolve() == path.resolve() for path in inputs):
        raise CliError(f"--rejects {_shown(rejects)} is one of the files being imported: "
                       "writing it would destroy that file. Name another file.")  # fmt: skip


class _Rejects:
    """The rejects CSV, written beside its final name and moved into place once written: an
    import that fails before writing it leaves an existing file as it was.

    Moved onto a regular file only (or none): a FIFO, a device (/dev/null, /dev/stdout) or
    the file this process's output goes to is written in place, once the import is done, and
    a symlink's target is replaced, the link kept. `os.replace` onto the path given put a
    plain file where the FIFO, the link or, as root, /dev/null had been."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._in_place = _written_in_place(path)
        # a symlink's target (realpath: the link, or a chain of them, stays as it is)
        self._target = path if self._in_place else Path(os.path.realpath(path))
        self._tmp = self._target.with_name(f".{self._target.name}.{os.getpid()}.tmp")
        self._file: TextIO | None = None

    def open(self) -> TextIO:
        """The file the import writes the rows to (refused in words if it can't be made)."""
        try:
            if self._in_place:
                if not os.access(self.path, os.W_OK):  # before the import, not after it
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
                # kept off the target until the end: a FIFO's reader, or a device, gets
                # the rows once the import is done, and a failure to write them is told then
                self._file = disk_temporary_file(mode="w+", newline="",  # type: ignore[assignment]
                                                 encoding="utf-8-sig")  # fmt: skip
            else:
                # utf-8-sig whatever the locale: Excel then reads the names right (the
                # importer skips the BOM), and a name no locale encoding has can't fail it
                self._file = self._tmp.open("w", newline="", encoding="utf-8-sig")
        except OSError as exc:  # its error names the hidden file beside it, not the one given
            raise CliError(f"--rejects {_shown(self.path)} can't be written: "
                           f"{exc.strerror or exc}") from None  # fmt: skip
        return self._file

    def keep(self, *, if_written: bool = False) -> str | None:
        """Put the rows in place (`if_written`: only if some were written: an import that
        found nothing valid wrote them to say why); None once done, else why it failed."""
        assert self._file is not None
        try:
            if if_written and self._file.tell() == 0:
                self.discard()
                return None
            self._file.flush()
            if self._in_place:
                self._copy_in_place(self._file)
            else:
                self._file.close()
                os.replace(self._tmp, self._target)
        except OSError as exc:
            self._close()
            return f"--rejects {_shown(self.path)} couldn't be written: {os_error_words(exc)}"
        self._close()
        return None

    def discard(self) -> None:
        """Write nothing: what was written aside goes, and a FIFO's reader (waiting for the
        rows) is let go with an empty read, as a shell's `> fifo` would, not left waiting."""
        self._close()
        if self._in_place:
            with suppress(OSError):  # no reader (ENXIO), or not a FIFO's: nothing to let go
                found = os.stat(self.path)
                if stat.S_ISFIFO(found.st_mode):
                    os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))

    def _close(self) -> None:
        """Close and remove what was written aside (a temp file of its own: gone once closed)."""
        if self._file is not None:
            with suppress(OSError):  # a flush that failed once fails again on close
                self._file.close()
        if not self._in_place:
            self._tmp.unlink(missing_ok=True)

    def _copy_in_place(self, written: TextIO) -> None:
        raw = written.buffer  # type: ignore[attr-defined]
        raw.seek(0)
        stream = _stream_of(self.path)
        if stream is not None:  # this process's own output: through its fd, at its offset
            with suppress(ValueError, OSError):
                (sys.stdout if stream == 1 else sys.stderr).flush()
            fd = os.dup(stream)
        else:  # opened as it is (no O_TRUNC, no O_CREAT): a FIFO waits for its reader
            fd = os.open(self.path, os.O_WRONLY)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(raw, out)


def _written_in_place(path: Path) -> bool:
    """Whether the rejects go into `path` as it is rather than replace it: something there
    that isn't a regular file (a FIFO, a device; followed through symlinks), or the file
    this process's stdout or stderr goes to (`--rejects /dev/stdout > out.txt`)."""
    try:
        found = os.stat(path)
    except OSError:  # nothing there (or a dangling link): a new file, beside its name
        return False
    return not stat.S_ISREG(found.st_mode) or _stream_of(path) is not None


def _stream_of(path: Path) -> int | None:
    """1 or 2 if `path` is the file (or pipe, or terminal) this process's stdout or stderr is."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    for fd in (1, 2):
        try:
            other = os.fstat(fd)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (found.st_dev, found.st_ino):
            return fd
    return None


async def _sources(db: Database, team: str, settings: Settings, args: argparse.Namespace
                   ) -> cli_mailchimp.Chosen | None:  # fmt: skip
    """Check the files named exist; the Mailchimp audiences named, resolved (or None)."""
    if not args.files and not args.mailchimp_list:
        raise CliError("Name at least one file (CSV, .xlsx or ZIP of CSVs), or a Mailchimp "
                       "audience (--mailchimp-list).")
    args.files = _check_files(args.files)
    if not args.mailchimp_list:
        return None
    return await cli_mailchimp.resolve_audiences(db, team, settings, args.mailchimp_list)


async def _dry_run(db: Database, team: str, settings: Settings, args: argparse.Namespace) -> int:
    if args.rejects:  # the preview counts rows, it keeps none to list
        raise CliError("--dry-run writes nothing, a rejects file neither: leave out --rejects, "
                       "or import without --dry-run.")  # fmt: skip
    mailchimp = await _sources(db, team, settings, args)
    with ExitStack() as stack:
        streams = [(label, stack.enter_context(p.open("rb")))
                   for label, p in zip(_labels(args.files), args.files, strict=True)]
        result, exists = await preview_files(db, team, streams, segment=args.segment,
                                             create_segment=args.create_segment,
                                             mailchimp=mailchimp,
                                             max_unzipped_bytes=settings.max_unzipped_bytes,
                                             column_map=args.column_map)  # fmt: skip
    t = result.totals
    summary: dict[str, Any] = {
        "dry_run": True, "segment": args.segment, "segment_exists": exists, "rows": t.rows,
        "valid": t.valid, "duplicates": t.duplicates, "rejected": t.rejected,
        "warnings": t.warnings, "new_contacts": result.new_contacts,
        "existing_contacts": result.existing_contacts,
        "added_to_segment": result.added_to_segment,
        "already_in_segment": result.already_in_segment,
        "campaigns": [{"campaign": c.campaign, "will_invite": c.will_invite,
                       "without_email": c.without_email, "already_advocates": c.already_advocates,
                       "excluded": c.excluded} for c in result.campaigns],
        "notes": [{"file": label, "note": text} for label, text in result.notes],
    }  # fmt: skip
    if args.mailchimp_list:  # as the import's JSON has it
        summary["skipped_by_status"] = result.skipped_by_status
    if args.json:
        print(json.dumps(summary))
        return 0
    made = "" if exists else " (it would be created)"
    lines = [f"Dry run: nothing was written. Importing into segment {quoted(args.segment)}{made}:",
             f"  {_counted(t.rows, 'row')} read",
             f"  {t.valid:>10,} valid ({plural(result.new_contacts, 'new contact')}, "
             f"{result.existing_contacts:,} already known)",
             f"  {result.added_to_segment:>10,} would be added to the segment "
             f"({result.already_in_segment:,} "
             f"{'is' if result.already_in_segment == 1 else 'are'} already in it)",
             f"  {_counted(t.duplicates, 'duplicate')} skipped",
             f"  {t.rejected:>10,} rejected"]  # fmt: skip
    if t.warnings:
        lines.append(f"  {t.warnings:>10,} would be imported with a warning (an unknown locale, "
                     "or a consent value not recognised: see below)")  # fmt: skip
    lines += [_campaign_line(c) for c in result.campaigns]
    lines += [f"Note on {label}: {text}" for label, text in result.notes]
    print("\n".join(lines))
    return 0


def _campaign_line(c: CampaignPreview) -> str:
    """What a live campaign would do with the import, as the review in Slack says it: it said
    only how many it would invite, and nothing of who it would enroll without an email, or
    already had, or excluded (--json had them)."""
    when = f" in {plural(c.invite_in_days, 'day')}" if c.invite_in_days else ""
    others = [f"{n:,} enrolled without an email ({why})" for why, n in c.without_email.items()]
    if c.already_advocates:
        others.append(f"{c.already_advocates:,} already "
                      f"{'an advocate' if c.already_advocates == 1 else 'advocates'}")
    if c.excluded:
        others.append(f"{c.excluded:,} excluded")
    also = f": {', '.join(others)}" if others else ""
    return (f"  {c.will_invite:>10,} would be invited{when} by live campaign "
            f"{quoted(c.campaign)}{also}")


def _counted(count: int, noun: str) -> str:
    """plural(count, noun) with the count right-aligned in 10 columns, as the summary's."""
    said = plural(count, noun)
    return " " * max(0, 10 - len(f"{count:,}")) + said


def _readable(s: dict[str, Any], rejects: Path | None, written: int) -> str:
    lines = [
        # the import's number: what `undo`, `audit` and `jobs` name it by (a job's own id,
        # the first number `jobs` shows, is another)
        f"Imported into segment {quoted(s['segment'])} (import #{s['import_id']}):",
        f"  {_counted(s['rows'], 'row')} read",
        f"  {s['valid']:>10,} valid ({plural(s['new_contacts'], 'new contact')}, "
        f"{s['existing_contacts']:,} already known)",
        f"  {s['added_to_segment']:>10,} added to the segment "
        f"({s['already_in_segment']:,} {'was' if s['already_in_segment'] == 1 else 'were'} "
        "already in it)",
        f"  {_counted(s['duplicates'], 'duplicate')} skipped",
        f"  {s['rejected']:>10,} rejected",
    ]
    if s["warnings"]:
        lines.append(f"  {s['warnings']:>10,} imported with a warning (an unknown locale, or a "
                     "consent value not recognised: see below)")  # fmt: skip
    if s.get("enrolled"):
        invites = f"{plural(s['invites_queued'], 'invite')} queued for the worker"
        if why := s.get("not_emailed"):  # why the rest wasn't to be emailed, as `target` says
            invites += "; not emailed: " + ", ".join(f"{n:,} {reason}"
                                                     for reason, n in sorted(why.items()))
        lines.append(f"  {s['enrolled']:>10,} enrolled as advocates of live campaigns "
                     f"({invites})")  # fmt: skip
    for note in s.get("notes") or []:  # as the review message says them, file by file
        lines.append(f"Note on {note['file']}: {note['note']}")
    if rejects is not None:
        what = "rejected or duplicate row" if written == 1 else "rejected and duplicate row"
        lines.append(f"Wrote {plural(written, what)} to {_shown(rejects)}")
    elif s["duplicates"] or s["rejected"]:
        lines.append("Use --rejects OUT.csv to see every skipped row and why.")
    return "\n".join(lines)


async def _import_background(
    db: Database, team: str, settings: Settings, args: argparse.Namespace
) -> int:
    if not args.files:
        raise CliError("--background imports files: name at least one (CSV, .xlsx or ZIP).")
    if args.mailchimp_list or args.rejects:
        raise CliError("--background imports files only, and writes no rejects file: leave out "
                       "--mailchimp-list and --rejects, or import without --background.")
    args.files = _check_files(args.files)
    for path in args.files:
        # the job reads it by its full path, which the database stores as text
        if _label(path) != path.name:
            raise CliError(f"{_shown(path)}: its name isn't UTF-8; rename it to import it in "
                           "the background.")  # fmt: skip
        if _shown(resolved := path.resolve()) != os.fsdecode(resolved):
            raise CliError(f"{_shown(path)}: the name of a folder it is in isn't UTF-8; move "
                           "it, or import it without --background.")  # fmt: skip
    try:
        # checked, then read by the job, under the paths typed (its errors, and the sources'
        # names on Home, as the foreground import's): by their last part, two customers.csv
        # in two folders were "customers.csv" and "customers (2).csv"
        job = await enqueue_file_import(db, team, args.files, labels=_labels(args.files),
                                        segment=args.segment,
                                        create_segment=args.create_segment,
                                        update_existing=args.update_existing,
                                        max_attempts=settings.job_max_attempts,
                                        max_unzipped_bytes=settings.max_unzipped_bytes,
                                        column_map=args.column_map)  # fmt: skip
    except ReviewError as exc:  # said for Slack: told here without a traceback, or markup
        raise CliError(plain_mentions(str(exc))) from None
    batch_id = json.loads(job.payload)["batch_id"]
    if args.json:
        # import_id, as every other import output names it ("batch", its first name, kept)
        print(json.dumps({"job": job.id, "import_id": batch_id, "batch": batch_id,
                          "state": job.state}))  # fmt: skip
    else:
        print(f"Queued import #{batch_id} as job {job.id}. A worker runs it "
              "(`referral-bot worker`); follow it with `referral-bot jobs`.")  # fmt: skip
    return 0


async def _worker(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    _refuse_to_work(settings)
    concurrency = args.concurrency
    if db.is_sqlite and concurrency > 1:
        print("SQLite has one writer at a time: running one job at a time.", file=sys.stderr)
        concurrency = 1
    from bot.app import slack_session  # Slack libraries only when needed

    # A session of its own, as serve's client has: a client without one opens one per call,
    # and what a process keeps per session (the one warning that Slack refuses the token,
    # Home viewers' users.info) was kept nowhere: serve's worker child warned in full at every
    # report, progress tick and Home refresh after an uninstall
    session = slack_session(settings) if settings.slack_bot_token else None
    try:
        return await _work(db, settings, args, concurrency, session)
    finally:
        if session is not None:
            await session.close()


async def _work(db: Database, settings: Settings, args: argparse.Namespace, concurrency: int,
                session: ClientSession | None) -> int:  # fmt: skip
    """`worker`'s run, its Slack client on `session` (None: without SLACK_BOT_TOKEN)."""
    from bot.app import build_worker, slack_client

    client = None if session is None else slack_client(settings, session)
    worker = build_worker(settings, client, db)
    # serve's children (--stop-with-stdin) leave what the settings mean to serve, which says
    # it once: each child said how invites are sent again, and "(Ctrl-C to stop)" of itself
    serves = args.stop_with_stdin
    if not serves:
        print(settings.invite_delivery(), file=sys.stderr)
        for problem in settings.invite_problems():
            print(f"Invites can't be sent until you set {problem}", file=sys.stderr)
        if (warning := settings.plain_http_links()) is not None:
            print(warning, file=sys.stderr)
    worker.config.concurrency = concurrency
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    if args.stop_with_stdin:
        _stop_when_stdin_closes(loop, worker.stop)
    configure_logging()
    stop = "" if serves else " (Ctrl-C to stop)"  # serve's children stop with serve
    print(f"Worker {worker.owner} waiting for jobs{stop}; it runs: "
          f"{', '.join(sorted(worker.kinds))}.", file=sys.stderr, flush=True)  # fmt: skip
    if client is None:
        print("Without SLACK_BOT_TOKEN it leaves Slack files to a worker that has it.",
              file=sys.stderr, flush=True)  # fmt: skip
    from bot.campaigns.jobs import cannot_send, outbox_chosen

    if why := cannot_send(settings):
        # said once: a worker of its own has said above what is missing (invite_problems),
        # and without SMTP_URL that invites wait for another (it said each twice)
        if serves:
            print(f"It leaves invites to a worker that can send them: {why}", file=sys.stderr,
                  flush=True)  # fmt: skip
        elif settings.smtp_url.strip() or outbox_chosen(settings):
            print("It leaves invites to a worker that can send them (see above).",
                  file=sys.stderr, flush=True)  # fmt: skip
    await worker.run()
    # failed attempts too: a worker that failed every job it ran said "after 0 job(s)"
    failed = f", {plural(worker.failed, 'attempt')} failed" if worker.failed else ""
    print(f"Worker stopped: {plural(worker.completed, 'job')} done{failed}.", file=sys.stderr)
    return 0


def _stop_when_stdin_closes(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    """Call `stop` once stdin reaches its end: the parent holding its other end is gone."""
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            log.warning("the process that started this worker is gone: stopping")
            stop()

    loop.add_reader(fd, readable)


async def _serve(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    _refuse_to_serve(settings)
    from bot.app import refused_bot_token, serve  # Slack libraries only when needed

    await _reach(db, settings, ensure_schema(db))
    configure_logging()
    with _quiet("slack_sdk"):  # its retry of an unreachable Slack is an INFO line of its own
        refused = await refused_bot_token(settings)
    if refused is not None:
        raise CliError(refused)
    await _apply_default_locale(db, settings)
    run_worker = settings.run_worker and not args.no_worker
    if run_worker and (warning := settings.plain_http_links()) is not None:
        log.warning("%s", warning)  # said here once, not by each worker child
    await serve(settings, db, run_worker=run_worker)
    return 0


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """The logger `name` says only warnings and worse for the block: the check of the bot
    token said Slack was out of reach twice, slack_sdk's "A retry handler found" (INFO) and
    then its own warning line, where one warning line is promised."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _refuse_to_serve(settings: Settings) -> None:
    """Stop before serving with every setting that is missing or wrong, each with where to
    find it (settings a worker needs too: serve's children run with serve's)."""
    problems = [*settings.slack_problems(), *filter(None, [settings.secret_key_problem()]),
                *settings.invite_problems()]  # fmt: skip
    if not problems:
        return
    # only when something is missing: slack_problems also holds Mailchimp's sign-in settings
    # and tokens that are set but mistyped, and with Slack set up already "Slack isn't
    # configured yet" sent people to redo an app that worked
    intro = ("Slack isn't configured yet. Create the app from manifest.yml at "
             "https://api.slack.com/apps (From a manifest), install it, then set:"
             if settings.slack_unset else _fix_intro(problems, "serving"))  # fmt: skip
    raise CliError(intro + "\n  " + "\n  ".join(problems) + "\n(in the environment or a .env "
                   "file here; see README.md > Running the Slack app)")  # fmt: skip


def _refuse_to_work(settings: Settings) -> None:
    """Stop a worker whose settings are wrong rather than missing: a SECRET_KEY too short to
    sign links with, a SLACK_BOT_TOKEN that isn't one. (Missing ones only limit what it runs:
    it says so and starts.)"""
    problems = [p for p in (settings.secret_key_problem(),
                            settings.slack_bot_token and settings.bot_token_problem()) if p]
    if problems:
        raise CliError(_fix_intro(problems, "starting the worker") + "\n  "
                       + "\n  ".join(problems) + "\n(in the environment or a .env file here)")


def _fix_intro(problems: list[str], before: str) -> str:
    return f"Fix {'this setting' if len(problems) == 1 else 'these settings'} before {before}:"


async def _jobs(db: Database, team: str, args: argparse.Namespace) -> int:
    if args.jobs_command == "cancel":
        applying = await _applying_import(db, team, args.job_id)
        cancelling = await try_cancel_job(db, team, args.job_id)
        if cancelling is None:
            raise CliError(f"No job {args.job_id} in this workspace.")
        job = cancelling.job
        if cancelling.finished_first and job.state in (JobState.QUEUED, JobState.RUNNING):
            # its work done, the job not yet marked so: it said "Job N is running: only a
            # queued or running job can be cancelled"
            raise CliError(f"Job {job.id} was not cancelled: its work finished before it could "
                           "be stopped, and the job ends as done.")  # fmt: skip
        if job.state != JobState.CANCELLED:  # it ended before: done or failed
            raise CliError(f"Job {job.id} is {job.state}: only a queued or running job can be "
                           "cancelled.")  # fmt: skip
        if args.json:
            print(json.dumps(_job_dict(job)))
        elif cancelling.found == JobState.CANCELLED:  # said as the README
            print(f"Job {job.id} was cancelled already.")  # says: not as if this stopped it
        else:
            kept = _kept_when_cancelled(applying) if cancelling.found == JobState.RUNNING else ""
            print(f"Job {job.id} is {job.state}.{kept}")
        if cancelling.segment_withdrawn:  # the segment made for its import went with it
            # (with --json on stderr: the output stays the job scripts read)
            print(cancelling.segment_withdrawn, file=sys.stderr if args.json else sys.stdout)
        return 0
    jobs = await list_jobs(db, team, limit=None if args.all else JOBS_SHOWN)
    hidden = await _settled_not_shown(db, team, jobs)
    lease = load_settings().job_lease_seconds
    # still `running`, but its worker stopped renewing the lease: killed, or its host is gone
    now = await database_now(db)  # by the clock leases are stamped with, not this host's
    orphans = [job for job in jobs if job.state == JobState.RUNNING
               and job.lease_expires_at is not None and job.lease_expires_at < now]  # fmt: skip
    orphaned = {job.id for job in orphans}
    # the live workers' kinds, but a dead one's (its lease lapsed at this `now`, as these)
    runnable = await runnable_kinds(db, lease, now=now)
    waiting = {job.id for job in jobs if job.kind not in runnable
               and (job.state == JobState.QUEUED or job.id in orphaned)}  # fmt: skip
    if args.json:
        print(json.dumps([_job_dict(job, waiting_for_worker=job.id in waiting,
                                    worker_stopped=job.id in orphaned,
                                    out_of_attempts=job.id in orphaned and _out_of_attempts(job))
                          for job in jobs]))  # fmt: skip
        if hidden:  # on stderr: the output stays the list of jobs scripts read
            print(_not_shown(hidden), file=sys.stderr)
        return 0
    if not jobs:
        print("No jobs yet.")
    campaigns = await _campaigns_of(db, team, jobs)
    rows = []
    for job in jobs:
        progress = f"{job.progress_done:,}/{job.progress_total:,}" if job.progress_total else "-"
        # an error may be a message written for Slack ("cancelled by <@U…>")
        error = f"  {plain_mentions(job.last_error)}" if job.last_error else ""
        if job.id in orphaned:
            error += "  its worker stopped" + _orphan_fate(job, waiting=job.id in waiting)
        later = job.state == JobState.QUEUED and job.run_after > now
        if later:
            # not before then (a campaign's invite delay, a retry's backoff): it looked stuck
            error += f"  due {job.run_after:%Y-%m-%d %H:%M} UTC"
        if job.id in waiting:  # not yet due, it waits for its time first, not for a worker
            error += (f"; no running worker could run it now{_needs().get(job.kind, '')}"
                      if later else
                      f"  waiting for a worker that can run it{_needs().get(job.kind, '')}")
        of = _of_import(job) or (f"  campaign {quoted(campaigns[job.id])}" if job.id in campaigns
                                 else "")  # fmt: skip
        rows.append((str(job.id), job.kind, str(job.state), progress,
                     f"attempts {job.attempts}/{job.max_attempts}{of}{error}"))
    for line in _columns(rows):
        print(line)
    if hidden:
        print(_not_shown(hidden))
    return 0


def _columns(rows: list[tuple[str, str, str, str, str]]) -> list[str]:
    """The jobs' lines, each column as wide as its widest cell (ids and progress to the
    right): the kind's column was 8 wide, so send_invites, slack_report and undo_import
    pushed the rest of their line out of line."""
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(4)]
    return [f"{job:>{widths[0]}}  {kind:<{widths[1]}}  {state:<{widths[2]}}  "
            f"{progress:>{widths[3]}}  {rest}"
            for job, kind, state, progress, rest in rows]  # fmt: skip


async def _campaigns_of(db: Database, team: str, jobs: Sequence[Job]) -> dict[int, str]:
    """The campaign of each job of an enrollment (its send runs, its enrolling), by job id,
    in one query: `jobs` listed send_invites with nothing to say whose invites they were."""
    enrollments: dict[int, int] = {}
    for job in jobs:
        with suppress(ValueError, AttributeError, TypeError):
            found = json.loads(job.payload).get("enrollment_id")
            if isinstance(found, int) and job.id is not None:
                enrollments[job.id] = found
    wanted = sorted(set(enrollments.values()))
    named: dict[int, str] = {}
    query = text("SELECT e.id, c.name FROM enrollment e JOIN campaign c ON c.id = e.campaign_id "
                 "AND c.team_id = e.team_id WHERE e.team_id = :t AND e.id IN :ids"
                 ).bindparams(bindparam("ids", expanding=True))  # fmt: skip
    async with db.begin() as conn:
        # in chunks: `jobs --all` may list more than PostgreSQL takes parameters (32,767)
        for start in range(0, len(wanted), IDS_PER_QUERY):
            found = await conn.execute(query, {"t": team,
                                               "ids": wanted[start:start + IDS_PER_QUERY]})
            named.update((row[0], row[1]) for row in found)
    return {job: named[e] for job, e in enrollments.items() if e in named}





async def _settled_not_shown(db: Database, team: str, shown: list[Job]) -> int:
    """How many done or cancelled jobs the listing left out (it shows all the others)."""
    listed = sum(1 for job in shown if job.state in SETTLED)
    return max(0, await count_settled(db, team) - listed)


def _not_shown(hidden: int) -> str:
    return f"… and {plural(hidden, 'older done or cancelled job')} not shown (--all lists them)"


def _out_of_attempts(job: Job) -> bool:
    """Its next claim is past its last attempt: the worker gives up on it (see GivingUp)
    instead of running it again: done if its work is recorded complete, else failed."""
    return job.attempts >= job.max_attempts


def _orphan_fate(job: Job, *, waiting: bool) -> str:
    """What becomes of a running job whose worker stopped: resumed by another worker, or,
    out of attempts, ended by it; nothing said while no worker can take it (see `waiting`)."""
    if _out_of_attempts(job):
        return ("; out of attempts: the next worker ends it, done if its work was finished, "
                "else failed")
    return "" if waiting else "; another worker resumes it"


# What a worker needs to take a job kind that not every worker runs (see bot/jobs/kinds.py).
NEEDS = {kind: " (start one with SLACK_BOT_TOKEN set)"
         for kind in (SLACK_FILE_JOB, REPORT_JOB, HOME_REFRESH_JOB, UPLOAD_OFFER_JOB)}


def _needs() -> dict[str, str]:
    """NEEDS, and what a worker needs to send invites (read when `jobs` lists one waiting:
    the campaign modules load the email libraries, which no other command needs)."""
    from bot.campaigns.enroll import SEND_JOB
    from bot.campaigns.jobs import SEND_NEEDS

    return {**NEEDS, SEND_JOB: f" ({SEND_NEEDS})"}


async def _applying_import(db: Database, team: str, job_id: int) -> int | None:
    """The number of the import job `job_id` is applying now, if it is (read before the
    cancel: the cancel makes the import cancelled); None for any other job, or an import
    still being read (nothing of it imported yet)."""
    job = await get_job(db, team, job_id)
    if job is None or job.kind != IMPORT_JOB:
        return None
    batch_id = json.loads(job.payload or "{}").get("batch_id")
    batch = await get_batch(db, team, batch_id) if isinstance(batch_id, int) else None
    return batch_id if batch is not None and batch.status == BatchStatus.IMPORTING else None


def _kept_when_cancelled(number: int | None) -> str:
    """What cancelling an import part way through its apply leaves, and how to take it out:
    it said "Job 2 is cancelled." alone, and that the contacts it had imported stay went
    unsaid. Nothing when it was still reading its files (nothing imported yet)."""
    if number is None:
        return ""
    return (" It stops at its next chunk; the contacts it imported before then stay "
            f"(`referral-bot undo {number}` takes them out).")


def _of_import(job: Job) -> str:
    """"  import #N" for a job of an import (reading, applying, undoing it): the number
    `undo` and `audit` take. A row showed only the job's own id, and `undo` of that number
    undid another import."""
    try:
        batch_id = json.loads(job.payload).get("batch_id")
    except (ValueError, AttributeError):
        return ""
    return f"  import #{batch_id}" if isinstance(batch_id, int) else ""


def _job_dict(
    job: Job, *, waiting_for_worker: bool = False, worker_stopped: bool = False,
    out_of_attempts: bool = False,
) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "state": job.state, "attempts": job.attempts,
            "max_attempts": job.max_attempts, "progress_done": job.progress_done,
            "progress_total": job.progress_total, "error": job.last_error,
            "waiting_for_worker": waiting_for_worker, "worker_stopped": worker_stopped,
            "out_of_attempts": out_of_attempts, "payload": json.loads(job.payload),
            "run_after": job.run_after.isoformat()}  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
