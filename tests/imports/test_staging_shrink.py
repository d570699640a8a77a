"""SQLite: purging staged rows gives the staging file's space back when most of it is free."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.imports import retention
from bot.imports.importer import import_files
from bot.imports.retention import purge_staged
from bot.workspaces import ensure_workspace
from models import Database
from models.clock import utcnow
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's staging file")


def _csv(prefix: str, rows: int) -> io.BytesIO:
    body = "email,first_name,last_name\n" + "".join(
        f"{prefix}{n}@example.com,Ann{n},Lee{n}\n" for n in range(rows))  # fmt: skip
    return io.BytesIO(body.encode())


async def _pages(db: Database) -> int:
    async with db.begin() as conn:
        return int((await conn.execute(text("PRAGMA staging.page_count"))).scalar_one())


async def _end_long_ago(db: Database, segment: str) -> None:
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE import_batch SET finished_at = :old WHERE segment_id = "
                 "(SELECT id FROM segment WHERE name = :s)").bindparams(
                bindparam("old", type_=UTCDateTime())),
            {"old": utcnow() - timedelta(days=40), "s": segment})  # fmt: skip


async def _two_imports(db: Database, first: tuple[str, int], second: tuple[str, int]) -> int:
    """Import two files (segment, rows) one after the other; the staging file's pages."""
    await ensure_workspace(db, "T1")
    for segment, rows in (first, second):
        await import_files(db, "T1", [(f"{segment}.csv", _csv(segment, rows))], segment=segment,
                           create_segment=True)  # fmt: skip
    return await _pages(db)


async def test_a_purge_that_frees_most_of_the_file_shrinks_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "SHRINK_FREE_PAGES", 16)
    full = await _two_imports(db, ("Big", 3000), ("Small", 50))
    await _end_long_ago(db, "Big")
    assert await purge_staged(db, "T1", 30) == 3000
    assert await _pages(db) < full // 4
    async with db.begin() as conn:  # what was left is all there
        assert (await conn.execute(text("SELECT COUNT(*) FROM staged_row"))).scalar_one() == 50


async def test_a_purge_that_leaves_most_of_the_file_in_use_leaves_it_be(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "SHRINK_FREE_PAGES", 16)
    full = await _two_imports(db, ("Small", 600), ("Big", 3000))
    await _end_long_ago(db, "Small")
    assert await purge_staged(db, "T1", 30) == 600
    assert await _pages(db) == full
