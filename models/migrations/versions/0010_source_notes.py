"""source notes

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

What the bot recognised in a file, shown under its line on the review message: a Mailchimp
export's kind, the sheet of a workbook that was read, what a ZIP held besides CSV files, and
consent values it could not read. `error` stays for failures only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("import_source", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("import_source", schema=None) as batch_op:
        batch_op.drop_column("note")
