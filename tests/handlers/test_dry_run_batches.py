"""`referral-bot import --dry-run` stages its rows in a batch of its own and drops it when it
ends. Home listed that batch meanwhile as an import "waiting for review", "Requested from the
command line" (into All Customers for a new segment), counted among the imports; a dry run
killed part way (kill -9, a dropped SSH session) left it there for good, with its rows."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from datetime import timedelta
from pathlib import Path

from sqlalchemy import bindparam, text
from sqlmodel.sql.sqltypes import UTCDateTime

from bot.imports.batches import create_batch
from bot.imports.job_kinds import PURGE_JOB
from bot.workspaces import ensure_workspace, find_segment
from handlers.home_messages import MAX_IMPORTS_SHOWN
from models.clock import utcnow
from tests.handlers.conftest import REP, Harness
from tests.handlers.test_home import _open_home, _seed
from tests.test_cli import _big_csv, _staging

TEAM = "T0001"
LONG_AGO = timedelta(hours=2)  # longer than any dry run takes: one this old was killed


async def _rows(app: Harness, sql: str) -> list[tuple[object, ...]]:
    async with app.db.begin() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql))).all()]


def _imports_on_home(view: dict[str, object]) -> str:
    blocks = view["blocks"]
    assert isinstance(blocks, list)
    start = next(i for i, b in enumerate(blocks) if b["type"] == "header"
                 and b["text"]["text"] == "Recent imports")  # fmt: skip
    return json.dumps(blocks[start:], ensure_ascii=False)


async def test_a_dry_run_is_never_an_import_on_home_and_a_killed_ones_batch_goes(
    app: Harness, db_env: dict[str, str], tmp_path: Path
) -> None:
    # a page of imports: one more listed or counted would show as "Show more"
    await _seed(app, segments=1, campaigns=0, imports=MAX_IMPORTS_SHOWN)
    before = _imports_on_home(await _open_home(app, REP))
    assert "Show more" not in before and "waiting for review" in before  # a seeded one

    proc = _staging(db_env, _big_csv(tmp_path), "--create-segment", "--dry-run")
    try:
        (dry_id, requested_by, status), = await _rows(
            app, f"SELECT id, requested_by, status FROM import_batch WHERE id > "
                 f"{MAX_IMPORTS_SHOWN}")  # fmt: skip
        assert (requested_by, status) == ("cli", "draft")  # its rows are being staged
        during = _imports_on_home(await _open_home(app, REP))
        for _ in range(3000):  # its first rows are written
            if await _rows(app, f"SELECT 1 FROM staged_row WHERE batch_id = {dry_id} LIMIT 1"):
                break
            await asyncio.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)  # kill -9, in the middle of staging
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    after = _imports_on_home(await _open_home(app, REP))
    for shown in (during, after):
        assert shown == before, shown  # not listed, not counted
    assert await find_segment(app.db, TEAM, "S") is None  # and no segment was made

    # what it left is cleaned up by the purge that already runs, once no dry run could
    # still be using it; a dry run under way keeps its batch
    await ensure_workspace(app.db, TEAM)
    everyone = await find_segment(app.db, TEAM, "All Customers")
    assert everyone is not None and everyone.id is not None
    running = await create_batch(app.db, TEAM, everyone.id, "cli", dry_run=True)
    async with app.db.begin() as conn:
        await conn.execute(text("UPDATE import_batch SET created_at = :at WHERE id = :b")
                           .bindparams(bindparam("at", type_=UTCDateTime())),
                           {"at": utcnow() - LONG_AGO, "b": dry_id})  # fmt: skip
        await conn.execute(text("UPDATE job SET run_after = CURRENT_TIMESTAMP "
                                "WHERE kind = :k AND state = 'queued'"), {"k": PURGE_JOB})
    assert await _rows(app, f"SELECT COUNT(*) FROM staged_row WHERE batch_id = {dry_id}") != [(0,)]
    await app.settle()  # the worker runs the purge
    assert await _rows(app, f"SELECT COUNT(*) FROM import_batch WHERE id > "
                            f"{MAX_IMPORTS_SHOWN}") == [(1,)]  # fmt: skip
    assert await _rows(app, "SELECT id FROM import_batch WHERE id > "
                            f"{MAX_IMPORTS_SHOWN}") == [(running.id,)]  # fmt: skip
    for table in ("staged_row", "import_source"):
        assert await _rows(app, f"SELECT COUNT(*) FROM {table} WHERE batch_id = {dry_id}") == [
            (0,)]
    assert _imports_on_home(await _open_home(app, REP)) == before
