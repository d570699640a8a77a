"""invited address: a deleted contact's address that a campaign already emailed

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04

Deleting a contact deleted its sent invites with it: the next import of the same address
created it again, and a live campaign enrolled it with a new link and emailed the person a
second time. The address key is kept per campaign that emailed it; enrolling it again in
that campaign makes its invite "not emailed" (invited before).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invited_address",
        sa.Column("team_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("email_key", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("invited_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "campaign_id", "email_key"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("invited_address")
