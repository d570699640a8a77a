"""Workers: claim a job, run its handler under a heartbeat, then finish, retry or release it.

A worker claims only the kinds it has handlers for and keeps a row in `worker_process` while
it runs, so `referral-bot jobs` can tell which queued jobs no live worker can take; its start
and its clean stop, which may change that, tell `kinds_changed` (the app's: App Home's refresh
where Home says invites wait for a sender, bot.home_refresh.workers_changed_in) in the
transaction that records them, and so does a start that forgets a dead worker's row. It
never dies of a database error:
every queue call logs the job and the traceback, backs off (0.5 s doubling to 30 s) and tries
again, so a database restart only pauses the work. Recording a result retries only an outage
(`_passes`) and gives up at once on any other error, a database error too (a constraint
violated, a bug: retrying would fail the same way for ever while the job's lease stays
renewed); the lease then lapses and the job is taken again.

The steps that end a job for good (failing its work, telling its thread) ride out a database
outage (`surely`), and a last attempt that fails before its handler took such a step (the
database gone at its first read) is given up on by the worker (GivingUp). A job given up on
whose work is recorded complete (GivingUp.done_when) ends done, not failed.

An outage (`database_outage`) is told by what the database or its driver says of the error,
never by its class alone: SQLite's result code (the file locked, its disk failing or full,
out of reach), PostgreSQL's SQLSTATE (a connection lost, the server out of resources or
restarting, a lock or statement timed out), a connection SQLAlchemy found lost, a pool with
no connection to give. SQLite raises "no such column", a syntax error or a read-only file as
OperationalError, and asyncpg its 32,767-parameter limit as InterfaceError, as it does a
closed connection: taken for outages by their class, they were waited out for ever.

A database that refuses writes because it is read-only is said so, with what to check
(`read_only_words`), wherever the words above are used, in the job's error and in the log's
first line of each failure: PostgreSQL's read-only transaction (25006) stays an outage (a
failover ends), SQLite's READONLY stays none (its file's permissions won't change by
themselves), but both were told as "unavailable" or "refused a step", and a worker on a
database that stays read-only logged only "claiming a job failed" every 30 s.

A database error's own text is its SQL and parameters (ids, email addresses): what a thread
or report is told says it in words (`failure_words`), and the job's error (`referral-bot
jobs`) by the driver's class and first line (`_job_error`); the log has it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from asyncpg import InterfaceError as PostgresInterfaceError
from asyncpg import InternalClientError, InvalidCachedStatementError, PostgresError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.jobs import queue
from models import Database, Job
from models.db import driver_error

log = logging.getLogger(__name__)
T = TypeVar("T")

PRESENCE_SECONDS = 5.0  # a worker refreshes its `worker_process` row at least this often
GIVE_UP_WHEN_STOPPING = 3  # failed attempts to record a result after stop() before giving up

# What a database error says of itself is its SQL statement and parameters (ids, addresses),
# and Slack's thread or report showed it as why the work failed: the worker's log has it, and
# they say this instead (`failure_words`).
# how a job whose every attempt's worker died gives up: its error starts so
WORKERS_DIED = "gave up: the worker running it stopped"
DATABASE_DOWN = "the bot's database was unavailable; the worker's log says more."
# ... and a PostgreSQL that can't be reached at all (down, or its host gone): the driver's
# OSError, which its thread and `referral-bot jobs` showed as "ConnectionRefusedError: [Errno
# 111] Connect call failed ('10.0.0.5', 5432)"
DATABASE_UNREACHABLE = "the bot's database could not be reached; the worker's log says more."
# ... a database whose disk is full (SQLite's SQLITE_FULL, PostgreSQL's disk_full): an outage
# that ends once room is made, which whoever runs the bot is the one to make
DATABASE_FULL = "the bot's database ran out of disk space; the worker's log says more."
# ... and any other database error: a statement refused (a constraint, a column that isn't
# there, more parameters than the driver sends), which is a bug of ours, not an outage
DATABASE_REFUSED = "the bot's database refused a step of this work; the worker's log says more."
# ... a database that refuses writes because it is read-only, with what to check: PostgreSQL
# (25006, read_only_sql_transaction) answers so from a standby, during a failover or when
# DATABASE_URL names one, and so does a database or role set default_transaction_read_only;
# SQLite (SQLITE_READONLY, its extended codes too) when the process may not write the file or
# its folder (permissions, a read-only mount). As the log says it, then as Slack and
# `referral-bot jobs` say it.
READ_ONLY_POSTGRES = ("the bot's database is read-only (PostgreSQL: a failover is under way, or "
                      "DATABASE_URL names a standby, or a database or user set to "
                      "default_transaction_read_only)")  # fmt: skip
READ_ONLY_SQLITE = ("the bot's database is read-only (SQLite: its file or the file's folder "
                    "isn't writable by the bot's process, or is on a read-only mount)")  # fmt: skip
DATABASE_READ_ONLY_POSTGRES = f"{READ_ONLY_POSTGRES}; the worker's log says more."
DATABASE_READ_ONLY_SQLITE = f"{READ_ONLY_SQLITE}; the worker's log says more."
# SQLite's primary result codes (an extended code's low byte) of a database unavailable for
# now: another connection holding its lock (BUSY, LOCKED), its disk failing or full (IOERR,
# FULL), its file out of reach (CANTOPEN), out of memory (NOMEM), a lock's race (PROTOCOL).
# Any other fails the same way each time: SQLITE_ERROR (a column or table that isn't there,
# a syntax error, too many parameters), READONLY, CONSTRAINT...
_SQLITE_OUTAGES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR,
                             sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOMEM,
                             sqlite3.SQLITE_PROTOCOL})  # fmt: skip
# ... as an error without SQLite's code (one the sqlite3 module raised itself) says them
_SQLITE_OUTAGE_WORDS = ("database is locked", "database table is locked", "disk I/O error",
                        "database or disk is full", "unable to open database file",
                        "out of memory", "locking protocol")  # fmt: skip
_SQLITE_FULL_WORDS = "database or disk is full"
_SQLITE_READ_ONLY_WORDS = "attempt to write a readonly database"  # every READONLY code's
# PostgreSQL's SQLSTATEs of a database out of reach for now: a connection lost or refused
# (08), out of resources (53), shutting down or starting (57P), a lock not granted in time
# (55P03), a statement timed out (57014), a serialization failure or deadlock (40001, 40P01),
# a write answered by a standby (25006: a failover under way, or an address still naming the
# old primary), the server's own I/O failing (58030)
_OUTAGE_STATES = ("08", "53", "57P", "55P03", "57014", "40001", "40P01", "25006", "58030")
_DISK_FULL = "53100"
_READ_ONLY_TRANSACTION = "25006"
# asyncpg's InterfaceError of a connection that is gone ("connection is closed", "cannot
# perform operation: connection is closed"). Its others are our own doing, and persist: "the
# number of query arguments cannot exceed 32767", "another operation is in progress" (one
# connection used by two tasks at once), a transaction misused...
_CLOSED = "connection is closed"
# A unique key taken by another transaction that committed first (PostgreSQL: a job giving
# its key back as another enqueue takes it, see queue._leave_owned): a race lost, which the
# next try sees the outcome of. Recording a result tries once more on it (see _record).
_RACE_LOST = "23505"
_DRIVER = "asyncpg"
# The errors of the database, its driver or SQLAlchemy, whose text may be SQL and parameters
_DATABASE_ERRORS = (sqlite3.Error, SQLAlchemyError, PostgresError, PostgresInterfaceError,
                    InternalClientError)  # fmt: skip


def database_outage(exc: BaseException) -> bool:
    """The error is the database's being unavailable for now, not a bug of ours, as the
    database or its driver says it (see the module's docstring): SQLite by its result code,
    PostgreSQL by its SQLSTATE (asyncpg's errors reach us wrapped, with it); a connection
    lost, as SQLAlchemy or asyncpg tells it, or never made, as the OSError it is
    (`database_unreachable`); the pool out of connections for too long."""
    if database_unreachable(exc) or isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    driver = _driver(exc)
    if isinstance(driver, sqlite3.Error):
        return _sqlite_outage(driver)
    if isinstance(driver, PostgresInterfaceError):
        return _CLOSED in str(driver)
    if isinstance(driver, InvalidCachedStatementError):  # once per pooled connection after
        # another process changed a table (a release's migration): the next try re-prepares
        return True
    return _sqlstate(exc).startswith(_OUTAGE_STATES)


def _driver(exc: BaseException) -> BaseException:
    """The driver's own error: SQLAlchemy's wraps the DBAPI's (`orig`), and SQLAlchemy's
    asyncpg adapter wraps asyncpg's (its cause)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    if isinstance(cause.__cause__, PostgresError | PostgresInterfaceError | InternalClientError):
        return cause.__cause__
    return cause


def _sqlite_outage(error: sqlite3.Error) -> bool:
    """SQLite's error is of its database unavailable for now (_SQLITE_OUTAGES), by the result
    code SQLite gave it, or by its words when it has none."""
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _SQLITE_OUTAGES
    return any(words in str(error) for words in _SQLITE_OUTAGE_WORDS)


def _database_full(exc: BaseException) -> bool:
    """The database has no room left: SQLite's SQLITE_FULL, PostgreSQL's disk_full."""
    driver = _driver(exc)
    if isinstance(driver, sqlite3.Error):
        code = getattr(driver, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF == sqlite3.SQLITE_FULL
        return _SQLITE_FULL_WORDS in str(driver)
    return _sqlstate(exc) == _DISK_FULL


def _sqlite_code_is(error: sqlite3.Error, code: int, words: str) -> bool:
    """SQLite's error has that primary result code (an extended code's low byte), or says
    `words` when it has no code (one rebuilt from a job's recorded error, or raised by the
    sqlite3 module itself)."""
    given = getattr(error, "sqlite_errorcode", None)
    if isinstance(given, int):
        return given & 0xFF == code
    return words in str(error)


def _read_only(exc: BaseException) -> str | None:
    """What the database is that refused a write because it is read-only ("postgres",
    "sqlite"), or None: SQLite's READONLY (SQLITE_READONLY_DIRECTORY and the others too),
    PostgreSQL's read_only_sql_transaction."""
    driver = _driver(exc)
    if isinstance(driver, sqlite3.Error):
        read_only = _sqlite_code_is(driver, sqlite3.SQLITE_READONLY, _SQLITE_READ_ONLY_WORDS)
        return "sqlite" if read_only else None
    return "postgres" if _sqlstate(exc) == _READ_ONLY_TRANSACTION else None


def read_only_words(exc: BaseException) -> str | None:
    """A write refused because the database is read-only, as Slack, /healthz and the job's
    error say it: what to check, by the database's kind (`DATABASE_READ_ONLY_*`); None for
    any other error. A PostgreSQL standby's answer and a SQLite file the process can't write
    said only "unavailable" or "refused a step", and nobody knew where to look."""
    kind = _read_only(exc)
    if kind is None:
        return None
    return DATABASE_READ_ONLY_POSTGRES if kind == "postgres" else DATABASE_READ_ONLY_SQLITE


def _because(exc: BaseException) -> str:
    """What a failure's log line adds after "... failed" so its first line says why: a
    read-only database's words (": the bot's database is read-only (...)"), else "". The
    traceback under it ends with the driver's words, but a worker on a database that stays
    read-only repeats the same first line every 30 s, and that line is what gets read."""
    kind = _read_only(exc)
    if kind is None:
        return ""
    return f": {READ_ONLY_POSTGRES if kind == 'postgres' else READ_ONLY_SQLITE}"


def _sqlstate(exc: BaseException) -> str:
    """PostgreSQL's SQLSTATE of the error, or "" (SQLite's, and anything not the database's)."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    state = getattr(cause, "sqlstate", None)
    return state if isinstance(state, str) else ""


def _on_the_way(exc: BaseException) -> bool:
    """An OSError of a connection (refused, reset, timed out, a host name not found) rather
    than of a file's (FileNotFoundError, PermissionError...); asyncio raises a bare OSError
    when every address of a host refused ("Multiple exceptions: ...")."""
    return isinstance(exc, ConnectionError | TimeoutError | socket.gaierror) or type(exc) is OSError


def database_unreachable(exc: BaseException) -> bool:
    """The database couldn't be reached: asyncpg raises a connection refused (a PostgreSQL
    that is down), a timeout or a host name not found as the OSError it is, which SQLAlchemy
    doesn't wrap. Told from another server's (an SMTP server's refusal is a ConnectionError
    too: aiosmtplib's SMTPConnectError) by where it was raised: in the driver."""
    if not _on_the_way(exc):
        return False
    frame = exc.__traceback__
    while frame is not None:
        module = frame.tb_frame.f_globals.get("__name__") or ""
        if module == _DRIVER or module.startswith(f"{_DRIVER}."):
            return True
        frame = frame.tb_next
    return False


def _database_error(exc: BaseException) -> bool:
    """An error of the database's, its driver's or SQLAlchemy's (see _DATABASE_ERRORS)."""
    return isinstance(exc, _DATABASE_ERRORS) or database_unreachable(exc)


def database_words(exc: BaseException) -> str | None:
    """A database error as its work's thread or report says it, never by its own text (its
    SQL and parameters): out of reach, read-only (`read_only_words`: an outage on
    PostgreSQL, not on SQLite, either way said with what to check), out of room,
    unavailable, or a step refused (any other: a bug, not an outage). None for an error
    that isn't the database's."""
    if database_unreachable(exc):
        return DATABASE_UNREACHABLE
    if (read_only := read_only_words(exc)) is not None:
        return read_only
    if database_outage(exc):
        return DATABASE_FULL if _database_full(exc) else DATABASE_DOWN
    return DATABASE_REFUSED if _database_error(exc) else None


def failure_words(exc: BaseException) -> str:
    """Why the work failed for good, as its thread or report says it: a database error in
    words (`database_words`), a ToldJobError by its message alone, anything else by its class
    and message."""
    if isinstance(exc, ToldJobError):
        return str(exc)
    return database_words(exc) or f"{type(exc).__name__}: {exc}"


def joined(error: str, said: str) -> str:
    """The error, then `said` (a sentence), if any: after a full stop of its own, one that
    ends without ("... No such file or directory: 'a.csv'")."""
    if not (error and said):
        return error or said
    return f"{error}{'' if error.endswith(('.', '!', '?')) else '.'} {said}"


def _job_error(exc: BaseException) -> str:
    """A failed attempt's error as its job records it (`referral-bot jobs` shows it), for
    whoever runs the bot to look into: a database that couldn't be reached in words (see
    DATABASE_UNREACHABLE), another database error by the driver's class and the first line
    of its message (not SQLAlchemy's "[SQL: ...]" and "[parameters: ...]": ids, addresses),
    and then, for a database that is read-only, what to check (`read_only_words`: the
    driver's "attempt to write a readonly database" doesn't say which file or why), anything
    else by its class and message. The class stays first: *Finish the undo* reads it back
    (bot.imports.undo._in_words)."""
    if database_unreachable(exc):
        return DATABASE_UNREACHABLE
    if (read_only := read_only_words(exc)) is not None:
        return f"{driver_error(exc)}: {read_only}"
    if _database_error(exc):
        return driver_error(exc)
    return f"{type(exc).__name__}: {exc}"


def _passes(exc: BaseException) -> bool:
    """An outage that waiting ends (what `surely` waits out, and recording a result retries):
    the database unavailable (`database_outage`), or the way to it: asyncpg raises a
    connection refused or reset, a timeout or a host name not found as the OSError it is,
    unwrapped. Not an OSError of a file's (FileNotFoundError, PermissionError...), nor a
    database error that isn't an outage (a column that isn't there, a statement refused):
    no wait mends those."""
    return database_outage(exc) or _on_the_way(exc)


def about(job: Job) -> str:
    """A job as its log lines name it: id, kind, workspace and the ids it works on (its
    payload holds ids only), so a failure says whose import or enrollment it was."""
    return f"job {job.id} ({job.kind}, team {job.team_id}, {(job.payload or '{}')[:200]})"


class JobStopped(Exception):
    """Raised at a checkpoint when the worker is shutting down or the job was cancelled."""


class PermanentJobError(Exception):
    """A failure that retrying cannot fix (bad file, missing batch): fail the job at once."""


class ToldJobError(Exception):
    """A failure its message says all of (an SMTP server that can't be reached): retried like
    any other, but logged as one line, not with a traceback, which is for the unexpected."""


class Backoff:
    """Delays that double from `start` up to `cap`; `reset()` after a success."""

    def __init__(self, start: float, cap: float) -> None:
        self.start = min(start, cap)
        self.cap = cap
        self.delay = self.start

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.delay = self.start


@dataclass
class JobContext:
    """What a handler gets: the job's plain payload and ways to report and to stop cleanly."""

    db: Database
    job: Job
    owner: str
    payload: dict[str, Any]
    stopping: asyncio.Event
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    # the run began a step that ends its job for good (`surely`): it gives up itself, and the
    # worker doesn't give up on it a second time (Worker._give_up_after)
    ending: bool = False

    @property
    def team_id(self) -> str:
        return self.job.team_id

    @property
    def last_attempt(self) -> bool:
        """This run is the job's last: a failure now is for good (the handler gives up)."""
        return self.job.attempts >= self.job.max_attempts

    def checkpoint(self) -> None:
        """Call between units of work: stops here if shutting down or cancelled."""
        if self.stopping.is_set() or self.lost.is_set():
            raise JobStopped

    async def progress(self, done: int, total: int) -> None:
        """Record progress; a database error here is logged and the job goes on."""
        try:
            owned = await queue.report_progress(self.db, self.job, self.owner, done, total)
        except Exception as exc:
            log.exception("%s: recording progress %s/%s failed%s; going on", about(self.job),
                          done, total, _because(exc))  # fmt: skip
        else:
            if not owned:
                self.lost.set()
        self.checkpoint()


Handler = Callable[[JobContext], Awaitable[None]]
# Told, in the transaction that records a worker's start or clean stop, the job kinds that
# some live worker can run now and none could, or none can any more (Worker._arrive, _leave)
KindsChanged = Callable[[AsyncConnection, frozenset[str]], Awaitable[object]]
# the job's error in, and what giving up did that the job's error should say too (a sentence,
# added after it: see GivingUp), or None
GiveUp = Callable[[JobContext, str], Awaitable[str | None]]


async def surely(ctx: JobContext, what: str, step: Callable[[], Awaitable[T]]) -> T:
    """`step` of a run that ends its job for good (failing the work, telling its thread),
    retried through a database outage (0.5 s doubling to 30 s) until it is done.

    Raised, it was never taken: the worker recorded the job failed once the database was
    back, and nothing else takes that step, so the work said "importing", "Reading…" or
    "Enrolling…" for good, or its thread was never told. Told to stop meanwhile (a shutdown,
    the job cancelled or taken over), the run is handed back (JobStopped): the job keeps its
    last attempt, and the worker that takes it runs it again, or gives up on it (GivingUp),
    taking the step then. Each step is safe to take twice: a retry follows one that may
    have got part way.

    Only an outage is waited out (`_passes`): any other error (a constraint violated, a
    column or table that isn't there, more parameters than the driver sends: a bug) fails
    the same way each time, and was retried for as long as the worker ran, the job never
    ending. It is logged with the step and raised."""
    ctx.ending = True
    backoff = Backoff(0.5, 30.0)
    while True:
        try:
            return await step()
        except JobStopped:
            raise
        except Exception as exc:
            if not _passes(exc):
                log.exception("%s: %s failed%s, and waiting can't mend it (not an outage)",
                              about(ctx.job), what, _because(exc))  # fmt: skip
                raise
            delay = backoff.next()
            log.exception("%s: %s failed%s; retrying in %.1f s", about(ctx.job), what,
                          _because(exc), delay)  # fmt: skip
            if ctx.stopping.is_set() or ctx.lost.is_set():
                raise JobStopped from None
            await asyncio.sleep(delay)


@dataclass(frozen=True, slots=True)
class GivingUp:
    """A handler with the step its job takes when it gives up on a run that never failed.

    A handler gives up in its own `except` when its last attempt fails (the import is marked
    failed, the file unread, and the thread told). An attempt that kills its worker (out of
    memory, killed) never gets there: its lease expires and another worker takes it again, so
    without a limit a job that kills every worker would be taken forever. Once every attempt
    ended so, the worker runs `give_up` instead of the handler, then fails the job.

    A kind that can tell when its work is complete (`done_when`: an import's batch applied,
    an enrollment done) has such a job ended done instead, once `give_up` told its real
    result: the run that did the work was killed after its last write and before it marked
    the job done (or that marking failed), and the job said "failed" of an import whose
    contacts were all in. The send job can't tell (a run sends what is due when it runs):
    it fails as before.

    What `give_up` returns (a sentence: the segment an import made, withdrawn with it) ends
    the job's error, as `referral-bot jobs` shows it: the job's other failures say it in
    their own error (PermanentJobError), but a give-up's error is the worker's, and said
    only "gave up: ..." of an import whose segment was gone."""

    run: Handler
    give_up: GiveUp
    # The kind's SQL that its work is recorded complete (queue.Done), if it can tell: a job
    # given up on whose work is complete (its run killed after its last write, before the
    # job was marked done) is ended done once `give_up` told its result (which, for
    # complete work, is the real one), not failed "gave up: the worker running it stopped".
    done_when: Callable[[JobContext], queue.Done] | None = None

    async def __call__(self, ctx: JobContext) -> None:
        await self.run(ctx)


@dataclass
class WorkerConfig:
    concurrency: int = 1
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    retry_base_seconds: float = 5.0
    backoff_seconds: float = 0.5  # first wait after a database error, doubling ...
    max_backoff_seconds: float = 30.0  # ... up to this


class Worker:
    """Runs jobs until stop(); safe to run several in several processes on one database."""

    def __init__(self, db: Database, handlers: dict[str, Handler], config: WorkerConfig, *,
                 kinds_changed: KindsChanged | None = None) -> None:  # fmt: skip
        self.db = db
        self.handlers = handlers
        self.config = config
        self.kinds_changed = kinds_changed
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = asyncio.Event()
        self.completed = 0
        self.failed = 0  # attempts that failed (a job retried counts each time)
        self._taken = 0  # run_by_key's runs so far

    @property
    def kinds(self) -> frozenset[str]:
        """The job kinds this worker claims: exactly those it has handlers for."""
        return frozenset(self.handlers)

    def stop(self) -> None:
        self.stopping.set()

    def _backoff(self) -> Backoff:
        return Backoff(self.config.backoff_seconds, self.config.max_backoff_seconds)

    async def run(self) -> None:
        """Take jobs until stop(); only CancelledError ends it early, never a database error."""
        presence = asyncio.create_task(self._presence())
        try:
            loops = max(1, self.config.concurrency)
            # each loop holds its jobs under a lease owner of its own: one owner for all let a
            # loop whose lease lapsed (only slow) go on beside the loop of the same worker that
            # took its job over, each check that a run still holds its job passing for both
            await asyncio.gather(*(self._loop(self.owner if loops == 1 else f"{self.owner}#{n}")
                                   for n in range(loops)))  # fmt: skip
        finally:
            presence.cancel()
            await asyncio.wait([presence])
            try:
                await self._leave()
            except Exception:  # its row goes stale and is ignored, then deleted
                log.exception("worker %s: removing it from the worker list failed", self.owner)

    async def run_until_idle(self) -> int:
        """Drain the queue once and return how many jobs ran (tests, one-shot commands)."""
        ran = 0
        while (
            job := await queue.claim(self.db, self.owner, self.config.lease_seconds, self.kinds)
        ) is not None:
            await self._run(job)
            ran += 1
        return ran

    async def run_by_key(self, team_id: str, dedupe_key: str) -> bool:
        """Take the job of that key (`queue.claim_by_key`) and run it now, as a claimed one
        is run: under a heartbeat, then done, queued again with backoff for the workers, or
        failed; killed meanwhile, its lease lapses and a worker takes it. False when there
        was nothing to take (a worker runs it, or it ran already)."""
        self._taken += 1  # runs at once may overlap: each holds its job as its own (see run)
        owner = f"{self.owner}#now{self._taken}"
        job = await queue.claim_by_key(self.db, team_id, dedupe_key, owner,
                                       self.config.lease_seconds)  # fmt: skip
        if job is None:
            return False
        await self._run(job, owner)
        return True

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once on stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _loop(self, owner: str) -> None:
        backoff = self._backoff()
        while not self.stopping.is_set():
            try:
                job = await queue.claim(self.db, owner, self.config.lease_seconds, self.kinds)
            except Exception as exc:  # the database may be restarting: wait and try again
                delay = backoff.next()
                log.exception("worker %s: claiming a job failed%s; retrying in %.1f s",
                              self.owner, _because(exc), delay)  # fmt: skip
                await self._pause(delay)
                continue
            backoff.reset()
            if job is None:
                await self._pause(self.config.poll_seconds)
                continue
            try:
                await self._run(job, owner)
            except Exception as exc:  # _run records its own failures; this is a last resort
                delay = backoff.next()
                log.exception("%s: the worker failed running it%s; going on in %.1f s",
                              about(job), _because(exc), delay)  # fmt: skip
                await self._pause(delay)

    async def _run(self, job: Job, owner: str | None = None) -> None:
        """Run a job this worker claimed as `owner` (its own name, or a loop's: see run)."""
        handler = self.handlers.get(job.kind)
        db, owner = self.db, owner or self.owner
        ctx = JobContext(db, job, owner, {}, self.stopping)
        beat = asyncio.create_task(self._heartbeat(ctx))
        try:
            try:
                ctx.payload = json.loads(job.payload or "{}")
                if handler is None:
                    raise PermanentJobError(f"no handler for job kind {job.kind!r}")
                if job.attempts > job.max_attempts:  # see GivingUp
                    complete = await self._complete(ctx, handler)
                    error, stepped = await self._give_up(ctx, handler, complete)
                    if complete and stepped and await self._end_complete(ctx, handler):
                        return
                    raise PermanentJobError(error)
                await handler(ctx)
            except JobStopped:
                await self._hand_back(ctx)
            except PermanentJobError as exc:
                error = str(exc)
                log.error("%s failed for good: %s", about(job), error)
                self.failed += 1
                await self._record(job, "recording its failure", lambda: queue.fail(
                    db, job, owner, error, retry_base=0, permanent=True
                ))  # fmt: skip
            except Exception as exc:
                told = isinstance(exc, ToldJobError)
                if told:
                    log.error("%s failed (attempt %s of %s): %s", about(job), job.attempts,
                              job.max_attempts, exc)  # fmt: skip
                else:
                    log.exception("%s failed (attempt %s of %s)%s", about(job), job.attempts,
                                  job.max_attempts, _because(exc))  # fmt: skip
                error = str(exc) if told else _job_error(exc)
                try:
                    said, complete = await self._give_up_after(
                        ctx, handler, str(exc) if told else failure_words(exc))
                except JobStopped:  # stopping in an outage: the job keeps its last attempt
                    await self._hand_back(ctx)
                    return
                if complete and said is not None and await self._end_complete(ctx, handler):
                    return
                error = joined(error, said or "")
                base = self.config.retry_base_seconds
                self.failed += 1
                await self._record(job, "recording its failure", lambda: queue.fail(
                    db, job, owner, error, retry_base=base
                ))  # fmt: skip
            else:
                if await self._record(job, "marking it done", lambda: queue.finish(db, job, owner)):
                    self.completed += 1
        finally:
            beat.cancel()  # only now: the lease stays renewed while a result is being recorded
            await asyncio.wait([beat])

    async def _hand_back(self, ctx: JobContext) -> None:
        """The run stopped (a shutdown, the job cancelled or taken over): the job goes back to
        the queue untouched by this attempt, unless it is no longer ours."""
        job, owner = ctx.job, ctx.owner
        if not ctx.lost.is_set() and await self._record(
            job, "handing it back", lambda: queue.release(self.db, job, owner)
        ):
            log.info("%s released for another worker", about(job))

    async def _give_up(self, ctx: JobContext, handler: Handler,
                       complete: bool = False) -> tuple[str, bool]:  # fmt: skip
        """The job's every attempt ended with its worker gone: give up (see GivingUp) and
        return the job's error, with what giving up did, and whether its give-up step was
        taken without an error. `complete`: its work is recorded complete (`_complete`), and
        the step tells its real result. JobStopped: stopped while giving up in an outage."""
        job = ctx.job
        error = (f"{WORKERS_DIED} during each of its {job.max_attempts} attempts (killed, or "
                 "out of memory?)")  # fmt: skip
        if complete:
            log.warning("%s: its every attempt's worker stopped, but its work is complete: "
                        "telling its result, then ending it done", about(job))  # fmt: skip
        else:
            log.error("%s: %s", about(job), error)
        if isinstance(handler, GivingUp):
            said = await self._surely_give_up(ctx, handler, error)
            return joined(error, said or ""), said is not None
        return error, True

    async def _give_up_after(self, ctx: JobContext, handler: Handler | None,
                             error: str) -> tuple[str | None, bool]:  # fmt: skip
        """A last attempt failed before its handler took a step that ends the job
        (`surely`): give up on it here (GivingUp), once. A handler gives up in its own
        `except`, but its first read (the import's batch, the source a file or audience
        job reads) comes before any: the database gone at that moment, the job failed and
        its work said "importing" or "Reading…" for good. Returns what giving up did, for
        the job's error (see GivingUp: "", or None if the step failed), and whether the
        job's work is recorded complete (an earlier attempt did it, and was killed before
        it marked the job done): the step then tells its real result. ("", False) when it
        didn't give up. JobStopped: stopped meanwhile."""
        if ctx.last_attempt and isinstance(handler, GivingUp) and not ctx.ending:
            complete = await self._complete(ctx, handler)
            log.warning("%s: its last attempt failed before giving up; %s", about(ctx.job),
                        "its work is complete: telling its result, then ending it done"
                        if complete else "giving up on it now")  # fmt: skip
            return await self._surely_give_up(ctx, handler, error), complete
        return "", False

    async def _surely_give_up(self, ctx: JobContext, handler: GivingUp,
                              error: str) -> str | None:  # fmt: skip
        """`handler.give_up` through a database outage (`surely`); what it did, for the job's
        error, or "". Any other error is logged (by `surely`) and the job fails all the same
        (None): it must not be taken again."""
        try:
            said = await surely(ctx, "giving up on it", lambda: handler.give_up(ctx, error))
        except JobStopped:
            raise
        except Exception:  # `surely` logged it, with its traceback
            return None
        return said or ""

    async def _complete(self, ctx: JobContext, handler: Handler | None) -> bool:
        """Whether the job's work is recorded complete (GivingUp.done_when), read through a
        database outage: a worker giving up on it then ends it done (`_end_complete`). False
        for a kind that can't tell, or when the read fails otherwise (logged): the job fails
        as before. JobStopped: stopped meanwhile."""
        if not isinstance(handler, GivingUp) or handler.done_when is None:
            return False
        done_when = handler.done_when
        try:
            return await surely(ctx, "reading whether its work is complete",
                                lambda: queue.work_complete(self.db, ctx.job, done_when(ctx)))
        except JobStopped:
            raise
        except Exception:  # `surely` logged it
            return False

    async def _end_complete(self, ctx: JobContext, handler: Handler | None) -> bool:
        """End a job given up on as done, its work recorded complete and its result told (the
        give-up step did: see GivingUp): decided by the UPDATE itself (`queue.finish` with
        the kind's `done_when`), which ends it only while it is ours and its work complete.
        True if it ended so; False: it fails as any job given up on."""
        assert isinstance(handler, GivingUp) and handler.done_when is not None
        job, done = ctx.job, handler.done_when(ctx)
        if not await self._record(job, "marking it done", lambda: queue.finish(
                self.db, job, ctx.owner, done)):  # fmt: skip
            return False
        log.warning("%s: its work was complete, its run stopped before marking it done: done, "
                    "not failed", about(job))  # fmt: skip
        self.completed += 1
        return True

    async def _record(self, job: Job, what: str, call: Callable[[], Awaitable[bool]]) -> bool:
        """Record a job's outcome, retrying through a database outage (`_passes`).

        True if recorded; False if the job was no longer ours, if the error is one waiting
        can't fix, or if the worker is stopping and the database still fails: the job's
        lease then expires and another worker takes it (an attempt more, so a job that keeps
        failing so ends failed once it is out of attempts). Only an outage is retried: any
        other error, a database's too (a constraint violated, a statement the database
        refuses), fails the same way each time, and was retried for as long as the worker
        ran, the job `running` under a lease kept renewed and its worker taking nothing else.
        A unique key lost to a transaction that committed first (PostgreSQL) is tried once
        more: that try sees what the other one did.
        """
        backoff = self._backoff()
        failed_while_stopping = 0
        raced = False
        while True:
            try:
                return await call()
            except Exception as exc:
                if not raced and _sqlstate(exc) == _RACE_LOST:
                    raced = True
                    log.warning("%s: %s lost a race for a unique key (%s); trying again",
                                about(job), what, exc)  # fmt: skip
                    continue
                if not _passes(exc):
                    log.exception("%s: %s failed%s, and retrying can't help; leaving it to "
                                  "its lease, which lapses: then another worker takes it again",
                                  about(job), what, _because(exc))  # fmt: skip
                    return False
                if self.stopping.is_set():
                    failed_while_stopping += 1
                    if failed_while_stopping >= GIVE_UP_WHEN_STOPPING:
                        log.exception("%s: %s failed%s; stopping anyway, its lease will "
                                      "expire and another worker takes it over", about(job),
                                      what, _because(exc))  # fmt: skip
                        return False
                delay = backoff.next()
                log.exception("%s: %s failed%s; retrying in %.1f s", about(job), what,
                              _because(exc), delay)  # fmt: skip
                await asyncio.sleep(delay)

    async def _heartbeat(self, ctx: JobContext) -> None:
        """Renew the lease every third of it; an error is logged and retried sooner.

        Only a definite answer that the job is no longer ours (cancelled, or the lease expired
        and another worker took it) stops the heartbeat and, at its next checkpoint, the job.
        """
        interval = self.config.lease_seconds / 3
        backoff = Backoff(self.config.backoff_seconds, interval)
        wait = interval
        while True:
            await asyncio.sleep(wait)
            try:
                owned = await queue.heartbeat(
                    self.db, ctx.job, ctx.owner, self.config.lease_seconds
                )
            except Exception as exc:
                wait = backoff.next()
                log.exception("%s: renewing its lease failed%s; retrying in %.1f s",
                              about(ctx.job), _because(exc), wait)  # fmt: skip
                continue
            if not owned:
                ctx.lost.set()  # cancelled, or our lease expired and someone else has it
                return
            backoff.reset()
            wait = interval

    @property
    def presence_seconds(self) -> float:
        """How often the worker refreshes its row: well inside `queue.stale_after`."""
        return min(PRESENCE_SECONDS, self.config.lease_seconds / 3)

    async def _presence(self) -> None:
        """Keep this worker's `worker_process` row fresh while it runs (even mid-job)."""
        backoff = self._backoff()
        first = True
        while True:
            try:
                if first:
                    await self._arrive()
                elif not await queue.refresh_worker(self.db, self.owner):
                    log.warning("worker %s: its row in the worker list was gone (taken for "
                                "dead, unseen too long); recording it again",
                                self.owner)  # fmt: skip
                    await self._arrive()
            except Exception as exc:
                wait = backoff.next()
                log.exception("worker %s: recording that it is alive failed%s; retrying in "
                              "%.1f s", self.owner, _because(exc), wait)  # fmt: skip
            else:
                if not first:
                    await self._forget_dead()
                first = False
                backoff.reset()
                wait = self.presence_seconds
            await asyncio.sleep(wait)

    async def _arrive(self) -> None:
        """Record this worker in the worker list, forgetting the rows of dead workers, and
        tell `kinds_changed` which kinds some live worker can run now or none can any more
        (App Home: invites no longer waiting for a sender, or waiting now that a dead sender
        is forgotten), in one transaction."""
        async with self.db.begin() as conn:
            changed = await queue.worker_started_in(
                conn, self.owner, self.kinds, pid=os.getpid(), host=self.host,
                older_than=queue.stale_after(self.config.lease_seconds))  # fmt: skip
            await self._tell_kinds_changed(conn, changed, "started")

    async def _forget_dead(self) -> None:
        """Forget the rows of workers that stopped refreshing theirs (killed, their host gone)
        and tell `kinds_changed` the kinds nobody runs any more, in one transaction: else a
        sender that died was noticed only by the next worker's start. Unlike a start's or a
        stop's, a failure of the telling undoes the forgetting too, so the next refresh tries
        both again: the row forgotten, the change would never be told."""
        try:
            async with self.db.begin() as conn:
                changed = await queue.dead_workers_forgotten_in(
                    conn, self.owner,
                    older_than=queue.stale_after(self.config.lease_seconds))  # fmt: skip
                if changed and self.kinds_changed is not None:
                    await self.kinds_changed(conn, changed)
        except Exception as exc:
            log.exception("worker %s: forgetting dead workers' rows failed%s; trying again at "
                          "its next refresh", self.owner, _because(exc))  # fmt: skip

    async def _leave(self) -> None:
        """Remove this worker from the worker list and tell `kinds_changed` the kinds no live
        worker can run any more (the last able to send stopped: due invites wait for one), in
        one transaction."""
        async with self.db.begin() as conn:
            changed = await queue.worker_stopped_in(
                conn, self.owner, self.kinds,
                older_than=queue.stale_after(self.config.lease_seconds))  # fmt: skip
            await self._tell_kinds_changed(conn, changed, "stopped")

    async def _tell_kinds_changed(self, conn: AsyncConnection, changed: frozenset[str],
                                  how: str) -> None:  # fmt: skip
        """`kinds_changed`, in a savepoint of the transaction that records the worker: what
        it queues commits with the record, but its failure (a bug, a statement timed out) is
        logged and rolled back alone. Sharing the transaction whole, it kept the worker out
        of the worker list, retried for ever as "recording that it is alive failed", while
        the worker ran jobs that `jobs` said waited for a worker."""
        if self.kinds_changed is None or not changed:
            return
        try:
            async with conn.begin_nested():
                await self.kinds_changed(conn, changed)
        except Exception as exc:
            log.exception("worker %s %s (who can run %s changed), but telling what that changes "
                          "failed%s; the worker list records it all the same", self.owner, how,
                          ", ".join(sorted(changed)), _because(exc))  # fmt: skip
