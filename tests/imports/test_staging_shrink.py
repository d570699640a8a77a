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


@pytest.mark.parametrize(("purged", "kept", "shrinks"), [
    (("Big", 3000), ("Small", 50), True),  # most of the file freed: rewritten smaller
    (("Small", 600), ("Big", 3000), False),  # most of it still in use: left be
])  # fmt: skip
async def test_a_purge_shrinks_the_file_when_it_frees_most_of_it(
    db: Database, monkeypatch: pytest.MonkeyPatch, purged: tuple[str, int],
    kept: tuple[str, int], shrinks: bool,
) -> None:  # fmt: skip
    monkeypatch.setattr(retention, "SHRINK_FREE_PAGES", 16)
    full = await _two_imports(db, purged, kept)
    await _end_long_ago(db, purged[0])
    assert await purge_staged(db, "T1", 30) == purged[1]
    pages = await _pages(db)
    assert pages < full // 4 if shrinks else pages == full
    async with db.begin() as conn:  # what was left is all there
        left = (await conn.execute(text("SELECT COUNT(*) FROM staged_row"))).scalar_one()
    assert left == kept[1]
