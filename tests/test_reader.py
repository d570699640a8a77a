"""The database's reader (models/reader.py) gives what the ORM gives, and only committed rows."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.imports.batches import create_batch
from bot.leads import add_leads, is_listed
from bot.workspaces import create_segment, ensure_workspace
from models import Database, ImportBatch, Segment
from models.clock import utcnow


async def test_a_row_read_is_the_model_the_orm_reads(db: Database) -> None:
    """Every column type the models use: text, integers, booleans, datetimes and NULLs."""
    await ensure_workspace(db, "T1")
    segment = await create_segment(db, "T1", "VIPs <!channel>", actor="U1")
    assert segment.id is not None
    batch = await create_batch(db, "T1", segment.id, "U1", update_existing=True, consent=True)
    async with db.begin() as conn:
        await conn.execute(update(ImportBatch).where(ImportBatch.id == batch.id)
                           .values(finished_at=utcnow(), rows=7, channel_id=None))  # fmt: skip
    async with db.session() as session:
        want = await session.get(ImportBatch, batch.id)
        want_segment = await session.get(Segment, segment.id)
    got = await db.reader.get(ImportBatch, batch.id, "T1")
    assert want is not None and got is not None
    assert got.model_dump() == want.model_dump()
    assert got.update_existing is True and got.rows == 7 and got.finished_at is not None
    got_segment = await db.reader.get(Segment, segment.id, "T1")
    assert want_segment is not None and got_segment is not None
    assert got_segment.model_dump() == want_segment.model_dump()


async def test_another_workspaces_id_or_a_missing_one_reads_nothing(db: Database) -> None:
    await ensure_workspace(db, "T1")
    await ensure_workspace(db, "T2")
    segment = await create_segment(db, "T1", "VIPs", actor="U1")
    assert segment.id is not None
    batch = await create_batch(db, "T1", segment.id, "U1")
    assert await db.reader.get(ImportBatch, batch.id, "T2") is None
    assert await db.reader.get(ImportBatch, 987654321, "T1") is None


async def test_a_change_is_read_as_soon_as_it_is_committed(db: Database) -> None:
    await ensure_workspace(db, "T1")
    assert await is_listed(db, "T1", "U0009AB", ("U0001AB",)) is False  # seeds the list
    await add_leads(db, "T1", ["U0009AB"], by="U0001AB")
    assert await is_listed(db, "T1", "U0009AB") is True


async def test_an_in_memory_database_reads_through_the_engine_and_dispose_ends_the_thread(
    db_env: dict[str, str],
) -> None:
    before = set(threading.enumerate())
    for url in ("sqlite://", db_env["DATABASE_URL"]):
        database = Database(url, schema=db_env.get("DATABASE_SCHEMA"))
        try:
            rows = await database.reader.rows("SELECT 1 + :n", {"n": 1})
            assert rows == [(2,)]
        finally:
            await database.dispose()
    started = [t for t in threading.enumerate() if t not in before]
    for thread in started:  # aiosqlite's threads end just after their connection closes
        thread.join(5)
    assert not [t.name for t in started if t.is_alive()]


def test_a_process_that_never_disposes_of_the_database_still_exits(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    """The reader's connection ran on a thread that wasn't a daemon: a process that read
    through it and ended without `dispose()` (an error on the way out) hung at exit."""
    if not db_env["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("the reader's own connection is SQLite's")
    script = tmp_path / "no_dispose.py"
    script.write_text(
        "import asyncio, sys\n"
        "from models import Database\n"
        "db = Database(sys.argv[1])\n"
        "print(asyncio.run(db.reader.rows('SELECT 1', {})))\n",
        encoding="utf-8",
    )
    done = subprocess.run([sys.executable, str(script), db_env["DATABASE_URL"]],
                          cwd=Path(__file__).parent.parent, capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 0 and done.stdout == "[(1,)]\n", done
