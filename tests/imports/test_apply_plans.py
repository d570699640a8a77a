"""The plans SQLite picks for the apply's two bulk inserts, which decide how long a million
rows take: read in order, no work per row that a join does once."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import text

from bot.imports import engine
from bot.imports.importer import import_files
from bot.workspaces import ensure_workspace
from models import Database
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's planner")

CSV = "email,first_name,last_name\n" + "".join(
    f"p{n}@example.com,Ann{n % 3},Lee{n % 5}\n" for n in range(50)
)


async def _plan(db: Database, statement: object) -> str:
    params = {"team": "T1", "batch": 1, "lo": 0, "hi": 10**9, "no": False, "yes": True,
              "now": "2026-12-03 00:00:00", "segment": 2, "below": 0}  # fmt: skip
    async with db.begin() as conn:
        rows = await conn.execute(text(f"EXPLAIN QUERY PLAN {statement}"), params)
        return "\n".join(str(row[-1]) for row in rows)


async def test_new_memberships_read_the_new_contacts_by_id(db: Database) -> None:
    # A name index also starts with team_id; walking it would read the contacts in name
    # order and insert their memberships out of order (twice as slow on a million).
    await ensure_workspace(db, "T1")
    await import_files(db, "T1", [("a.csv", io.BytesIO(CSV.encode()))], segment="S",
                       create_segment=True)  # fmt: skip
    plan = await _plan(db, engine._SQLITE_INSERT_NEW_MEMBERS)
    assert "USING INTEGER PRIMARY KEY (rowid>?)" in plan, plan
    assert "name_prefix" not in plan and "TEMP B-TREE" not in plan, plan


async def test_new_contacts_take_their_source_from_a_join_not_a_subquery_per_row(
    db: Database,
) -> None:
    await ensure_workspace(db, "T1")
    await import_files(db, "T1", [("a.csv", io.BytesIO(CSV.encode()))], segment="S",
                       create_segment=True)  # fmt: skip
    plan = await _plan(db, engine._INSERT_CONTACTS[False])  # no suppressed address
    assert "CORRELATED" not in plan, plan
    assert "ix_staged_row_batch" in plan, plan
