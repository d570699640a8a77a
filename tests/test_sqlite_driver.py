"""models.sqlite_driver: a call on aiosqlite's thread stops when its caller is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from models import Database
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
