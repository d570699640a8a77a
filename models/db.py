"""The async engine and sessions: SQLite file by default, PostgreSQL for several processes."""

from __future__ import annotations

import gc
import os
import sqlite3
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel.ext.asyncio.session import AsyncSession

from models import sqlite_driver
from models.private_file import create_private
from models.reader import Reader
from models.staging import attach_staging, shape_file, staging_path

# 32 MiB of page cache: big imports stay fast within the RSS budget.
_SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=30000",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA cache_size=-32768",
)


# The URL schemes people paste (DATABASE_URL), each with the async driver it is used through.
ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg", "postgresql+psycopg": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite", "sqlite+pysqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}  # fmt: skip


# libpq's URL parameters that hosts hand out, as asyncpg takes them: `?sslmode=require` is
# asyncpg's `ssl` (in the URL), `connect_timeout` its `timeout` and `application_name` a
# server setting (connect_args); `channel_binding` (Neon's URLs) asyncpg can't be asked for,
# and TLS is still what sslmode says. Any other parameter is refused at start (bot.settings):
# asyncpg took each as a keyword and failed with a traceback.
PG_URL_PARAMETERS = frozenset({"sslmode", "ssl", "connect_timeout", "application_name",
                               "channel_binding"})  # fmt: skip


def async_url(url: str) -> str:
    """Accept the URLs people paste (postgresql://, sqlite:///) and pick the async driver."""
    u = make_url(url)
    u = u.set(drivername=ASYNC_DRIVERS.get(u.drivername, u.drivername))
    if u.drivername == "postgresql+asyncpg":
        query = dict(u.query)
        if "sslmode" in query:
            query["ssl"] = query.pop("sslmode")
        for passed_apart in ("connect_timeout", "application_name", "channel_binding"):
            query.pop(passed_apart, None)  # see connect_args
        u = u.set(query=query)
    return u.render_as_string(hide_password=False)


def connect_args(url: str, schema: str | None) -> dict[str, Any]:
    """asyncpg's keywords for what the URL says apart from its query (see PG_URL_PARAMETERS)
    and for the schema."""
    query = make_url(url).query
    args: dict[str, Any] = {}
    server: dict[str, str] = {}
    if isinstance(timeout := query.get("connect_timeout"), str):
        args["timeout"] = float(timeout)
    if isinstance(name := query.get("application_name"), str):
        server["application_name"] = name
    if schema:
        # quoted, as CREATE SCHEMA names it: unquoted, "Referral" was folded to "referral",
        # which didn't exist, and no table could be created
        server["search_path"] = '"' + schema.replace('"', '""') + '"'
    if server:
        args["server_settings"] = server
    return args


def driver_error(exc: BaseException) -> str:
    """The database driver's own error in one line ("DuplicateTableError: relation "x" already
    exists"), without SQLAlchemy's wrapping: its class prefix, the SQL and a link to its docs
    would take a screen. Never holds the URL (the drivers don't print it)."""
    cause: BaseException = exc
    if isinstance(cause, DBAPIError) and cause.orig is not None:
        cause = cause.orig
    if isinstance(cause.__cause__, Exception):  # asyncpg's own under SQLAlchemy's adapter
        cause = cause.__cause__
    line = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {line}" if line else type(cause).__name__


class Database:
    """Owns the engine; hands out sessions for ORM work and connections for bulk SQL."""

    def __init__(self, url: str, *, schema: str | None = None, echo: bool = False) -> None:
        self.url = async_url(url)
        self.schema = schema
        self.dialect = make_url(self.url).get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "postgresql":
            kwargs["pool_size"] = 5
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = connect_args(url, schema)
        elif self.dialect == "sqlite":  # a cancelled caller's statement is interrupted
            kwargs["connect_args"] = {"async_creator_fn": sqlite_driver.connect}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
            event.listen(self.engine.sync_engine, "invalidate", _interrupt_sqlite)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )
        self.reader = Reader(self.engine, sqlite_file(self.url) if self.is_sqlite else None)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed on success: for set-based SQL."""
        async with self.engine.begin() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.reader.close()
        await self.engine.dispose()


def let_go_of_interrupted(exc: BaseException) -> None:
    """Free what an interrupted statement holds, before writing again after `exc`.

    A statement interrupted in the middle (Ctrl-C, a cancelled task) makes SQLAlchemy close
    its SQLite connection without a rollback, and the statement's cursor, still referenced
    from the frames of `exc`'s traceback, keeps that closed connection's transaction open, and
    with it SQLite's write lock, for as long as the exception lives. A write made while
    handling it (the shell's import handing its job back on Ctrl-C) waited the busy timeout
    out and failed. Clearing those frames (their locals; the lines stay) finalizes the
    statement and ends the transaction. PostgreSQL's server ends it by itself."""
    for one in exception_chain(exc):
        traceback.clear_frames(one.__traceback__)  # frames still running are left alone
    gc.collect()  # the cursor may sit in a reference cycle


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception behind it, each once: its cause and context, and the
    driver's own error a SQLAlchemy error wraps (`orig`)."""
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending:
        one = pending.pop()
        if not isinstance(one, BaseException) or id(one) in seen:
            continue
        seen.add(id(one))
        yield one
        pending += [getattr(one, "orig", None), one.__cause__, one.__context__]


def upsert(conn: AsyncConnection, table: Any) -> Any:
    """INSERT into `table` in the connection's dialect, for its `on_conflict_do_nothing` /
    `on_conflict_do_update` (SQLite's and PostgreSQL's take the same arguments)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def sqlite_file(url: str) -> str | None:
    """The SQLite file another connection can open, or None for a private in-memory one."""
    database = make_url(url).database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return database


WAL_WAIT_SECONDS = 30.0


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode (once per file: it stays so). A new file's switch needs the
    file to itself and fails at once, busy timeout or not, while another connection is in a
    transaction on it: processes started together on a new database (serve and its worker
    child after a deploy) failed with "database is locked". So it waits for its turn."""
    deadline = time.monotonic() + WAL_WAIT_SECONDS
    while True:
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError, wrapped or not
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.02)


def prepare_file(path: str) -> None:
    """Put a SQLite file in WAL mode and shape its staging file, on a plain connection:
    blocking (they may wait for another process), so upgrade runs it on a thread before the
    engine connects; the connect hook then finds both done and only reads."""
    create_private(path)
    with closing(sqlite3.connect(path, timeout=WAL_WAIT_SECONDS, isolation_level=None)) as own:
        _use_wal(own.cursor())
    # beside the file SQLite opens, as attach_staging names it (PRAGMA database_list gives
    # a symlink's target): beside the link, a second one was made and never used
    shape_file(staging_path(os.path.realpath(path)))


def _interrupt_sqlite(dbapi_conn: Any, _record: Any, _exc: BaseException | None) -> None:
    """Stop the statement of a connection SQLAlchemy lets go of (an error, or an interruption
    `sqlite_driver` didn't see: the caller cancelled between two calls)."""
    driver = getattr(dbapi_conn, "_connection", None)
    if driver is not None:
        sqlite_driver.interrupt(driver)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    for pragma in _SQLITE_PRAGMAS:
        cursor.execute(pragma)
    _use_wal(cursor)
    cursor.close()
    attach_staging(dbapi_conn)
