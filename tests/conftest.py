"""Shared fixtures: a migrated database per test, SQLite by default or PostgreSQL on request.

Set TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test) and TEST_DATABASE=postgres
to run every database test on PostgreSQL, each test in a schema of its own.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url

from models import Database
from models.migrate import MIGRATIONS, upgrade

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
def db_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment variables that point a subprocess (or Settings) at this test's database."""
    if BACKEND == "postgres":
        schema = f"t_{uuid.uuid4().hex[:12]}"
        yield {"DATABASE_URL": POSTGRES_URL, "DATABASE_SCHEMA": schema}
        # a subprocess (the CLI, serve) may have made it without the `db` fixture: leave the
        # server as it was (a connection of its own: unless `db` dropped it already)
        if schema not in _DROPPED:
            asyncio.run(_drop_schema(schema))
        _DROPPED.discard(schema)
    else:
        yield {"DATABASE_URL": f"sqlite:///{tmp_path / 'test.db'}"}


_DROPPED: set[str] = set()  # schemas `dropped` dropped, which db_env needn't drop again


async def _drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_url())
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


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
    await migrated(database, db_env["DATABASE_URL"])
    try:
        yield database
    finally:
        await dropped(database)


async def dropped(database: Database) -> None:
    """Dispose of a test's database, dropping its schema (PostgreSQL) first."""
    if database.schema:
        async with database.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{database.schema}" CASCADE'))
        _DROPPED.add(database.schema)
    await database.dispose()
