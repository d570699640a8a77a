"""Writes classified rows into `staged_row` as fast as each database allows.

SQLite: one `executemany` over the lazy row iterator, on aiosqlite's own thread: parsing and
inserting interleave in one thread (two CPU-bound threads would fight over the GIL) and the
event loop stays free. PostgreSQL: a big file's rows, from its parser child (parallel.py), are
written as COPY CSV on a worker thread and streamed to the server; other rows are built in a
worker thread a chunk at a time and sent with binary COPY.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from itertools import islice
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.imports.parallel import ParallelRows
from bot.imports.rows import Staged
from models import Database

COPY_CHUNK = 20_000
# PostgreSQL plans an import's apply from staged_row's statistics, and a bulk COPY leaves them
# saying the table is (nearly) empty until autovacuum gets round to it: the apply then joined
# every staged row to its source through an index, one probe a row, and read the rows more
# slowly (1M rows: 11.0 s -> 9.5 s for the contacts and memberships with fresh statistics).
# ANALYZE samples a fixed number of rows, about 0.2 s however big the table: worth it from
# about that many rows' worth of probes (~1 us a row); ten 100k-row imports paid 2 s for it.
ANALYZE_ROWS = 250_000

# Per-row values only: the constant columns go into the statement as literals, which saves
# a third of the binding work sqlite3 does per row.
_ROW_COLUMNS = ("line", "email", "email_key", "first_name", "last_name", "locale", "outcome",
                "reason", "subscribed")  # fmt: skip
_CONSTANT_COLUMNS = ("team_id", "batch_id", "source_id", "removed")
_COLUMNS = (*_CONSTANT_COLUMNS, *_ROW_COLUMNS)
# In COPY CSV an empty unquoted field is NULL; in these columns it is an empty string.
_NOT_NULL_TEXT = ["email", "email_key", "first_name", "last_name", "outcome"]
_SAFE_TEAM = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")


def copy_constants(team_id: str, batch_id: int, source_id: int) -> tuple[object, ...]:
    """The columns all of a source's staged rows share (_CONSTANT_COLUMNS), in that order."""
    return (team_id, batch_id, source_id, False)


async def stage_rows(
    conn: AsyncConnection, *, team_id: str, batch_id: int, source_id: int,
    rows: Iterator[Staged] | ParallelRows,
) -> None:  # fmt: skip
    """Insert every row of `rows` for one source, replacing what it staged before.

    Runs inside the caller's transaction, so a failure or a crash leaves nothing half-staged.
    """
    if not _SAFE_TEAM.match(team_id):
        raise ValueError(f"unexpected team id {team_id!r}")
    await conn.execute(
        text("DELETE FROM staged_row WHERE team_id = :t AND batch_id = :b AND source_id = :s"),
        {"t": team_id, "b": batch_id, "s": source_id},
    )
    raw = (await conn.get_raw_connection()).driver_connection
    if conn.dialect.name == "sqlite":
        await _sqlite_insert(raw, team_id, int(batch_id), int(source_id), iter(rows))
    elif isinstance(rows, ParallelRows):  # the child's rows as COPY CSV, written on a thread
        await raw.copy_to_table(
            "staged_row", source=rows.copy_data(), columns=[*_ROW_COLUMNS, *_CONSTANT_COLUMNS],
            format="csv", force_not_null=_NOT_NULL_TEXT,
        )  # fmt: skip
    else:
        await _postgres_copy(raw, copy_constants(team_id, batch_id, source_id), rows)


# A write that changes nothing: on SQLite it takes the staging file's write lock (waiting
# out the busy timeout for it) before the transaction reads staged rows.
_TAKE = text("UPDATE staged_row SET removed = removed WHERE id = -1")


async def take_staging(conn: AsyncConnection) -> None:
    """Call before a transaction reads staged rows and then writes them (SQLite only).

    The staging file keeps a rollback journal: a transaction that read it (a shared lock)
    and then wants to write, while another holds its write lock (a big file being staged),
    is refused at once, busy timeout or not (SQLite's way out of a deadlock), so a contact
    typed in or a contact removed failed whenever any file was being read. Taking the write
    lock first waits for it instead."""
    if conn.dialect.name == "sqlite":
        await conn.execute(_TAKE)


async def refresh_statistics(db: Database, rows: int) -> None:
    """After staging `rows` rows, in a transaction of its own: ANALYZE takes a lock that
    another import's ANALYZE waits for, so it must not be held while the rows are written."""
    if db.is_sqlite or rows < ANALYZE_ROWS:
        return
    async with db.begin() as conn:
        await conn.execute(text("ANALYZE staged_row"))


async def _sqlite_insert(
    raw: Any, team: str, batch: int, source: int, rows: Iterator[Staged]
) -> None:
    constants = f"'{team}', {batch}, {source}, 0"
    params = ", ".join("?" * len(_ROW_COLUMNS))
    sql = f"INSERT INTO staged_row ({', '.join(_COLUMNS)}) VALUES ({constants}, {params})"
    await raw.executemany(sql, rows)


async def _postgres_copy(raw: Any, prefix: tuple[Any, ...], rows: Iterator[Staged]) -> None:
    def next_chunk() -> list[tuple[Any, ...]]:
        return [(*prefix, *row) for row in islice(rows, COPY_CHUNK)]

    while chunk := await asyncio.to_thread(next_chunk):
        await raw.copy_records_to_table("staged_row", records=chunk, columns=list(_COLUMNS))
