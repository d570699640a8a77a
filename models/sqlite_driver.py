"""aiosqlite's connection, made to stop its statement when the caller is cancelled.

aiosqlite runs each call on the connection's own thread; a cancelled caller (Ctrl-C, a
cancelled job) stops waiting, but the statement goes on to its end (an apply chunk: seconds;
minutes on a loaded machine), holding SQLite's write lock. `models.db` used to interrupt it
when SQLAlchemy let the connection go (its "invalidate" event); since SQLAlchemy 2.0.59 the
dialect first closes the interrupted cursor (its issue #13831), and that close waits on the
same thread for the statement to end, so the shell's Ctrl-C waited for the whole statement
before its job could be handed back. Interrupting at the cancellation itself comes before
either.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import suppress
from threading import Thread
from typing import Any

import aiosqlite


class InterruptibleConnection(aiosqlite.Connection):
    """A connection whose running statement is interrupted when its caller is cancelled.

    A connection serves one caller at a time (the pool checks it out), so what runs on its
    thread then is that caller's. SQLite rolls an interrupted write's transaction back."""

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._execute(fn, *args, **kwargs)
        except asyncio.CancelledError:
            interrupt(self)
            raise


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
        return sqlite3.connect(database, **kwargs)

    conn = InterruptibleConnection(connector, iter_chunk_size)
    thread = conn if isinstance(conn, Thread) else conn._thread  # a Thread before 0.22
    thread.daemon = True
    return conn
