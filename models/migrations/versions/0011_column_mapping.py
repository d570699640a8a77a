"""column mapping

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08

Column mappings a workspace chose (*Map columns* on the review message, `import --map`),
remembered per set of headers so the next export from the same tool maps itself; and the
header row of a file whose columns someone mapped, kept on its source.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "column_mapping",
        sa.Column("team_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("headers_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("locale", sa.Text(), nullable=True),
        sa.Column("subscribed", sa.Text(), nullable=True),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "headers_key"),
    )
    with op.batch_alter_table("import_source", schema=None) as batch_op:
        batch_op.add_column(sa.Column("header", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("import_source", schema=None) as batch_op:
        batch_op.drop_column("header")
    op.drop_table("column_mapping")
