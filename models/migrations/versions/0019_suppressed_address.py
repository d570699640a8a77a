"""suppressed address: the key of a contact deleted after it unsubscribed

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04

Deleting a contact deleted its unsubscribe with it: the next import of the same list created
it again, subscribed, and a live campaign emailed the person who had asked not to be. The
address key of a contact deleted after it unsubscribed is kept here; an import that creates
it again creates it unsubscribed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suppressed_address",
        sa.Column("team_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("email_key", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("suppressed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "email_key"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("suppressed_address")
