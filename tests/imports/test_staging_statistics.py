"""PostgreSQL: a big file's staged rows leave statistics behind, so the apply is planned for
the rows that are there (with none, it probes import_source once per staged row)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import text

from bot.imports import staging
from bot.imports.importer import import_files
from bot.workspaces import ensure_workspace
from models import Database
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's statistics")

CSV = "email,first_name\n" + "".join(f"p{n}@example.com,Ann{n}\n" for n in range(60))


async def _stats(db: Database) -> int:
    async with db.begin() as conn:
        return int((await conn.execute(text(
            "SELECT COUNT(*) FROM pg_stats WHERE schemaname = current_schema() "
            "AND tablename = 'staged_row'"))).scalar_one())  # fmt: skip


@pytest.mark.parametrize("threshold", [50, 1000])
async def test_staging_at_least_analyze_rows_analyzes_staged_row(
    db: Database, monkeypatch: pytest.MonkeyPatch, threshold: int
) -> None:
    monkeypatch.setattr(staging, "ANALYZE_ROWS", threshold)
    await ensure_workspace(db, "T1")
    await import_files(db, "T1", [("a.csv", io.BytesIO(CSV.encode()))], segment="S",
                       create_segment=True)  # fmt: skip
    assert (await _stats(db) > 0) is (threshold <= 60)
