"""SQLite: staged rows live in a file of their own beside the database, attached as `staging`.

Staged rows are a working copy of the files under review: written once in bulk, read a few
times, deleted after their retention. In the main file each of them would be written twice
(WAL, then checkpoint) with an fsync, and staging a big file would hold the main file's only
write lock for as long as it takes, so every click that writes would wait. In their own file,
with an in-memory rollback journal and no fsync, they cost about half the bytes and never
block the main file. What a crash of the machine (not of the process) could leave damaged
here is only ever re-readable from its source file; nothing here is a contact yet.

The table is named as in the models (`staged_row`) and the main file has none, so every query
that names it unqualified reads this one. Its schema is kept here, not in the migrations:
`user_version` says which shape the file has, and a file of an older shape is rebuilt.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from models.private_file import create_private

SCHEMA = "staging"
VERSION = 1

# The columns and order of models.imports.StagedRow; only the index the queries use: rows of a
# batch (and of one source in it), in the order they were staged.
_DDL = (
    """CREATE TABLE IF NOT EXISTS {schema}.staged_row (
        id INTEGER NOT NULL PRIMARY KEY,
        team_id VARCHAR(32) NOT NULL,
        batch_id INTEGER NOT NULL,
        source_id INTEGER NOT NULL,
        line INTEGER NOT NULL,
        email VARCHAR(320) NOT NULL,
        email_key VARCHAR(320) NOT NULL,
        first_name VARCHAR(200) NOT NULL,
        last_name VARCHAR(200) NOT NULL,
        locale VARCHAR(35),
        outcome VARCHAR(10) NOT NULL,
        reason VARCHAR(500),
        removed BOOLEAN NOT NULL,
        subscribed BOOLEAN)""",
    "CREATE INDEX IF NOT EXISTS {schema}.ix_staged_row_batch ON staged_row (batch_id, source_id)",
)


def staging_path(main_path: str) -> str:
    """`bot.db` -> `bot.staging.db`; an in-memory database stages in memory too."""
    if not main_path:
        return ":memory:"
    path = Path(main_path)
    return str(path.with_name(f"{path.stem}.staging{path.suffix or '.db'}"))


def attach_staging(dbapi_conn: Any) -> None:
    """Attach the staging file to a new SQLite connection, creating its table if needed."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA database_list")
        main = next(row[2] for row in cursor.fetchall() if row[1] == "main")
        path = staging_path(main)
        create_private(path)
        cursor.execute(f"ATTACH DATABASE ? AS {SCHEMA}", (path,))
        cursor.execute(f"PRAGMA {SCHEMA}.journal_mode=MEMORY")
        cursor.execute(f"PRAGMA {SCHEMA}.synchronous=OFF")
        cursor.execute(f"PRAGMA {SCHEMA}.cache_size=-8192")
        if (version := _version(cursor, SCHEMA)) == VERSION:
            return  # shaped already (by upgrade, off the event loop: prepare_file)
        if path == ":memory:":
            _create(cursor, version, SCHEMA)  # this connection's own, in memory
        else:
            shape_file(path)  # a process that didn't migrate first: here, once
    finally:
        cursor.close()


def shape_file(path: str) -> None:
    """Shape the staging file on a connection of its own (blocking: models.db.prepare_file
    calls it on a thread before the engine's first connection).

    Shaped through the attached connection, its `BEGIN IMMEDIATE` took the main file's write
    lock too: connections opened together on a new database (serve, its worker child and a
    command, one of them migrating the main file) waited on each other for the busy timeout
    and one failed with "database is locked". The file alone locks only itself."""
    create_private(path)
    with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as own:
        cursor = own.cursor()  # every connection after the first: this one read, no lock
        if (version := _version(cursor, "main")) != VERSION:
            cursor.execute("PRAGMA journal_mode=MEMORY")
            _create(cursor, version, "main")


def _create(cursor: Any, version: int, schema: str) -> None:
    """Shape the file (an older shape is dropped: staged rows can be read again from their
    sources, and no older shape exists yet)."""
    cursor.execute("BEGIN IMMEDIATE")
    try:
        # another connection may have shaped it while this one waited for the lock
        if _version(cursor, schema) != VERSION:
            if version:  # nothing older than 1 exists yet; future versions migrate here
                cursor.execute(f"DROP TABLE IF EXISTS {schema}.staged_row")
            for statement in _DDL:
                cursor.execute(statement.format(schema=schema))
            cursor.execute(f"PRAGMA {schema}.user_version={VERSION}")
        cursor.execute("COMMIT")
    except BaseException:
        cursor.execute("ROLLBACK")
        raise


def _version(cursor: Any, schema: str) -> int:
    cursor.execute(f"PRAGMA {schema}.user_version")
    return int(cursor.fetchone()[0])
