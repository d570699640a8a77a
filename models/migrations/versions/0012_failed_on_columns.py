"""file format, failed on columns

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

What a file turned out to be when it was read (CSV, a workbook, a ZIP, a CSV in a ZIP), and
whether it failed because its columns don't say where the addresses are (which *Map columns*
can fix): recorded as they happen instead of read back from a file's name or the wording of
its error. Files that failed before are classified once here by that wording, as they were
until now; files read before keep no format, and are labelled by their names as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("import_source", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_on_columns", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("file_format", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True)
        )
    op.execute(
        "UPDATE import_source SET failed_on_columns = true WHERE status = 'failed' "
        "AND (error LIKE 'No email column%' OR error LIKE 'The column %')"
    )


def downgrade() -> None:
    with op.batch_alter_table("import_source", schema=None) as batch_op:
        batch_op.drop_column("file_format")
        batch_op.drop_column("failed_on_columns")
