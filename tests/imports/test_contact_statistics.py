"""PostgreSQL: an apply refreshes contact's statistics when the table has outgrown them, so
its probes by address go through the unique index, not a name index that also starts with
team_id (which read all of the workspace's contacts for each staged row)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from bot.imports import engine
from bot.imports.importer import import_files
from bot.workspaces import ensure_workspace
from models import Database
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "postgres", reason="PostgreSQL's planner")


def _csv(start: int, count: int) -> io.BytesIO:
    rows = "".join(f"p{n}@example.com,Ann{n % 3},Lee{n % 5}\n" for n in range(start, start + count))
    return io.BytesIO(("email,first_name,last_name\n" + rows).encode())


async def _plan(db: Database, statement: object, batch_id: int, segment_id: int) -> str:
    params = {"team": "T1", "batch": batch_id, "lo": 0, "hi": 10**9, "no": False,
              "now": datetime.now(UTC), "segment": segment_id, "below": 0}  # fmt: skip
    async with db.begin() as conn:
        rows = await conn.execute(text(f"EXPLAIN {statement}"), params)
        return "\n".join(str(row[0]) for row in rows)


async def test_known_contacts_are_probed_through_the_unique_index_once_the_table_grew(
    db: Database,
) -> None:
    await ensure_workspace(db, "T1")
    await import_files(db, "T1", [("a.csv", _csv(0, 3000))], segment="A", create_segment=True)
    # half of these are known: their memberships are found by address
    second = await import_files(db, "T1", [("b.csv", _csv(2000, 2000))], segment="B",
                                create_segment=True)  # fmt: skip
    batch = second.batch
    assert (batch.new_contacts, batch.existing_contacts, batch.added_to_segment) == (
        1000, 1000, 2000)  # fmt: skip
    plan = await _plan(db, engine._INSERT_MEMBERS, batch.id, batch.segment_id)
    assert "uq_contact_team_email" in plan and "name_prefix" not in plan, plan
    # fresh now: the next apply doesn't sample the table again until it grows by a tenth
    assert await engine.refresh_contact_statistics(db) is False
