"""0025 marks the batches dry runs made (`import_batch.dry_run`): those killed dry runs left
before it are found in the rows they left, so Home stops listing them and the purge drops
them; every import stays as it was."""

from __future__ import annotations

from sqlalchemy import text

from bot.imports.retention import purge_staged
from handlers.home_publish import recent_imports
from models.migrate import upgrade
from tests.test_settings_and_schema import _at_revision

# id, requested_by, status, approved_by, cancelled_by, apply_cursor, its request audited
BATCHES = [
    (1, "cli", "draft", None, None, 0, False),  # a dry run killed while staging
    (2, "cli", "cancelled", None, "U2", 0, False),  # the same, withdrawn by a segment delete
    (3, "cli", "draft", None, None, 0, True),  # an import killed while staging
    (4, "cli", "cancelled", "cli", "cli", 5, False),  # stopped part way, before audits
    (5, "cli", "done", "cli", None, 9, False),
    (6, "U1", "draft", None, None, 0, False),  # a review in Slack
]


async def test_0025_marks_the_batches_dry_runs_left_and_only_those(
    db_env: dict[str, str],
) -> None:
    async with _at_revision(db_env, "0024") as db:
        async with db.begin() as conn:
            await conn.execute(text(
                "INSERT INTO segment (id, team_id, name, name_key, kind, created_at) "
                "VALUES (1, 'T1', 'All Customers', 'all customers', 'all', "
                "'2026-12-01 00:00:00')"))  # fmt: skip
            for batch_id, by, status, approved, cancelled, cursor, audited in BATCHES:
                await conn.execute(text(
                    "INSERT INTO import_batch (id, team_id, segment_id, requested_by, status, "
                    "approved_by, cancelled_by, update_existing, rows, valid, duplicates, "
                    "rejected, warnings, new_contacts, existing_contacts, added_to_segment, "
                    "already_in_segment, apply_cursor, created_at, updated_at, undo_advocates, "
                    "undo_removed) VALUES (:id, 'T1', 1, :by, :status, :approved, :cancelled, "
                    "false, 0, 0, 0, 0, 0, 0, 0, 0, 0, :cursor, '2026-12-01 00:00:00', "
                    "'2026-12-01 00:00:00', false, 0)"),
                    {"id": batch_id, "by": by, "status": status, "approved": approved,
                     "cancelled": cancelled, "cursor": cursor})  # fmt: skip
                if audited:
                    await conn.execute(text(
                        "INSERT INTO audit_entry (team_id, at, actor, action, subject, detail) "
                        "VALUES ('T1', '2026-12-01 00:00:00', :by, 'import.requested', "
                        ":subject, 'into All Customers')"),
                        {"by": by, "subject": f"import #{batch_id}"})  # fmt: skip
        await upgrade(db)
        async with db.begin() as conn:
            marked = (await conn.execute(text(
                "SELECT id FROM import_batch WHERE dry_run = :yes ORDER BY id"),
                {"yes": True})).scalars().all()  # fmt: skip
        assert marked == [1, 2]
        listed, total = await recent_imports(db, "T1")
        assert ([row.batch_id for row in listed], total) == ([6, 5, 4, 3], 4)
        await purge_staged(db, "T1", 7)  # they are days old: no dry run is still using them
        async with db.begin() as conn:
            left = (await conn.execute(text("SELECT id FROM import_batch ORDER BY id"))).all()
        assert [r[0] for r in left] == [3, 4, 5, 6]
