"""models.sqlite_driver: a call on aiosqlite's thread stops when its caller is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text

from models import Database, sqlite_driver
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="aiosqlite's thread")


async def test_a_cancelled_executemany_stops_between_its_rows(db: Database) -> None:
    """SQLite forgets an interrupt that comes while no statement runs, as between two rows of
    an executemany (staging a file parses each row on the connection's thread between two
    steps): cancelled, it went on through every row, the connection's thread busy (and a
    Ctrl-C'd shell waiting) until the whole file was staged."""
    reached = threading.Event()

    def rows() -> Iterator[tuple[int]]:
        for i in range(5_000_000):
            if i == 10_000:
                reached.set()
            yield (i,)

    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.execute("CREATE TEMP TABLE many (i INTEGER)")
        inserting = asyncio.create_task(raw.executemany("INSERT INTO many VALUES (?)", rows()))
        assert await asyncio.to_thread(reached.wait, 60)
        inserting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await inserting
        started = time.monotonic()
        await raw.execute("SELECT 1")  # the thread is free again
        assert time.monotonic() - started < 1.0
        async with raw.execute("SELECT COUNT(*) FROM many") as cursor:
            (count,) = await cursor.fetchone()
        assert count < 1_000_000
        await raw.rollback()


async def test_a_failed_statement_leaves_no_cursor_for_the_event_loop_to_wait_on(
    db: Database,
) -> None:
    """A statement that failed (a unique key taken: a form submitted twice) left its cursor
    open in a reference cycle. The garbage collector, run on the event loop's thread, reset
    it and so waited for its connection's lock, held while the connection's next statement
    waited for SQLite's write lock; the writer holding that was a task on the same loop.
    Twelve forms submitted twice at once stalled every answer for the 30 s busy timeout
    and lost campaigns to "database is locked"."""
    from sqlalchemy.exc import IntegrityError

    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE once_only (k INTEGER PRIMARY KEY)"))
        await conn.execute(text("INSERT INTO once_only VALUES (1)"))
    collected = threading.Event()
    gc.disable()  # the cycle is collected below, while the connection is busy, as it was
    try:
        async with db.engine.connect() as failing, db.engine.connect() as writer:
            with contextlib.suppress(IntegrityError):
                await failing.execute(text("INSERT INTO once_only VALUES (1)"))
            await failing.rollback()
            await writer.execute(text("INSERT INTO once_only VALUES (2)"))  # the write lock
            waiting = asyncio.create_task(failing.execute(text("INSERT INTO once_only VALUES (3)")))
            driver = (await failing.get_raw_connection()).driver_connection
            while driver._call_now is None:  # `failing`'s thread begins its statement...
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # ...and waits out the busy timeout in it
            assert not waiting.done()
            threading.Thread(target=lambda: (gc.collect(), collected.set()), daemon=True).start()
            finished = await asyncio.to_thread(collected.wait, 5)
            await writer.rollback()  # lets `failing` (and, before the fix, the collector) go
            await waiting
            await failing.rollback()
        assert finished, "the garbage collector waited on a busy connection's lock"
    finally:
        gc.enable()


def test_a_connection_that_cant_open_its_file_answers_its_stop_before_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that can't be opened: aiosqlite queued its thread's stop and raised at once;
    the thread answered the stop later, and found the caller's event loop closed by then
    (CI's "Exception in thread … Event loop is closed" warning, after a test of exactly
    this; a shell's traceback at exit). Here the loop closes as soon as the error arrives,
    twenty times: the thread was that late about one time in two."""
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    for _ in range(20):
        conn = sqlite_driver.connect(str(tmp_path / "unmounted" / "bot.db"))
        loop = asyncio.new_event_loop()
        try:
            with pytest.raises(sqlite3.OperationalError, match="unable to open database file"):
                loop.run_until_complete(_opened(conn))
        finally:
            loop.close()
        conn._thread.join(5)
        assert not conn._thread.is_alive()
    assert died == [], died


async def _opened(conn: aiosqlite.Connection) -> None:
    await conn
