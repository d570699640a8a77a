"""aiosqlite's connection, made to stop its call when the caller is cancelled.

aiosqlite runs each call on the connection's own thread; a cancelled caller (Ctrl-C, a
cancelled job) stops waiting, but the statement goes on to its end (an apply chunk: seconds;
minutes on a loaded machine), holding SQLite's write lock. `models.db` used to interrupt it
when SQLAlchemy let the connection go (its "invalidate" event); since SQLAlchemy 2.0.59 the
dialect first closes the interrupted cursor (its issue #13831), and that close waits on the
same thread for the statement to end, so the shell's Ctrl-C waited for the whole statement
before its job could be handed back. Stopping the call at the cancellation itself comes
before either.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import suppress
from threading import Thread
from typing import Any

import aiosqlite

from models.private_file import create_private

# How often (in SQLite VM steps) a running statement checks whether its caller was cancelled:
# about every few hundred rows of an executemany, at no cost to measure on a 1M-row insert.
CHECK_EVERY_STEPS = 10_000


class _Call:
    """One call on the connection's thread, marked once its caller is cancelled."""

    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False


class InterruptibleConnection(aiosqlite.Connection):
    """A connection whose call stops when its caller is cancelled.

    `sqlite3.Connection.interrupt` alone was not enough: SQLite forgets an interrupt that
    comes while no statement runs, as between two rows of an `executemany` (staging a file:
    every row parsed on this thread between two steps) or between a call being queued and
    its first step; the statement then ran to its end. So the call is marked too: one not
    begun is skipped, and one running is stopped by a progress handler that reads the mark
    of the call running now (never another's). A connection serves one caller at a time
    (the pool checks it out)."""

    _call_now: _Call | None = None  # (aiosqlite has its own `_running`)

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        call = _Call()

        def run() -> Any:
            if call.cancelled:  # its caller is gone: not begun, nothing to undo
                raise sqlite3.OperationalError("interrupted")
            self._call_now = call
            try:
                return fn(*args, **kwargs)
            except BaseException:
                _close_failed(fn)
                raise
            finally:
                self._call_now = None

        try:
            return await super()._execute(run)
        except asyncio.CancelledError:
            call.cancelled = True
            if self._call_now is call:  # at once, for a statement in one long step (never
                interrupt(self)  # another call's: one not begun is skipped when its turn comes)
            raise

    _stopping: asyncio.Future[Any] | None = None

    def stop(self) -> asyncio.Future[Any] | None:
        self._stopping = super().stop()
        return self._stopping

    async def _connect(self) -> aiosqlite.Connection:
        """aiosqlite's connect; a failed one (the file can't be opened) returns once the
        connection's thread has stopped. aiosqlite queues the stop and raises at once: the
        thread, answering later, found its caller's event loop closed ("Exception in thread
        ... Event loop is closed", a test's warning; a shell's traceback at exit)."""
        try:
            return await super()._connect()
        except BaseException:
            if self._stopping is not None:  # its outcome is the stop's, nothing to tell; a
                with suppress(Exception):  # cancel of this wait goes on (not swallowed)
                    await asyncio.shield(self._stopping)
            raise

    def stop_cancelled(self) -> int:
        """SQLite's progress handler, on the connection's thread: non-zero stops the running
        statement ("interrupted"), when its caller was cancelled."""
        call = self._call_now
        return 1 if call is not None and call.cancelled else 0


def _close_failed(fn: Any) -> None:
    """Close the cursor whose call failed (a unique key taken, the database busy), here on
    its connection's thread. SQLAlchemy's dialect leaves it open (it closes one only on a
    cancellation), held by the error's traceback in a reference cycle; the garbage collector
    then reset its statement on whatever thread it ran, often the event loop's, and that
    reset waits for the connection's lock, held by the thread while a later statement on
    the connection waited out the busy timeout for SQLite's write lock. The writer it waited
    for was a task on that same blocked loop: every Slack answer stalled for the whole busy
    timeout (30 s), and the waiting writes failed "database is locked"."""
    cursor = getattr(fn, "__self__", None)
    if isinstance(cursor, sqlite3.Cursor):
        with suppress(sqlite3.Error):
            cursor.close()


def interrupt(conn: aiosqlite.Connection) -> None:
    """Stop the statement running on `conn`'s thread, if any (a no-op otherwise).
    `sqlite3.Connection.interrupt` is made to be called from another thread."""
    # aiosqlite's own attribute, not its `_conn` property, which raises once the connection
    # is gone; raising here would hide the cancellation being handled
    raw = getattr(conn, "_connection", None)
    if isinstance(raw, sqlite3.Connection):
        with suppress(sqlite3.Error):
            raw.interrupt()


def connect(database: str, *, iter_chunk_size: int = 64, **kwargs: Any) -> aiosqlite.Connection:
    """`aiosqlite.connect`, with an `InterruptibleConnection`: SQLAlchemy's aiosqlite dialect
    calls it with the URL's arguments (given as `connect_args={"async_creator_fn": connect}`).
    Its thread is a daemon, as the dialect makes aiosqlite's own: a connection nobody closed
    (a process ending on an error) must not hold the interpreter's exit."""

    def connector() -> sqlite3.Connection:
        if not kwargs.get("uri"):
            create_private(database)
        raw = sqlite3.connect(database, **kwargs)
        raw.set_progress_handler(conn.stop_cancelled, CHECK_EVERY_STEPS)
        return raw

    conn = InterruptibleConnection(connector, iter_chunk_size)
    thread = conn if isinstance(conn, Thread) else conn._thread  # a Thread before 0.22
    thread.daemon = True
    return conn
