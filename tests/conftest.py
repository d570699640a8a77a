"""Shared fixtures: a migrated database per test, SQLite by default or PostgreSQL on request.

Set TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test) and TEST_DATABASE=postgres
to run every database test on PostgreSQL, each test in a schema of its own (new, or one a test
of the same process left and that was emptied: see schema_emptied).
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from models import Database
from models.migrate import MIGRATIONS, upgrade
from tests.fakes.slack_api import FakeSlack

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
BACKEND = os.environ.get("TEST_DATABASE", "sqlite")

if BACKEND == "postgres" and not POSTGRES_URL:
    raise pytest.UsageError("TEST_DATABASE=postgres needs TEST_POSTGRES_URL")

requires_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="PostgreSQL tests need TEST_POSTGRES_URL (see README)"
)


# Each PostgreSQL test makes and drops a schema of ~80 tables, indexes and sequences: a run
# leaves ~70,000 dead rows in pg_class and ten times that in pg_attribute, and on a server
# without autovacuum (CI's) they pile up run after run. At 3.4M dead pg_attribute rows every
# catalog lookup took ~35 ms instead of 0.3 ms and a test's schema 0.14 s instead of 0.07 s.
# So the run starts by vacuuming the catalogs the tests churn (about a second when the last
# run's are all there is to clear; a role that may not vacuum them is warned and goes on).
_CHURNED_CATALOGS = ("pg_class", "pg_attribute", "pg_attrdef", "pg_depend", "pg_type",
                     "pg_constraint", "pg_index", "pg_trigger", "pg_sequence", "pg_namespace",
                     "pg_statistic")  # fmt: skip


def pytest_sessionstart(session: pytest.Session) -> None:
    if BACKEND == "postgres" and not hasattr(session.config, "workerinput"):
        asyncio.run(_vacuum_catalogs())


async def _vacuum_catalogs() -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_url())
    try:
        await conn.execute("VACUUM " + ", ".join(f"pg_catalog.{t}" for t in _CHURNED_CATALOGS))
    finally:
        await conn.close()


def _asyncpg_url() -> str:
    return make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(
        hide_password=False)  # fmt: skip


@pytest.fixture(autouse=True)
def _none_of_the_developers_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test starts without the settings of the shell or folder it was run from.

    The README has `./run`'s settings exported or kept in a `.env` in the folder it runs from,
    the project's own, and `./test` runs from there too: with SECRET_KEY, SMTP_URL or a `.env`
    about, 28 tests failed and the run took half as long again (workers tried the developer's
    mail server). Settings read the environment case-insensitively, so every spelling of a
    setting's name goes; the test runs in its own empty folder (its `tmp_path`), where a `.env`
    is one it wrote, and the CLI, serve and workers it starts without `cwd` run there too."""
    from bot.settings import Settings

    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The PostgreSQL run runs the tests that use a database: the others (parsing, rendering,
    the fakes) already ran on SQLite and would run the same again (~25 s of CI). A module
    that looks at the backend itself keeps all its tests."""
    if BACKEND != "postgres":
        return
    kept, dropped = [], []
    for item in items:
        uses_db = {"db", "db_env"} & set(getattr(item, "fixturenames", ()))
        source = getattr(getattr(item, "module", None), "__file__", None) or ""
        if uses_db or _mentions_backend(source):
            kept.append(item)
        else:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _mentions_backend(path: str) -> bool:
    text = _SOURCES.get(path)
    if text is None:
        text = _SOURCES[path] = Path(path).read_text() if path else ""
    return "POSTGRES" in text or "BACKEND" in text


_SOURCES: dict[str, str] = {}


@pytest.fixture
def db_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment variables that point a subprocess (or Settings) at this test's database."""
    if BACKEND == "postgres":
        # a test that builds its database itself (no `db`) gets a schema nobody made yet
        spare = "db" in request.fixturenames and _SPARE
        schema = _SPARE.pop() if spare else f"t_{uuid.uuid4().hex[:12]}"
        yield {"DATABASE_URL": POSTGRES_URL, "DATABASE_SCHEMA": schema}
        # a subprocess (the CLI, serve) may have made it without the `db` fixture: leave the
        # server as it was (a connection of its own: unless `db` dropped it or kept it)
        if schema not in _DROPPED and schema not in _SPARE:
            asyncio.run(_drop_schema(schema))
        _DROPPED.discard(schema)
    else:
        yield {"DATABASE_URL": f"sqlite:///{tmp_path / 'test.db'}"}


_DROPPED: set[str] = set()  # schemas `dropped` dropped, which db_env needn't drop again


async def _drop_schema(schema: str) -> None:
    """Drop a test's schema. A connection the test left holding a lock in it (one that failed
    while it held another transaction open, to make a race happen) would keep the drop, and
    the run, waiting for ever: it is ended first, and said."""
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_url())
    try:
        if ended := await conn.fetchval(_END_HOLDERS, schema):
            warnings.warn(f"{ended} connection(s) still holding locks in the test's schema "
                          f"{schema} were ended to drop it", stacklevel=1)  # fmt: skip
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


_END_HOLDERS = """
SELECT count(pg_terminate_backend(pid)) FROM (
    SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
     WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
       AND l.pid <> pg_backend_pid()) AS holders
"""


# Running the migrations for every test cost a third of the suite's time. They are run once
# per test process instead: on SQLite into a template file that each test copies, on
# PostgreSQL as the DDL Alembic writes in offline (`--sql`) mode, which each test runs in its
# schema in one round trip. Both are exactly what `upgrade()` builds (tests/
# test_settings_and_schema.py runs the real upgrade and compares it with the models).
_TEMPLATES: dict[str, object] = {}


async def _sqlite_template() -> Path:
    path = _TEMPLATES.get("sqlite")
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="referral-bot-template-")) / "template.db"
        template = Database(f"sqlite:///{path}")
        await upgrade(template)
        await template.dispose()
        with closing(sqlite3.connect(path)) as conn:  # nothing left in a -wal file beside it
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _TEMPLATES["sqlite"] = path
    assert isinstance(path, Path)
    return path


def _postgres_ddl() -> str:
    ddl = _TEMPLATES.get("postgres")
    if ddl is None:
        buffer = io.StringIO()
        cfg = Config(output_buffer=buffer)
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", "postgresql://")
        command.upgrade(cfg, "head", sql=True)
        ddl = _TEMPLATES["postgres"] = buffer.getvalue()
    assert isinstance(ddl, str)
    return ddl


async def migrated(database: Database, url: str) -> None:
    """`database` at the head revision, built the fast way (see above)."""
    if database.is_sqlite:
        target = Path(make_url(url).database or "")
        if not target.exists():
            shutil.copyfile(await _sqlite_template(), target)
            return
    elif database.schema:
        async with database.engine.connect() as conn:  # its search_path is the schema
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.execute(f'CREATE SCHEMA IF NOT EXISTS "{database.schema}";\n'
                              + _postgres_ddl())  # fmt: skip
        return
    await upgrade(database)


@pytest.fixture
async def db(db_env: dict[str, str]) -> AsyncIterator[Database]:
    database = Database(db_env["DATABASE_URL"], schema=db_env.get("DATABASE_SCHEMA"))
    if database.schema not in _EMPTIED:
        await migrated(database, db_env["DATABASE_URL"])
        if database.schema and _NEW_SHAPE is None:
            await _remember_new_shape(database)
    _EMPTIED.discard(database.schema)
    try:
        yield database
    finally:
        if database.schema and await schema_emptied(database):
            await database.dispose()
            _SPARE.append(database.schema)
            _EMPTIED.add(database.schema)
        else:
            await dropped(database)


async def dropped(database: Database) -> None:
    """Dispose of a test's database, dropping its schema (PostgreSQL) first."""
    if database.schema:
        await _drop_schema(database.schema)
        _DROPPED.add(database.schema)
    await database.dispose()


# A PostgreSQL test's schema took ~0.15 s to make and ~0.04 s to drop under a whole run's load
# (the DDL of ~80 relations, then their files' removal), ~40 s of the run's 200. A test process
# keeps the schema its `db` test leaves and hands it to its next `db` test emptied (one DELETE
# a table, its sequences restarted), but only when nothing else tells it from a new one: the
# same catalog entries as a new schema's (a test that added a trigger, a column or a privilege,
# or ANALYZEd a table, leaves a different one), no more than a few pages (a big import's dead
# rows would slow every later scan) and no other connection holding a lock in it. Otherwise
# it is dropped as before.
_SPARE: list[str] = []  # this process's emptied schemas, for its next `db` tests
_EMPTIED: set[str] = set()
_NEW_SHAPE: tuple[list[str], list[str]] | None = None  # a new schema's catalog; tables to empty
_SPARE_MAX_BYTES = 2 * 1024 * 1024

_SHAPE_SQL = """
SELECT format('rel %s %s %s %s %s %s %s', c.relname, c.relkind, c.relpersistence, c.reloptions,
              c.relacl, c.relowner::regrole, c.reltuples >= 0)
  FROM pg_class c WHERE c.relnamespace = $1::text::regnamespace
UNION ALL
SELECT format('col %s.%s %s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
              a.attnotnull, a.attisdropped, pg_get_expr(d.adbin, d.adrelid))
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relnamespace = $1::text::regnamespace AND a.attnum > 0
UNION ALL
SELECT format('con %s %s', conname, pg_get_constraintdef(oid))
  FROM pg_constraint WHERE connamespace = $1::text::regnamespace
UNION ALL
SELECT format('idx %s', pg_get_indexdef(i.indexrelid))
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE c.relnamespace = $1::text::regnamespace
UNION ALL
SELECT format('trg %s %s %s', t.tgname, t.tgenabled, t.tgrelid::regclass)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = $1::text::regnamespace AND NOT t.tgisinternal
UNION ALL
SELECT format('pol %s %s', p.polname, p.polrelid::regclass)
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
 WHERE c.relnamespace = $1::text::regnamespace
UNION ALL
SELECT format('fn %s', p.oid::regprocedure) FROM pg_proc p
 WHERE p.pronamespace = $1::text::regnamespace
UNION ALL
SELECT format('type %s %s', t.typname, t.typtype)
  FROM pg_type t WHERE t.typnamespace = $1::text::regnamespace
UNION ALL
SELECT format('ns %s %s', n.nspacl, n.nspowner::regrole) FROM pg_namespace n
 WHERE n.oid = $1::text::regnamespace
"""

_FOREIGN_KEYS_SQL = """
SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c
 WHERE c.connamespace = $1::text::regnamespace AND c.contype = 'f' AND c.conrelid <> c.confrelid
"""

# what a connection the test left open holds there (pg_relation_size would wait for it)
_HELD_SQL = """
SELECT count(*) FROM pg_locks l JOIN pg_class r ON r.oid = l.relation
 WHERE r.relnamespace = $1::text::regnamespace AND l.pid <> pg_backend_pid()
"""
_SIZE_SQL = """
SELECT coalesce(sum(pg_relation_size(c.oid)), 0) FROM pg_class c
 WHERE c.relnamespace = $1::text::regnamespace AND c.relkind IN ('r', 'i', 't', 'S')
"""


async def _shape(raw: Any, schema: str) -> list[str]:
    rows = await raw.fetch(_SHAPE_SQL, schema)
    # names print schema-qualified where the search_path doesn't reach: compare without it
    shape = [r[0].replace(f"{schema}.", "").replace(f'"{schema}".', "") for r in rows]
    # and the one table whose rows are part of a new schema (tests write others there)
    versions = await raw.fetch(f'SELECT version_num FROM "{schema}".alembic_version')
    return sorted(shape + [f"version {r[0]}" for r in versions])


async def _remember_new_shape(database: Database) -> None:
    """The catalog of `database`'s new schema, and its tables in an order that deletes rows
    before the rows they reference (alembic_version keeps its one row)."""
    global _NEW_SHAPE
    async with database.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        shape = await _shape(raw, database.schema or "")
        tables = [r[0] for r in await raw.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> "
            "'alembic_version'", database.schema)]  # fmt: skip
        references = [(r[0], r[1]) for r in await raw.fetch(_FOREIGN_KEYS_SQL, database.schema)]
    _NEW_SHAPE = (shape, _referencing_first(tables, references))


def _referencing_first(tables: list[str], references: list[tuple[str, str]]) -> list[str]:
    """`tables` ordered so that a table comes before every table it references."""
    referenced_by = {t: {a for a, b in references if b == t} for t in tables}
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ready = [t for t in tables if t not in ordered and referenced_by[t] <= set(ordered)]
        if not ready:  # a cycle: nothing found here has one; don't guess
            raise RuntimeError(f"foreign keys in a cycle among {set(tables) - set(ordered)}")
        ordered.extend(sorted(ready))
    return ordered


async def schema_emptied(database: Database) -> bool:
    """Empty `database`'s schema for another test if it is as a new one but for its rows."""
    if _NEW_SHAPE is None or database.schema in _DROPPED:
        return False
    shape, tables = _NEW_SHAPE
    schema = database.schema or ""
    try:
        async with database.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.execute("SET lock_timeout = '5s'")  # a lock taken since: not reused
            if await raw.fetchval(_HELD_SQL, schema):
                return False
            if (await raw.fetchval(_SIZE_SQL, schema) > _SPARE_MAX_BYTES
                    or await _shape(raw, schema) != shape):
                return False
            async with raw.transaction():
                await raw.execute(
                    "".join(f'DELETE FROM "{schema}"."{t}";' for t in tables)
                    + "SELECT setval(c.oid, 1, false) FROM pg_class c WHERE c.relkind = 'S' "
                    f"AND c.relnamespace = '\"{schema}\"'::regnamespace;")
    except Exception as exc:  # whatever went wrong, a new schema for the next test is safer
        logging.getLogger(__name__).info("schema %s not reused: %r", schema, exc)
        return False
    return True


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every object the test modules' imports made (SQLAlchemy's, pydantic's, Slack's: most of
    a test process's) out of the garbage collector's full passes: each walked them all again,
    ~7% of a handler test's time (half that now). They live as long as the process anyway;
    how often a collection runs, and what it frees, is as before."""
    gc.freeze()


def _forget_the_tests_handlers() -> None:
    """aiohttp keeps the middleware chains of the last 1,024 handlers it served (a cache keyed
    by handler): each test's web app, its bolt app and its database engine stayed alive
    through its handler's closure, ~6,000 objects a test, and a test process grew to
    ~600 MB over its share of the suite (~250 MB with this)."""
    from aiohttp import web_app

    cached = getattr(web_app, "_cached_build_middleware", None)
    if cached is not None:
        cached.cache_clear()


_FAILED = pytest.StashKey[bool]()
_STARTED = pytest.StashKey[float]()


def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_STARTED] = time.time()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    if outcome.get_result().failed:
        item.stash[_FAILED] = True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Once a test's fixtures are torn down: its handlers forgotten (_forget_the_tests_handlers)
    and, if it failed, the processes it started and left killed (_stop_what_it_left)."""
    yield
    _forget_the_tests_handlers()
    if item.stash.get(_FAILED, False):
        _stop_what_it_left(item)


def _stop_what_it_left(item: pytest.Item) -> None:
    """A test that failed between starting a `referral-bot worker` and stopping it left the
    worker polling its database after the run, ~5% of a core each, for good (three found on
    this machine after a failed run). Only a failed test is looked at: a passing one stops
    what it starts, and listing processes after every test costs time."""
    import psutil

    started = item.stash.get(_STARTED, 0.0) - 1  # create_time() is rounded to clock ticks
    for child in psutil.Process().children(recursive=True):
        try:
            if child.create_time() >= started:
                command = child.cmdline()
                child.kill()
                child.wait(timeout=10)
                logging.getLogger(__name__).warning(
                    "%s left %s (pid %d) running: killed", item.nodeid, command, child.pid)
        except (psutil.Error, OSError):
            continue  # gone meanwhile


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop this process's spare schemas: the server is left as the run found it."""
    for schema in _SPARE:
        asyncio.run(_drop_schema(schema))
    _SPARE.clear()


@pytest.fixture
async def slack(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSlack]:
    """The fake Slack Web API on loopback, reached without any proxy the machine sets (a
    module with a `slack` of its own, or the handlers' harness, uses that instead)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with FakeSlack(bot_token="xoxb-test") as fake:
        yield fake
