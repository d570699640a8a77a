"""dry run batches: `import --dry-run`'s batch is marked, and is no import

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06

A dry run stages its rows in a draft batch that it drops when it ends. App Home listed that
batch meanwhile as an import "waiting for review", "Requested from the command line", and for
good when the dry run was killed (kill -9, a dropped SSH session). Batches are now marked
when a dry run makes them: no list of imports shows them, and the purge drops a killed one's.

Those made before this revision are told apart as the segment deletion told them (its
withdrawal audits only a batch whose request was audited): asked from the command line, never
approved nor applied, a draft (or withdrawn when its segment was deleted), and no request in
the audit log, which every import from the shell records with its batch.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEFT_BY_DRY_RUNS = sa.text("""
    UPDATE import_batch SET dry_run = :yes
    WHERE requested_by = 'cli' AND approved_by IS NULL AND apply_cursor = 0
      AND status IN ('draft', 'cancelled')
      AND NOT EXISTS (
          SELECT 1 FROM audit_entry a
          WHERE a.team_id = import_batch.team_id AND a.action = 'import.requested'
            AND a.subject = 'import #' || CAST(import_batch.id AS VARCHAR(20)))
""").bindparams(yes=True)


# Plain ALTER TABLE on both databases: batch mode would copy `import_batch` on SQLite, and
# dropping the old copy fails while other tables' rows refer to it (as 0016 adds its column).
def upgrade() -> None:
    op.add_column("import_batch", sa.Column("dry_run", sa.Boolean(), nullable=False,
                                            server_default=sa.false()))  # fmt: skip
    op.execute(_LEFT_BY_DRY_RUNS)


def downgrade() -> None:
    with op.batch_alter_table("import_batch", schema=None) as batch_op:
        batch_op.drop_column("dry_run")
