"""Shared fixtures: a migrated database per test, SQLite by default or PostgreSQL on request.

Set TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test) and TEST_DATABASE=postgres
to run every database test on PostgreSQL, each test in a schema of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from models import Database
from models.migrate import upgrade

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
BACKEND = os.environ.get("TEST_DATABASE", "sqlite")

if BACKEND == "postgres" and not POSTGRES_URL:
    raise pytest.UsageError("TEST_DATABASE=postgres needs TEST_POSTGRES_URL")

requires_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="PostgreSQL tests need TEST_POSTGRES_URL (see README)"
)


@pytest.fixture
def db_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment variables that point a subprocess (or Settings) at this test's database."""
    if BACKEND == "postgres":
        schema = f"t_{uuid.uuid4().hex[:12]}"
        yield {"DATABASE_URL": POSTGRES_URL, "DATABASE_SCHEMA": schema}
    else:
        yield {"DATABASE_URL": f"sqlite:///{tmp_path / 'test.db'}"}


@pytest.fixture
async def db(db_env: dict[str, str]) -> AsyncIterator[Database]:
    database = Database(db_env["DATABASE_URL"], schema=db_env.get("DATABASE_SCHEMA"))
    await upgrade(database)
    try:
        yield database
    finally:
        if database.schema:
            async with database.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{database.schema}" CASCADE'))
        await database.dispose()
