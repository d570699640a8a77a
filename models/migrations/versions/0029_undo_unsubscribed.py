"""undo unsubscribed: how many contacts an undo unsubscribed again

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07

Undoing an `--update-existing` import unsubscribes again the contacts it had re-subscribed
(its confirmation counts them); nothing said so after, neither its result nor the audit log:
consents changed without a trace. `import_batch.undo_unsubscribed` counts them, in each
range's transaction; undos finished before start at 0.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases, as 0026 adds its column (batch mode would copy the table).
def upgrade() -> None:
    op.add_column("import_batch", sa.Column("undo_unsubscribed", sa.Integer(), nullable=False,
                                            server_default="0"))  # fmt: skip


def downgrade() -> None:
    with op.batch_alter_table("import_batch", schema=None) as batch_op:
        batch_op.drop_column("undo_unsubscribed")
