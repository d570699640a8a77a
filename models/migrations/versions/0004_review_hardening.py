"""review hardening: staged rows by batch and email, who cancelled an import

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Duplicates are decided over the rows still in a batch: look rows up by batch and address,
    # and never scan other batches' rows.
    op.create_index("ix_staged_row_batch_key", "staged_row", ["team_id", "batch_id", "email_key"])
    with op.batch_alter_table("import_batch", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancelled_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("import_batch", schema=None) as batch_op:
        batch_op.drop_column("cancelled_by")
    op.drop_index("ix_staged_row_batch_key", table_name="staged_row")
